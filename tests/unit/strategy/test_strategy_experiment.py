"""Champion / challenger: a stable split by account, with the share recorded."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from arrears.strategy.experiment import (
    Arm,
    Experiment,
    assign_arm,
    assign_arms_frame,
    bucket,
    summarise,
)

EXPERIMENT = Experiment(
    name="gentle_sms_only",
    salt="2026-q3",
    champion="default",
    challenger="gentle_sms",
    challenger_share_bp=2_000,
)


def test_bucket_is_a_fixed_function_of_salt_and_account() -> None:
    # Pinned values: a change here would silently move accounts between arms of running experiments.
    assert [bucket(i, "2026-q3") for i in range(1, 6)] == [5898, 4317, 8372, 2842, 9457]
    assert bucket(1, "2026-q3") == bucket("1", "2026-q3")
    assert bucket(12345, "salt") == int.from_bytes(hashlib.sha256(b"salt:12345").digest()[:8], "big") % 10_000


def test_assignment_records_arm_strategy_and_share() -> None:
    a = assign_arm(42, EXPERIMENT)
    assert a.experiment == "gentle_sms_only" and a.challenger_share_bp == 2_000
    assert (a.arm is Arm.CHALLENGER) == (a.bucket < 2_000)
    assert a.strategy == ("gentle_sms" if a.arm is Arm.CHALLENGER else "default")


def test_realised_share_is_close_to_the_recorded_share() -> None:
    summary = summarise(assign_arm(i, EXPERIMENT) for i in range(20_000))
    assert summary.challenger_share_bp == 2_000
    assert abs(summary.realised_share_bp - 2_000) < 200
    assert summary.champion_count + summary.challenger_count == 20_000


def test_a_new_salt_draws_an_independent_split() -> None:
    other = EXPERIMENT.model_copy(update={"salt": "2026-q4"})
    same = sum(assign_arm(i, EXPERIMENT).arm == assign_arm(i, other).arm for i in range(5_000))
    assert same < 4_500  # independent 20/80 splits agree on about 68 %


@given(st.lists(st.integers(0, 10**15), max_size=50), st.integers(0, 10_000))
def test_frame_assignment_equals_scalar_assignment(ids: list[int], share: int) -> None:
    experiment = EXPERIMENT.model_copy(update={"challenger_share_bp": share})
    frame = assign_arms_frame(ids, experiment)
    assert frame["arm"].to_list() == [assign_arm(i, experiment).arm.value for i in ids]
    assert frame["strategy"].to_list() == [assign_arm(i, experiment).strategy for i in ids]
    assert set(frame["challenger_share_bp"].to_list()) <= {share}


def test_share_bounds_and_distinct_strategies_are_checked() -> None:
    with pytest.raises(ValidationError):
        Experiment(name="x", salt="s", champion="a", challenger="a", challenger_share_bp=10)
    with pytest.raises(ValidationError):
        Experiment(name="x", salt="s", champion="a", challenger="b", challenger_share_bp=10_001)


def test_zero_and_full_share_put_everyone_in_one_arm() -> None:
    none = EXPERIMENT.model_copy(update={"challenger_share_bp": 0})
    everyone = EXPERIMENT.model_copy(update={"challenger_share_bp": 10_000})
    assert all(assign_arm(i, none).arm is Arm.CHAMPION for i in range(500))
    assert all(assign_arm(i, everyone).arm is Arm.CHALLENGER for i in range(500))
