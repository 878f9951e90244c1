"""Days-past-due buckets, month-end snapshots and roll arithmetic (pure, no database)."""

from __future__ import annotations

from datetime import date, timedelta

from hypothesis import given
from hypothesis import strategies as st

from arrears.reports.buckets import (
    BUCKET_NAMES,
    LEFT,
    bucket_of,
    due_date_bounds,
    fill_days,
    month_end_snapshots,
    months_back,
    rolls,
)


def test_bucket_edges() -> None:
    assert [bucket_of(d) for d in (-5, 0, 1, 30, 31, 60, 61, 90, 91, 180, 181, 360, 361, 5000)] == [
        "current", "current", "1-30", "1-30", "31-60", "31-60", "61-90", "61-90",
        "91-180", "91-180", "181-360", "181-360", "361+", "361+",
    ]  # fmt: skip


@given(st.dates(min_value=date(2000, 1, 1), max_value=date(2040, 1, 1)), st.integers(-400, 4000))
def test_due_date_bounds_put_an_account_in_the_same_bucket_as_its_dpd(as_of: date, dpd: int) -> None:
    due = as_of - timedelta(days=dpd)
    by_bounds = next(name for name, bound in due_date_bounds(as_of) if due >= bound)
    assert by_bounds == bucket_of(dpd)


def test_month_end_snapshots_take_the_last_run_date_of_each_month() -> None:
    dates = [date(2026, 1, 5), date(2026, 1, 30), date(2026, 2, 27), date(2026, 2, 3), date(2026, 3, 2)]
    assert month_end_snapshots(dates) == [date(2026, 1, 30), date(2026, 2, 27), date(2026, 3, 2)]
    assert month_end_snapshots([]) == []


def test_rolls_count_worse_same_and_better_with_left_as_a_cure() -> None:
    moves = {
        ("1-30", "31-60"): 6,
        ("1-30", "1-30"): 2,
        ("1-30", LEFT): 1,
        ("1-30", "current"): 1,
        ("61-90", "91-180"): 3,
    }
    one, two = rolls(moves)
    assert (one.from_bucket, one.accounts, one.worse, one.same, one.better) == ("1-30", 10, 6, 2, 2)
    assert (one.roll_bps, one.cure_bps) == (6000, 2000)
    assert (two.from_bucket, two.roll_bps) == ("61-90", 10000)
    assert [r.from_bucket for r in rolls({})] == []


def test_roll_rates_round_half_up_to_a_basis_point() -> None:
    (r,) = rolls({("1-30", "31-60"): 1, ("1-30", "1-30"): 2})
    assert r.roll_bps == 3333 and r.cure_bps == 0
    (r,) = rolls({("1-30", "31-60"): 2, ("1-30", "1-30"): 1})
    assert r.roll_bps == 6667


def test_fill_days_and_months_back() -> None:
    got = fill_days(date(2026, 2, 27), date(2026, 3, 2), {date(2026, 3, 1): 5})
    assert got == [
        (date(2026, 2, 27), 0),
        (date(2026, 2, 28), 0),
        (date(2026, 3, 1), 5),
        (date(2026, 3, 2), 0),
    ]
    assert months_back(date(2026, 3, 15), 3) == date(2025, 12, 1)
    assert months_back(date(2026, 1, 31), 0) == date(2026, 1, 1)
    assert len(BUCKET_NAMES) == 7
