from datetime import date, timedelta

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arrears.arrangements.policy import load_policy
from arrears.arrangements.promises import (
    AcknowledgmentKind,
    Promise,
    PromiseState,
    acknowledgment_events,
    evaluate_promise,
    promise_status,
    promise_status_frame,
)
from arrears.arrangements.schedule import instalment_schedule
from arrears.arrangements.schemas import Arrangement, ArrangementKind, Frequency, Payment
from arrears.enums import Channel
from arrears.errors import ValidationFailed


def day(n: int) -> date:
    return date(2025, 3, 1) + timedelta(days=n - 1)


def promise(amount: int = 50_000, on: int = 3, made: int = 1) -> Promise:
    return Promise(amount, "CNY", day(on), day(made), Channel.CALL, "agent-7", ref="p1")


GRACE = load_policy().promise_grace_days  # 2 in the default policy


def test_promise_on_day_3_is_pending_until_day_5_and_broken_on_day_6() -> None:
    p = promise()
    assert promise_status(p, [], day(3), GRACE) is PromiseState.PENDING
    assert promise_status(p, [], day(5), GRACE) is PromiseState.PENDING
    outcome = evaluate_promise(p, [], day(6), GRACE)
    assert outcome.status is PromiseState.BROKEN
    assert outcome.broken_on == day(6)


def test_payment_within_grace_keeps_the_promise() -> None:
    outcome = evaluate_promise(promise(), [Payment(day(5), 50_000)], day(10), GRACE)
    assert outcome.status is PromiseState.KEPT and outcome.kept_on == day(5)


def test_several_payments_add_up_to_keep_a_promise() -> None:
    pays = [Payment(day(2), 20_000), Payment(day(4), 30_000)]
    assert evaluate_promise(promise(), pays, day(4), GRACE).kept_on == day(4)


def test_part_payment_by_the_deadline_is_partly_kept() -> None:
    outcome = evaluate_promise(promise(), [Payment(day(3), 10_000)], day(6), GRACE)
    assert outcome.status is PromiseState.PARTLY_KEPT and outcome.paid_minor == 10_000


def test_a_late_payment_does_not_mend_a_broken_promise() -> None:
    assert promise_status(promise(), [Payment(day(6), 50_000)], day(7), GRACE) is PromiseState.BROKEN


def test_a_payment_before_the_promise_was_made_does_not_count() -> None:
    p = promise(made=2)
    assert promise_status(p, [Payment(day(1), 50_000)], day(6), GRACE) is PromiseState.BROKEN


def test_payment_in_another_currency_is_refused() -> None:
    with pytest.raises(ValidationFailed):
        promise_status(promise(), [Payment(day(3), 1, currency="USD")], day(3), GRACE)


def test_promise_for_a_date_before_it_was_made_is_refused() -> None:
    with pytest.raises(ValidationFailed):
        promise(on=1, made=2)


def test_cn26_promises_plans_and_payments_become_acknowledgments_in_date_order() -> None:
    plan = Arrangement(
        "a9",
        ArrangementKind.INSTALMENTS,
        day(10),
        "CNY",
        instalment_schedule(60_000, 3, Frequency.MONTHLY, day(15)),
    )
    extension = Arrangement("a10", ArrangementKind.EXTENSION, day(20), "CNY", ())
    events = acknowledgment_events(
        promises=[promise(made=1)],
        arrangements=[extension, plan],
        payments=[Payment(day(16), 20_000, ref="pay-1")],
    )
    assert [(e.occurred_on, e.kind, e.source) for e in events] == [
        (day(1), AcknowledgmentKind.PROMISE_TO_PAY, "promise:p1"),
        (day(10), AcknowledgmentKind.REPAYMENT_PLAN, "arrangement:a9"),
        (day(16), AcknowledgmentKind.PAYMENT, "payment:pay-1"),
        (day(20), AcknowledgmentKind.EXTENSION_REQUEST, "arrangement:a10"),
    ]
    assert {e.rule_id for e in events} == {"CN-26"}


@st.composite
def promised(draw: st.DrawFn) -> tuple[Promise, list[Payment]]:
    made = draw(st.integers(1, 10))
    on = draw(st.integers(made, made + 10))
    amount = draw(st.integers(1, 100_000))
    pays = draw(
        st.lists(
            st.builds(
                Payment,
                st.integers(made - 3, on + 8).map(day),
                st.one_of(st.just(amount), st.integers(1, amount)),
            ),
            max_size=5,
        )
    )
    return promise(amount, on, made), pays


@settings(max_examples=100, deadline=None)
@given(batch=st.lists(promised(), min_size=1, max_size=6), as_of=st.integers(0, 30), grace=st.integers(0, 4))
def test_vectorised_promise_status_matches_the_scalar_one(
    batch: list[tuple[Promise, list[Payment]]], as_of: int, grace: int
) -> None:
    promises = pl.DataFrame(
        [
            {
                "promise_id": i,
                "amount_minor": p.amount_minor,
                "promised_on": p.promised_on,
                "made_on": p.made_on,
            }
            for i, (p, _) in enumerate(batch)
        ]
    )
    payments = pl.DataFrame(
        [
            {"promise_id": i, "received_on": pay.received_on, "amount_minor": pay.amount_minor}
            for i, (_, pays) in enumerate(batch)
            for pay in pays
        ],
        schema={"promise_id": pl.Int64, "received_on": pl.Date, "amount_minor": pl.Int64},
    )
    frame = promise_status_frame(promises, payments, as_of=day(as_of), grace_days=grace)
    for (p, pays), row in zip(batch, frame.iter_rows(named=True), strict=True):
        want = evaluate_promise(p, pays, day(as_of), grace)
        assert (row["status"], row["paid_minor"], row["deadline_on"], row["kept_on"], row["broken_on"]) == (
            want.status.value,
            want.paid_minor,
            want.deadline_on,
            want.kept_on,
            want.broken_on,
        )
