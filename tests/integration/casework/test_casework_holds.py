"""Holds and disputes on SQLite and PostgreSQL: a hold stays until an authorised user clears it with a
reason, every change is logged, expired holds are released, US-7 validation-period disputes."""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from casework_builders import Book, make_book
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from arrears.errors import Conflict, Forbidden, ValidationFailed
from arrears.holds import documents
from arrears.holds import service as holds
from arrears.models import AccountFlag, HoldEvent

AT = datetime(2025, 7, 1, 3, 0, tzinfo=UTC)


def test_dispute_creates_a_hold_that_stays_until_an_authorised_user_clears_it_with_a_reason(
    session: Session, book: Book, tmp_path: Path
) -> None:
    account = book.account("1")
    evidence = holds.Evidence("还款凭证.jpg", b"\xff\xd8 receipt bytes", "image/jpeg")
    dispute = holds.open_dispute(
        session,
        account_id=account.id,
        reason_code="amount_wrong",
        description="已于 2025 年 2 月还清，金额有误",
        received_on=date(2025, 7, 1),
        written=True,
        at=AT,
        user_id=book.users["collector"].id,
        evidence=[evidence],
        document_dir=tmp_path,
    )
    assert dispute.status == "open"
    [doc] = holds.dispute_documents(session, dispute_id=dispute.id)
    stored = tmp_path / doc.path
    assert (
        doc.sha256
        == hashlib.sha256(evidence.content).hexdigest()
        == hashlib.sha256(stored.read_bytes()).hexdigest()
    )
    assert documents.read_document(session, document_id=doc.id, document_dir=tmp_path)[1] == evidence.content

    # the hold stays, whatever the date, until cleared
    for day in (date(2025, 7, 2), date(2026, 7, 2)):
        assert [f.id for f in holds.active_holds(session, as_of=day, account_ids=[account.id])] == [
            dispute.flag_id
        ]
    assert holds.release_expired_holds(session, as_of=date(2030, 1, 1), portfolio_id=book.portfolio.id) == []

    with pytest.raises(Forbidden) as refused:
        holds.clear_hold(
            session, flag_id=dispute.flag_id, user_id=book.users["collector"].id, reason="x", at=AT
        )
    assert refused.value.code == "role_required"
    with pytest.raises(ValidationFailed):
        holds.clear_hold(
            session, flag_id=dispute.flag_id, user_id=book.users["supervisor"].id, reason=" ", at=AT
        )
    assert holds.active_holds(session, as_of=date(2025, 7, 2), account_ids=[account.id])

    cleared = holds.clear_hold(
        session,
        flag_id=dispute.flag_id,
        user_id=book.users["compliance"].id,
        reason="核实无误，恢复催收",
        at=AT,
    )
    assert (
        cleared.cleared_by_id == book.users["compliance"].id and cleared.clear_reason == "核实无误，恢复催收"
    )
    assert holds.active_holds(session, as_of=date(2025, 7, 2), account_ids=[account.id]) == []
    events = holds.hold_events(session, flag_id=dispute.flag_id)
    assert [e.event for e in events] == ["placed", "evidence_added", "cleared"]
    assert events[-1].user_id == book.users["compliance"].id and events[-1].reason == "核实无误，恢复催收"
    with pytest.raises(Conflict):
        holds.clear_hold(
            session, flag_id=dispute.flag_id, user_id=book.users["admin"].id, reason="again", at=AT
        )


def test_expired_holds_are_released_once_with_a_logged_entry(session: Session, book: Book) -> None:
    account = book.account("3")
    flag = holds.place_hold(
        session,
        account_id=account.id,
        kind="complaint",
        reason_code="complaint_review",
        reason="投诉处理中",
        expires_on=date(2025, 7, 15),
        at=AT,
    )
    assert holds.release_expired_holds(session, as_of=date(2025, 7, 14), portfolio_id=book.portfolio.id) == []
    assert holds.active_holds(session, as_of=date(2025, 7, 14), account_ids=[account.id])
    released = holds.release_expired_holds(session, as_of=date(2025, 7, 15), portfolio_id=book.portfolio.id)
    assert [f.id for f in released] == [flag.id]
    assert flag.cleared_at is not None and flag.cleared_by_id is None
    again = holds.release_expired_holds(session, as_of=date(2025, 7, 16), portfolio_id=book.portfolio.id)
    assert again == []
    assert [e.event for e in holds.hold_events(session, flag_id=flag.id)] == ["placed", "released"]
    n_events = session.scalar(select(func.count()).select_from(HoldEvent).where(HoldEvent.flag_id == flag.id))
    assert n_events == 2


