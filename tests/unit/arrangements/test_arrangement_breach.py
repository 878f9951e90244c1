from datetime import date, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from arrears.arrangements.breach import (
    InstalmentState,
    PlanState,
    instalment_status_frame,
    payment_frame,
    plan_status,
    plan_status_frame,
    schedule_frame,
)
from arrears.arrangements.policy import load_policy
from arrears.arrangements.schedule import instalment_schedule
from arrears.arrangements.schemas import Frequency, Payment, ScheduledInstalment

N = load_policy().breach_days  # 5 in the default policy


def six_monthly() -> tuple[ScheduledInstalment, ...]:
    return instalment_schedule(600_000, 6, Frequency.MONTHLY, date(2025, 1, 31))


def test_six_monthly_instalments_with_the_third_missed_breach_n_days_after_its_due_date() -> None:
    plan = six_monthly()
    third_due = plan[2].due_on
    assert third_due == date(2025, 3, 31)
    pays = [Payment(plan[0].due_on, 100_000), Payment(plan[1].due_on, 100_000)]
    before = plan_status(plan, pays, as_of=third_due + timedelta(days=N - 1), breach_days=N)
    assert before.status is PlanState.ACTIVE
    assert before.instalments[2].status is InstalmentState.PENDING
    on = plan_status(plan, pays, as_of=third_due + timedelta(days=N), breach_days=N)
    assert on.status is PlanState.BREACHED
    assert on.breach_on == date(2025, 4, 5) and on.breached_seq == 3
    assert on.instalments[2].status is InstalmentState.MISSED and on.instalments[2].days_late == N
    assert on.outstanding_minor == 400_000


def test_a_breach_stays_even_when_the_debtor_catches_up() -> None:
    plan = six_monthly()
    pays = [
        Payment(plan[0].due_on, 100_000),
        Payment(plan[1].due_on, 100_000),
        Payment(date(2025, 4, 20), 100_000),
    ]
    later = plan_status(plan, pays, as_of=date(2025, 4, 21), breach_days=N)
    assert later.status is PlanState.BREACHED and later.breach_on == date(2025, 4, 5)
    assert later.instalments[2].status is InstalmentState.PAID and later.instalments[2].days_late == 20


def test_paying_within_the_tolerance_is_not_a_breach() -> None:
    plan = six_monthly()
    pays = [Payment(s.due_on + timedelta(days=N - 1), s.amount_minor) for s in plan]
    status = plan_status(plan, pays, as_of=date(2025, 12, 31), breach_days=N)
    assert status.status is PlanState.COMPLETED
    assert status.completed_on == plan[-1].due_on + timedelta(days=N - 1)


def test_part_payment_shows_partly_paid_then_missed() -> None:
    plan = six_monthly()
    pays = [Payment(date(2025, 1, 30), 40_000)]
    assert plan_status(plan, pays, as_of=date(2025, 2, 1), breach_days=N).instalments[0].status is (
        InstalmentState.PARTLY_PAID
    )
    late = plan_status(plan, pays, as_of=date(2025, 2, 5), breach_days=N)
    assert late.instalments[0].status is InstalmentState.MISSED and late.instalments[0].paid_minor == 40_000


def test_an_overpayment_pays_the_next_instalments_in_order() -> None:
    plan = six_monthly()
    status = plan_status(plan, [Payment(date(2025, 1, 31), 250_000)], as_of=date(2025, 2, 1), breach_days=N)
    assert [i.paid_minor for i in status.instalments[:4]] == [100_000, 100_000, 50_000, 0]
    assert status.instalments[2].status is InstalmentState.PARTLY_PAID


def test_payments_after_as_of_are_ignored() -> None:
    plan = six_monthly()
    status = plan_status(plan, [Payment(date(2025, 2, 10), 100_000)], as_of=date(2025, 2, 5), breach_days=N)
    assert status.paid_minor == 0 and status.status is PlanState.BREACHED
    assert status.instalments[0].days_late == 5


# --- the daily run's vectorised version agrees with the scalar one ------------------------------------


