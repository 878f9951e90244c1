"""Ten consecutive days of a small portfolio under the default strategy, day by day.

The world (due dates, payments, promises, disputes, a supervisor's pin) changes in plain Python at the
start of each day, before that day's run; the run's history (stage, entry date, last actions) is carried
with `advance`, as the daily run will store it. Every day the vectorised evaluation must agree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, time, timedelta

import pytest

from arrears.enums import Channel, FlagKind, Product
from arrears.strategy.definition import ActionKind, CommitmentState
from arrears.strategy.evaluate import Evaluation, Snapshot, advance, evaluate, evaluate_frame, snapshots_frame
from arrears.strategy.loader import load_strategy

DAY0 = date(2026, 3, 1)  # "day d" is DAY0 + d - 1


def day(d: int) -> date:
    return DAY0 + timedelta(days=d - 1)


@dataclass
class World:
    """What the outside world says about one account (the ledger, promises, flags)."""

    account_id: int
    due_on: date
    balance_minor: int
    flags: set[FlagKind] = field(default_factory=set)
    promise_state: CommitmentState = CommitmentState.NONE
    promise_date: date | None = None
    time_barred: bool = False
    last_rpc_on: date | None = None
    pinned_stage: str | None = None


def world_events(w: dict[str, World], d: int) -> None:
    """State changes of day d, applied before the day's run."""
    if d == 3:  # B calls in and promises to pay by day 5 (a right-party contact)
        w["B"].promise_state = CommitmentState.ACTIVE
        w["B"].promise_date = day(5)
        w["B"].last_rpc_on = day(3)
    if d == 6:  # day 5 ended unpaid: the promise is broken
        w["B"].promise_state = CommitmentState.BROKEN
    if d == 4:  # C disputes the debt
        w["C"].flags.add(FlagKind.DISPUTE)
    if d == 5:  # D pays the overdue amount: the account is current again, next due in a month
        w["D"].balance_minor -= 100_000
        w["D"].due_on = day(35)
    if d == 5:  # a supervisor moves F (time-barred) and G to legal by hand
        w["F"].pinned_stage = "legal"
        w["G"].pinned_stage = "legal"


def initial_world() -> dict[str, World]:
    return {
        "A": World(1, due_on=day(3), balance_minor=300_000),  # pre-due on day 1
        "B": World(2, due_on=day(0), balance_minor=300_000),  # DPD 1 on day 1
        "C": World(3, due_on=day(0), balance_minor=300_000),
        "D": World(4, due_on=day(-5), balance_minor=300_000),  # DPD 6 on day 1
        "E": World(5, due_on=day(-94), balance_minor=800_000),  # DPD 95, above the legal threshold
        "F": World(6, due_on=day(-1200), balance_minor=800_000, time_barred=True),
        "G": World(7, due_on=day(-19), balance_minor=100_000),  # DPD 20, below the legal threshold
    }


def snapshot_of(w: World, history: Snapshot | None, as_of: date) -> Snapshot:
    base = Snapshot(
        account_id=w.account_id,
        dpd=(as_of - w.due_on).days,
        balance_minor=w.balance_minor,
        product=Product.CONSUMER_LOAN,
        flags=frozenset(w.flags),
        promise_state=w.promise_state,
        promise_date=w.promise_date,
        time_barred=w.time_barred,
        days_since_rpc=(as_of - w.last_rpc_on).days if w.last_rpc_on else None,
        pinned_stage=w.pinned_stage,
    )
    if history is None:
        return base
    return Snapshot(
        **{
            **{f: getattr(base, f) for f in base.__dataclass_fields__},
            "stage": history.stage,
            "stage_entered_on": history.stage_entered_on,
            "last_action_on": history.last_action_on,
            "action_counts": history.action_counts,
        }
    )


# Expected (stage, planned actions) per account per day. None: in no stage.
EXPECTED: dict[str, list[tuple[str | None, set[str]]]] = {
    # pre-due -> due day -> gentle -> firm -> intensive
    "A": [
        ("pre_due", {"pre_due.reminder_sms", "pre_due.reminder_email"}),
        ("pre_due", set()),
        (None, set()),
        ("gentle", {"gentle.reminder_sms"}),
        ("gentle", {"gentle.courtesy_call"}),
        ("gentle", {"gentle.courtesy_call"}),
        ("firm", {"firm.call"}),
        ("firm", {"firm.call", "firm.formal_notice"}),
        ("intensive", {"intensive.call", "intensive.field_visit", "intensive.third_party_call"}),
        ("intensive", set()),
    ],
    # promise on day 3 (no calls while it runs), broken on day 6, calls again from day 7
    "B": [
        ("gentle", {"gentle.reminder_sms"}),
        ("gentle", {"gentle.courtesy_call"}),
        ("promised", {"promised.confirmation_sms"}),
        ("promised", set()),
        ("promised", {"promised.due_day_sms"}),
        ("broken_promise", {"broken_promise.missed_sms"}),
        ("broken_promise", {"broken_promise.call", "broken_promise.formal_notice"}),
        ("broken_promise", {"broken_promise.call"}),
        ("broken_promise", {"broken_promise.call", "broken_promise.field_visit"}),
        ("broken_promise", {"broken_promise.call"}),
    ],
    # a dispute on day 4 stops everything
    "C": [
        ("gentle", {"gentle.reminder_sms"}),
        ("gentle", {"gentle.courtesy_call"}),
        ("gentle", {"gentle.courtesy_call"}),
        *[("held", set())] * 7,
    ],
    # a payment on day 5 cures the account
    "D": [
        ("intensive", {"intensive.call", "intensive.field_visit", "intensive.third_party_call"}),
        ("intensive", set()),
        ("intensive", {"intensive.call"}),
        ("intensive", set()),
        *[(None, set())] * 6,
    ],
    # legal by rule: one referral for approval, then nothing more from the strategy
    "E": [("legal", {"legal.referral"}), *[("legal", set())] * 9],
    # time-barred: never legal, not even when pinned by hand (CN-22)
    "F": [
        ("intensive", {"intensive.call", "intensive.field_visit", "intensive.third_party_call"}),
        ("intensive", set()),
        ("intensive", {"intensive.call"}),
        ("intensive", set()),
        ("intensive", {"intensive.call"}),
        ("intensive", set()),
        ("intensive", {"intensive.call"}),
        ("intensive", {"intensive.third_party_call"}),
        ("intensive", {"intensive.call"}),
        ("intensive", set()),
    ],
    # legal by hand on day 5
    "G": [
        ("intensive", {"intensive.call", "intensive.field_visit", "intensive.third_party_call"}),
        ("intensive", set()),
        ("intensive", {"intensive.call"}),
        ("intensive", set()),
        ("legal", {"legal.referral"}),
        *[("legal", set())] * 5,
    ],
}


