"""A dispute pauses contact, on SQLite and PostgreSQL: once the debtor disputes, the one gate refuses the
collector's call with the flag rule (ALL-1), the refusal is on the contact record, and contact resumes
only when an authorised user rejects the dispute."""

from __future__ import annotations

from datetime import UTC, datetime

from casework_builders import Book
from sqlalchemy import select
from sqlalchemy.orm import Session

from arrears import clock
from arrears.compliance.schemas import Outcome
from arrears.contacts import service as contacts
from arrears.enums import Channel
from arrears.holds import service as holds
from arrears.models import ContactPoint


def test_a_dispute_pauses_calls_with_the_flag_rule_until_it_is_rejected(session: Session, book: Book) -> None:
    account = book.account("3")  # 李四, alone on the case
    mobile = session.scalars(
        select(ContactPoint).where(ContactPoint.debtor_id == account.debtor_id, ContactPoint.kind == "mobile")
    ).first()
    assert mobile is not None
    start = clock.to_local(account.created_at, book.portfolio.timezone).date()
    ten_am = datetime(start.year, start.month, start.day, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai

    def call(at: datetime) -> contacts.RecordedAttempt:
        return contacts.record_attempt(
            session,
            case_id=account.case_id,
            contact_point_id=mobile.id,
            channel=Channel.CALL,
            started_at=at,
            outcome=Outcome.NO_ANSWER,
            collector="in_house",
        )

    assert not call(ten_am).blocked
    dispute = holds.open_dispute(
        session, account_id=account.id, reason_code="amount_wrong", received_on=start, at=ten_am, written=True
    )
    refused = call(ten_am.replace(hour=3))
    assert refused.blocked and refused.decision is not None
    assert refused.decision.rule_ids == ("ALL-1",)
    assert "dispute" in " ".join(r.en for r in refused.decision.reasons)
    stored = refused.attempt
    assert (stored.outcome, stored.allowed, stored.rule_ids) == ("blocked", False, "ALL-1")
    assert contacts.verify_chain(session, case_id=account.case_id).ok

    holds.resolve_dispute(
        session,
        dispute_id=dispute.id,
        outcome="rejected",
        resolution="核对还款流水，欠款金额无误",
        user_id=book.users["supervisor"].id,
        at=ten_am.replace(hour=4),
    )
    assert not call(ten_am.replace(hour=5)).blocked
