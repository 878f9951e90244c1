"""Allocation of payments: CN-27 across accounts, CN-28 within one, contract orders, pro rata, credit."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arrears.enums import Component
from arrears.errors import ConfigurationError, NotFound, ValidationFailed
from arrears.ledger.allocation import (
    AccountBalance,
    AllocationSplit,
    allocate,
    load_policy,
    parse_policy,
    policy_names,
    pro_rata,
)
from arrears.ledger.postings import PostingKind

AS_OF = date(2025, 3, 1)
CN = load_policy("cn-default")
PRIN, INT, PEN, FEE, COST = (
    Component.PRINCIPAL,
    Component.INTEREST,
    Component.PENALTY,
    Component.FEES,
    Component.COSTS,
)


def split_map(splits: tuple[AllocationSplit, ...]) -> dict[tuple[int, Component], tuple[int, str]]:
    return {(s.account_id, s.component): (s.amount_minor, s.rule_id) for s in splits}


# -- CN-28: one account -----------------------------------------------------------------------------------

ONE = AccountBalance(
    1, {COST: 500, INT: 2_000, PEN: 1_000, FEE: 800, PRIN: 100_000}, due_date=date(2025, 1, 1)
)


def test_cn28_partial_payment_goes_to_costs_then_interest_and_penalty_then_fees_then_principal() -> None:
    result = allocate(3_000, [ONE], CN, as_of=AS_OF)
    # costs first (500); the 2,500 left shares the interest step 2:1 by largest remainder; nothing to fees
    assert split_map(result.splits) == {
        (1, COST): (500, "CN-28"),
        (1, INT): (1_667, "CN-28"),
        (1, PEN): (833, "CN-28"),
    }
    assert result.credit_minor == 0


def test_cn28_payment_reaching_principal_clears_every_earlier_step() -> None:
    result = allocate(10_000, [ONE], CN, as_of=AS_OF)
    assert result.by_account()[1] == {COST: 500, INT: 2_000, PEN: 1_000, FEE: 800, PRIN: 5_700}


def test_contract_principal_first_policy_pays_principal_before_interest() -> None:
    policy = load_policy("principal-first")
    result = allocate(3_000, [ONE], policy, as_of=AS_OF)
    assert split_map(result.splits) == {(1, PRIN): (3_000, "contract:principal_first")}


# -- CN-27: several accounts ------------------------------------------------------------------------------
# As of 2025-03-01:
#   A due 01-10, unsecured, 24%: interest 1,000 + principal 10,000
#   E due 01-10, unsecured, 24%: principal 6,000          (equal to A on every criterion)
#   D due 01-20, unsecured, 24%: principal 4,000          (differs from A/E only by earliest due)
#   B due 02-10, secured,   36%: principal 20,000         (due, but secured)
#   C due 06-01 (not yet), unsecured, 36%: principal 5,000
# CN-27 order: [A, E] -> D -> B -> C.

A = AccountBalance(1, {INT: 1_000, PRIN: 10_000}, date(2025, 1, 10), False, 240_000)
B = AccountBalance(2, {PRIN: 20_000}, date(2025, 2, 10), True, 360_000)
Cx = AccountBalance(3, {PRIN: 5_000}, date(2025, 6, 1), False, 360_000)
D = AccountBalance(4, {PRIN: 4_000}, date(2025, 1, 20), False, 240_000)
E = AccountBalance(5, {PRIN: 6_000}, date(2025, 1, 10), False, 240_000)
DEBTOR = [B, Cx, D, E, A]  # input order does not matter


def test_cn27_partial_payment_fills_accounts_in_statutory_order() -> None:
    result = allocate(20_000, DEBTOR, CN, as_of=AS_OF)
    assert split_map(result.splits) == {
        (1, INT): (1_000, "CN-27:earliest_due;CN-28"),
        (1, PRIN): (10_000, "CN-27:earliest_due;CN-28"),
        (5, PRIN): (6_000, "CN-27:earliest_due;CN-28"),
        (4, PRIN): (3_000, "CN-27:least_secured;CN-28"),
    }
    assert result.credit_minor == 0
    assert allocate(20_000, DEBTOR[::-1], CN, as_of=AS_OF) == result  # the input order plays no part


def test_cn27_equal_accounts_share_a_partial_payment_pro_rata() -> None:
    result = allocate(12_000, DEBTOR, CN, as_of=AS_OF)
    # 12,000 over A (11,000) and E (6,000): 7,764.7 and 4,235.3 -> 7,765 and 4,235
    assert result.by_account() == {1: {INT: 1_000, PRIN: 6_765}, 5: {PRIN: 4_235}}
    assert {s.account_rule for s in result.splits} == {"CN-27:pro_rata"}


def test_cn27_designated_account_is_paid_first_and_the_rest_follows_the_statute() -> None:
    result = allocate(6_000, DEBTOR, CN, designation=[3], as_of=AS_OF)
    got = split_map(result.splits)
    assert got[(3, PRIN)] == (5_000, "CN-27:designation;CN-28")
    # the 1,000 left is shared by A and E pro rata: 647.06 / 352.94 -> 647 / 353; A's share goes to interest
    assert got[(1, INT)] == (647, "CN-27:pro_rata;CN-28")
    assert got[(5, PRIN)] == (353, "CN-27:pro_rata;CN-28")
    assert len(got) == 3


def test_cn27_designation_of_an_unknown_account_is_refused() -> None:
    with pytest.raises(NotFound):
        allocate(100, DEBTOR, CN, designation=[99], as_of=AS_OF)


def test_overpayment_becomes_a_credit_balance_on_the_first_account_reached() -> None:
    result = allocate(50_000, DEBTOR, CN, as_of=AS_OF)
    assert result.allocated_minor == 46_000
    assert result.credit_minor == 4_000
    assert result.credit_account_id == 1
    postings = result.to_postings(payment_ref="bank-123", effective_date=AS_OF)
    credit = [p for p in postings if p.kind is PostingKind.CREDIT]
    assert [(p.account_id, p.amount_minor, p.rule_id) for p in credit] == [(1, -4_000, "overpayment")]
    assert -sum(p.amount_minor for p in postings) == 50_000


def test_payment_must_be_positive_and_in_one_currency() -> None:
    with pytest.raises(ValidationFailed):
        allocate(0, DEBTOR, CN, as_of=AS_OF)
    usd = AccountBalance(9, {PRIN: 100}, currency="USD")
    with pytest.raises(ValidationFailed):
        allocate(100, [A, usd], CN, as_of=AS_OF)


def test_policies_are_chosen_by_name_and_validated() -> None:
    assert {"cn-default", "principal-first"} <= set(policy_names())
    assert load_policy(None).name == "cn-default"
    with pytest.raises(NotFound):
        load_policy("no-such-policy")
    with pytest.raises(ConfigurationError):
        parse_policy(
            {
                "name": "bad",
                "across_accounts": {"rule_id": "CN-27", "order": ["due_first"]},
                "within_account": {"rule_id": "CN-28", "order": [["costs"], ["principal"]]},
            }
        )


# -- properties ---------------------------------------------------------------------------------------------


@given(st.integers(0, 10**12), st.lists(st.integers(0, 10**9), min_size=1, max_size=20))
def test_pro_rata_sums_exactly_and_each_part_is_within_one_unit_of_its_share(
    total: int, weights: list[int]
) -> None:
    weight_sum = sum(weights)
    if weight_sum == 0:
        total = 0
    parts = pro_rata(total, weights)
    assert sum(parts) == total
    for part, weight in zip(parts, weights, strict=True):
        floor_share = total * weight // weight_sum if weight_sum else 0
        assert floor_share <= part <= floor_share + 1
        if total <= weight_sum:
            assert part <= weight


balance = st.fixed_dictionaries({c: st.integers(0, 1_000_000) for c in Component})
account = st.builds(
    lambda b, due, secured, rate: (b, due, secured, rate),
    balance,
    st.one_of(st.none(), st.dates(date(2024, 1, 1), date(2025, 12, 31))),
    st.booleans(),
    st.integers(0, 400_000),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(account, min_size=1, max_size=6), st.integers(1, 5_000_000), st.booleans())
def test_allocation_is_whole_never_overpays_a_component_and_pays_due_debts_before_others(
    raw: list[tuple[dict[Component, int], date | None, bool, int]], payment: int, principal_first: bool
) -> None:
    accounts = [AccountBalance(i + 1, b, due, secured, rate) for i, (b, due, secured, rate) in enumerate(raw)]
    policy = load_policy("principal-first" if principal_first else "cn-default")
    result = allocate(payment, accounts, policy, as_of=AS_OF)
    total = sum(a.outstanding_minor for a in accounts)
    assert result.allocated_minor + result.credit_minor == payment
    assert result.allocated_minor == min(payment, total)
    applied = result.by_account()
    for a in accounts:
        for c, amount in applied.get(a.account_id, {}).items():
            assert 0 < amount <= a.balances[c]
    assert all(s.rule_id for s in result.splits)
    # CN-27: a debt not yet due receives nothing until every due debt is paid in full
    due = [a for a in accounts if a.due_date is not None and a.due_date <= AS_OF]
    not_due = [a for a in accounts if a not in due]
    if any(applied.get(a.account_id) for a in not_due):
        for a in due:
            assert sum(applied.get(a.account_id, {}).values()) == a.outstanding_minor
