"""A debtor with several accounts gets one call (or visit) a day, not one per account."""

from __future__ import annotations

import polars as pl

from arrears.strategy.run import one_call_per_case

SCHEMA = {
    "kind": pl.String(),
    "case_id": pl.Int64(),
    "account_id": pl.Int64(),
    "audience": pl.String(),
    "contact_point_id": pl.Int64(),
    "gate": pl.String(),
    "priority": pl.Int64(),
}


def _tasks(rows: list[tuple[str, int, int, str, int | None, str, int | None]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=SCHEMA, orient="row")


def test_two_accounts_of_one_case_give_one_call_that_may_go_ahead_with_the_higher_priority() -> None:
    tasks = _tasks(
        [
            ("call_task", 1, 100, "debtor", 10, "blocked", 90),  # the gate refused this one
            ("call_task", 1, 101, "debtor", 10, "allowed", 40),
            ("call_task", 1, 102, "debtor", 10, "rescheduled", 60),
            ("legal_referral", 1, 100, "debtor", None, "allowed", 5),
            ("legal_referral", 1, 101, "debtor", None, "allowed", 5),
            ("call_task", 2, 200, "debtor", 20, "allowed", 10),
        ]
    )
    out = one_call_per_case(tasks)
    calls = out.filter(pl.col("kind") == "call_task")
    # case 1: the rescheduled call (not blocked, priority 60 above 40) stands for all three, at priority 90
    assert calls.select("case_id", "account_id", "gate", "priority").rows() == [
        (1, 102, "rescheduled", 90),
        (2, 200, "allowed", 10),
    ]
    # each debt is referred to legal on its own; the rows keep their order
    assert out["kind"].to_list() == ["call_task", "legal_referral", "legal_referral", "call_task"]
    assert out["account_id"].to_list() == [102, 100, 101, 200]


def test_other_people_kinds_and_numbers_stay_apart() -> None:
    tasks = _tasks(
        [
            ("call_task", 1, 100, "debtor", 10, "allowed", 1),
            ("call_task", 1, 101, "third_party", 11, "allowed", 1),  # an emergency contact
            ("visit_task", 1, 100, "debtor", 10, "allowed", 1),
            ("call_task", 1, 101, "debtor", 12, "allowed", 1),  # another number of the debtor
        ]
    )
    assert one_call_per_case(tasks).equals(tasks)


def test_when_every_call_is_blocked_one_blocked_call_stays_on_record() -> None:
    tasks = _tasks(
        [
            ("call_task", 1, 100, "debtor", 10, "blocked", 3),
            ("call_task", 1, 101, "debtor", 10, "blocked", None),
        ]
    )
    out = one_call_per_case(tasks)
    assert out.select("account_id", "gate", "priority").rows() == [(100, "blocked", 3)]
