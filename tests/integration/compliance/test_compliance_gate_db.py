"""The compliance gate against the database: the Context and history come from the tables (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import date, time, timedelta

import pytest
from compliance_db_builders import SHANGHAI, make_case, sh
from sqlalchemy import event
from sqlalchemy.orm import Session

from arrears.clock import to_local
from arrears.compliance import service
from arrears.compliance.schemas import ConsentScope, Outcome, Purpose
from arrears.contacts import service as contacts
from arrears.enums import Channel, FlagKind
from arrears.errors import NotFound, ValidationFailed
from arrears.models import AccountFlag


def test_cn1_quiet_hours_block_with_next_allowed_at_eight_local(session: Session) -> None:
    b = make_case(session)
    d = service.check_contact(
        session,
        case_id=b.case.id,
        contact_point_id=b.phone.id,
        channel=Channel.CALL,
        at=sh(2026, 3, 2, 23, 0),
        collector="bank",
        account_ids=[],
        purpose=Purpose.DEBT_COLLECTION,
    )
    assert not d.allowed and d.rule_ids == ("CN-1",)
    assert d.next_allowed_at is not None
    assert to_local(d.next_allowed_at, SHANGHAI).strftime("%Y-%m-%d %H:%M") == "2026-03-03 08:00"
    assert "22:00" in d.reasons[0].zh and "22:00" in d.reasons[0].en


def test_cn1_portfolio_zone_is_used_when_the_debtor_has_none(session: Session) -> None:
    b = make_case(session, zone="Asia/Urumqi")
    b.phone.value = "+442071234567"  # a London number: its zone joins the candidates
    b.phone.timezone = "Asia/Urumqi"
    session.flush()
    # 08:30 in Shanghai is 06:30 in Urumqi: still quiet there.
    d = service.check_contact(
        session,
        case_id=b.case.id,
        contact_point_id=b.phone.id,
        channel=Channel.CALL,
        at=sh(2026, 3, 2, 8, 30),
        collector="bank",
    )
    assert not d.allowed and "CN-1" in d.rule_ids


@pytest.mark.parametrize("kind", list(FlagKind))
def test_all1_every_active_flag_kind_blocks_and_a_cleared_one_does_not(
    session: Session, kind: FlagKind
) -> None:
    b = make_case(session)
    flag = AccountFlag(account_id=b.accounts[0].id, case_id=b.case.id, kind=kind.value, reason="test")
    session.add(flag)
    session.flush()
    at = sh(2026, 3, 2, 10)
    d = service.check_contact(
        session, case_id=b.case.id, contact_point_id=b.phone.id, channel=Channel.CALL, at=at, collector="bank"
    )
    assert not d.allowed and d.rule_ids == ("ALL-1",) and d.next_allowed_at is None
    flag.cleared_at = at - timedelta(hours=1)
    session.flush()
    d = service.check_contact(
        session, case_id=b.case.id, contact_point_id=b.phone.id, channel=Channel.CALL, at=at, collector="bank"
    )
    assert d.allowed


def test_all1_flag_with_expiry_releases_the_day_after(session: Session) -> None:
    b = make_case(session)
    session.add(
        AccountFlag(
            account_id=b.accounts[0].id, case_id=b.case.id, kind="complaint", expires_on=date(2026, 3, 2)
        )
    )
    session.flush()
    d = service.check_contact(
        session,
        case_id=b.case.id,
        contact_point_id=b.phone.id,
        channel=Channel.CALL,
        at=sh(2026, 3, 2, 10),
        collector="bank",
    )
    assert not d.allowed and d.next_allowed_at is not None
    assert to_local(d.next_allowed_at, SHANGHAI).strftime("%Y-%m-%d %H:%M") == "2026-03-03 08:00"


def test_all2_channel_opt_out_and_contact_point_opt_out_block(session: Session) -> None:
    b = make_case(session)
    contacts.opt_out_channel(session, debtor_id=b.debtor.id, channel=Channel.SMS, at=sh(2026, 3, 1))
    d = service.check_contact(
        session,
        case_id=b.case.id,
        contact_point_id=b.phone.id,
        channel=Channel.SMS,
        at=sh(2026, 3, 2, 10),
        collector="bank",
    )
    assert not d.allowed and d.rule_ids == ("ALL-2",)
    b.email.opted_out = True
    session.flush()
    d = service.check_contact(
        session,
        case_id=b.case.id,
        contact_point_id=b.email.id,
        channel=Channel.EMAIL,
        at=sh(2026, 3, 2, 10),
        collector="bank",
    )
    assert not d.allowed and d.rule_ids == ("ALL-2",)


def test_cn1_recorded_consent_lifts_quiet_hours(session: Session) -> None:
    b = make_case(session)
    contacts.add_consent(
        session,
        debtor_id=b.debtor.id,
        scope=ConsentScope.QUIET_HOURS,
        granted_at=sh(2026, 3, 1),
        contact_point_id=b.phone.id,
    )
    d = service.check_contact(
        session,
        case_id=b.case.id,
        contact_point_id=b.phone.id,
        channel=Channel.CALL,
        at=sh(2026, 3, 2, 23),
        collector="bank",
    )
    assert d.allowed


def test_cn1_debtor_named_inconvenient_time_blocks(session: Session) -> None:
    b = make_case(session)
    contacts.add_inconvenient_time(session, debtor_id=b.debtor.id, starts=time(12), ends=time(14))
    d = service.check_contact(
        session,
        case_id=b.case.id,
        contact_point_id=b.phone.id,
        channel=Channel.CALL,
        at=sh(2026, 3, 2, 12, 30),
        collector="bank",
    )
    assert not d.allowed and d.reasons[0].code == "inconvenient_time"
    assert d.next_allowed_at == sh(2026, 3, 2, 14)


def test_cn2_daily_cap_counts_recorded_attempts_and_releases_at_midnight(session: Session) -> None:
    b = make_case(session)
    for i in range(6):
        r = contacts.record_attempt(
            session,
            case_id=b.case.id,
            contact_point_id=b.phone.id,
            channel=Channel.CALL,
            started_at=sh(2026, 3, 2, 9, i * 10),
            outcome=Outcome.NO_ANSWER,
            collector="bank",
        )
        assert not r.blocked
    d = service.check_contact(
        session,
        case_id=b.case.id,
        contact_point_id=b.phone.id,
        channel=Channel.CALL,
        at=sh(2026, 3, 2, 15),
        collector="bank",
    )
    assert not d.allowed and d.rule_ids == ("CN-2",)
    assert to_local(d.next_allowed_at, SHANGHAI).strftime("%H:%M") == "08:00"  # type: ignore[arg-type]


def test_cn3_third_party_only_after_three_failed_attempts_to_the_debtor(session: Session) -> None:
    b = make_case(session)
    kw = {"case_id": b.case.id, "channel": Channel.CALL, "collector": "bank"}
    d = service.check_contact(
        session, contact_point_id=b.spouse.id, at=sh(2026, 3, 2, 10), purpose=Purpose.MESSAGE_PASSING, **kw
    )  # type: ignore[arg-type]
    assert not d.allowed and d.rule_ids == ("CN-3",)
    for i in range(3):
        contacts.record_attempt(
            session,
            contact_point_id=b.phone.id,
            started_at=sh(2026, 3, 2, 9, i),
            outcome=Outcome.NO_ANSWER,
            **kw,  # type: ignore[arg-type]
        )
    d = service.check_contact(
        session, contact_point_id=b.spouse.id, at=sh(2026, 3, 2, 10), purpose=Purpose.MESSAGE_PASSING, **kw
    )  # type: ignore[arg-type]
    assert d.allowed
    # CN-4: but never about the debt.
    d = service.check_contact(session, contact_point_id=b.spouse.id, at=sh(2026, 3, 2, 10), **kw)  # type: ignore[arg-type]
    assert not d.allowed and d.rule_ids == ("CN-4",)


def test_cn3_debtor_out_of_contact_when_all_own_numbers_invalid(session: Session) -> None:
    b = make_case(session)
    b.phone.is_valid = False
    session.flush()
    d = service.check_contact(
        session,
        case_id=b.case.id,
        contact_point_id=b.spouse.id,
        channel=Channel.CALL,
        at=sh(2026, 3, 2, 10),
        collector="bank",
        purpose=Purpose.MESSAGE_PASSING,
    )
    assert d.allowed


def test_cn22_time_barred_account_blocks_legal_notice_but_not_a_polite_call(session: Session) -> None:
    b = make_case(session, due_on=date(2020, 1, 10))
    kw = {
        "case_id": b.case.id,
        "contact_point_id": b.phone.id,
        "channel": Channel.CALL,
        "at": sh(2026, 3, 2, 10),
        "collector": "bank",
    }
    d = service.check_contact(session, purpose=Purpose.LEGAL_NOTICE, **kw)  # type: ignore[arg-type]
    assert not d.allowed and d.rule_ids == ("CN-22",)
    assert service.check_contact(session, **kw).allowed  # type: ignore[arg-type]


def test_cn22_gate_reads_the_stored_limitation_after_a_refresh(session: Session) -> None:
    b = make_case(session, due_on=date(2024, 1, 10))
    service.refresh_limitations(session, portfolio_id=b.portfolio.id, as_of=date(2026, 3, 2))
    kw = {
        "case_id": b.case.id,
        "contact_point_id": b.phone.id,
        "channel": Channel.CALL,
        "collector": "bank",
        "purpose": Purpose.LEGAL_NOTICE,
    }
    assert service.check_contact(session, at=sh(2027, 1, 10, 10), **kw).allowed  # type: ignore[arg-type]
    # The stored date is 2027-01-10; the next day the gate sees a time-barred debt without a new refresh.
    d = service.check_contact(session, at=sh(2027, 1, 11, 10), **kw)  # type: ignore[arg-type]
    assert not d.allowed and d.rule_ids == ("CN-22",)


def test_gate_refuses_ids_from_another_case(session: Session) -> None:
    b = make_case(session)
    other = make_case(session)
    kw = {"case_id": b.case.id, "channel": Channel.CALL, "at": sh(2026, 3, 2, 10), "collector": "bank"}
    with pytest.raises(ValidationFailed) as exc:
        service.check_contact(session, contact_point_id=other.phone.id, **kw)  # type: ignore[arg-type]
    assert exc.value.code == "contact_point_not_in_case"
    with pytest.raises(ValidationFailed) as exc:
        service.check_contact(
            session,
            contact_point_id=b.phone.id,
            account_ids=[other.accounts[0].id],
            **kw,  # type: ignore[arg-type]
        )
    assert exc.value.code == "account_not_in_case"
    with pytest.raises(NotFound):
        service.check_contact(session, contact_point_id=None, **{**kw, "case_id": 987654321})  # type: ignore[arg-type]


def test_history_is_loaded_with_one_query_whatever_its_length(session: Session) -> None:
    b = make_case(session)
    for i in range(30):
        contacts.record_attempt(
            session,
            case_id=b.case.id,
            contact_point_id=b.email.id,
            channel=Channel.EMAIL,
            started_at=sh(2026, 2, 1, 10) + timedelta(hours=i),
            outcome=Outcome.SENT,
            collector="bank",
        )
    statements: list[str] = []

    def count(*args: object) -> None:
        statements.append(str(args[2]))

    bind = session.connection()
    event.listen(bind, "before_cursor_execute", count)
    try:
        history = service.load_history(session, case_id=b.case.id)
    finally:
        event.remove(bind, "before_cursor_execute", count)
    assert len(history) == 30
    assert len(statements) == 1 and "contact_attempt" in statements[0]


def test_cn5_first_sms_must_name_the_institution_and_the_creditor_name_counts(session: Session) -> None:
    b = make_case(session)
    kw = {
        "case_id": b.case.id,
        "contact_point_id": b.phone.id,
        "channel": Channel.SMS,
        "at": sh(2026, 3, 2, 10),
        "collector": "bank",
    }
    d = service.check_contact(session, text="您的账单已逾期，请尽快还款。", **kw)  # type: ignore[arg-type]
    assert not d.allowed and d.rule_ids == ("CN-5",)
    named = f"【{b.portfolio.creditor.name}】您的账单已逾期，请尽快还款。"
    assert service.check_contact(session, text=named, **kw).allowed  # type: ignore[arg-type]
    d = service.check_contact(session, text=named + "再不还款后果自负。", **kw)  # type: ignore[arg-type]
    assert not d.allowed and d.rule_ids == ("CN-6",)


def test_checks_of_every_phone_at_once_match_one_check_each(session: Session) -> None:
    """The case page asks for all of a debtor's phones in one go: same decisions as one check per phone
    (own number and a third party's, quiet hours, the daily cap, CN-3 over the whole record)."""
    b = make_case(session)
    kw = {"case_id": b.case.id, "channel": Channel.CALL, "collector": "bank"}
    moments = [sh(2026, 3, 2, 23, 0), sh(2026, 3, 2, 10, 0)]
    for i in range(3):
        contacts.record_attempt(
            session,
            contact_point_id=b.phone.id,
            started_at=sh(2026, 3, 2, 9, i),
            outcome=Outcome.NO_ANSWER,
            **kw,  # type: ignore[arg-type]
        )
    moments += [sh(2026, 3, 2, 10, 0), sh(2026, 3, 5, 10, 0)]
    seen = set()
    for at in moments:
        one_each = {
            p: service.check_contact(session, contact_point_id=p, at=at, **kw)  # type: ignore[arg-type]
            for p in (b.phone.id, b.spouse.id)
        }
        for order in ([b.phone.id, b.spouse.id], [b.spouse.id, b.phone.id]):
            together = service.check_contacts(session, contact_point_ids=order, at=at, **kw)  # type: ignore[arg-type]
            assert together == one_each
        seen |= {(p, d.allowed) for p, d in one_each.items()}
    assert (b.phone.id, True) in seen and (b.phone.id, False) in seen and (b.spouse.id, False) in seen


def test_checks_of_every_phone_read_the_case_once_when_the_third_party_is_last(session: Session) -> None:
    b = make_case(session)
    service.refresh_limitations(session, portfolio_id=b.portfolio.id, as_of=date(2026, 3, 2))
    statements: list[str] = []

    def count(*args: object) -> None:
        statements.append(str(args[2]))

    bind = session.connection()
    event.listen(bind, "before_cursor_execute", count)
    try:
        for order in ([b.phone.id, b.spouse.id], [b.spouse.id, b.phone.id]):
            decisions = service.check_contacts(
                session,
                case_id=b.case.id,
                contact_point_ids=order,
                channel=Channel.CALL,
                at=sh(2026, 3, 2, 10),
                collector="bank",
            )
            assert decisions[b.phone.id].allowed and "CN-3" in decisions[b.spouse.id].rule_ids
    finally:
        event.remove(bind, "before_cursor_execute", count)
    # one round trip with the third party's number last; its whole record costs one more otherwise
    assert len(statements) == 3
