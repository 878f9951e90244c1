"""Limitation dates per account from the database (CN-20..CN-26, US-8), and the portfolio refresh."""

from __future__ import annotations

from datetime import date, timedelta

from compliance_db_builders import make_case, sh
from sqlalchemy import select
from sqlalchemy.orm import Session

from arrears.compliance import service
from arrears.compliance.limitation import LimitationEvent
from arrears.compliance.schemas import Direction, LimitationEventKind, Outcome, Purpose
from arrears.contacts import service as contacts
from arrears.enums import Channel
from arrears.models import AccountLimitation

AS_OF = date(2026, 3, 2)


def test_cn20_limitation_runs_three_years_from_the_due_date(session: Session) -> None:
    b = make_case(session, due_on=date(2024, 5, 31))
    r = service.account_limitation(session, account_id=b.accounts[0].id, as_of=AS_OF)
    assert r.limitation_on == date(2027, 5, 31) and not r.time_barred
    assert r.rule_id == "CN-20" and r.set_by is not None and r.set_by.kind == LimitationEventKind.DUE


def test_cn21_instalment_debt_runs_from_the_last_instalment(session: Session) -> None:
    dues = [date(2023, m, 15) for m in range(1, 13)]
    b = make_case(session, due_on=dues[0], instalment_dues=dues)
    r = service.account_limitation(session, account_id=b.accounts[0].id, as_of=AS_OF)
    assert r.limitation_on == date(2026, 12, 15) and r.rule_id == "CN-21"


def test_cn26_promise_to_pay_in_the_record_restarts_the_period(session: Session) -> None:
    b = make_case(session, due_on=date(2023, 6, 1))
    promise = contacts.record_attempt(
        session,
        case_id=b.case.id,
        contact_point_id=b.phone.id,
        channel=Channel.CALL,
        started_at=sh(2025, 2, 3, 10),
        outcome=Outcome.PROMISE,
        collector="bank",
    ).attempt
    r = service.account_limitation(session, account_id=b.accounts[0].id, as_of=AS_OF)
    assert r.limitation_on == date(2028, 2, 3) and r.rule_id == "CN-26"
    assert r.set_by is not None and r.set_by.ref == f"contact_attempt:{promise.id}"
    assert "2025-02-03" in r.explanation.zh and "2025-02-03" in r.explanation.en


def test_cn26_a_third_partys_promise_and_a_blocked_attempt_do_not_interrupt(session: Session) -> None:
    b = make_case(session, due_on=date(2023, 6, 1))
    b.phone.is_valid = False  # so the third party may be called (CN-3)
    session.flush()
    contacts.record_attempt(
        session,
        case_id=b.case.id,
        contact_point_id=b.spouse.id,
        channel=Channel.CALL,
        started_at=sh(2025, 2, 3, 10),
        outcome=Outcome.PROMISE,
        collector="bank",
        purpose=Purpose.MESSAGE_PASSING,
    )
    blocked = contacts.record_attempt(
        session,
        case_id=b.case.id,
        contact_point_id=b.phone.id,
        channel=Channel.CALL,
        started_at=sh(2025, 2, 3, 23),
        outcome=Outcome.PROMISE,
        collector="bank",
    )
    assert blocked.blocked
    r = service.account_limitation(session, account_id=b.accounts[0].id, as_of=AS_OF)
    assert r.limitation_on == date(2026, 6, 1) and r.rule_id == "CN-20"


def test_cn25_delivered_demand_counts_only_with_evidence(session: Session) -> None:
    b = make_case(session, due_on=date(2023, 6, 1))
    letter = contacts.record_attempt(
        session,
        case_id=b.case.id,
        contact_point_id=None,
        channel=Channel.LETTER,
        started_at=sh(2025, 1, 6, 10),
        outcome=Outcome.SENT,
        collector="bank",
        delivered_at=sh(2025, 1, 8, 15),
    ).attempt
    r = service.account_limitation(session, account_id=b.accounts[0].id, as_of=AS_OF)
    assert r.limitation_on == date(2026, 6, 1)  # no evidence: ignored, and said so
    assert [(e.kind, why.rule_id) for e, why in r.ignored] == [(LimitationEventKind.DEMAND, "CN-25")]
    contacts.correct_attempt(session, attempt_id=letter.id, changes={"evidence_ref": "ems:EE123456789CN"})
    r = service.account_limitation(session, account_id=b.accounts[0].id, as_of=AS_OF)
    assert r.limitation_on == date(2028, 1, 8) and r.rule_id == "CN-25" and not r.ignored


