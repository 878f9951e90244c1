"""The contact record: every attempt stored with its decision, append-only, hash-chained; tampering is found."""

from __future__ import annotations

from datetime import timedelta

import pytest
from compliance_db_builders import make_case, sh
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from arrears.compliance import service
from arrears.compliance.schemas import Direction, Outcome
from arrears.contacts import service as contacts
from arrears.contacts.chain import GENESIS, attempt_hash
from arrears.enums import Channel
from arrears.errors import Conflict, ValidationFailed
from arrears.models import AccountFlag, ContactAttempt


def _call(session: Session, b: object, hour: int, minute: int = 0, **kw: object) -> contacts.RecordedAttempt:
    args = {
        "case_id": b.case.id,  # type: ignore[attr-defined]
        "contact_point_id": b.phone.id,  # type: ignore[attr-defined]
        "channel": Channel.CALL,
        "started_at": sh(2026, 3, 2, hour, minute),
        "outcome": Outcome.NO_ANSWER,
        "collector": "bank",
    }
    args.update(kw)
    return contacts.record_attempt(session, **args)  # type: ignore[arg-type]


def test_invariant1_allowed_and_blocked_attempts_are_both_recorded_with_rule_ids(session: Session) -> None:
    b = make_case(session)
    ok = _call(session, b, 10, notes="无人接听")
    blocked = _call(session, b, 23)
    assert ok.attempt.allowed and ok.attempt.outcome == "no_answer" and ok.attempt.rule_ids == ""
    assert ok.decision is not None and ok.attempt.decision == ok.decision.to_dict()
    assert blocked.blocked and blocked.attempt.outcome == "blocked" and blocked.attempt.rule_ids == "CN-1"
    assert blocked.attempt.decision is not None and blocked.attempt.decision["next_allowed_at"]
    assert [a.seq for a in contacts.list_attempts(session, case_id=b.case.id)] == [1, 2]


def test_blocked_attempts_do_not_count_towards_the_cn2_cap(session: Session) -> None:
    b = make_case(session)
    session.add(AccountFlag(account_id=b.accounts[0].id, case_id=b.case.id, kind="dispute"))
    session.flush()
    for i in range(8):
        assert _call(session, b, 10, i).blocked
    session.execute(
        text("UPDATE account_flag SET cleared_at = created_at WHERE case_id = :c"), {"c": b.case.id}
    )
    session.expire_all()
    assert not _call(session, b, 11).blocked


def test_inbound_contacts_are_recorded_without_the_gate(session: Session) -> None:
    b = make_case(session)
    r = _call(session, b, 23, direction=Direction.INBOUND, outcome=Outcome.PROMISE)
    assert not r.blocked and r.decision is None and r.attempt.decision is None


def test_chain_links_each_attempt_to_the_one_before(session: Session) -> None:
    b = make_case(session)
    rows = [_call(session, b, 9 + i).attempt for i in range(3)]
    assert rows[0].prev_hash == GENESIS
    assert rows[1].prev_hash == rows[0].hash and rows[2].prev_hash == rows[1].hash
    for row in rows:
        fields = {c: getattr(row, c) for c in ContactAttempt.__table__.columns.keys()}  # noqa: SIM118
        assert attempt_hash(fields) == row.hash
    other = make_case(session)
    assert _call(session, other, 10).attempt.seq == 1  # each case has its own chain


