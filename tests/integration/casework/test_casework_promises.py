"""Promises to pay, stored and evaluated set-based against a payments frame (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import date

from casework_builders import Book
from sqlalchemy.orm import Session

from arrears.arrangements import service
from arrears.arrangements.promises import AcknowledgmentKind


def day(n: int) -> date:
    return date(2025, 7, n)


def test_promise_for_day_3_unpaid_is_broken_on_day_6(session: Session, book: Book) -> None:
    account = book.account("4")
    promise = service.record_promise(
        session,
        account_id=account.id,
        amount_minor=100000,
        promised_on=day(3),
        made_on=day(1),
        channel="call",
        taken_by_id=book.users["collector"].id,
    )
    assert promise.deadline_on == day(5)  # two grace days in the default policy
    no_payments = service.empty_payments()
    for as_of in (day(3), day(5)):
        service.refresh_promises(session, portfolio_id=book.portfolio.id, as_of=as_of, payments=no_payments)
        assert promise.status == "pending"
    result = service.refresh_promises(
        session, portfolio_id=book.portfolio.id, as_of=day(6), payments=no_payments
    )
    assert result.by_status == {"broken": 1}
    assert (promise.status, promise.broken_on, promise.paid_minor) == ("broken", day(6), 0)
    # final: a later run does not touch it
    late = service.payments_frame([(account.id, day(7), 100000)])
    assert (
        service.refresh_promises(
            session, portfolio_id=book.portfolio.id, as_of=day(8), payments=late
        ).evaluated
        == 0
    )
    assert promise.status == "broken"


def test_kept_partly_kept_and_superseded_promises(session: Session, book: Book) -> None:
    kept = service.record_promise(
        session,
        account_id=book.account("1").id,
        amount_minor=50000,
        promised_on=day(3),
        made_on=day(1),
        channel="call",
    )
    partly = service.record_promise(
        session,
        account_id=book.account("3").id,
        amount_minor=50000,
        promised_on=day(3),
        made_on=day(1),
        channel="sms",
    )
    old = service.record_promise(
        session,
        account_id=book.account("2").id,
        amount_minor=9000,
        promised_on=day(2),
        made_on=day(1),
        channel="call",
    )
    new = service.record_promise(
        session,
        account_id=book.account("2").id,
        amount_minor=9000,
        promised_on=day(9),
        made_on=day(2),
        channel="call",
    )
    assert old.status == "superseded"
    payments = service.payments_frame(
        [
            (book.account("1").id, day(2), 20000),
            (book.account("1").id, day(4), 30000),  # within grace: kept on day 4
            (book.account("3").id, day(3), 10000),
            (book.account("3").id, day(6), 40000),  # after the deadline: does not mend it
        ]
    )
    service.refresh_promises(session, portfolio_id=book.portfolio.id, as_of=day(7), payments=payments)
    assert (kept.status, kept.kept_on, kept.paid_minor) == ("kept", day(4), 50000)
    assert (partly.status, partly.paid_minor, partly.broken_on) == ("partly_kept", 10000, day(6))
    assert new.status == "pending"
    before = (kept.status, partly.status, new.status)
    service.refresh_promises(session, portfolio_id=book.portfolio.id, as_of=day(7), payments=payments)
    assert (kept.status, partly.status, new.status) == before


def test_promise_is_an_acknowledgment_on_the_day_it_was_made_cn26(session: Session, book: Book) -> None:
    account = book.account("4")
    service.record_promise(
        session, account_id=account.id, amount_minor=1000, promised_on=day(10), made_on=day(8), channel="call"
    )
    [event] = service.acknowledgments(session, account_id=account.id)
    assert (event.occurred_on, event.kind, event.rule_id) == (
        day(8),
        AcknowledgmentKind.PROMISE_TO_PAY,
        "CN-26",
    )


def test_promises_are_evaluated_against_the_ledgers_payments_net_of_reversals(
    session: Session, book: Book
) -> None:
    from datetime import UTC, datetime, timedelta

    from arrears import clock
    from arrears.ledger import service as ledger

    kept_account, bounced_account = book.account("4"), book.account("3")
    start = clock.to_local(kept_account.created_at, book.portfolio.timezone).date()  # the opening day
    now = datetime.now(UTC)
    promises = {}
    for acc in (kept_account, bounced_account):
        promises[acc.id] = service.record_promise(
            session,
            account_id=acc.id,
            amount_minor=50000,
            promised_on=start + timedelta(days=2),
            made_on=start,
            channel="call",
            taken_by_id=book.users["collector"].id,
        )
        paid = ledger.post_payment(
            session,
            portfolio_id=book.portfolio.id,
            account_id=acc.id,
            amount_minor=50000,
            received_on=start + timedelta(days=1),
            reference=f"{book.tag}-pay-{acc.id}",
            now=now,
        )
        if acc is bounced_account:
            ledger.reverse_payment(
                session, payment_id=paid.id, reversed_on=start + timedelta(days=3), reason="bounced", now=now
            )

    result = service.refresh_promises(
        session, portfolio_id=book.portfolio.id, as_of=start + timedelta(days=6)
    )

    assert promises[kept_account.id].status == "kept"
    assert promises[bounced_account.id].status == "broken"
    assert result.by_status == {"kept": 1, "broken": 1}


def test_a_recorded_promise_restarts_the_limitation_period_cn26(session: Session, book: Book) -> None:
    from arrears.compliance import service as compliance

    account = book.account("3")
    account.due_date, account.last_due_date = date(2021, 3, 1), None
    session.flush()
    before = compliance.account_limitation(session, account_id=account.id, as_of=date(2025, 7, 1))
    assert before.time_barred  # three years from 2021-03-01 (CN-20)

    service.record_promise(
        session,
        account_id=account.id,
        amount_minor=10000,
        promised_on=date(2023, 12, 10),
        made_on=date(2023, 12, 1),
        channel="call",
        taken_by_id=book.users["collector"].id,
    )
    after = compliance.account_limitation(session, account_id=account.id, as_of=date(2025, 7, 1))
    assert not after.time_barred
    assert after.limitation_on == date(2026, 12, 1)


def test_a_promise_after_expiry_is_a_waiver_not_a_new_period_cn22(session: Session, book: Book) -> None:
    from arrears.compliance import service as compliance

    account = book.account("3")
    account.due_date, account.last_due_date = date(2021, 3, 1), None
    session.flush()
    service.record_promise(
        session,
        account_id=account.id,
        amount_minor=10000,
        promised_on=date(2024, 6, 10),
        made_on=date(2024, 6, 1),
        channel="call",
        taken_by_id=book.users["collector"].id,
    )
    result = compliance.account_limitation(session, account_id=account.id, as_of=date(2025, 7, 1))
    assert result.time_barred and result.waived_by is not None