def test_an_extra_event_source_plugs_in_payments(session: Session) -> None:
    b = make_case(session, due_on=date(2022, 6, 1))
    account_id = b.accounts[0].id

    def payments(_s: Session, scope: service.AccountScope, _zone: str) -> dict[int, list[LimitationEvent]]:
        assert scope.account_ids == (account_id,)
        return {
            account_id: [
                LimitationEvent(LimitationEventKind.PARTIAL_PAYMENT, date(2025, 3, 1), ref="payment:7")
            ]
        }

    r = service.limitations(
        session,
        scope=service.AccountScope(account_ids=(account_id,)),
        as_of=AS_OF,
        sources=(*service.DEFAULT_EVENT_SOURCES, payments),
    )[account_id]
    assert r.limitation_on == date(2028, 3, 1) and r.set_by is not None and r.set_by.ref == "payment:7"


def test_refresh_flags_time_barred_accounts_for_a_portfolio_and_is_idempotent(session: Session) -> None:
    b = make_case(session, accounts=3, due_on=date(2022, 1, 10))
    a0, a1, a2 = (a.id for a in b.accounts)
    b.accounts[2].due_date = date(2025, 1, 10)
    contacts.record_attempt(
        session,
        case_id=b.case.id,
        contact_point_id=b.phone.id,
        channel=Channel.CALL,
        direction=Direction.INBOUND,
        started_at=sh(2024, 12, 1, 10),
        outcome=Outcome.PROMISE,
        collector="bank",
        account_ids=[a1],
    )
    session.flush()
    first = service.refresh_limitations(session, portfolio_id=b.portfolio.id, as_of=AS_OF)
    assert (first.accounts, first.time_barred, first.newly_time_barred) == (3, 1, (a0,))
    rows = {
        r.account_id: r
        for r in session.scalars(
            select(AccountLimitation).where(AccountLimitation.portfolio_id == b.portfolio.id)
        )
    }
    assert (
        rows[a0].time_barred and rows[a0].limitation_on == date(2025, 1, 10) and rows[a0].set_by_kind == "due"
    )
    assert rows[a1].limitation_on == date(2027, 12, 1) and rows[a1].rule_id == "CN-26"
    assert rows[a1].set_by_ref is not None and rows[a1].set_by_ref.startswith("contact_attempt:")
    assert rows[a2].limitation_on == date(2028, 1, 10)
    snapshot = {k: (v.limitation_on, v.time_barred, v.set_by_ref) for k, v in rows.items()}
    again = service.refresh_limitations(session, portfolio_id=b.portfolio.id, as_of=AS_OF)
    assert (again.accounts, again.time_barred, again.newly_time_barred, again.changed) == (3, 1, (), 0)
    session.expire_all()
    rows = {
        r.account_id: r
        for r in session.scalars(
            select(AccountLimitation).where(AccountLimitation.portfolio_id == b.portfolio.id)
        )
    }
    assert {k: (v.limitation_on, v.time_barred, v.set_by_ref) for k, v in rows.items()} == snapshot
    later = service.refresh_limitations(session, portfolio_id=b.portfolio.id, as_of=date(2028, 1, 11))
    assert later.newly_time_barred == (a1, a2)
    # only the two rows whose status moved are written again; the account barred before keeps its row
    assert later.changed == 2
    session.expire_all()
    stamped = {
        r.account_id: r.as_of
        for r in session.scalars(
            select(AccountLimitation).where(AccountLimitation.portfolio_id == b.portfolio.id)
        )
    }
    assert stamped == {a0: AS_OF, a1: date(2028, 1, 11), a2: date(2028, 1, 11)}
    assert later.as_of - AS_OF > timedelta(days=600)


def test_us8_pack_uses_its_own_period(session: Session) -> None:
    b = make_case(session, rule_pack="us-regf", zone="America/New_York", due_on=date(2020, 3, 1))
    r = service.account_limitation(session, account_id=b.accounts[0].id, as_of=AS_OF)
    assert r.limitation_on == date(2026, 3, 1) and r.time_barred and r.rule_id == "US-8"
