"""Champion / challenger: a stable random split of accounts between two strategies.

An account's arm depends only on its id and the experiment's salt: SHA-256 of ``"<salt>:<account_id>"``,
its first 8 bytes as an unsigned integer, modulo 10,000, gives a bucket; buckets below the challenger's
share (in basis points) take the challenger. The split therefore survives restarts, machines and library
upgrades, and a new salt draws a fresh, independent split. Each assignment records the share it was drawn
with, so an analysis later knows the intended split even after the share changes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Self

import polars as pl
from pydantic import Field, model_validator

from arrears.strategy.definition import Label, Name, StrictModel

BASIS_POINTS = 10_000


class Arm(StrEnum):
    CHAMPION = "champion"
    CHALLENGER = "challenger"


class Experiment(StrictModel):
    """A champion/challenger experiment: two strategies, a salt, and the challenger's share."""

    name: Name
    salt: str = Field(min_length=1, max_length=200)
    champion: Name  # strategy names
    challenger: Name
    challenger_share_bp: int = Field(ge=0, le=BASIS_POINTS)  # 1,000 = 10 %
    label_zh: Label | None = None
    label_en: Label | None = None

    @model_validator(mode="after")
    def _distinct(self) -> Self:
        if self.champion == self.challenger:
            raise ValueError("champion and challenger must be different strategies")
        return self


@dataclass(frozen=True, slots=True)
class ArmAssignment:
    """One account's arm, with what it was drawn from (to be recorded with the account's decisions)."""

    account_id: int
    experiment: str
    arm: Arm
    strategy: str
    bucket: int  # 0..9,999
    challenger_share_bp: int


def bucket(account_id: int | str, salt: str) -> int:
    """The account's stable bucket in 0..9,999 for a salt."""
    digest = hashlib.sha256(f"{salt}:{account_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % BASIS_POINTS


def assign_arm(account_id: int, experiment: Experiment) -> ArmAssignment:
    """Which arm (and so which strategy) an account follows in the experiment."""
    b = bucket(account_id, experiment.salt)
    arm = Arm.CHALLENGER if b < experiment.challenger_share_bp else Arm.CHAMPION
    return ArmAssignment(
        account_id=account_id,
        experiment=experiment.name,
        arm=arm,
        strategy=experiment.challenger if arm is Arm.CHALLENGER else experiment.champion,
        bucket=b,
        challenger_share_bp=experiment.challenger_share_bp,
    )


def assign_arms_frame(account_ids: pl.Series | Iterable[int], experiment: Experiment) -> pl.DataFrame:
    """`assign_arm` for many accounts: columns ``account_id``, ``experiment``, ``arm``, ``strategy``,
    ``bucket``, ``challenger_share_bp``. Hashing is SHA-256 in Python (about a second per million ids),
    because Polars' own hash is not stable across versions.
    """
    ids = list(account_ids)
    buckets = [bucket(i, experiment.salt) for i in ids]
    challenger = pl.col("bucket") < experiment.challenger_share_bp
    return pl.DataFrame(
        {"account_id": ids, "bucket": buckets}, schema={"account_id": pl.Int64(), "bucket": pl.Int64()}
    ).select(
        "account_id",
        pl.lit(experiment.name).alias("experiment"),
        pl.when(challenger)
        .then(pl.lit(Arm.CHALLENGER.value))
        .otherwise(pl.lit(Arm.CHAMPION.value))
        .alias("arm"),
        pl.when(challenger)
        .then(pl.lit(experiment.challenger))
        .otherwise(pl.lit(experiment.champion))
        .alias("strategy"),
        "bucket",
        pl.lit(experiment.challenger_share_bp, pl.Int64()).alias("challenger_share_bp"),
    )


@dataclass(frozen=True, slots=True)
class SplitSummary:
    """Counts per arm and the realised challenger share next to the recorded one."""

    experiment: str
    champion_count: int
    challenger_count: int
    challenger_share_bp: int  # as recorded
    realised_share_bp: int  # challenger_count / total, rounded down


def summarise(assignments: Iterable[ArmAssignment]) -> SplitSummary:
    """Summarise one experiment's assignments (all must come from the same experiment and share)."""
    items = list(assignments)
    if not items:
        raise ValueError("no assignments to summarise")
    names = {(a.experiment, a.challenger_share_bp) for a in items}
    if len(names) != 1:
        raise ValueError("assignments come from different experiments or shares")
    ((name, share),) = names
    challengers = sum(1 for a in items if a.arm is Arm.CHALLENGER)
    return SplitSummary(
        experiment=name,
        champion_count=len(items) - challengers,
        challenger_count=challengers,
        challenger_share_bp=share,
        realised_share_bp=challengers * BASIS_POINTS // len(items),
    )
