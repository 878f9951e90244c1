"""The vectorised evaluation decides exactly what the scalar one decides, row for row."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from arrears.enums import FlagKind, Product
from arrears.strategy.definition import ActionKind, CommitmentState, Strategy
from arrears.strategy.evaluate import (
    Snapshot,
    evaluate,
    evaluate_frame,
    planned_actions_frame,
    snapshots_frame,
)
from arrears.strategy.loader import load_strategy

HERE = Path(__file__).parent
DEFAULT = load_strategy("default")
WIDE = load_strategy(HERE / "strategies" / "wide.toml")
AS_OF = date(2026, 6, 15)


def snapshot_strategy(strategy: Strategy) -> st.SearchStrategy[Snapshot]:
    keys = strategy.action_keys()
    stage_names = [s.name for s in strategy.stages]
    past_day = st.integers(min_value=0, max_value=40).map(lambda n: AS_OF - timedelta(days=n))

    @st.composite
    def build(draw: st.DrawFn) -> Snapshot:
        base = Snapshot(
            account_id=draw(st.integers(min_value=1, max_value=10**12)),
            dpd=draw(
                st.one_of(st.integers(-12, 130), st.sampled_from([-5, -3, -1, 0, 1, 3, 4, 5, 6, 10, 11, 90]))
            ),
            balance_minor=draw(
                st.one_of(
                    st.integers(0, 20_000_000),
                    st.sampled_from([0, 1, 100, 101, 5_000, 100_000, 500_000, 499_999, 10_000_000]),
                )
            ),
            product=draw(st.sampled_from(list(Product))),
            grade=draw(st.one_of(st.none(), st.sampled_from(["A", "B", "C", "D"]))),
            score=draw(st.one_of(st.none(), st.integers(300, 900), st.sampled_from([400, 700]))),
            propensity=draw(st.one_of(st.none(), st.floats(0.0, 1.0, allow_nan=False))),
            flags=frozenset(draw(st.lists(st.sampled_from(list(FlagKind)), max_size=2))),
            promise_state=draw(st.sampled_from(list(CommitmentState))),
            promise_date=draw(
                st.one_of(st.none(), st.integers(-4, 6).map(lambda n: AS_OF + timedelta(days=n)))
            ),
            plan_state=draw(st.sampled_from(list(CommitmentState))),
            time_barred=draw(st.booleans()),
            days_since_rpc=draw(st.one_of(st.none(), st.integers(0, 15))),
            pinned_stage=draw(st.sampled_from([None, "legal", "review"])),
        )
        # Bias towards staying in the stage the account would enter anyway, so repeat rules and stage
        # entry boundaries are exercised, not only fresh entries.
        natural = evaluate(base, strategy, AS_OF).stage
        stage = draw(st.one_of(st.just(natural), st.none(), st.sampled_from([*stage_names, "retired_stage"])))
        entered_on = draw(st.one_of(past_day, st.none()))
        near_entry = (
            st.integers(-2, 2).map(lambda n: min(entered_on + timedelta(days=n), AS_OF - timedelta(days=1)))
            if entered_on is not None
            else st.nothing()
        )
        own = [k for k in keys if natural is not None and k.startswith(natural + ".")]
        chosen = draw(st.lists(st.sampled_from(own or keys), unique=True)) + draw(
            st.lists(st.sampled_from(keys), unique=True, max_size=3)
        )
        # History is strictly before as_of; dates around the stage entry exercise "this stay" boundaries.
        last = {k: draw(st.one_of(near_entry, past_day.map(lambda d: d - timedelta(days=1)))) for k in chosen}
        counts = {k: draw(st.integers(min_value=0, max_value=6)) for k in chosen if draw(st.booleans())}
        return replace(
            base, stage=stage, stage_entered_on=entered_on, last_action_on=last, action_counts=counts
        )

    return build()


def assert_same(strategy: Strategy, snaps: list[Snapshot], as_of: date) -> None:
    frame = evaluate_frame(snapshots_frame(snaps, strategy), strategy, as_of)
    long = planned_actions_frame(frame, strategy, as_of)
    assert frame.height == len(snaps)
    for snap, row in zip(snaps, frame.iter_rows(named=True), strict=True):
        one = evaluate(snap, strategy, as_of)
        assert row["account_id"] == snap.account_id
        assert row["stage"] == one.stage
        assert row["exit"] == one.exit
        assert row["matched_block"] == one.matched_block
        assert row["stage_entered_on"] == one.stage_entered_on
        assert row["days_in_stage"] == one.days_in_stage
        assert row["priority"] == one.priority
        assert tuple(row["actions"]) == one.action_keys
    expected_keys = sorted(a.idempotency_key for s in snaps for a in evaluate(s, strategy, as_of).actions)
    assert sorted(long["idempotency_key"].to_list()) == expected_keys


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(snapshot_strategy(DEFAULT), min_size=1, max_size=20))
def test_frame_and_scalar_agree_on_the_default_strategy(snaps: list[Snapshot]) -> None:
    assert_same(DEFAULT, snaps, AS_OF)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(snapshot_strategy(WIDE), min_size=1, max_size=20))
def test_frame_and_scalar_agree_on_every_clause_and_repeat_rule(snaps: list[Snapshot]) -> None:
    assert_same(WIDE, snaps, AS_OF)


def test_frame_fills_missing_optional_columns_with_snapshot_defaults() -> None:
    df = pl.DataFrame({"account_id": [1, 2], "dpd": [2, 95], "balance_minor": [10_000, 900_000]})
    frame = evaluate_frame(df, DEFAULT, AS_OF)
    scalar = [
        evaluate(Snapshot(1, 2, 10_000), DEFAULT, AS_OF),
        evaluate(Snapshot(2, 95, 900_000), DEFAULT, AS_OF),
    ]
    assert frame["stage"].to_list() == [s.stage for s in scalar]
    assert [tuple(a) for a in frame["actions"].to_list()] == [s.action_keys for s in scalar]


def test_frame_long_form_carries_channel_template_window_and_task_priority() -> None:
    snaps = [Snapshot(1, 2, 10_000), Snapshot(2, -2, 10_000)]
    long = planned_actions_frame(
        evaluate_frame(snapshots_frame(snaps, DEFAULT), DEFAULT, AS_OF), DEFAULT, AS_OF
    )
    rows = {r["action_key"]: r for r in long.iter_rows(named=True)}
    call = rows["gentle.courtesy_call"]
    assert call["channel"] == "call" and call["kind"] == ActionKind.CALL_TASK.value
    assert call["priority"] == evaluate(snaps[0], DEFAULT, AS_OF).priority
    assert rows["pre_due.reminder_email"]["priority"] is None
    assert rows["pre_due.reminder_email"]["template"] == "pre_due_reminder"
