from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from arrears.arrangements.schedule import (
    add_months,
    due_dates,
    instalment_schedule,
    months_between,
    split_amount,
)
from arrears.arrangements.schemas import Frequency, InstalmentKind, MonthEnd
from arrears.errors import ValidationFailed


@st.composite
def first_dates(draw: st.DrawFn) -> date:
    """Any date, with the 29th-31st (where month lengths bite) drawn often."""
    year = draw(st.integers(2000, 2060))
    month = draw(st.integers(1, 12))
    day = draw(st.one_of(st.integers(1, 28), st.integers(29, 31)))
    last = add_months(date(year, month, 1), 0, to_month_end=True).day
    return date(year, month, min(day, last))


@given(
    total=st.integers(1, 10**11),
    count=st.integers(1, 60),
    frequency=st.sampled_from(Frequency),
    first_on=first_dates(),
    down_share=st.integers(0, 99),
    unit=st.sampled_from([1, 1, 100, 1000]),
    month_end=st.sampled_from(MonthEnd),
)
def test_instalment_schedule_always_sums_to_the_agreed_total(
    total: int,
    count: int,
    frequency: Frequency,
    first_on: date,
    down_share: int,
    unit: int,
    month_end: MonthEnd,
) -> None:
    down = total * down_share // 100
    try:
        lines = instalment_schedule(
            total,
            count,
            frequency,
            first_on,
            down_payment_minor=down,
            rounding_unit_minor=unit,
            month_end=month_end,
        )
    except ValidationFailed as exc:
        # Refused only when the remainder cannot give every instalment a positive amount.
        assert exc.code == "instalments_too_small"
        assert (total - down) // count < unit
        return
    assert sum(line.amount_minor for line in lines) == total
    assert [line.seq for line in lines] == list(range(1, len(lines) + 1))
    regular = [line for line in lines if line.kind is InstalmentKind.REGULAR]
    assert len(regular) == count
    assert all(line.amount_minor > 0 for line in lines)
    dues = [line.due_on for line in regular]
    assert dues == sorted(dues) and len(set(dues)) == count
    assert dues[0] == first_on
    if unit == 1:
        assert max(r.amount_minor for r in regular) - min(r.amount_minor for r in regular) <= 1
    else:
        assert all(r.amount_minor % unit == 0 for r in regular[:-1])
        assert regular[-1].amount_minor >= regular[0].amount_minor


@given(first_on=first_dates(), count=st.integers(1, 40))
def test_monthly_dates_keep_the_first_dates_day_or_the_month_end(first_on: date, count: int) -> None:
    for k, due in enumerate(due_dates(first_on, count, Frequency.MONTHLY)):
        assert (due.year * 12 + due.month) - (first_on.year * 12 + first_on.month) == k
        last = add_months(due, 0, to_month_end=True).day
        assert due.day == min(first_on.day, last)


def test_monthly_from_the_31st_clamps_to_short_months_without_drifting() -> None:
    dates = due_dates(date(2024, 1, 31), 4, Frequency.MONTHLY)
    assert dates == [date(2024, 1, 31), date(2024, 2, 29), date(2024, 3, 31), date(2024, 4, 30)]


def test_month_end_follow_keeps_a_month_end_first_date_on_month_ends() -> None:
    follow = due_dates(date(2025, 4, 30), 3, Frequency.MONTHLY, month_end=MonthEnd.FOLLOW)
    clamp = due_dates(date(2025, 4, 30), 3, Frequency.MONTHLY, month_end=MonthEnd.CLAMP)
    assert follow == [date(2025, 4, 30), date(2025, 5, 31), date(2025, 6, 30)]
    assert clamp == [date(2025, 4, 30), date(2025, 5, 30), date(2025, 6, 30)]


def test_weekly_and_fortnightly_step_by_seven_and_fourteen_days() -> None:
    assert due_dates(date(2025, 2, 26), 2, Frequency.WEEKLY)[1] == date(2025, 3, 5)
    assert due_dates(date(2025, 2, 26), 2, Frequency.FORTNIGHTLY)[1] == date(2025, 3, 12)


def test_down_payment_is_the_first_line_and_the_rest_is_split() -> None:
    lines = instalment_schedule(
        100_000,
        3,
        Frequency.MONTHLY,
        date(2025, 3, 1),
        down_payment_minor=10_000,
        down_payment_on=date(2025, 2, 20),
    )
    assert lines[0].kind is InstalmentKind.DOWN_PAYMENT and lines[0].due_on == date(2025, 2, 20)
    assert [line.amount_minor for line in lines] == [10_000, 30_000, 30_000, 30_000]


def test_rounding_unit_puts_the_remainder_on_the_last_instalment() -> None:
    assert split_amount(100_001, 3, rounding_unit_minor=100) == [33_300, 33_300, 33_401]
    assert split_amount(100_001, 3) == [33_334, 33_334, 33_333]


def test_a_total_too_small_for_the_count_is_refused() -> None:
    with pytest.raises(ValidationFailed):
        split_amount(2, 3)


def test_down_payment_after_the_first_instalment_is_refused() -> None:
    with pytest.raises(ValidationFailed):
        instalment_schedule(
            1000,
            2,
            Frequency.MONTHLY,
            date(2025, 3, 1),
            down_payment_minor=10,
            down_payment_on=date(2025, 3, 2),
        )


def test_months_between_counts_part_months_as_whole() -> None:
    assert months_between(date(2025, 1, 15), date(2025, 1, 15)) == 0
    assert months_between(date(2025, 1, 15), date(2025, 2, 15)) == 1
    assert months_between(date(2025, 1, 15), date(2025, 2, 16)) == 2
    assert months_between(date(2025, 1, 31), date(2025, 2, 28)) == 1
