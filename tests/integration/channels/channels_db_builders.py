"""Builders for the channels database tests: a portfolio of one's own, cases, outbox rows, templates."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from arrears.channels import service
from arrears.compliance import service as compliance_service
from arrears.models import Account, Case, ContactPoint, Creditor, Debtor, OutboxMessage, Portfolio

SHANGHAI = "Asia/Shanghai"

SMS_BODY = (
    "【{{ institution_name }}】{{ debtor_name }}您好，您应于{{ due_date }}归还的{{ amount_due }}尚未到账，"
    "请尽快还款。咨询：{{ institution_phone }}"
)
EMAIL_PARTS = {
    "subject": "{{ institution_name }}：还款提醒 {{ case_reference }}",
    "text": "{{ debtor_name }}您好：\n{{ institution_name }}提醒您，应还金额 {{ amount_due }}，余额 {{ balance }}。\n"
    "咨询电话：{{ institution_phone }}",
    "html": "<p>{{ debtor_name }}您好：</p><p>{{ institution_name }}提醒您，应还金额 {{ amount_due }}。</p>",
}


def sh(y: int, mo: int, d: int, h: int = 10, mi: int = 0) -> datetime:
    """An aware-UTC instant from a Shanghai wall time."""
    return datetime(y, mo, d, h, mi, tzinfo=ZoneInfo(SHANGHAI)).astimezone(UTC)


@dataclass
class Debt:
    portfolio: Portfolio
    case: Case
    account: Account
    mobile: ContactPoint
    email: ContactPoint


def make_portfolio(session: Session) -> Portfolio:
    tag = uuid.uuid4().hex[:10]
    creditor = Creditor(name=f"信达银行-{tag}", phone="400-800-1234", address="上海市浦东新区世纪大道100号")
    session.add(creditor)
    session.flush()
    portfolio = Portfolio(creditor_id=creditor.id, name=f"ch-{tag}", timezone=SHANGHAI, rule_pack="cn")
    session.add(portfolio)
    session.flush()
    return portfolio


def make_debt(
    session: Session, portfolio: Portfolio, *, mobile: str | None = None, email: str | None = None, n: int = 0
) -> Debt:
    tag = uuid.uuid4().hex[:10]
    debtor = Debtor(dedup_key=f"ch:{tag}", name="王小明", address="北京市朝阳区建国路1号")
    session.add(debtor)
    session.flush()
    case = Case(portfolio_id=portfolio.id, debtor_id=debtor.id)
    session.add(case)
    session.flush()
    account = Account(
        portfolio_id=portfolio.id,
        case_id=case.id,
        debtor_id=debtor.id,
        external_ref=f"L-{tag}",
        product="consumer_loan",
        currency="CNY",
        due_date=date(2026, 3, 1),
        principal_minor=250_000,
        overdue_amount_minor=50_000,
    )
    # a random number ending in 1: the test gateway answers numbers ending 0400, 0429, 0500, 0999 with errors
    random_mobile = f"+86138{int(tag[:8], 16) % 10**7:07d}1"
    phone = ContactPoint(debtor_id=debtor.id, kind="mobile", value=mobile or random_mobile)
    mail = ContactPoint(debtor_id=debtor.id, kind="email", value=email or f"d{n}-{tag}@example.com")
    session.add_all([account, phone, mail])
    session.flush()
    return Debt(portfolio, case, account, phone, mail)


def queue_message(
    session: Session,
    debt: Debt,
    *,
    channel: str,
    planned_for: datetime,
    template: str = "reminder",
    contact_point_id: int | None = None,
) -> OutboxMessage:
    point = contact_point_id or (debt.mobile.id if channel == "sms" else debt.email.id)
    row = OutboxMessage(
        portfolio_id=debt.portfolio.id,
        case_id=debt.case.id,
        account_id=debt.account.id,
        contact_point_id=point,
        as_of_date=planned_for.date(),
        action_key=f"gentle.{channel}",
        channel=channel,
        template=template,
        locale="zh_CN",
        idempotency_key=f"{debt.account.id}:test:{channel}:{uuid.uuid4().hex}",
        planned_for=planned_for,
        window_end=None,
        status="queued",
        attempts=0,
        next_attempt_at=planned_for,
        rule_ids=[],
    )
    session.add(row)
    session.flush()
    return row


def save_reminders(session: Session, portfolio: Portfolio) -> None:
    service.save_template(
        session, code="reminder", channel="sms", locale="zh_CN", kind="debtor", parts={"body": SMS_BODY},
        portfolio_id=portfolio.id,
    )  # fmt: skip
    service.save_template(
        session, code="reminder", channel="email", locale="zh_CN", kind="debtor", parts=EMAIL_PARTS,
        portfolio_id=portfolio.id,
    )  # fmt: skip


@contextmanager
def savepoint_factory(engine: Engine) -> Iterator[tuple[Session, Callable[[], Session]]]:
    """A session for the test and a session factory for the dispatcher, all in one rolled-back transaction.

    Every session the factory makes commits into a savepoint of the outer transaction, so a dispatcher's
    commits are real to it and vanish after the test.
    """
    connection = engine.connect()
    outer = connection.begin()

    def factory() -> Session:
        return Session(bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False)

    session = factory()
    try:
        yield session, factory
    finally:
        session.close()
        if outer.is_active:
            outer.rollback()
        connection.close()


def bulk_outbox(
    session: Session, *, cases: int, planned_for: datetime
) -> tuple[Portfolio, list[OutboxMessage]]:
    """A portfolio with ``cases`` debtors, each with one queued e-mail and one queued SMS (2 x cases rows).

    Templates are saved for the portfolio and the limitation dates refreshed, as the daily run does before
    it queues messages; the caller commits.
    """
    portfolio = make_portfolio(session)
    save_reminders(session, portfolio)
    tag = portfolio.name
    debtors = [Debtor(dedup_key=f"{tag}:{i}", name=f"债务人{i}") for i in range(cases)]
    session.add_all(debtors)
    session.flush()
    case_rows = [Case(portfolio_id=portfolio.id, debtor_id=d.id) for d in debtors]
    session.add_all(case_rows)
    session.flush()
    accounts, points = [], []
    for i, (debtor, case) in enumerate(zip(debtors, case_rows, strict=True)):
        accounts.append(
            Account(
                portfolio_id=portfolio.id, case_id=case.id, debtor_id=debtor.id, external_ref=f"{tag}-{i}",
                product="consumer_loan", currency="CNY", due_date=date(2026, 3, 1), principal_minor=100_000 + i,
                overdue_amount_minor=20_000,
            )
        )  # fmt: skip
        points.append(ContactPoint(debtor_id=debtor.id, kind="mobile", value=f"+86139{i:08d}"))
        points.append(ContactPoint(debtor_id=debtor.id, kind="email", value=f"d{i}@{tag}.example"))
    session.add_all(accounts + points)
    session.flush()
    rows = []
    for i, (case, account) in enumerate(zip(case_rows, accounts, strict=True)):
        for channel, point in (("email", points[2 * i + 1]), ("sms", points[2 * i])):
            rows.append(
                OutboxMessage(
                    portfolio_id=portfolio.id, case_id=case.id, account_id=account.id, contact_point_id=point.id,
                    as_of_date=planned_for.date(), action_key=f"gentle.{channel}", channel=channel,
                    template="reminder", locale="zh_CN", idempotency_key=f"{account.id}:{tag}:{channel}",
                    planned_for=planned_for, status="queued", attempts=0, next_attempt_at=planned_for, rule_ids=[],
                )
            )  # fmt: skip
    session.add_all(rows)
    session.flush()
    compliance_service.refresh_limitations(session, portfolio_id=portfolio.id, as_of=planned_for.date())
    return portfolio, rows
