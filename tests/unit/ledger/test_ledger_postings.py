"""Postings and balances: DESIGN invariant 2 (sum of postings = balance, per component, per account)."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arrears.enums import Component
from arrears.errors import Conflict, ValidationFailed
from arrears.ledger.allocation import AccountBalance, allocate, load_policy
from arrears.ledger.postings import (
    Posting,
    PostingKind,
    balances,
    balances_by_account,
    check_ledger,
    credit_balance,
    reverse,
    reverse_payment,
    with_ids,
)

DAY = date(2025, 3, 1)
POLICY = load_policy()


def charge(
    account: int, component: Component, amount: int, kind: PostingKind = PostingKind.CHARGE
) -> Posting:
    return Posting(account, component, amount, kind, DAY)


def test_balances_are_the_sum_of_postings_per_component() -> None:
    ledger = with_ids(
        [
            charge(1, Component.PRINCIPAL, 100_000),
            charge(1, Component.INTEREST, 3_000, PostingKind.ACCRUAL),
            Posting(1, Component.INTEREST, -1_000, PostingKind.PAYMENT, DAY, payment_ref="p1"),
            Posting(1, Component.PRINCIPAL, -500, PostingKind.WAIVER, DAY),
        ],
        1,
    )
    assert balances(ledger) == {
        Component.COSTS: 0,
        Component.INTEREST: 2_000,
        Component.PENALTY: 0,
        Component.FEES: 0,
        Component.PRINCIPAL: 99_500,
    }


def test_balances_refuses_postings_of_several_accounts() -> None:
    with pytest.raises(ValidationFailed):
        balances([charge(1, Component.FEES, 1), charge(2, Component.FEES, 1)])


@pytest.mark.parametrize(
    ("kind", "amount", "component"),
    [
        (PostingKind.CHARGE, -5, Component.FEES),
        (PostingKind.ACCRUAL, -5, Component.INTEREST),
        (PostingKind.PAYMENT, 5, Component.FEES),
        (PostingKind.WAIVER, 5, Component.FEES),
        (PostingKind.WRITE_OFF, 5, Component.PRINCIPAL),
        (PostingKind.CHARGE, 0, Component.FEES),
        (PostingKind.CHARGE, 5, None),
        (PostingKind.CREDIT, -5, Component.FEES),
    ],
)
def test_posting_refuses_a_sign_or_bucket_its_kind_forbids(
    kind: PostingKind, amount: int, component: Component | None
) -> None:
    with pytest.raises(ValidationFailed):
        Posting(1, component, amount, kind, DAY)


def test_reversal_must_name_the_posting_it_undoes() -> None:
    with pytest.raises(ValidationFailed):
        Posting(1, Component.FEES, -5, PostingKind.REVERSAL, DAY)
    with pytest.raises(ValidationFailed):
        Posting(1, Component.FEES, 5, PostingKind.CHARGE, DAY, reverses_posting_id=3)


def test_reverse_mirrors_the_posting_and_restores_the_balance() -> None:
    ledger = with_ids([charge(1, Component.PRINCIPAL, 10_000), charge(1, Component.FEES, 300)], 1)
    reversal = reverse(ledger[1], ledger=ledger, effective_date=date(2025, 3, 2))
    assert reversal == [
        Posting(1, Component.FEES, -300, PostingKind.REVERSAL, date(2025, 3, 2), reverses_posting_id=2)
    ]
    assert balances([*ledger, *reversal])[Component.FEES] == 0


def test_reverse_refuses_twice_and_refuses_reversing_a_reversal() -> None:
    ledger = with_ids([charge(1, Component.FEES, 300)], 1)
    ledger += with_ids(reverse(ledger[0], ledger=ledger, effective_date=DAY), 2)
    with pytest.raises(Conflict):
        reverse(ledger[0], ledger=ledger, effective_date=DAY)
    with pytest.raises(Conflict):
        reverse(ledger[1], ledger=ledger, effective_date=DAY)


def test_reverse_refuses_a_charge_already_paid_so_no_component_goes_negative() -> None:
    ledger = with_ids([charge(1, Component.FEES, 300)], 1)
    paid = allocate(300, [AccountBalance(1, balances(ledger))], POLICY, as_of=DAY)
    ledger += with_ids(paid.to_postings(payment_ref="p1", effective_date=DAY), 2)
    with pytest.raises(Conflict) as caught:
        reverse(ledger[0], ledger=ledger, effective_date=DAY)
    assert caught.value.code == "negative_balance"
    # reversing the payment first, then the charge, is allowed
    ledger += with_ids(reverse_payment(ledger, "p1", effective_date=DAY), 3)
    ledger += with_ids(reverse(ledger[0], ledger=ledger, effective_date=DAY), 4)
    assert balances(ledger) == dict.fromkeys(Component, 0)


def test_check_ledger_refuses_a_reversal_that_does_not_mirror_its_target() -> None:
    ledger = with_ids([charge(1, Component.FEES, 300)], 1)
    bad = Posting(1, Component.FEES, -200, PostingKind.REVERSAL, DAY, reverses_posting_id=1)
    with pytest.raises(Conflict):
        check_ledger([*ledger, bad])


def test_overpayment_is_held_as_credit_and_reversal_takes_it_back() -> None:
    ledger = with_ids([charge(7, Component.PRINCIPAL, 1_000)], 1)
    paid = allocate(1_500, [AccountBalance(7, balances(ledger))], POLICY, as_of=DAY)
    ledger += with_ids(paid.to_postings(payment_ref="p9", effective_date=DAY), 2)
    assert credit_balance(ledger) == 500
    assert balances(ledger)[Component.PRINCIPAL] == 0
    ledger += with_ids(reverse_payment(ledger, "p9", effective_date=DAY), 10)
    assert credit_balance(ledger) == 0
    assert balances(ledger)[Component.PRINCIPAL] == 1_000


# -- properties -----------------------------------------------------------------------------------------

ACCOUNTS = (1, 2, 3)
amounts = st.integers(min_value=1, max_value=5_000_000)
op = st.one_of(
    st.tuples(st.just("charge"), st.sampled_from(ACCOUNTS), st.sampled_from(list(Component)), amounts),
    st.tuples(
        st.just("accrue"),
        st.sampled_from(ACCOUNTS),
        st.sampled_from([Component.INTEREST, Component.PENALTY]),
        amounts,
    ),
    st.tuples(st.just("pay"), st.just(0), st.just(Component.PRINCIPAL), amounts),
    st.tuples(
        st.just("reverse"),
        st.integers(min_value=0, max_value=10_000),
        st.just(Component.PRINCIPAL),
        st.just(0),
    ),
)


def _account_balances(ledger: list[Posting]) -> list[AccountBalance]:
    by_account = balances_by_account(ledger)
    return [
        AccountBalance(
            a,
            by_account[a].balances if a in by_account else {},
            due_date=date(2025, 1, a),
            is_secured=a == 2,
            interest_rate_annual_ppm=100_000 * a,
        )
        for a in ACCOUNTS
    ]


@settings(max_examples=150, deadline=None)
@given(st.lists(op, min_size=1, max_size=40))
def test_any_sequence_keeps_balances_reconciled_non_negative_and_payments_whole(
    ops: list[tuple[str, int, Component, int]],
) -> None:
    ledger: list[Posting] = []
    model = {a: dict.fromkeys(Component, 0) for a in ACCOUNTS}  # independent running totals
    credit = 0
    next_id = 1
    for n, (name, account, component, amount) in enumerate(ops):
        new: list[Posting] = []
        if name in ("charge", "accrue"):
            kind = PostingKind.CHARGE if name == "charge" else PostingKind.ACCRUAL
            new = [Posting(account, component, amount, kind, DAY)]
        elif name == "pay":
            owed_before = sum(sum(v.values()) for v in model.values())
            result = allocate(amount, _account_balances(ledger), POLICY, as_of=DAY)
            # total paid = total allocated + credit
            assert result.allocated_minor + result.credit_minor == amount
            assert result.allocated_minor == min(amount, owed_before)
            new = result.to_postings(payment_ref=f"p{n}", effective_date=DAY)
            assert -sum(p.amount_minor for p in new) == amount
        else:
            candidates = [p for p in ledger if p.kind is not PostingKind.REVERSAL]
            if not candidates:
                continue
            target = candidates[account % len(candidates)]
            try:
                new = reverse(target, ledger=ledger, effective_date=DAY)
            except Conflict:
                continue  # refused whole: the ledger is unchanged
        stored = with_ids(new, next_id)
        next_id += len(stored)
        ledger += stored
        for p in stored:
            if p.component is None:
                credit -= p.amount_minor
            else:
                model[p.account_id][p.component] += p.amount_minor
        check_ledger(ledger)
        by_account = balances_by_account(ledger)
        for a in ACCOUNTS:
            got = by_account[a].balances if a in by_account else dict.fromkeys(Component, 0)
            assert got == model[a]
            assert all(v >= 0 for v in got.values())
        assert sum(v.credit_minor for v in by_account.values()) == credit >= 0


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(ACCOUNTS), st.sampled_from(list(Component)), amounts),
        min_size=0,
        max_size=12,
    ),
    amounts,
    st.one_of(st.none(), st.permutations(ACCOUNTS).map(lambda p: list(p[:2]))),
)
def test_a_payment_followed_by_its_reversal_restores_every_balance_exactly(
    charges: list[tuple[int, Component, int]], payment: int, designation: list[int] | None
) -> None:
    ledger = with_ids([Posting(a, c, x, PostingKind.CHARGE, DAY) for a, c, x in charges], 1)
    before = balances_by_account(ledger)
    result = allocate(payment, _account_balances(ledger), POLICY, designation, as_of=DAY)
    ledger += with_ids(result.to_postings(payment_ref="pay-1", effective_date=DAY), 100)
    ledger += with_ids(reverse_payment(ledger, "pay-1", effective_date=DAY), 1_000)
    after = balances_by_account(ledger)
    zero = dict.fromkeys(Component, 0)
    for a in ACCOUNTS:
        assert (after[a].balances if a in after else zero) == (before[a].balances if a in before else zero)
        assert (after[a].credit_minor if a in after else 0) == 0
