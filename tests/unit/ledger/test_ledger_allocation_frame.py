"""The set-based single-account allocation gives exactly what `allocate` gives (CN-28)."""

from __future__ import annotations

from datetime import date

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from arrears.enums import Component
from arrears.ledger.allocation import AccountBalance, allocate, load_policy, policy_names
from arrears.ledger.allocation_frame import allocate_single_accounts

ON = date(2025, 6, 1)
row = st.fixed_dictionaries(
    {
        "amount": st.integers(1, 10**12),
        **{c.value: st.one_of(st.integers(0, 10**11), st.sampled_from([0, 1, 2, 3])) for c in Component},
    }
)


@settings(max_examples=200, deadline=None)
@given(rows=st.lists(row, min_size=1, max_size=20), policy_name=st.sampled_from(policy_names()))
def test_cn28_set_based_single_account_allocation_equals_the_scalar_allocate(
    rows: list[dict[str, int]], policy_name: str
) -> None:
    policy = load_policy(policy_name)
    frame = pl.DataFrame(
        {
            "payment_id": list(range(len(rows))),
            "account_id": [100 + i for i in range(len(rows))],
            "amount_minor": [r["amount"] for r in rows],
            "received_on": [ON] * len(rows),
            **{f"{c.value}_minor": [r[c.value] for r in rows] for c in Component},
        }
    )
    splits, totals = allocate_single_accounts(frame, policy)
    for i, r in enumerate(rows):
        balances = {c: r[c.value] for c in Component}
        want = allocate(r["amount"], [AccountBalance(100 + i, balances)], policy, as_of=ON)
        got = splits.filter(pl.col("payment_id") == i)
        assert [(s["component"], s["amount_minor"], s["rule_id"]) for s in got.iter_rows(named=True)] == [
            (s.component.value, s.amount_minor, s.rule_id) for s in want.splits
        ]
        t = totals.row(i, named=True)
        assert (t["allocated_minor"], t["credit_minor"]) == (want.allocated_minor, want.credit_minor)
