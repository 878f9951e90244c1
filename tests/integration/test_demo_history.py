"""The demo's week of history goes through the real services: gated calls, promises, payments, once."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from arrears import clock, demo
from arrears.contacts import service as contacts_service
from arrears.ledger import service as ledger_service
from arrears.models import ContactAttempt, Payment, Promise
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
    attempts = list(session.scalars(select(ContactAttempt)))
    assert len(attempts) >= 120
    late = [a for a in attempts if clock.to_local(a.started_at, "Asia/Shanghai").hour >= 22]
    assert late and all(not a.allowed and "CN-1" in a.rule_ids for a in late)
    assert all(a.started_at.date() < AS_OF for a in attempts)
    assert (session.scalar(select(func.count()).select_from(Promise)) or 0) > 0
    assert contacts_service.verify_chain(session).ok
    assert not ledger_service.verify_balances(session, portfolio_id=portfolio.id)
    payments = session.scalar(select(func.count()).select_from(Payment)) or 0
    again = demo.record_history(session, as_of=AS_OF, seed=5, cases=120)
    assert "already recorded" in again
    assert session.scalar(select(func.count()).select_from(ContactAttempt)) == len(attempts)
    assert session.scalar(select(func.count()).select_from(Payment)) == payments
