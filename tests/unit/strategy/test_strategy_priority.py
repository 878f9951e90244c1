"""Task priority: documented parts, monotone in what matters, identical in scalar and Polars form."""

from __future__ import annotations

from datetime import date, timedelta

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from arrears.strategy.loader import load_strategy
from arrears.strategy.priority import (
    PriorityInputs,
    PriorityWeights,
    priority_expr,
    priority_parts,
    priority_score,
)

WEIGHTS = load_strategy("default").priority
AS_OF = date(2026, 5, 1)

weights_strategy = st.builds(
    PriorityWeights,
    balance_cap_minor=st.integers(1, 10**9),
    balance_points=st.integers(0, 10_000),
    dpd_cap=st.integers(1, 720),
    dpd_points=st.integers(0, 10_000),
    promise_due_today_points=st.integers(0, 10_000),
    propensity_points=st.integers(0, 10_000),
    propensity_missing=st.floats(0.0, 1.0),
)
row_strategy = st.tuples(
    st.integers(-(10**12), 10**12),  # balance_minor
    st.integers(-30, 5_000),  # dpd
    st.sampled_from(["none", "active", "kept", "broken"]),
    st.one_of(st.none(), st.integers(-2, 2)),  # promise date offset
    st.one_of(st.none(), st.floats(-0.5, 1.5, allow_nan=False)),  # propensity, even out of range
)


@settings(max_examples=100, deadline=None)
@given(weights_strategy, st.lists(row_strategy, min_size=1, max_size=30))
def test_polars_priority_equals_scalar_priority(weights: PriorityWeights, rows: list[tuple]) -> None:
    df = pl.DataFrame(
        {
            "balance_minor": [r[0] for r in rows],
            "dpd": [r[1] for r in rows],
            "promise_state": [r[2] for r in rows],
            "promise_date": [None if r[3] is None else AS_OF + timedelta(days=r[3]) for r in rows],
            "propensity": [r[4] for r in rows],
        },
        schema={
            "balance_minor": pl.Int64,
            "dpd": pl.Int64,
            "promise_state": pl.String,
            "promise_date": pl.Date,
            "propensity": pl.Float64,
        },
    )
    got = df.select(priority_expr(weights, AS_OF).alias("p"))["p"].to_list()
    expected = [
        priority_score(PriorityInputs(r[0], r[1], r[2] == "active" and r[3] == 0, r[4]), weights)
        for r in rows
    ]
    assert got == expected


def test_parts_follow_the_documented_formula() -> None:
    parts = priority_parts(PriorityInputs(5_000_000, 45, True, 0.25), WEIGHTS)
    assert parts.balance == WEIGHTS.balance_points * 5_000_000 // WEIGHTS.balance_cap_minor
    assert parts.dpd == WEIGHTS.dpd_points * 45 // WEIGHTS.dpd_cap
    assert parts.promise == WEIGHTS.promise_due_today_points
    assert parts.propensity == int(0.25 * WEIGHTS.propensity_points)
    assert parts.total == priority_score(PriorityInputs(5_000_000, 45, True, 0.25), WEIGHTS)


def test_missing_propensity_counts_as_the_neutral_value() -> None:
    neutral = PriorityInputs(1_000, 10, False, WEIGHTS.propensity_missing)
    assert priority_score(PriorityInputs(1_000, 10, False, None), WEIGHTS) == priority_score(neutral, WEIGHTS)


@given(st.integers(0, 10**9), st.integers(0, 10**9), st.integers(-5, 400), st.integers(-5, 400))
def test_more_balance_or_more_dpd_never_lowers_priority(b1: int, b2: int, d1: int, d2: int) -> None:
    low = PriorityInputs(min(b1, b2), min(d1, d2), False, 0.5)
    high = PriorityInputs(max(b1, b2), max(d1, d2), False, 0.5)
    assert priority_score(low, WEIGHTS) <= priority_score(high, WEIGHTS)


def test_parts_are_capped() -> None:
    huge = priority_parts(PriorityInputs(10**15, 10**5, False, 7.0), WEIGHTS)
    assert (huge.balance, huge.dpd, huge.propensity) == (
        WEIGHTS.balance_points,
        WEIGHTS.dpd_points,
        WEIGHTS.propensity_points,
    )
