"""DPD from the ledger in the daily run: a paid instalment moves it to the next one, a partial payment does
not, and a card whose overdue amount is paid is cured and its pending actions are cancelled."""

from __future__ import annotations

import csv
import uuid
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session
from strategy_builders import DAY0, make_collectors, resident_id

from arrears.ledger import service as ledger
from arrears.models import Account, OutboxMessage, StrategyDecision, WorkItem
from arrears.portfolios import service as portfolios
from arrears.strategy import run as daily

ZONE = ZoneInfo("Asia/Shanghai")
HEADERS = [
    "借据号",
    "姓名",
    "身份证号",
    "手机号",
    "产品类型",
    "本金",
    "逾期金额",
    "到期日",
    "期数",
    "每期金额",
    "首期还款日",
]


def _now(as_of: date) -> datetime:
    return datetime.combine(as_of, time(0), tzinfo=ZONE).astimezone(UTC)


def _import(session: Session, tmp_path: Path) -> tuple[str, int, dict[str, int]]:
    name = f"dpd-{uuid.uuid4().hex[:8]}"
    portfolios.create_portfolio(session, name=name, creditor=f"银行-{name}")
    path = tmp_path / f"{name}.csv"
    n = uuid.uuid4().int % 400_000
    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(HEADERS)
        # 12 monthly instalments of 1,000.00 from 2 January; January paid before the import
        w.writerow(
            [
                f"{name}-loan",
                "张三",
                resident_id(n),
                f"139{n:08d}",
                "分期",
                "11000.00",
                "1000.00",
                "2026-02-02",
                "12",
                "1000.00",
                "2026-01-02",
            ]
        )
        # a card: 500.00 overdue since 20 February on a balance of 5,000.00
        w.writerow(
            [
                f"{name}-card",
                "李四",
                resident_id(n + 1),
                f"138{n:08d}",
                "信用卡",
                "5000.00",
                "500.00",
                "2026-02-20",
                "",
                "",
                "",
            ]
        )
    report = portfolios.import_accounts(
        session, path=path, portfolio_name=name, as_of=DAY0, now=datetime(2026, 3, 2, 0, 0, tzinfo=UTC)
    )
    assert report.status == "applied", report.issues.head(10)
    accounts = session.scalars(select(Account).where(Account.external_ref.like(f"{name}-%"))).all()
    ids = {a.external_ref.removeprefix(f"{name}-"): a.id for a in accounts}
    return name, accounts[0].portfolio_id, ids


def _decision(session: Session, account_id: int, as_of: date) -> StrategyDecision:
    return session.scalars(
        select(StrategyDecision).where(
            StrategyDecision.account_id == account_id, StrategyDecision.as_of_date == as_of
        )
    ).one()


def _pay(session: Session, pid: int, account_id: int, amount_minor: int, on: date, ref: str) -> None:
    ledger.post_payment(
        session,
        portfolio_id=pid,
        account_id=account_id,
        amount_minor=amount_minor,
        received_on=on,
        reference=ref,
        now=_now(on) + timedelta(hours=10),
    )


def test_dpd_follows_the_ledger_instalment_by_instalment_and_cures_a_paid_card(
    session: Session, tmp_path: Path
) -> None:
    name, pid, ids = _import(session, tmp_path)
    make_collectors(session, 1)
    loan, card = ids["loan"], ids["card"]
    d1, d2 = DAY0 + timedelta(days=1), DAY0 + timedelta(days=2)
    daily.run_portfolio(session, portfolio=name, as_of=DAY0, now=_now(DAY0))
    assert _decision(session, loan, DAY0).dpd == 28  # since 2 February
    assert _decision(session, card, DAY0).dpd == 10  # since 20 February
    assert _decision(session, card, DAY0).stage == "intensive"
    pending = select(WorkItem).where(WorkItem.account_id == card, WorkItem.status == "open")
    assert session.scalars(pending).all()  # the card's call waits for a collector

    # February's instalment paid: the oldest unpaid one is now March's (due 2 March)
    _pay(session, pid, loan, 100_000, DAY0, "loan-feb")
    # the card's overdue 500.00 paid, 4,500.00 still owed: nothing overdue any more
    _pay(session, pid, card, 50_000, DAY0, "card-overdue")
    daily.run_portfolio(session, portfolio=name, as_of=d1, now=_now(d1))
    assert _decision(session, loan, d1).dpd == 1
    cured = _decision(session, card, d1)
    assert cured.dpd == 0 and cured.stage is None and cured.actions == []
    account = session.get(Account, card)
    assert account is not None and account.status == "active"  # still owes the rest of the balance
    # what the card had pending is cancelled, with the reason
    assert session.scalars(pending).all() == []
    cancelled = session.scalars(
        select(WorkItem).where(WorkItem.account_id == card, WorkItem.status == "cancelled")
    ).all()
    assert cancelled and all("no collection stage" in (w.last_reason or "") for w in cancelled)
    queued = select(OutboxMessage).where(OutboxMessage.account_id == card, OutboxMessage.status == "queued")
    assert session.scalars(queued).all() == []

    # half of March's instalment: a partial payment does not move DPD
    _pay(session, pid, loan, 50_000, d1, "loan-mar-half")
    daily.run_portfolio(session, portfolio=name, as_of=d2, now=_now(d2))
    assert _decision(session, loan, d2).dpd == 2
