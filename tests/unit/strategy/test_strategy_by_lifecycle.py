"""The order work items are written in (`run.by_lifecycle`): open calls and visits, other open items, the
rest, each group in its planned order."""

from __future__ import annotations

import polars as pl

from arrears.strategy import run as daily


def test_open_calls_and_visits_come_first_then_other_open_items_then_the_rest_in_planned_order() -> None:
    rows = pl.DataFrame(
        {
            "account_id": [1, 2, 3, 4, 5, 6, 7, 8],
            "kind": ["call", "legal_referral", "visit", "call", "legal_referral", "visit", "call", "visit"],
            "status": ["blocked", "open", "open", "open", "blocked", "blocked", "open", "open"],
        }
    )
    ordered = daily.by_lifecycle(rows)
    assert ordered["account_id"].to_list() == [3, 4, 7, 8, 2, 1, 5, 6]
    # nothing is lost or changed, only moved
    assert ordered.sort("account_id").equals(rows)


def test_an_empty_plan_stays_empty() -> None:
    rows = pl.DataFrame(schema={"kind": pl.String(), "status": pl.String()})
    assert daily.by_lifecycle(rows).height == 0
