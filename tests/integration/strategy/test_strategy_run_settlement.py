"""The daily run keeps a settlement: the night the agreed amount is in, the plan completes, its waiver is
posted to the ledger and the account closes; a second run of the date posts nothing again (invariant 4).
A settlement beyond policy without a supervisor's approval is never kept, however much is paid."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session
from strategy_builders import DAY0, Row, import_portfolio, make_collectors

from arrears.arrangements import service as arrangements
from arrears.ledger import service as ledger
from arrears.models import Account, Approval, AppUser, Posting, StrategyRun
from arrears.strategy import run as daily

ZONE = ZoneInfo("Asia/Shanghai")


def _now(as_of: date) -> datetime:
    return datetime.combine(as_of, time(0), tzinfo=ZONE).astimezone(UTC)


def _run(session: Session, name: str, as_of: date) -> daily.RunReport:
    report = daily.run_portfolio(session, portfolio=name, as_of=as_of, now=_now(as_of))
    assert report.status == "succeeded", report.outcome.errors
    return report


def _commitments(session: Session, portfolio_id: int, as_of: date) -> dict[str, object]:
    run = session.scalars(
        select(StrategyRun)
        .where(StrategyRun.portfolio_id == portfolio_id, StrategyRun.as_of_date == as_of)
        .order_by(StrategyRun.id.desc())
        .limit(1)
    ).one()
    return next(ph for ph in run.phases if ph["name"] == "commitments")


def _waivers(session: Session, account_id: int) -> list[Posting]:
    return list(
        session.scalars(select(Posting).where(Posting.account_id == account_id, Posting.kind == "waiver"))
    )


def test_the_night_a_settlement_is_paid_it_closes_the_account_once(session: Session, tmp_path: Path) -> None:
    p = import_portfolio(session, tmp_path, [Row("s", DAY0 - timedelta(days=100))], as_of=DAY0)
    make_collectors(session, 1)
    account_id = p.ids["s"]
    account = session.get(Account, account_id)
    assert account is not None and account.balance_minor == 100_000
    pid = account.portfolio_id
    plan = arrangements.create_arrangement(
        session,
        account_ids=[account_id],
        request=arrangements.parse_request(
            {"kind": "settlement", "settle_minor": 90_000, "first_on": (DAY0 + timedelta(days=3)).isoformat()}
        ),
        as_of=DAY0,
    )
    assert plan.status == "active" and plan.waived_minor == 10_000  # 10% at 100 DPD: within policy
    _run(session, p.name, DAY0)
    ledger.post_payment(
        session,
        portfolio_id=pid,
        account_id=account_id,
        amount_minor=90_000,
        received_on=DAY0 + timedelta(days=2),
        reference=f"settle-{account_id}",
        now=_now(DAY0 + timedelta(days=2)),
    )
    _run(session, p.name, DAY0 + timedelta(days=1))
    assert _waivers(session, account_id) == []  # the money is not in yet

    paid_day = DAY0 + timedelta(days=2)
    _run(session, p.name, paid_day)
    session.refresh(plan)
    session.refresh(account)
    assert plan.status == "completed"
    [waiver] = _waivers(session, account_id)
    assert (waiver.component, waiver.amount_minor, waiver.rule_id) == (
        "principal",
        -10_000,
        f"settlement:{plan.id}",
    )
    assert waiver.effective_date == paid_day
    assert account.status == "settled" and account.balance_minor == 0
    counts = _commitments(session, pid, paid_day)
    assert counts["counts"]["settlements_posted"] == 1 and counts["counts"]["waiver_postings"] == 1

    _run(session, p.name, paid_day)  # the same night again
    assert len(_waivers(session, account_id)) == 1
    again = _commitments(session, pid, paid_day)
    assert again["counts"]["settlements_posted"] == 0 and again["changes"] == 0
    _run(session, p.name, paid_day + timedelta(days=1))
    assert len(_waivers(session, account_id)) == 1
    assert ledger.verify_balances(session, portfolio_id=pid) == []


def test_a_settlement_beyond_policy_is_not_kept_without_an_approval_row(
    session: Session, tmp_path: Path
) -> None:
    p = import_portfolio(session, tmp_path, [Row("x", DAY0 - timedelta(days=100))], as_of=DAY0)
    make_collectors(session, 1)
    account_id = p.ids["x"]
    account = session.get(Account, account_id)
    assert account is not None
    pid = account.portfolio_id
    plan = arrangements.create_arrangement(
        session,
        account_ids=[account_id],
        request=arrangements.parse_request(
            {"kind": "settlement", "settle_minor": 50_000, "first_on": (DAY0 + timedelta(days=3)).isoformat()}
        ),
        as_of=DAY0,
    )
    assert plan.status == "pending_approval" and not plan.within_policy  # 50% off at 100 DPD
    ledger.post_payment(
        session,
        portfolio_id=pid,
        account_id=account_id,
        amount_minor=50_000,
        received_on=DAY0 + timedelta(days=1),
        reference=f"settle-{account_id}",
        now=_now(DAY0 + timedelta(days=1)),
    )
    for k in range(1, 4):
        _run(session, p.name, DAY0 + timedelta(days=k))
    session.refresh(plan)
    session.refresh(account)
    assert plan.status == "pending_approval" and _waivers(session, account_id) == []
    assert account.balance_minor == 50_000 and account.status == "active"

    supervisor = AppUser(username=f"sup-{account_id}", display_name="主管", role="supervisor")
    session.add(supervisor)
    session.flush()
    arrangements.approve_arrangement(
        session,
        arrangement_id=plan.id,
        user_id=supervisor.id,
        at=_now(DAY0 + timedelta(days=4)),
        reason="困难减免",
    )
    _run(session, p.name, DAY0 + timedelta(days=4))
    session.refresh(account)
    assert -sum(w.amount_minor for w in _waivers(session, account_id)) == 50_000
    assert account.status == "settled"
    # every waiver posting beyond policy has its approval row
    approvals = session.scalars(
        select(Approval).where(Approval.subject_kind == "arrangement", Approval.subject_id == plan.id)
    ).all()
    assert [(a.decision, a.user_id) for a in approvals] == [("approved", supervisor.id)]
    assert ledger.verify_balances(session, portfolio_id=pid) == []
