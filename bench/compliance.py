"""How long does the compliance gate take?

1. `decide` alone with a 1,000-attempt history (``cn`` and ``us-regf``), beside a floor: one Python pass
   over the same history.
2. The full gate (`compliance.service.check_contact`: one round trip for the case's facts and the history
   window its rules can see, then `decide`) on PostgreSQL holding 1,000,000 accounts and 5,000,000
   contact attempts, for random cases (about five attempts each) and for one case with a 1,000-attempt
   history, beside a floor: the bare indexed history query for the same window through the driver (the
   whole history's query is printed for reference).

The data is loaded with COPY, secondary indexes and constraints dropped for the load and rebuilt after
(bench rows are not hash chained; limitation dates are stored as the daily run leaves them).
``BENCH_SCALE`` shrinks it (``BENCH_SCALE=0.01``: 10,000 accounts, 50,000 attempts); the database
``arrears_bench_compliance`` is reused when it already holds the requested scale.
PostgreSQL: ``ARREARS_BENCH_POSTGRES_URL`` (default ``postgresql://postgres@127.0.0.1:5432/test``).
Run: ``PYTHONPATH=src python -m bench compliance``.
"""

from __future__ import annotations

import os
import random
import statistics
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Session

from arrears import db
from arrears.compliance import service
from arrears.compliance.pack import load_pack
from arrears.compliance.rules import decide, lookback
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


# Tables the bench fills, in load order, and the columns it writes (COPY).
_TABLES: dict[str, tuple[str, ...]] = {
    "debtor": ("id", "dedup_key", "kind", "name"),
    "case": ("id", "portfolio_id", "debtor_id", "status"),
    "account": (
        "id",
        "portfolio_id",
        "case_id",
        "debtor_id",
        "external_ref",
        "product",
        "currency",
        "due_date",
        "principal_minor",
        "interest_minor",
        "penalty_minor",
        "fees_minor",
        "costs_minor",
        "overdue_amount_minor",
        "is_secured",
        "status",
    ),
    "contact_point": (
        "id",
        "debtor_id",
        "kind",
        "value",
        "owner_relation",
        "debt_related",
        "verified",
        "is_valid",
        "source",
        "consent_to_contact",
        "opted_out",
    ),
    "account_limitation": (
        "account_id",
        "portfolio_id",
        "as_of",
        "limitation_on",
        "time_barred",
        "starts_on",
        "rule_id",
        "set_by_kind",
        "set_by_on",
        "set_by_ref",
        "explanation_zh",
        "explanation_en",
    ),
    "contact_attempt": (
        "id",
        "case_id",
        "seq",
        "contact_point_id",
        "channel",
        "direction",
        "purpose",
        "collector",
        "account_ids",
        "started_at",
        "outcome",
        "allowed",
        "rule_ids",
        "prev_hash",
        "hash",
    ),
}
_OUTCOMES = ("no_answer", "voicemail", "busy", "right_party", "promise", "refused", "not_connected")
_CHUNK = 50_000


