import pytest

from arrears.enums import FlagKind
from arrears.errors import Conflict, ValidationFailed
from arrears.legal.milestones import (
    AccountLegalState,
    LegalCaseKind,
    Milestone,
    allowed_next,
    can_refer,
    can_transition,
    require_transition,
    sequence,
)

M = Milestone
K = LegalCaseKind


def test_every_kind_starts_prepared_and_ends_closed() -> None:
    for kind in K:
        order = sequence(kind)
        assert order[0] is M.PREPARED and order[-1] is M.CLOSED
        assert allowed_next(kind, None) == (M.PREPARED,)
        assert allowed_next(kind, M.CLOSED) == ()


def test_litigation_goes_in_order_and_may_skip_mediation_but_not_service() -> None:
    assert can_transition(K.LITIGATION, M.PREPARED, M.FILED)
    assert can_transition(K.LITIGATION, M.SERVED, M.JUDGMENT)  # no mediation
    assert can_transition(K.LITIGATION, M.SERVED, M.MEDIATION)
    assert not can_transition(K.LITIGATION, M.FILED, M.JUDGMENT)  # not served yet
    assert not can_transition(K.LITIGATION, M.JUDGMENT, M.FILED)  # no going back
    assert not can_transition(K.LITIGATION, M.SERVED, M.AWARD)  # awards are for arbitration


def test_arbitration_ends_in_an_award_not_a_judgment() -> None:
    assert can_transition(K.ARBITRATION, M.SERVED, M.AWARD)
    assert M.JUDGMENT not in sequence(K.ARBITRATION)


def test_any_open_case_may_close_and_a_closed_one_stays_closed() -> None:
    for kind in K:
        for milestone in sequence(kind)[:-1]:
            assert can_transition(kind, milestone, M.CLOSED)
        assert not can_transition(kind, M.CLOSED, M.PREPARED)


def test_a_milestone_foreign_to_the_kind_is_refused() -> None:
    with pytest.raises(ValidationFailed):
        allowed_next(K.LAWYER_LETTER, M.JUDGMENT)


def test_a_refused_transition_explains_itself_in_both_languages() -> None:
    with pytest.raises(Conflict) as err:
        require_transition(K.LITIGATION, M.PREPARED, M.JUDGMENT)
    assert err.value.details["message_zh"] == "诉讼案件不能从“已准备”进入“判决”"
    assert "litigation" in err.value.details["message_en"]


def clean(ref: str = "A1") -> AccountLegalState:
    return AccountLegalState(ref, "CNY", charges_minor=100_000, lawful_cap_minor=200_000)


def test_clean_accounts_may_be_referred() -> None:
    decision = can_refer([clean("A1"), clean("A2")])
    assert decision.ok and decision.status == "ok" and decision.rule_ids == ()


def test_cn22_time_barred_account_is_refused_with_its_rule() -> None:
    barred = AccountLegalState("A2", "CNY", time_barred=True)
    decision = can_refer([clean(), barred])
    assert decision.status == "refused"
    assert [(r.account_ref, r.code, r.rule_ids) for r in decision.reasons] == [
        ("A2", "time_barred", ("CN-22",))
    ]
    assert "诉讼时效" in decision.reasons[0].message_zh


def test_us8_time_barred_account_is_refused_under_the_us_pack() -> None:
    decision = can_refer([AccountLegalState("A1", "USD", time_barred=True)], rule_pack="us-regf")
    assert decision.rule_ids == ("US-8",)


def test_disputed_account_is_refused() -> None:
    disputed = AccountLegalState("A1", "CNY", flags=frozenset({FlagKind.DISPUTE, FlagKind.COMPLAINT}))
    decision = can_refer([disputed])
    assert [r.code for r in decision.reasons] == ["flag_dispute"]
    us = can_refer([disputed], rule_pack="us-regf")
    assert us.rule_ids == ("US-7",)


def test_cn10_charges_above_the_lawful_cap_are_refused() -> None:
    usurious = AccountLegalState("A1", "CNY", charges_minor=300_001, lawful_cap_minor=300_000)
    decision = can_refer([usurious])
    assert decision.rule_ids == ("CN-10", "CN-30")
    assert "¥3,000.01" in decision.reasons[0].message_zh
    assert can_refer([AccountLegalState("A1", "CNY", charges_minor=300_000, lawful_cap_minor=300_000)]).ok


def test_nothing_to_refer_is_refused() -> None:
    assert [r.code for r in can_refer([]).reasons] == ["no_accounts"]


def test_unknown_rule_pack_is_refused() -> None:
    with pytest.raises(ValidationFailed):
        can_refer([clean()], rule_pack="xx")
