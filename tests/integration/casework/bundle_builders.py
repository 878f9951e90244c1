"""The demo case of the evidence bundle tests: contacts, a promise, a payment, a plan, a letter with
delivery evidence, a legal case with milestones, a lawyer's letter and a cost."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from casework_builders import Book
from sqlalchemy import select
from sqlalchemy.orm import Session

from arrears import clock
from arrears.arrangements import service as arrangements
from arrears.channels import delivery
from arrears.compliance.schemas import Outcome
from arrears.contacts import service as contacts
from arrears.enums import Channel
from arrears.ledger import service as ledger
from arrears.legal import service as legal
from arrears.models import ContactPoint, Creditor, OutboxMessage

SHANGHAI = ZoneInfo("Asia/Shanghai")


def local(day: date, hour: int) -> datetime:
    return datetime.combine(day, time(hour), tzinfo=SHANGHAI).astimezone(UTC)


@dataclass
class Demo:
    book: Book
    case_id: int
    start: date
    call_id: int
    letter_message_id: int
    as_of: date
    user_ids: dict[str, int]


def demo_case(session: Session, book: Book, docs: Path) -> Demo:
    """张三's case: a call with a promise, a payment, a plan, a letter delivered by post, a legal case."""
    a1, a2 = book.account("1"), book.account("2")
    creditor = session.get(Creditor, book.portfolio.creditor_id)
    assert creditor is not None
    # CN-8: a written notice states the institution's contact details, or it is not sent
    creditor.phone = creditor.phone or "400-800-1234"
    creditor.address = creditor.address or "上海市浦东新区世纪大道100号"
    start = clock.to_local(a1.created_at, book.portfolio.timezone).date()
    mobile = session.scalars(
        select(ContactPoint).where(ContactPoint.debtor_id == a1.debtor_id, ContactPoint.kind == "mobile")
    ).first()
    assert mobile is not None
    call = contacts.record_attempt(
        session,
        case_id=a1.case_id,
        contact_point_id=mobile.id,
        channel=Channel.CALL,
        started_at=local(start + timedelta(days=1), 10),
        ended_at=local(start + timedelta(days=1), 10) + timedelta(minutes=6),
        outcome=Outcome.PROMISE,
        collector="in_house",
        agent_id=book.users["collector"].id,
        notes="债务人承认欠款，承诺三日内还款五百元",
    )
    assert call.attempt.allowed, call.decision
    arrangements.record_promise(
        session,
        account_id=a1.id,
        amount_minor=50000,
        promised_on=start + timedelta(days=3),
        made_on=start + timedelta(days=1),
        channel="call",
        taken_by_id=book.users["collector"].id,
    )
    ledger.post_payment(
        session,
        portfolio_id=book.portfolio.id,
        account_id=a1.id,
        amount_minor=50000,
        received_on=start + timedelta(days=3),
        reference=f"{book.tag}-pay-1",
        now=local(start + timedelta(days=3), 15),
    )
    arrangements.create_arrangement(
        session,
        account_ids=[a2.id],
        request=arrangements.parse_request(
            {"kind": "instalments", "count": 6, "first_on": (start + timedelta(days=10)).isoformat()}
        ),
        as_of=start + timedelta(days=4),
        created_by_id=book.users["collector"].id,
    )
    message = OutboxMessage(
        portfolio_id=book.portfolio.id,
        case_id=a1.case_id,
        account_id=a1.id,
        contact_point_id=None,
        as_of_date=start + timedelta(days=5),
        action_key="firm.formal_notice",
        channel="letter",
        template="formal_notice",
        locale="zh_CN",
        idempotency_key=f"{a1.id}:bundle-test:{uuid.uuid4().hex}",
        planned_for=local(start + timedelta(days=5), 9),
        status="queued",
        attempts=0,
        next_attempt_at=local(start + timedelta(days=5), 9),
        rule_ids=[],
    )
    session.add(message)
    session.flush()
    batch = delivery.letters_batch(
        session,
        batch_date=start + timedelta(days=5),
        now=local(start + timedelta(days=5), 9),
        portfolio_id=book.portfolio.id,
        document_dir=docs,
    )
    assert [p.message_id for p in batch.letters] == [message.id], (batch.blocked, batch.failed)
    delivery.record_delivery_evidence(
        session,
        message_id=message.id,
        delivered_at=local(start + timedelta(days=7), 14),
        evidence_ref="EMS 1190012345678",
    )
    case = legal.refer_to_legal(
        session,
        account_ids=[a1.id],
        kind="litigation",
        referred_by_id=book.users["collector"].id,
        referred_on=start + timedelta(days=8),
        law_firm_name="北京市正衡律师事务所",
        body="北京市朝阳区人民法院",
    )
    legal.decide_referral(
        session,
        legal_case_id=case.id,
        user_id=book.users["supervisor"].id,
        approve=True,
        at=local(start + timedelta(days=8), 11),
    )
    letter = legal.lawyer_letter(
        session, legal_case_id=case.id, letter_date=start + timedelta(days=9), document_dir=docs
    )
    legal.record_milestone(
        session,
        legal_case_id=case.id,
        milestone="filed",
        occurred_on=start + timedelta(days=10),
        case_number="(2026)京0105民初12345号",
        note="已立案",
    )
    legal.record_milestone(
        session,
        legal_case_id=case.id,
        milestone="served",
        occurred_on=start + timedelta(days=10),
        document_id=letter.document.id,
        note="律师函已送达",
    )
    legal.add_cost(
        session,
        legal_case_id=case.id,
        account_id=a1.id,
        description="律师费",
        costs_minor=80000,
        incurred_on=start + timedelta(days=10),
    )
    return Demo(
        book,
        a1.case_id,
        start,
        call.attempt.id,
        message.id,
        start + timedelta(days=12),
        {role: u.id for role, u in book.users.items()},
    )
