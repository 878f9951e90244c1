"""Priority of call and visit tasks: who a collector should work first.

The score is an integer, higher first, the sum of four capped, linear parts whose weights are data (the
``[priority]`` table of a strategy file):

* balance at risk: ``balance_points * min(max(balance_minor, 0), balance_cap_minor) // balance_cap_minor``
* days past due:   ``dpd_points * min(max(dpd, 0), dpd_cap) // dpd_cap``
* promise due today (an active promise whose date is the as-of date): ``promise_due_today_points``
* propensity to pay (0..1, from scoring; clamped): ``floor(propensity * propensity_points)``;
  when there is no score the neutral ``propensity_missing`` stands in for it.

Only integer arithmetic, one float multiplication and a floor are used, so the scalar function and the
Polars expression give bit-for-bit the same numbers. No logarithms: their last digit may differ between
libraries. The parts are returned by `priority_parts` for explanations (PI-7).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date

import polars as pl
from pydantic import BaseModel, ConfigDict, Field, model_validator

# Products of weights and capped inputs must stay inside a signed 64-bit column.
_INT64_SAFE = 2**62


class PriorityWeights(BaseModel):
    """Weights of the priority score (a strategy file's ``[priority]`` table)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    balance_cap_minor: int = Field(gt=0)
    balance_points: int = Field(ge=0)
    dpd_cap: int = Field(gt=0)
    dpd_points: int = Field(ge=0)
    promise_due_today_points: int = Field(ge=0)
    propensity_points: int = Field(ge=0)
    propensity_missing: float = Field(ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _fits_int64(self) -> PriorityWeights:
        if self.balance_points * self.balance_cap_minor >= _INT64_SAFE:
            raise ValueError("balance_points * balance_cap_minor is too large for a 64-bit integer")
        if self.dpd_points * self.dpd_cap >= _INT64_SAFE:
            raise ValueError("dpd_points * dpd_cap is too large for a 64-bit integer")
        return self


@dataclass(frozen=True, slots=True)
class PriorityInputs:
    """What the priority of one account's task is computed from."""

    balance_minor: int
    dpd: int
    promise_due_today: bool
    propensity: float | None


@dataclass(frozen=True, slots=True)
class PriorityParts:
    """The score split into its parts, for an explanation of a queue's order."""

    balance: int
    dpd: int
    promise: int
    propensity: int

    @property
    def total(self) -> int:
        """The priority score: the sum of the parts."""
        return self.balance + self.dpd + self.promise + self.propensity


def _clamp(value: float, low: float, high: float) -> float:
    return min(max(value, low), high)


def priority_parts(inputs: PriorityInputs, weights: PriorityWeights) -> PriorityParts:
    """Each part of the priority score for one account (see the module docstring for the formula)."""
    balance = min(max(inputs.balance_minor, 0), weights.balance_cap_minor)
    dpd = min(max(inputs.dpd, 0), weights.dpd_cap)
    propensity = weights.propensity_missing if inputs.propensity is None else inputs.propensity
    propensity = _clamp(propensity, 0.0, 1.0)
    return PriorityParts(
        balance=weights.balance_points * balance // weights.balance_cap_minor,
        dpd=weights.dpd_points * dpd // weights.dpd_cap,
        promise=weights.promise_due_today_points if inputs.promise_due_today else 0,
        propensity=math.floor(propensity * float(weights.propensity_points)),
    )


def priority_score(inputs: PriorityInputs, weights: PriorityWeights) -> int:
    """The priority score of one account's call or visit task; higher is worked first."""
    return priority_parts(inputs, weights).total


def promise_due_today_expr(as_of: date) -> pl.Expr:
    """Polars: an active promise dated ``as_of`` (columns ``promise_state``, ``promise_date``)."""
    return ((pl.col("promise_state") == "active") & (pl.col("promise_date") == pl.lit(as_of))).fill_null(
        False
    )


def priority_expr(weights: PriorityWeights, as_of: date) -> pl.Expr:
    """Polars expression of `priority_score` over columns ``balance_minor``, ``dpd``, ``promise_state``,
    ``promise_date`` and ``propensity`` (nullable Float64). Gives the same integers as the scalar version.
    """
    balance = pl.col("balance_minor").clip(0, weights.balance_cap_minor)
    dpd = pl.col("dpd").clip(0, weights.dpd_cap)
    propensity = pl.col("propensity").cast(pl.Float64).fill_null(weights.propensity_missing).clip(0.0, 1.0)
    promise = pl.when(promise_due_today_expr(as_of)).then(weights.promise_due_today_points).otherwise(0)
    return (
        (pl.lit(weights.balance_points, pl.Int64) * balance) // weights.balance_cap_minor
        + (pl.lit(weights.dpd_points, pl.Int64) * dpd) // weights.dpd_cap
        + promise.cast(pl.Int64)
        + (propensity * float(weights.propensity_points)).floor().cast(pl.Int64)
    ).cast(pl.Int64)
