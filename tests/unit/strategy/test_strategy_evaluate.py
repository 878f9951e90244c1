"""Evaluation of one account: stage choice, reasons in words, repeat rules and the safety nets."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta

import pytest

from arrears.enums import FlagKind
from arrears.errors import ValidationFailed
from arrears.strategy.definition import ActionKind, Audience, CommitmentState, Condition, Strategy
from arrears.strategy.evaluate import Snapshot, advance, evaluate, evaluate_frame, snapshots_frame
from arrears.strategy.loader import load_strategy

STRATEGY = load_strategy("default")
AS_OF = date(2026, 4, 10)


def ago(days: int) -> date:
    return AS_OF - timedelta(days=days)


def test_legal_by_rule_explains_every_condition_in_chinese_and_english_pi7() -> None:
    result = evaluate(Snapshot(1, dpd=120, balance_minor=600_000), STRATEGY, AS_OF)
    assert result.stage == "legal" and result.matched_block == 1
    codes = [r.code for r in result.reasons]
    assert codes[0] == "stage:legal"
    assert {"dpd", "balance", "not_time_barred", "not_flagged", "promise_state"} <= set(codes)
    by_code = {r.code: r for r in result.reasons}
    assert "90" in by_code["dpd"].zh and ">= 90" in by_code["dpd"].en
    assert "5,000.00" in by_code["balance"].zh and "5,000.00" in by_code["balance"].en
    assert "进入" in result.reasons[0].zh and "enters" in result.reasons[0].en


def test_below_legal_threshold_stays_intensive() -> None:
    assert evaluate(Snapshot(1, dpd=120, balance_minor=499_999), STRATEGY, AS_OF).stage == "intensive"


def test_legal_by_hand_is_labelled_as_a_supervisor_decision() -> None:
    result = evaluate(Snapshot(1, dpd=10, balance_minor=1_000, pinned_stage="legal"), STRATEGY, AS_OF)
    assert result.stage == "legal" and result.matched_block == 0
    assert result.reasons[1].code == "label" and "主管" in result.reasons[1].zh


def test_declined_referral_pinned_elsewhere_keeps_the_case_out_of_legal_by_rule() -> None:
    result = evaluate(Snapshot(1, dpd=120, balance_minor=600_000, pinned_stage="intensive"), STRATEGY, AS_OF)
    assert result.stage == "intensive"


def test_paid_account_exits_with_no_actions() -> None:
    result = evaluate(Snapshot(1, dpd=30, balance_minor=0), STRATEGY, AS_OF)
    assert (result.stage, result.exit, result.actions) == (None, "paid", ())
    assert result.reasons[0].code == "exit:paid"


def test_account_due_today_is_in_no_stage() -> None:
    result = evaluate(Snapshot(1, dpd=0, balance_minor=10_000), STRATEGY, AS_OF)
    assert result.stage is None and result.exit is None and result.reasons[0].code == "no_stage"


def test_held_account_gets_no_action_whatever_its_dpd() -> None:
    for flag in FlagKind:
        result = evaluate(
            Snapshot(1, dpd=120, balance_minor=900_000, flags=frozenset({flag})), STRATEGY, AS_OF
        )
        assert result.stage == "held" and result.actions == ()


def test_currency_other_than_the_strategys_is_refused() -> None:
    with pytest.raises(ValidationFailed, match="USD"):
        evaluate(Snapshot(1, dpd=3, balance_minor=100, currency="USD"), STRATEGY, AS_OF)
    df = snapshots_frame([Snapshot(1, dpd=3, balance_minor=100, currency="USD")], STRATEGY)
    with pytest.raises(ValidationFailed, match="USD"):
        evaluate_frame(df, STRATEGY, AS_OF)


def test_once_means_once_per_stay_and_again_after_re_entering() -> None:
    snap = Snapshot(1, dpd=1, balance_minor=10_000, stage="gentle", stage_entered_on=ago(3))
    done = replace(snap, last_action_on={"gentle.reminder_sms": ago(2)})
    assert "gentle.reminder_sms" not in evaluate(done, STRATEGY, AS_OF).action_keys
    before_this_stay = replace(snap, last_action_on={"gentle.reminder_sms": ago(4)})
    assert "gentle.reminder_sms" in evaluate(before_this_stay, STRATEGY, AS_OF).action_keys
    re_entering = replace(done, stage="firm")
    assert "gentle.reminder_sms" in evaluate(re_entering, STRATEGY, AS_OF).action_keys


def test_every_n_days_waits_n_days_since_the_last_time() -> None:
    snap = Snapshot(
        1, dpd=30, balance_minor=10_000, days_since_rpc=1, stage="intensive", stage_entered_on=ago(20)
    )
    assert (
        "intensive.call"
        not in evaluate(replace(snap, last_action_on={"intensive.call": ago(1)}), STRATEGY, AS_OF).action_keys
    )
    assert (
        "intensive.call"
        in evaluate(replace(snap, last_action_on={"intensive.call": ago(2)}), STRATEGY, AS_OF).action_keys
    )


def test_daily_up_to_n_stops_after_n_times_in_the_stay() -> None:
    snap = Snapshot(1, dpd=5, balance_minor=10_000, stage="firm", stage_entered_on=ago(1))
    once = replace(snap, last_action_on={"firm.call": ago(1)}, action_counts={"firm.call": 1})
    assert "firm.call" in evaluate(once, STRATEGY, AS_OF).action_keys
    twice = replace(once, action_counts={"firm.call": 2})
    assert "firm.call" not in evaluate(twice, STRATEGY, AS_OF).action_keys


def test_promise_due_today_reminds_and_raises_priority() -> None:
    snap = Snapshot(
        1,
        dpd=4,
        balance_minor=10_000,
        promise_state=CommitmentState.ACTIVE,
        promise_date=AS_OF,
        stage="promised",
        stage_entered_on=ago(2),
        last_action_on={"promised.confirmation_sms": ago(2)},
    )
    result = evaluate(snap, STRATEGY, AS_OF)
    assert result.action_keys == ("promised.due_day_sms",)
    assert result.priority_inputs.promise_due_today
    tomorrow = evaluate(replace(snap, promise_date=AS_OF + timedelta(days=1)), STRATEGY, AS_OF)
    assert tomorrow.action_keys == ()
    assert result.priority - tomorrow.priority == STRATEGY.priority.promise_due_today_points


def test_cn3_third_party_call_is_planned_for_the_gate_with_its_rule_ids() -> None:
    result = evaluate(Snapshot(1, dpd=30, balance_minor=10_000, days_since_rpc=None), STRATEGY, AS_OF)
    third = next(a for a in result.actions if a.audience is Audience.THIRD_PARTY)
    assert third.rule_ids == ("CN-3", "CN-4") and third.kind is ActionKind.CALL_TASK
    reached = evaluate(Snapshot(1, dpd=30, balance_minor=10_000, days_since_rpc=2), STRATEGY, AS_OF)
    assert all(a.audience is Audience.DEBTOR for a in reached.actions)


def test_tasks_carry_priority_messages_do_not() -> None:
    result = evaluate(Snapshot(1, dpd=2, balance_minor=10_000), STRATEGY, AS_OF)
    by_kind = {a.kind: a for a in result.actions}
    assert by_kind[ActionKind.CALL_TASK].priority == result.priority
    assert by_kind[ActionKind.SMS].priority is None


def test_advance_records_actions_and_resets_counts_on_a_new_stage() -> None:
    snap = Snapshot(
        1, dpd=4, balance_minor=10_000, stage="gentle", stage_entered_on=ago(3), action_counts={"x.y": 2}
    )
    result = evaluate(snap, STRATEGY, AS_OF)
    after = advance(snap, result)
    assert after.stage == "firm" and after.stage_entered_on == AS_OF
    assert after.action_counts == {"firm.call": 1}
    assert after.last_action_on["firm.call"] == AS_OF


def _unsafe_strategy() -> Strategy:
    """A strategy that bypassed load-time checks: a held stage with an SMS, a legal stage open to any debt."""
    held = STRATEGY.stage("held")
    sms = STRATEGY.stage("gentle").actions[0]
    legal = STRATEGY.stage("legal")
    stages = tuple(
        held.model_copy(update={"actions": (sms,)})
        if s.name == "held"
        else legal.model_copy(update={"when": (Condition(dpd_min=90),)})
        if s.name == "legal"
        else s
        for s in STRATEGY.stages
    )
    return STRATEGY.model_copy(update={"stages": stages})


def test_safety_net_drops_actions_of_flagged_accounts_even_if_the_file_plans_them() -> None:
    unsafe = _unsafe_strategy()
    snap = Snapshot(1, dpd=2, balance_minor=10_000, flags=frozenset({FlagKind.CEASE}))
    result = evaluate(snap, unsafe, AS_OF)
    assert result.stage == "held" and result.actions == ()
    assert result.suppressed and result.suppressed[0].code.startswith("held:")
    frame = evaluate_frame(snapshots_frame([snap], unsafe), unsafe, AS_OF)
    assert frame["actions"].to_list() == [[]]


def test_cn22_safety_net_drops_legal_referral_of_time_barred_debt() -> None:
    unsafe = _unsafe_strategy()
    snap = Snapshot(1, dpd=400, balance_minor=900_000, time_barred=True)
    result = evaluate(snap, unsafe, AS_OF)
    assert result.stage == "legal" and result.actions == ()
    assert result.suppressed[0].code == "CN-22:legal.referral"
    frame = evaluate_frame(snapshots_frame([snap], unsafe), unsafe, AS_OF)
    assert frame["actions"].to_list() == [[]]
