"""Small builders for ledger tests: a portfolio of our own, debtors and accounts with given balances."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

from sqlalchemy.orm import Session

from arrears.models import Account, Case, Debtor, Portfolio
from arrears.portfolios import service as portfolio_service

IMPORTED_AT = datetime(2025, 1, 1, 2, 0, tzinfo=UTC)  # 2025-01-01 10:00 in Shanghai


def portfolio(session: Session, *, licensed_lender: bool = True, currency: str = "CNY") -> Portfolio:
    """A fresh portfolio with a unique name (the shared test database is never empty)."""
    name = f"ledger-{uuid.uuid4().hex[:10]}"
    return portfolio_service.create_portfolio(
        session, name=name, creditor=f"creditor-{name}", currency=currency, licensed_lender=licensed_lender
    )


def debtor(session: Session, p: Portfolio, *, national_id: str | None = None) -> tuple[Debtor, Case]:
    """A debtor and their case in ``p``."""
    d = Debtor(
        dedup_key=f"test:{uuid.uuid4().hex}", name="张三", national_id=national_id, id_type="resident_id"
    )
    session.add(d)
    session.flush()
    c = Case(portfolio_id=p.id, debtor_id=d.id)
    session.add(c)
    session.flush()
    return d, c


def account(
    session: Session,
    p: Portfolio,
    d: Debtor,
    c: Case,
    *,
    ref: str | None = None,
    principal: int = 0,
    interest: int = 0,
    penalty: int = 0,
    fees: int = 0,
    costs: int = 0,
    due_date: date = date(2024, 12, 1),
    origination_date: date | None = date(2024, 1, 1),
    original_principal: int | None = None,
    rate_ppm: int = 0,
    penalty_ppm: int = 0,
    secured: bool = False,
    product: str = "consumer_loan",
    imported_at: datetime = IMPORTED_AT,
) -> Account:
    """An account as the import leaves it: balances on the row, no postings yet."""
    a = Account(
        portfolio_id=p.id,
        case_id=c.id,
        debtor_id=d.id,
        external_ref=ref or f"L{uuid.uuid4().hex[:8]}",
        product=product,
        currency=p.currency,
        original_principal_minor=original_principal if original_principal is not None else principal,
        interest_rate_annual_ppm=rate_ppm,
        penalty_rate_annual_ppm=penalty_ppm,
        origination_date=origination_date,
        due_date=due_date,
        principal_minor=principal,
        interest_minor=interest,
        penalty_minor=penalty,
        fees_minor=fees,
        costs_minor=costs,
        overdue_amount_minor=principal + interest + penalty + fees + costs,
        is_secured=secured,
        status="active",
        created_at=imported_at,
        updated_at=imported_at,
    )
    session.add(a)
    session.flush()
    return a
