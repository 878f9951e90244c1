"""How long does the compliance gate take?

1. `decide` alone with a 1,000-attempt history (``cn`` and ``us-regf``), beside a floor: one Python pass
   over the same history.
2. The full gate (`compliance.service.check_contact`: context queries, the one indexed history query and
   `decide`) on PostgreSQL holding 1,000,000 accounts and 5,000,000 contact attempts, for random cases
   (about five attempts each) and for one case with a 1,000-attempt history, beside a floor: the bare
   indexed history query through the driver.

The data is generated in the database with ``INSERT ... SELECT generate_series`` (bench rows are not hash
chained; limitation dates are stored as the daily run leaves them). ``BENCH_SCALE`` shrinks it (``BENCH_SCALE=0.01``: 10,000 accounts, 50,000 attempts); the
database ``arrears_bench_compliance`` is reused when it already holds the requested scale.
PostgreSQL: ``ARREARS_BENCH_POSTGRES_URL`` (default ``postgresql://postgres@127.0.0.1:5432/test``).
Run: ``PYTHONPATH=src python -m bench compliance``.
"""

from __future__ import annotations

import os
import random
import statistics
import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from arrears import db
from arrears.compliance import service
from arrears.compliance.pack import load_pack
from arrears.compliance.rules import decide
from arrears.compliance.schemas import Attempt, ContactPoint, Context, Outcome, PriorAttempt
from arrears.enums import Channel

RUNS = 2000
HEAVY = 1000  # attempts in the heavy case
NOW = datetime(2026, 6, 3, 6, 0, tzinfo=UTC)  # 14:00 in Shanghai
DB_NAME = "arrears_bench_compliance"
HISTORY_SQL = (
    "SELECT a.id, a.started_at, a.channel, a.direction, a.purpose, a.collector, a.account_ids, a.outcome,"
    " a.corrects_id, a.contact_point_id, cp.value, cp.kind, cp.owner_relation, cp.owner_name,"
    " cp.debt_related, cp.timezone FROM contact_attempt a"
    " LEFT OUTER JOIN contact_point cp ON cp.id = a.contact_point_id"
    " WHERE a.case_id = %s AND a.started_at <= %s ORDER BY a.started_at"
)


def _percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[max(0, int(len(ordered) * 0.99) - 1)]


def _history(n: int, now: datetime, rnd: random.Random) -> list[PriorAttempt]:
    numbers = [ContactPoint(f"+86138001380{i:02d}", time_zones=("Asia/Shanghai",)) for i in range(3)]
    outcomes = list(Outcome)
    out = []
    for _ in range(n):
        at = now - timedelta(minutes=rnd.randint(1, 365 * 24 * 60))
        out.append(
            PriorAttempt(
                at=at,
                channel=rnd.choice([Channel.CALL, Channel.CALL, Channel.SMS]),
                contact_point=rnd.choice(numbers),
                account_ids=frozenset(rnd.sample([1, 2, 3], rnd.randint(1, 2))),
                collector_id=rnd.choice(["bank", "agency"]),
                outcome=rnd.choice(outcomes),
            )
        )
    rnd.shuffle(out)
    return out


def bench_decide() -> None:
    """p50 / p99 of the pure `decide` with a 1,000-attempt history."""
    rnd = random.Random(7)
    history = _history(HEAVY, NOW, rnd)
    context = Context()
    for name, zone in (("cn", "Asia/Shanghai"), ("us-regf", "America/New_York")):
        pack = load_pack(name)
        cp = ContactPoint("+8613800138000", time_zones=(zone,))
        decide_times, floor_times = [], []
        for i in range(RUNS):
            at = NOW + timedelta(hours=12 * (i % 2))  # alternate allowed and blocked by time of day
            attempt = Attempt(
                at=at, channel=Channel.CALL, contact_point=cp, account_ids=frozenset({1}), collector_id="bank"
            )
            t0 = time.perf_counter()
            decide(attempt, history, context, pack)
            t1 = time.perf_counter()
            n = 0
            for h in history:
                if h.at <= at:
                    n += 1
            t2 = time.perf_counter()
            decide_times.append((t1 - t0) * 1e6)
            floor_times.append((t2 - t1) * 1e6)
        p50, p99 = _percentiles(decide_times)
        f50, f99 = _percentiles(floor_times)
        print(
            f"decide {name:8s} 1,000-attempt history: p50 {p50:7.1f} us  p99 {p99:7.1f} us | floor (one pass)"
            f" p50 {f50:6.1f} us  p99 {f99:6.1f} us | p50 ratio {p50 / f50:4.1f}x | target p99 < 1000 us: "
            f"{'ok' if p99 < 1000 else 'MISSED'}"
        )