def run_ten_days() -> dict[str, list[Evaluation]]:
    strategy = load_strategy("default")
    world = initial_world()
    history: dict[str, Snapshot | None] = dict.fromkeys(world)
    results: dict[str, list[Evaluation]] = {name: [] for name in world}
    for d in range(1, 11):
        as_of = day(d)
        world_events(world, d)
        snaps = {name: snapshot_of(w, history[name], as_of) for name, w in world.items()}
        frame = evaluate_frame(snapshots_frame(snaps.values(), strategy), strategy, as_of)
        for (name, snap), row in zip(snaps.items(), frame.iter_rows(named=True), strict=True):
            result = evaluate(snap, strategy, as_of)
            assert (row["stage"], tuple(row["actions"])) == (result.stage, result.action_keys), (name, d)
            results[name].append(result)
            history[name] = advance(snap, result)
    return results


@pytest.fixture(scope="module")
def ten_days() -> dict[str, list[Evaluation]]:
    return run_ten_days()


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_account_follows_the_default_strategy_day_by_day(
    ten_days: dict[str, list[Evaluation]], name: str
) -> None:
    got = [(e.stage, set(e.action_keys)) for e in ten_days[name]]
    for d, (actual, expected) in enumerate(zip(got, EXPECTED[name], strict=True), start=1):
        assert actual == expected, f"account {name}, day {d}"


def test_promise_suppresses_calls_until_its_date_and_a_broken_promise_calls_the_next_day(
    ten_days: dict[str, list[Evaluation]],
) -> None:
    b = ten_days["B"]
    promised_days = [e for e in b if e.stage == "promised"]
    assert promised_days and all(a.kind is not ActionKind.CALL_TASK for e in promised_days for a in e.actions)
    broken_on = next(i for i, e in enumerate(b) if e.stage == "broken_promise")
    assert not any(a.kind is ActionKind.CALL_TASK for a in b[broken_on].actions)
    assert any(a.kind is ActionKind.CALL_TASK for a in b[broken_on + 1].actions)


def test_dispute_stops_every_action_and_says_why(ten_days: dict[str, list[Evaluation]]) -> None:
    held = [e for e in ten_days["C"] if e.stage == "held"]
    assert len(held) == 7
    assert all(e.actions == () for e in held)
    assert any("停催" in r.zh and "flag" in r.en for r in held[0].reasons)


def test_cured_account_leaves_every_stage(ten_days: dict[str, list[Evaluation]]) -> None:
    after = ten_days["D"][4:]
    assert all(e.stage is None and e.exit is None and e.actions == () for e in after)
    assert after[0].reasons[0].code == "no_stage"


def test_cn22_time_barred_account_never_gets_a_legal_referral(ten_days: dict[str, list[Evaluation]]) -> None:
    assert all(a.kind is not ActionKind.LEGAL_REFERRAL for e in ten_days["F"] for a in e.actions)
    assert all(e.stage != "legal" for e in ten_days["F"])


def test_legal_referral_is_an_approval_request_not_a_contact(ten_days: dict[str, list[Evaluation]]) -> None:
    (referral,) = ten_days["E"][0].actions
    assert referral.kind is ActionKind.LEGAL_REFERRAL
    assert referral.needs_approval and referral.channel is None
    assert referral.idempotency_key == f"5:default:legal.referral:{day(1).isoformat()}"


def test_formal_notice_after_broken_promise_is_a_letter_in_office_hours(
    ten_days: dict[str, list[Evaluation]],
) -> None:
    letter = next(a for a in ten_days["B"][6].actions if a.name == "formal_notice")
    assert letter.channel is Channel.LETTER and letter.template == "formal_notice"
    assert (letter.window_start, letter.window_end) == (time(9), time(17))
    assert "CN-8" in letter.rule_ids
    assert letter.priority is None  # priority is for call and visit tasks


def test_stage_entry_dates_are_kept_while_the_stage_lasts(ten_days: dict[str, list[Evaluation]]) -> None:
    legal = ten_days["E"]
    assert {e.stage_entered_on for e in legal} == {day(1)}
    assert [e.days_in_stage for e in legal] == list(range(10))


def test_rerunning_a_day_plans_the_same_actions_with_the_same_keys() -> None:
    """Invariant 4: the plan is a function of the day's starting state."""
    strategy = load_strategy("default")
    snap = Snapshot(account_id=9, dpd=5, balance_minor=300_000, stage="firm", stage_entered_on=day(1))
    first = evaluate(snap, strategy, day(2))
    second = evaluate(snap, strategy, day(2))
    assert first == second
    assert [a.idempotency_key for a in first.actions] == [a.idempotency_key for a in second.actions]