def _lines(table: str, accounts: int, attempts: int) -> Iterator[str]:
    """COPY text rows of one table (tab-separated, ``\\N`` for NULL)."""
    base = date(2025, 1, 1)
    if table == "debtor":
        for g in range(1, accounts + 1):
            yield f"{g}\tbench:{g}\tperson\t债务人{g}\n"
    elif table == "case":
        for g in range(1, accounts + 1):
            yield f"{g}\t1\t{g}\topen\n"
    elif table == "account":
        for g in range(1, accounts + 1):
            due = base + timedelta(days=g % 365)
            yield (
                f"{g}\t1\t{g}\t{g}\tB{g}\tconsumer_loan\tCNY\t{due}\t100000\t0\t0\t0\t0\t100000\tf\tactive\n"
            )
    elif table == "contact_point":
        for g in range(1, accounts + 1):
            yield f"{g}\t{g}\tmobile\t+86138{g:08d}\tself\tf\tt\tt\tbench\tf\tf\n"
    elif table == "account_limitation":
        # Limitation dates as the daily run (`refresh_limitations`) leaves them: three years from the due date.
        for g in range(1, accounts + 1):
            due = base + timedelta(days=g % 365)
            until = due.replace(year=due.year + 3)
            yield f"{g}\t1\t2026-06-01\t{until}\tf\t{due}\tCN-20\tdue\t{due}\taccount:{g}\t\t\n"
    elif table == "contact_attempt":
        zero = "0" * 64
        # Attempt g belongs to case 1 + g % accounts, started within the year before NOW.
        for g in range(attempts):
            c, s = 1 + g % accounts, 1 + g // accounts
            at = NOW - timedelta(minutes=(g * 7919) % 525_600)
            h = f"{g:064x}"
            yield (
                f"{g + 1}\t{c}\t{s}\t{c}\tcall\toutbound\tdebt_collection\tbank\t[{c}]\t{at.isoformat()}"
                f"\t{_OUTCOMES[g % 7]}\tt\t\t{zero}\t{h}\n"
            )
        # The heavy case: HEAVY more attempts on case 1, one every 83 minutes back from NOW.
        for k in range(1, HEAVY + 1):
            at = NOW - timedelta(minutes=83 * k)
            yield (
                f"{attempts + k}\t1\t{1000 + k}\t1\tcall\toutbound\tdebt_collection\tbank\t[1]\t{at.isoformat()}"
                f"\t{_OUTCOMES[k % 7]}\tt\t\t{zero}\t{k:064x}\n"
            )


def _copy(raw: Any, table: str, accounts: int, attempts: int) -> None:
    columns = ", ".join(f'"{c}"' for c in _TABLES[table])
    with raw.cursor() as cur, cur.copy(f'COPY "{table}" ({columns}) FROM STDIN') as copy:
        chunk: list[str] = []
        for line in _lines(table, accounts, attempts):
            chunk.append(line)
            if len(chunk) >= _CHUNK:
                copy.write("".join(chunk))
                chunk.clear()
        if chunk:
            copy.write("".join(chunk))


def _generate(engine: Engine, accounts: int, attempts: int) -> None:
    """Fill the bench database with COPY; indexes and constraints are dropped for the load and rebuilt."""
    label = f"bench {accounts} {attempts} v2"  # the portfolio's name says what was generated
    with engine.begin() as conn:
        have = conn.execute(text("SELECT name FROM portfolio WHERE id = 1")).scalar_one_or_none()
    if have == label:
        print(f"reusing {DB_NAME}: {accounts:,} accounts, {attempts + HEAVY:,} attempts")
        return
    t0 = time.perf_counter()
    with engine.begin() as conn:
        raw = conn.connection.dbapi_connection
        assert raw is not None
        conn.execute(text("SET LOCAL synchronous_commit = off"))
        conn.execute(text("SET LOCAL maintenance_work_mem = '256MB'"))
        conn.execute(
            text(
                "TRUNCATE contact_attempt, account_limitation, account_flag, contact_consent, inconvenient_time,"
                ' channel_opt_out, instalment, account, contact_point, "case", debtor, portfolio, creditor'
                " RESTART IDENTITY CASCADE"
            )
        )
        conn.execute(
            text(
                "INSERT INTO creditor (id, name, kind, licensed_lender, phone) "
                "VALUES (1, '基准银行', 'bank', true, '95555')"
            )
        )
        conn.execute(
            text(
                "INSERT INTO portfolio (id, creditor_id, name, currency, timezone, rule_pack, strategy, locale)"
                " VALUES (1, 1, :label, 'CNY', 'Asia/Shanghai', 'cn', 'default', 'zh_CN')"
            ),
            {"label": label},
        )
        # Secondary indexes and constraints slow a bulk load down several times: drop, load, rebuild.
        names = tuple(_TABLES)
        constraints = conn.execute(
            text(
                "SELECT c.conrelid::regclass::text, c.conname, pg_get_constraintdef(c.oid) FROM pg_constraint c"
                " WHERE c.conrelid::regclass::text = ANY(:t) AND c.contype IN ('f', 'u')"
            ),
            {"t": [f'"{n}"' if n == "case" else n for n in names]},
        ).all()
        for table, name, _definition in constraints:
            conn.execute(text(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"'))
        indexes = conn.execute(
            text(
                "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = ANY(:t)"
                " AND indexname NOT IN (SELECT conname FROM pg_constraint WHERE contype = 'p')"
            ),
            {"t": list(names)},
        ).all()
        for name, _definition in indexes:
            conn.execute(text(f'DROP INDEX "{name}"'))
        for table in names:
            _copy(raw, table, accounts, attempts)
        loaded = time.perf_counter() - t0
        for _name, definition in indexes:
            conn.execute(text(definition))
        for table, name, definition in constraints:
            conn.execute(text(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}'))
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
        f"generated {accounts:,} accounts and {attempts + HEAVY:,} attempts with COPY in {loaded:.0f} s,"
        f" indexes and constraints rebuilt in {time.perf_counter() - t0 - loaded:.0f} s"
    )
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))


