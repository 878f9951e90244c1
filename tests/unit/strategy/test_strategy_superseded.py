"""Which queued messages and open work items of earlier dates today's decisions make obsolete."""

from __future__ import annotations

import polars as pl

from arrears.strategy.run import superseded


def _decisions(rows: list[tuple[int, str | None, str | None, list[str] | None]]) -> pl.DataFrame:
    return pl.DataFrame(
        rows,
        schema={
            "account_id": pl.Int64(),
            "stage": pl.String(),
            "exit": pl.String(),
            "flags": pl.List(pl.String()),
        },
        orient="row",
    )


def _pending(rows: list[tuple[int, int, str]]) -> pl.DataFrame:
    return pl.DataFrame(
        rows, schema={"id": pl.Int64(), "account_id": pl.Int64(), "action_key": pl.String()}, orient="row"
    )


def test_same_stage_keeps_what_is_pending_and_everything_else_is_cancelled_with_its_reason() -> None:
    decisions = _decisions(
        [
            (1, "intensive", None, None),  # same stage: kept
            (2, "held", None, ["dispute"]),  # a dispute: on hold
            (3, None, "paid", None),  # paid in full: exit
            (4, None, None, None),  # cured: nothing overdue
            (5, "promised", None, None),  # a promise made: another stage
        ]
    )
    pending = _pending(
        [
            (10, 1, "intensive.call"),
            (20, 2, "intensive.call"),
            (30, 3, "firm.formal_notice"),
            (40, 4, "gentle.reminder_sms"),
            (50, 5, "intensive.field_visit"),
            (60, 6, "intensive.call"),  # not decided today (another partition): untouched
        ]
    )
    out = dict(superseded(pending, decisions).iter_rows())
    assert set(out) == {20, 30, 40, 50}
    assert "账户有停催标记（dispute）" in out[20] and "on hold (dispute)" in out[20]
    assert "left the strategy (paid)" in out[30]
    assert "no collection stage" in out[40]
    assert "moved to stage promised" in out[50]


def test_a_hold_wins_over_the_stage_it_would_otherwise_keep() -> None:
    decisions = _decisions([(1, "intensive", None, ["cease", "complaint"])])
    out = superseded(_pending([(10, 1, "intensive.call")]), decisions)
    assert out["id"].to_list() == [10]
    assert "on hold (cease,complaint)" in out["last_reason"][0]


def test_nothing_pending_cancels_nothing() -> None:
    decisions = _decisions([(1, None, "paid", None)])
    assert superseded(_pending([]), decisions).height == 0