def test_rejected_dispute_clears_its_hold_and_upheld_dispute_keeps_it(session: Session, book: Book) -> None:
    sup = book.users["supervisor"].id
    rejected = holds.open_dispute(
        session, account_id=book.account("1").id, reason_code="not_mine", received_on=date(2025, 7, 1), at=AT
    )
    upheld = holds.open_dispute(
        session,
        account_id=book.account("2").id,
        reason_code="amount_wrong",
        received_on=date(2025, 7, 1),
        at=AT,
    )
    holds.resolve_dispute(
        session,
        dispute_id=rejected.id,
        outcome="rejected",
        resolution="合同及放款记录齐全",
        user_id=sup,
        at=AT,
    )
    holds.resolve_dispute(
        session, dispute_id=upheld.id, outcome="upheld", resolution="罚息计算有误，待更正", user_id=sup, at=AT
    )
    assert session.get(AccountFlag, rejected.flag_id).cleared_at is not None  # type: ignore[union-attr]
    assert session.get(AccountFlag, upheld.flag_id).cleared_at is None  # type: ignore[union-attr]
    assert (rejected.status, upheld.status) == ("rejected", "upheld")
    with pytest.raises(ValidationFailed):
        holds.resolve_dispute(
            session, dispute_id=upheld.id, outcome="maybe", resolution="x", user_id=sup, at=AT
        )


def test_us7_written_dispute_in_the_validation_period_holds_until_verification_is_sent(
    session: Session, tmp_path: Path
) -> None:
    book = make_book(session, tmp_path, rule_pack="us-regf")
    compliance = book.users["compliance"].id
    early, late = book.account("1"), book.account("3")
    for account in (early, late):
        holds.record_validation_notice(session, account_id=account.id, sent_on=date(2025, 6, 2))
    # receipt assumed 5 business days after 2 June (9 June), period ends 30 days later (9 July)
    assert holds.validation_period_end(session, early) == date(2025, 7, 9)
    in_time = holds.open_dispute(
        session,
        account_id=early.id,
        reason_code="not_mine",
        received_on=date(2025, 7, 9),
        written=True,
        at=AT,
    )
    too_late = holds.open_dispute(
        session,
        account_id=late.id,
        reason_code="not_mine",
        received_on=date(2025, 7, 10),
        written=True,
        at=AT,
    )
    assert in_time.within_validation_period and not too_late.within_validation_period
    assert holds.validation_dispute_pending(session, account_id=early.id)
    assert not holds.validation_dispute_pending(session, account_id=late.id)
    with pytest.raises(Conflict) as blocked:
        holds.resolve_dispute(
            session, dispute_id=in_time.id, outcome="rejected", resolution="x", user_id=compliance, at=AT
        )
    assert blocked.value.code == "verification_required"

    holds.record_verification_sent(
        session, dispute_id=in_time.id, sent_on=date(2025, 7, 12), user_id=compliance, at=AT
    )
    holds.record_verification_sent(
        session, dispute_id=too_late.id, sent_on=date(2025, 7, 12), user_id=compliance, at=AT
    )
    assert in_time.verification_sent_on == date(2025, 7, 12)
    assert not holds.validation_dispute_pending(session, account_id=early.id)
    assert holds.active_holds(session, as_of=date(2025, 7, 13), account_ids=[early.id]) == []
    # outside the period the dispute hold is an ordinary one: it stays until someone clears it
    assert holds.active_holds(session, as_of=date(2025, 7, 13), account_ids=[late.id])
    assert [e.event for e in holds.hold_events(session, flag_id=in_time.flag_id)] == [
        "placed",
        "verification_sent",
        "cleared",
    ]