# The floor: the bare indexed history query through the driver, for the same window the gate reads.
FLOOR_SQL = (
    "SELECT a.id, a.started_at, a.channel, a.direction, a.purpose, a.collector, a.account_ids, a.outcome,"
    " a.corrects_id, a.contact_point_id FROM contact_attempt a"
    " WHERE a.case_id = %s AND a.started_at <= %s AND a.started_at >= %s"
)


def bench_gate() -> None:
    """p50 / p99 of the full gate on PostgreSQL beside the bare indexed history query."""
    scale = float(os.environ.get("BENCH_SCALE", "1"))
    accounts, attempts = max(100, int(1_000_000 * scale)), max(500, int(5_000_000 * scale))
    engine = db.make_engine(_database())
    db.upgrade(engine)
    _generate(engine, accounts, attempts)
    rnd = random.Random(11)
    runs = min(RUNS, accounts)
    window = lookback(load_pack("cn"))  # what the gate reads of a cn case's history
    statements = [0]

    def count(*_args: object) -> None:
        statements[0] += 1

    event.listen(engine, "before_cursor_execute", count)
    # Gate and floor read different random cases, so neither finds pages the other just brought in.
    for label, cases, floor_cases in (
        (
            "random cases (~5 attempts)",
            [rnd.randint(2, accounts) for _ in range(runs)],
            [rnd.randint(2, accounts) for _ in range(runs)],
        ),
        (f"case with {HEAVY + attempts // accounts:,} attempts", [1] * min(RUNS, 500), [1] * min(RUNS, 500)),
    ):
        gate_times, floor_times, full_times, sizes, full_sizes = [], [], [], [], []
        statements[0] = 0
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
                sizes.append(len(raw.execute(FLOOR_SQL, (floor_case, at, at - window)).fetchall()))
                t2 = time.perf_counter()
                full_sizes.append(len(raw.execute(HISTORY_SQL, (floor_case, at)).fetchall()))
                t3 = time.perf_counter()
                gate_times.append((t1 - t0) * 1e3)
                floor_times.append((t2 - t1) * 1e3)
                full_times.append((t3 - t2) * 1e3)
            session.rollback()
        per_check = statements[0] / len(cases)
        p50, p99 = _percentiles(gate_times)
        f50, f99 = _percentiles(floor_times)
        w50, w99 = _percentiles(full_times)
        print(
            f"gate on PostgreSQL ({accounts:,} accounts, {attempts + HEAVY:,} attempts), {label}:"
            f" p50 {p50:6.2f} ms  p99 {p99:6.2f} ms, {per_check:.0f} statement(s) per check | floor (bare"
            f" indexed history query, the {window.days}-day window the gate reads, {statistics.mean(sizes):.0f}"
            f" rows) p50 {f50:6.2f} ms  p99 {f99:6.2f} ms | ratio p50 {p50 / f50:4.1f}x  p99 {p99 / f99:4.1f}x"
            f" | target p99 < 10 ms: {'ok' if p99 < 10 else 'MISSED'}"
        )
        print(
            f"    for reference, the whole history ({statistics.mean(full_sizes):.0f} rows, joined with contact"
            f" points): p50 {w50:6.2f} ms  p99 {w99:6.2f} ms"
        )
    event.remove(engine, "before_cursor_execute", count)
    engine.dispose()


def main() -> None:
    bench_decide()
    bench_gate()


if __name__ == "__main__":
    main()
