"""Builders for the compliance and contact-record integration tests: a portfolio of one's own per test."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from arrears.models import Account, Case, ContactPoint, Creditor, Debtor, Instalment, Portfolio

SHANGHAI = "Asia/Shanghai"


def sh(y: int, mo: int, d: int, h: int = 10, mi: int = 0) -> datetime:
    """An aware-UTC instant from a Shanghai wall time."""
    return datetime(y, mo, d, h, mi, tzinfo=ZoneInfo(SHANGHAI)).astimezone(UTC)


@dataclass
class Built:
    portfolio: Portfolio
    case: Case
    debtor: Debtor
    accounts: list[Account]
    phone: ContactPoint  # the debtor's own mobile
    spouse: ContactPoint  # an unrelated third party's mobile
    email: ContactPoint


def make_case(
    session: Session,
    *,
    rule_pack: str = "cn",
    zone: str = SHANGHAI,
    accounts: int = 1,
    product: str = "consumer_loan",
    due_on: date = date(2025, 1, 10),
    instalment_dues: list[date] | None = None,
) -> Built:
    tag = uuid.uuid4().hex[:10]
    creditor = Creditor(name=f"银行-{tag}")
    session.add(creditor)
    session.flush()
    portfolio = Portfolio(creditor_id=creditor.id, name=f"p-{tag}", timezone=zone, rule_pack=rule_pack)
    debtor = Debtor(dedup_key=f"test:{tag}", name="张三")
    session.add_all([portfolio, debtor])
    session.flush()
    case = Case(portfolio_id=portfolio.id, debtor_id=debtor.id)
    session.add(case)
    session.flush()
    rows = []
    for i in range(accounts):
        a = Account(
            portfolio_id=portfolio.id,
            case_id=case.id,
            debtor_id=debtor.id,
            external_ref=f"A{i}-{tag}",
            product=product,
            currency="CNY",
            due_date=due_on,
            principal_minor=100_000,
            overdue_amount_minor=100_000,
        )
        session.add(a)
        rows.append(a)
    session.flush()
    if instalment_dues:
        for seq, d in enumerate(instalment_dues, start=1):
            session.add(Instalment(account_id=rows[0].id, seq=seq, due_date=d, amount_minor=10_000))
    phone = ContactPoint(debtor_id=debtor.id, kind="mobile", value=f"+86138{int(tag[:8], 16) % 10**8:08d}")
    spouse = ContactPoint(
        debtor_id=debtor.id,
        kind="mobile",
        value=f"+86139{int(tag[2:10], 16) % 10**8:08d}",
        owner_relation="emergency_contact",
        owner_name="李四",
    )
    email = ContactPoint(debtor_id=debtor.id, kind="email", value=f"{tag}@example.com")
    session.add_all([phone, spouse, email])
    session.flush()
    return Built(portfolio, case, debtor, rows, phone, spouse, email)
