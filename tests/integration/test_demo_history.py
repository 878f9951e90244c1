"""The demo's week of history goes through the real services: gated calls, promises, payments, once."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from arrears import clock, demo
from arrears.contacts import service as contacts_service
from arrears.ledger import service as ledger_service
from arrears.models import Case, ContactAttempt, Payment, Promise
from arrears.portfolios import service as portfolios

AS_OF = date(2026, 3, 2)


def test_demo_history_records_gated_calls_promises_and_payments_once(
    session: Session, tmp_path: Path
) -> None:
    portfolio = demo.ensure_demo_portfolio(session)
    path = demo.write_demo_file(tmp_path / "demo.csv", accounts=400, seed=5, as_of=AS_OF)
    portfolios.import_accounts(session, path=path, portfolio_name=portfolio.name, as_of=AS_OF)
    summary = demo.record_history(session, as_of=AS_OF, seed=5, cases=120)
    assert "calls on 120 cases" in summary
    ours = select(Case.id).where(Case.portfolio_id == portfolio.id)
    attempts = list(session.scalars(select(ContactAttempt).where(ContactAttempt.case_id.in_(ours))))
    assert len(attempts) >= 120
    late = [a for a in attempts if clock.to_local(a.started_at, "Asia/Shanghai").hour >= 22]
    assert late and all(not a.allowed and "CN-1" in a.rule_ids for a in late)
    assert all(clock.to_local(a.started_at, "Asia/Shanghai").date() < AS_OF for a in attempts)
    promises = session.scalar(select(func.count()).select_from(Promise).where(Promise.case_id.in_(ours))) or 0
    assert promises > 0
    for case_id in {a.case_id for a in attempts}:
        assert contacts_service.verify_chain(session, case_id=case_id).ok
    assert not ledger_service.verify_balances(session, portfolio_id=portfolio.id)

    def payments() -> int:
        return (
            session.scalar(
                select(func.count()).select_from(Payment).where(Payment.portfolio_id == portfolio.id)
            )
            or 0
        )

    paid = payments()
    again = demo.record_history(session, as_of=AS_OF, seed=5, cases=120)
    assert "already recorded" in again
    assert len(
        list(session.scalars(select(ContactAttempt.id).where(ContactAttempt.case_id.in_(ours))))
    ) == len(attempts)
    assert payments() == paid
