"""Desk test data: a small demo-like portfolio (imported through the normal import) and users per role."""

from __future__ import annotations

import random
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from arrears import demo
from arrears.compliance import service as compliance
from arrears.enums import Channel
from arrears.models import Account, AppUser, Case, ContactPoint
from arrears.portfolios import service as portfolios
from arrears.users import service as users

AS_OF = date(2026, 3, 2)
MORNING = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai
PASSWORD = "correct-horse-9"


@dataclass
class Desk:
    tag: str
    portfolio_id: int
    cases: list[int]
    users: dict[str, AppUser]


def make_desk(session: Session, tmp_path: Path) -> Desk:
    """Six accounts in a fresh portfolio; collector ``a`` owns the first case, ``b`` the second."""
    tag, portfolio_id, cases = _callable_portfolio(session, tmp_path)
    people = {
        role: users.add_user(session, username=f"{role}-{tag}", role=kind, password=PASSWORD)
        for role, kind in (
            ("a", "collector"),
            ("b", "collector"),
            ("supervisor", "supervisor"),
            ("auditor", "read_only"),
        )
    }
    cases[0].assignee_id = people["a"].id
    cases[1].assignee_id = people["b"].id
    session.flush()
    return Desk(tag=tag, portfolio_id=portfolio_id, cases=[c.id for c in cases], users=people)


def _callable_portfolio(session: Session, tmp_path: Path, attempts: int = 20) -> tuple[str, int, list[Case]]:
    """A generated six-account portfolio with at least two cases the gate lets a collector call now.

    The generator adds holds, disputes and other rule-blocked cases at random, so a portfolio of six can
    have fewer than two callable cases; then another portfolio is generated."""
    for _ in range(attempts):
        tag = uuid.uuid4().hex[:8]
        portfolio = portfolios.create_portfolio(session, name=f"desk-{tag}", creditor=f"示例银行-{tag}")
        path = demo.write_demo_file(
            tmp_path / f"{tag}.csv", accounts=6, seed=random.randrange(10**9), as_of=AS_OF
        )
        portfolios.import_accounts(session, path=path, portfolio_name=portfolio.name, as_of=AS_OF)
        cases = [
            c
            for c in session.scalars(select(Case).where(Case.portfolio_id == portfolio.id).order_by(Case.id))
            if len(phones := _own_phones(session, c.id)) == 1
            and compliance.check_contact(
                session,
                case_id=c.id,
                contact_point_id=phones[0],
                channel=Channel.CALL,
                at=MORNING,
                collector="in_house",
            ).allowed
        ]
        if len(cases) >= 2:
            return tag, portfolio.id, cases
    raise AssertionError(f"no generated portfolio of {attempts} had two callable cases")


def _own_phones(session: Session, case_id: int) -> list[int]:
    case = session.get(Case, case_id)
    assert case is not None
    return list(
        session.scalars(
            select(ContactPoint.id).where(
                ContactPoint.debtor_id == case.debtor_id,
                ContactPoint.owner_relation == "self",
                ContactPoint.kind == "mobile",
            )
        )
    )


def own_phone(session: Session, case_id: int) -> int:
    (phone,) = _own_phones(session, case_id)
    return phone


def first_account(session: Session, case_id: int) -> Account:
    return session.scalars(select(Account).where(Account.case_id == case_id).order_by(Account.id)).first()  # type: ignore[return-value]


def csrf(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "no CSRF token in the page"
    return found.group(1)


def sign_in(client: TestClient, username: str, password: str = PASSWORD) -> object:
    token = csrf(client.get("/login").text)
    return client.post(
        "/login",
        data={"username": username, "password": password, "csrf_token": token, "next": "/queue"},
        follow_redirects=False,
    )
