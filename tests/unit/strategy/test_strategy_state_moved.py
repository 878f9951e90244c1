"""Which decisions move an account's stored strategy state (`run.state_moved`)."""

from __future__ import annotations

from datetime import date

import polars as pl

from arrears.strategy import run as daily

D1, D2 = date(2026, 3, 1), date(2026, 3, 2)


def _decisions(
    *rows: tuple[str | None, str | None, date | None, str | None, str | None, date | None, int],
) -> pl.DataFrame:
    return pl.DataFrame(
        rows,
        schema={
            "strategy": pl.String(),
            "stage": pl.String(),
            "stage_entered_on": pl.Date(),
            "stored_strategy": pl.String(),
            "previous_stage": pl.String(),
            "stored_entered_on": pl.Date(),
            "has_state": pl.Int64(),
        },
        orient="row",
    )


def test_a_state_moves_only_when_its_strategy_stage_or_entry_date_does() -> None:
    frame = _decisions(
        ("default", "early", D1, "default", "early", D1, 1),  # stays in its stage: not written
        ("default", "intensive", D2, "default", "early", D1, 1),  # a new stage
        ("default", "early", D2, "default", "early", None, 1),  # an entry date where there was none
        ("challenger", "early", D1, "default", "early", D1, 1),  # another strategy
        ("default", None, None, "default", None, None, 1),  # cured yesterday, cured today
        ("default", None, None, "default", "early", D1, 1),  # cured today
        ("default", "early", D2, None, None, None, 0),  # never decided before
        ("default", "early", D2, None, None, None, None),  # no stored row read
    )
    assert daily.state_moved(frame).to_list() == [False, True, True, True, False, True, True, True]