def _database() -> str:
    admin_url = os.environ.get("ARREARS_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
    if admin_url.startswith("postgresql://"):
        admin_url = "postgresql+psycopg://" + admin_url[len("postgresql://") :]
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        exists = conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": DB_NAME}).first()
        if not exists:
            conn.execute(text(f'CREATE DATABASE "{DB_NAME}"'))
    admin.dispose()
    return make_url(admin_url).set(database=DB_NAME).render_as_string(hide_password=False)


def _generate(engine: object, accounts: int, attempts: int) -> None:
    eng = engine  # an Engine
    with eng.begin() as conn:  # type: ignore[attr-defined]
        have = conn.execute(text("SELECT count(*) FROM account")).scalar_one()
        have_attempts = conn.execute(text("SELECT count(*) FROM contact_attempt")).scalar_one()
        if have == accounts and have_attempts == attempts + HEAVY:
            print(f"reusing {DB_NAME}: {accounts:,} accounts, {have_attempts:,} attempts")
            return
        t0 = time.perf_counter()
        conn.execute(text("SET LOCAL synchronous_commit = off"))
        conn.execute(
            text(
                "TRUNCATE contact_attempt, account_limitation, account_flag, contact_consent, inconvenient_time,"
                ' channel_opt_out, instalment, account, contact_point, "case", debtor, portfolio, creditor'
                " RESTART IDENTITY CASCADE"
            )
        )
        conn.execute(
            text(
                "INSERT INTO creditor (id, name, kind, licensed_lender) VALUES (1, '基准银行', 'bank', true)"
            )
        )
        conn.execute(
            text(
                "INSERT INTO portfolio (id, creditor_id, name, currency, timezone, rule_pack, strategy, locale)"
                " VALUES (1, 1, 'bench', 'CNY', 'Asia/Shanghai', 'cn', 'default', 'zh_CN')"
            )
        )
        n = {"n": accounts}
        conn.execute(
            text(
                "INSERT INTO debtor (id, dedup_key, kind, name) SELECT g, 'bench:' || g, 'person', '债务人' || g"
                " FROM generate_series(1, :n) g"
            ),
            n,
        )
        conn.execute(
            text(
                "INSERT INTO \"case\" (id, portfolio_id, debtor_id, status) SELECT g, 1, g, 'open'"
                " FROM generate_series(1, :n) g"
            ),
            n,
        )
        conn.execute(
            text(
                "INSERT INTO account (id, portfolio_id, case_id, debtor_id, external_ref, product, currency,"
                " due_date, principal_minor, interest_minor, penalty_minor, fees_minor, costs_minor,"
                " overdue_amount_minor, is_secured, status)"
                " SELECT g, 1, g, g, 'B' || g, 'consumer_loan', 'CNY', date '2025-01-01' + (g % 365),"
                " 100000, 0, 0, 0, 0, 100000, false, 'active' FROM generate_series(1, :n) g"
            ),
            n,
        )
        conn.execute(
            text(
                "INSERT INTO contact_point (id, debtor_id, kind, value, owner_relation, debt_related, verified,"
                " is_valid, source, consent_to_contact, opted_out)"
                " SELECT g, g, 'mobile', '+86138' || lpad(g::text, 8, '0'), 'self', false, true, true, 'bench',"
                " false, false FROM generate_series(1, :n) g"
            ),
            n,
        )
        outcomes = "ARRAY['no_answer','voicemail','busy','right_party','promise','refused','not_connected']"
        # Attempt g belongs to case 1 + g % accounts; started within the year before NOW, one per few minutes.
        conn.execute(
            text(
                "INSERT INTO contact_attempt (case_id, seq, contact_point_id, channel, direction, purpose,"
                " collector, account_ids, started_at, outcome, allowed, rule_ids, prev_hash, hash)"
                " SELECT c, s, c, 'call', 'outbound', 'debt_collection', 'bank', json_build_array(c),"
                f" :now - (g % 525600) * interval '1 minute', ({outcomes})[1 + g % 7], true, '',"
                " repeat('0', 64), md5(g::text) || md5(g::text)"
                " FROM (SELECT g, 1 + (g % :n) AS c, 1 + (g / :n) AS s FROM generate_series(0, :m - 1) g) x"
            ),
            {"n": accounts, "m": attempts, "now": NOW},
        )
        # Limitation dates as the daily run (`refresh_limitations`) leaves them: three years from the due date.
        conn.execute(
            text(
                "INSERT INTO account_limitation (account_id, portfolio_id, as_of, limitation_on, time_barred,"
                " starts_on, rule_id, set_by_kind, set_by_on, set_by_ref, explanation_zh, explanation_en)"
                " SELECT id, 1, date '2026-06-01', due_date + interval '3 years', false, due_date, 'CN-20', 'due',"
                " due_date, 'account:' || id, '', '' FROM account"
            )
        )
        # The heavy case: 1,000 more attempts on case 1, within the last 60 days.
        conn.execute(
            text(
                "INSERT INTO contact_attempt (case_id, seq, contact_point_id, channel, direction, purpose,"
                " collector, account_ids, started_at, outcome, allowed, rule_ids, prev_hash, hash)"
                " SELECT 1, 100 + g, 1, 'call', 'outbound', 'debt_collection', 'bank', json_build_array(1),"
                f" :now - (g * 83) * interval '1 minute', ({outcomes})[1 + g % 7], true, '',"
                " repeat('0', 64), md5('h' || g) || md5('h' || g) FROM generate_series(1, :h) g"
            ),
            {"now": NOW, "h": HEAVY},
        )
        for table in (
            "creditor",
            "portfolio",
            "debtor",
            "case",
            "account",
            "contact_point",
            "contact_attempt",
        ):
            conn.execute(
                text(
                    f"SELECT setval(pg_get_serial_sequence('\"{table}\"', 'id'), (SELECT max(id) FROM \"{table}\"))"
                )
            )
        print(
            f"generated {accounts:,} accounts and {attempts + HEAVY:,} attempts in {time.perf_counter() - t0:.0f} s"
        )
    with eng.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:  # type: ignore[attr-defined]
        conn.execute(text("VACUUM ANALYZE"))


def bench_gate() -> None:
    """p50 / p99 of the full gate on PostgreSQL beside the bare indexed history query."""
    scale = float(os.environ.get("BENCH_SCALE", "1"))
    accounts, attempts = max(100, int(1_000_000 * scale)), max(500, int(5_000_000 * scale))
    engine = db.make_engine(_database())
    db.upgrade(engine)
    _generate(engine, accounts, attempts)
    rnd = random.Random(11)
    runs = min(RUNS, accounts)
    # Gate and floor read different random cases, so neither finds pages the other just brought in.
    for label, cases, floor_cases in (
        (
            "random cases (~5 attempts)",
            [rnd.randint(2, accounts) for _ in range(runs)],
            [rnd.randint(2, accounts) for _ in range(runs)],
        ),
        (f"case with {HEAVY + attempts // accounts:,} attempts", [1] * min(RUNS, 500), [1] * min(RUNS, 500)),
    ):
        gate_times, floor_times, sizes = [], [], []
        with Session(engine) as session:
            raw = session.connection().connection.dbapi_connection
            assert raw is not None
            for i, (case_id, floor_case) in enumerate(zip(cases, floor_cases, strict=True)):
                at = NOW + timedelta(hours=12 * (i % 2))
                t0 = time.perf_counter()
                service.check_contact(
                    session,
                    case_id=case_id,
                    contact_point_id=case_id,
                    channel=Channel.CALL,
                    at=at,
                    collector="bank",
                )
                t1 = time.perf_counter()
                cur = raw.cursor()
                cur.execute(HISTORY_SQL, (floor_case, at))
                sizes.append(len(cur.fetchall()))
                cur.close()
                t2 = time.perf_counter()
                gate_times.append((t1 - t0) * 1e3)
                floor_times.append((t2 - t1) * 1e3)
            session.rollback()
        p50, p99 = _percentiles(gate_times)
        f50, f99 = _percentiles(floor_times)
        print(
            f"gate on PostgreSQL ({accounts:,} accounts, {attempts + HEAVY:,} attempts), {label}, history"
            f" {statistics.mean(sizes):.0f} rows: p50 {p50:6.2f} ms  p99 {p99:6.2f} ms | floor (bare history"
            f" query) p50 {f50:6.2f} ms  p99 {f99:6.2f} ms | p50 ratio {p50 / f50:4.1f}x"
        )
    engine.dispose()


def main() -> None:
    bench_decide()
    bench_gate()


if __name__ == "__main__":
    main()