@st.composite
def plans(draw: st.DrawFn, breach_days: int) -> tuple[tuple[ScheduledInstalment, ...], list[Payment]]:
    count = draw(st.integers(1, 8))
    total = draw(st.integers(count, 500_000))
    first = draw(st.dates(date(2024, 1, 1), date(2025, 12, 31)))
    schedule = instalment_schedule(total, count, draw(st.sampled_from(Frequency)), first)
    pays: list[Payment] = []
    # Mostly one payment per instalment, a few days either side of its due date (so payments land just
    # before, on and after breach days), sometimes short or long; plus a few payments anywhere.
    for line in schedule:
        if draw(st.integers(0, 4)) == 0:
            continue
        amount = draw(st.sampled_from([line.amount_minor, line.amount_minor, max(1, line.amount_minor // 2)]))
        edge = st.sampled_from([0, breach_days - 1, breach_days, breach_days + 1])
        offset = draw(st.one_of(edge, st.integers(-3, 2 * breach_days + 2)))
        pays.append(Payment(line.due_on + timedelta(days=offset), amount))
    extra = st.builds(
        Payment, st.dates(first - timedelta(days=10), first + timedelta(days=300)), st.integers(1, total)
    )
    pays.extend(draw(st.lists(extra, max_size=3)))
    return schedule, pays


@settings(max_examples=100, deadline=None)
@given(breach_days=st.integers(1, 12), as_of_offset=st.integers(-5, 300), data=st.data())
def test_vectorised_breach_detection_matches_the_scalar_one(
    breach_days: int, as_of_offset: int, data: st.DataObject
) -> None:
    batch = data.draw(st.lists(plans(breach_days), min_size=1, max_size=6))
    as_of = min(s[0].due_on for s, _ in batch) + timedelta(days=as_of_offset)
    schedules = {i: s for i, (s, _) in enumerate(batch)}
    payments = {i: p for i, (_, p) in enumerate(batch)}
    frame = plan_status_frame(
        schedule_frame(schedules), payment_frame(payments), as_of=as_of, breach_days=breach_days
    )
    lines = instalment_status_frame(
        schedule_frame(schedules), payment_frame(payments), as_of=as_of, breach_days=breach_days
    )
    assert frame.height == len(batch)
    for plan_id, row in zip(sorted(schedules), frame.iter_rows(named=True), strict=True):
        scalar = plan_status(schedules[plan_id], payments[plan_id], as_of=as_of, breach_days=breach_days)
        assert row["plan_id"] == plan_id
        assert row["status"] == scalar.status.value
        assert row["breach_on"] == scalar.breach_on
        assert row["breached_seq"] == scalar.breached_seq
        assert row["total_minor"] == scalar.total_minor
        assert row["paid_minor"] == scalar.paid_minor
        assert row["outstanding_minor"] == scalar.outstanding_minor
        assert row["completed_on"] == scalar.completed_on
        rows = lines.filter(lines["plan_id"] == plan_id).iter_rows(named=True)
        for got, want in zip(rows, scalar.instalments, strict=True):
            assert (got["seq"], got["paid_minor"], got["status"], got["paid_on"], got["days_late"]) == (
                want.seq,
                want.paid_minor,
                want.status.value,
                want.paid_on,
                want.days_late,
            )
            assert got["breach_on"] == want.breach_on


def test_paying_on_the_breach_day_itself_is_too_late_in_both_versions() -> None:
    plan = six_monthly()
    pays = [Payment(plan[0].due_on + timedelta(days=N), 100_000)]
    as_of = plan[0].due_on + timedelta(days=N)
    scalar = plan_status(plan, pays, as_of=as_of, breach_days=N)
    frame = plan_status_frame(schedule_frame({1: plan}), payment_frame({1: pays}), as_of=as_of, breach_days=N)
    assert scalar.status is PlanState.BREACHED and scalar.breach_on == as_of
    assert frame.row(0, named=True)["status"] == "breached"
    assert frame.row(0, named=True)["breach_on"] == as_of
