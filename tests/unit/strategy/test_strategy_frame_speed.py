"""The daily run's evaluation keeps up with a million accounts."""

from __future__ import annotations

import time
from datetime import date

import polars as pl
import pytest

from arrears.strategy.evaluate import evaluate_frame
from arrears.strategy.loader import load_strategy

AS_OF = date(2026, 3, 1)
STATES = {0: "none", 1: "active", 2: "kept", 3: "broken"}
STAGES = {0: "gentle", 1: "firm", 2: "intensive", 3: "legal"}


def synthetic(n: int) -> pl.DataFrame:
    ids = pl.col("account_id")
    return (
        pl.DataFrame({"account_id": pl.int_range(0, n, eager=True)})
        .with_columns(
            dpd=(ids.hash(1) % 210).cast(pl.Int64) - 10,
            balance_minor=(ids.hash(2) % 5_000_000).cast(pl.Int64),
            propensity=(ids.hash(3) % 1000).cast(pl.Float64) / 1000,
            flags=pl.when(ids % 50 == 0).then(pl.lit(["dispute"])).otherwise(pl.lit([], pl.List(pl.String))),
            promise_state=(ids.hash(4) % 4).replace_strict(STATES, return_dtype=pl.String),
            days_since_rpc=(ids.hash(5) % 30).cast(pl.Int64),
            stage=(ids.hash(6) % 4).replace_strict(STAGES, return_dtype=pl.String),
        )
        .with_columns(
            stage_entered_on=pl.lit(AS_OF) - pl.duration(days=ids % 20),
            promise_date=pl.lit(AS_OF) + pl.duration(days=ids % 7 - 3),
            **{"last_on:intensive.call": pl.lit(AS_OF) - pl.duration(days=ids % 5 + 1)},
        )
    )


@pytest.mark.slow
def test_a_million_accounts_evaluate_in_a_few_seconds() -> None:
    strategy = load_strategy("default")
    df = synthetic(1_000_000)
    started = time.perf_counter()
    result = evaluate_frame(df, strategy, AS_OF)
    elapsed = time.perf_counter() - started
    assert result.height == 1_000_000
    assert result.filter(pl.col("stage") == "held")["actions"].list.len().sum() == 0
    assert elapsed < 10.0, f"{elapsed:.1f} s"
