"""What a kept settlement waives on the ledger (`settlement.kept_settlement_waiver`): the agreed amounts
component by component, moved only between components the plan waives, never more than agreed."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from arrears.arrangements.policy import load_policy
from arrears.arrangements.settlement import kept_settlement_waiver
from arrears.enums import Component

C = Component
ORDER = load_policy().waiver_order


def test_balances_as_agreed_are_waived_exactly_as_agreed() -> None:
    planned = {1: {C.PENALTY: 5000, C.INTEREST: 10000, C.PRINCIPAL: 10000}}
    result = kept_settlement_waiver(planned, planned, {}, ORDER)
    assert result.agreed == planned and result.residue_minor == {1: 0} and result.accrued == {}


def test_what_payments_already_met_moves_to_another_waived_component_of_the_account() -> None:
    planned = {1: {C.PENALTY: 5000, C.INTEREST: 10000, C.PRINCIPAL: 10000}}
    now = {1: {C.PRINCIPAL: 25000}}  # the payment met interest and penalty first (CN-28)
    result = kept_settlement_waiver(planned, now, {}, ORDER)
    assert result.agreed == {1: {C.PRINCIPAL: 25000}} and result.residue_minor == {1: 0}


def test_a_component_the_plan_does_not_waive_is_never_waived() -> None:
    planned = {1: {C.PENALTY: 5000}}
    now = {1: {C.FEES: 3000, C.COSTS: 80000}}
    result = kept_settlement_waiver(planned, now, {}, ORDER)
    assert result.agreed == {} and result.residue_minor == {1: 83000}


def test_shortfall_moves_to_the_plans_other_account_and_accrual_after_agreement_is_waived() -> None:
    planned = {1: {C.INTEREST: 6000}, 2: {C.INTEREST: 3000}}
    now = {1: {C.INTEREST: 1000}, 2: {C.INTEREST: 8000, C.PENALTY: 200}}
    accrued = {2: {C.PENALTY: 200, C.INTEREST: 50}}
    result = kept_settlement_waiver(planned, now, accrued, ORDER)
    assert result.agreed == {1: {C.INTEREST: 1000}, 2: {C.INTEREST: 8000}}
    assert result.agreed_minor == 9000
    assert result.accrued == {2: {C.PENALTY: 200}}  # the 0.50 of interest was already covered
    assert result.residue_minor == {1: 0, 2: 0}


amounts = st.integers(0, 2_000_000)
by_component = st.dictionaries(st.sampled_from(list(Component)), amounts, max_size=5)


@given(
    planned=st.dictionaries(st.integers(1, 4), by_component, max_size=4),
    balances=st.dictionaries(st.integers(1, 4), by_component, min_size=1, max_size=4),
    accrued=st.dictionaries(st.integers(1, 4), by_component, max_size=4),
)
def test_never_more_than_agreed_never_more_than_owed_never_a_component_not_waived(
    planned: dict[int, dict[Component, int]],
    balances: dict[int, dict[Component, int]],
    accrued: dict[int, dict[Component, int]],
) -> None:
    planned = {a: by for a, by in planned.items() if a in balances}
    result = kept_settlement_waiver(planned, balances, accrued, ORDER)
    agreed_total = sum(sum(by.values()) for by in planned.values())
    assert 0 <= result.agreed_minor <= agreed_total
    waived_components = {c for by in planned.values() for c, v in by.items() if v > 0}
    for account, owed in balances.items():
        agreed = result.agreed.get(account, {})
        extra = result.accrued.get(account, {})
        for c in Component:
            got = agreed.get(c, 0) + extra.get(c, 0)
            assert 0 <= got <= max(0, owed.get(c, 0))
            if agreed.get(c, 0):
                assert c in waived_components
            if extra.get(c, 0):
                assert c in (C.INTEREST, C.PENALTY) and extra[c] <= accrued.get(account, {}).get(c, 0)
        left = sum(max(0, v) for v in owed.values()) - sum(agreed.values()) - sum(extra.values())
        assert result.residue_minor[account] == left
    # everything agreed is placed when the plan's waived components still owe at least that much
    room = sum(max(0, balances[a].get(c, 0)) for a in balances for c in waived_components)
    assert result.agreed_minor == min(agreed_total, room)