def test_correction_is_a_new_row_that_references_the_old_and_replaces_it_for_the_gate(
    session: Session,
) -> None:
    b = make_case(session)
    first = _call(session, b, 10, outcome=Outcome.RIGHT_PARTY, notes="typo").attempt
    fixed = contacts.correct_attempt(
        session, attempt_id=first.id, changes={"notes": "fixed", "outcome": "voicemail"}
    )
    assert fixed.corrects_id == first.id and fixed.seq == 2 and fixed.prev_hash == first.hash
    assert first.notes == "typo"  # the original is untouched
    history = service.load_history(session, case_id=b.case.id)
    assert [h.outcome for h in history] == [Outcome.VOICEMAIL]
    with pytest.raises(Conflict):
        contacts.correct_attempt(session, attempt_id=first.id, changes={"notes": "again"})
    with pytest.raises(ValidationFailed):
        contacts.correct_attempt(session, attempt_id=fixed.id, changes={"channel": "sms"})
    blocked = _call(session, b, 23).attempt
    with pytest.raises(ValidationFailed):
        contacts.correct_attempt(session, attempt_id=blocked.id, changes={"outcome": "right_party"})
    assert contacts.verify_chain(session, case_id=b.case.id).ok


def test_invariant5_a_note_changed_with_raw_sql_is_reported_at_that_attempt(session: Session) -> None:
    b = make_case(session)
    rows = [_call(session, b, 9 + i, notes=f"note {i}").attempt for i in range(4)]
    assert contacts.verify_chain(session, case_id=b.case.id).ok
    session.execute(
        text("UPDATE contact_attempt SET notes = 'nothing happened' WHERE id = :id"), {"id": rows[2].id}
    )
    report = contacts.verify_chain(session, case_id=b.case.id)
    assert not report.ok
    (broken,) = report.broken
    assert (broken.case_id, broken.seq, broken.attempt_id, broken.problem) == (
        b.case.id,
        3,
        rows[2].id,
        "content_changed",
    )


def test_invariant5_rehashing_a_changed_row_breaks_the_next_link(session: Session) -> None:
    b = make_case(session)
    rows = [_call(session, b, 9 + i).attempt for i in range(3)]
    session.execute(
        text("UPDATE contact_attempt SET outcome = 'promise', hash = :h WHERE id = :id"),
        {"id": rows[0].id, "h": "f" * 64},
    )
    (broken,) = contacts.verify_chain(session, case_id=b.case.id).broken
    assert broken.seq == 1 and broken.problem == "content_changed"
    # Even with a correct new hash, the next attempt no longer links to it.
    session.expire_all()
    row = session.get(ContactAttempt, rows[0].id)
    assert row is not None
    fields = {c: getattr(row, c) for c in ContactAttempt.__table__.columns.keys()}  # noqa: SIM118
    session.execute(
        text("UPDATE contact_attempt SET hash = :h WHERE id = :id"), {"id": row.id, "h": attempt_hash(fields)}
    )
    (broken,) = contacts.verify_chain(session, case_id=b.case.id).broken
    assert broken.seq == 2 and broken.problem == "link_broken"


def test_invariant5_a_deleted_attempt_is_reported_as_a_gap(session: Session) -> None:
    b = make_case(session)
    rows = [_call(session, b, 9 + i).attempt for i in range(3)]
    session.execute(text("DELETE FROM contact_attempt WHERE id = :id"), {"id": rows[1].id})
    (broken,) = contacts.verify_chain(session, case_id=b.case.id).broken
    assert broken.seq == 3 and broken.problem == "sequence_gap"


def test_delivery_evidence_is_appended_not_written_over(session: Session) -> None:
    b = make_case(session)
    sms = contacts.record_attempt(
        session,
        case_id=b.case.id,
        contact_point_id=b.phone.id,
        channel=Channel.SMS,
        started_at=sh(2026, 3, 2, 10),
        outcome=Outcome.SENT,
        collector="bank",
        text=f"【{b.portfolio.creditor.name}】您的账单已逾期，请尽快还款。",
    ).attempt
    delivered = contacts.record_delivery(
        session,
        attempt_id=sms.id,
        delivered_at=sh(2026, 3, 2, 10) + timedelta(seconds=5),
        evidence_ref="gw:abc",
    )
    assert delivered.corrects_id == sms.id and delivered.outcome == "delivered"
    count = session.scalar(
        select(func.count()).select_from(ContactAttempt).where(ContactAttempt.case_id == b.case.id)
    )
    assert count == 2
