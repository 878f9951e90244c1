"""The set-based allocation gives exactly what `allocate` gives: CN-28 for one account, CN-27 and CN-28 for a batch."""

from __future__ import annotations

from datetime import date
from typing import Any

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arrears.enums import Component
from arrears.errors import NotFound
from arrears.ledger.allocation import AccountBalance, allocate, load_policy, policy_names
from arrears.ledger.allocation_frame import allocate_frame, allocate_single_accounts

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


# --- a whole batch over debtors with several accounts (CN-27 then CN-28) ----------------------------------

DAYS = [date(2025, 5, 1), date(2025, 6, 1), date(2025, 7, 1), None]
account_st = st.fixed_dictionaries(
    {
        "due_date": st.sampled_from(DAYS),
        "is_secured": st.booleans(),
        "interest_rate_annual_ppm": st.sampled_from([0, 100_000, 240_000]),
        "penalty_rate_annual_ppm": st.sampled_from([0, 50_000, 240_000]),
        **{c.value: st.one_of(st.integers(0, 10**9), st.sampled_from([0, 1, 2, 7])) for c in Component},
    }
)
payment_st = st.fixed_dictionaries(
    {
        "debtor": st.integers(0, 3),
        "amount": st.one_of(st.integers(1, 3 * 10**9), st.integers(1, 20)),
        "received_on": st.sampled_from([date(2025, 5, 15), ON, date(2025, 6, 20)]),
        "named": st.one_of(st.none(), st.integers(0, 3)),
        "designation": st.one_of(st.none(), st.lists(st.integers(0, 3), min_size=1, max_size=4)),
    }
)


@settings(max_examples=300, deadline=None)
@given(
    debtors=st.lists(st.lists(account_st, min_size=1, max_size=4), min_size=4, max_size=4),
    payments=st.lists(payment_st, min_size=1, max_size=12),
    policy_name=st.sampled_from(policy_names()),
)
def test_cn27_cn28_set_based_batch_allocation_equals_allocate_applied_one_payment_at_a_time(
    debtors: list[list[dict[str, Any]]], payments: list[dict[str, Any]], policy_name: str
) -> None:
    policy = load_policy(policy_name)
    accounts: list[dict[str, Any]] = []
    owned: dict[int, list[int]] = {}
    for d, items in enumerate(debtors):
        for a in items:
            account_id = 10 * (d + 1) + len(owned.setdefault(d, []))
            owned[d].append(account_id)
            accounts.append({"id": account_id, "debtor_id": d, "currency": "CNY", **a})
    rows = []
    for i, p in enumerate(payments):
        mine = owned[p["debtor"]]
        named = mine[p["named"] % len(mine)] if p["named"] is not None else None
        listed = [mine[x % len(mine)] for x in p["designation"]] if p["designation"] else None
        rows.append(
            {
                "payment_id": 1000 + i,
                "debtor_id": p["debtor"],
                "account_id": named,
                "designation": ",".join(str(x) for x in listed) if listed else None,
                "amount_minor": p["amount"],
                "received_on": p["received_on"],
                "_listed": listed,
            }
        )
    frame_payments = pl.DataFrame(
        [{k: v for k, v in r.items() if k != "_listed"} for r in rows],
        schema={
            "payment_id": pl.Int64,
            "debtor_id": pl.Int64,
            "account_id": pl.Int64,
            "designation": pl.String,
            "amount_minor": pl.Int64,
            "received_on": pl.Date,
        },
    )
    frame_accounts = pl.DataFrame(
        [
            {
                **{k: v for k, v in a.items() if k not in {c.value for c in Component}},
                **{f"{c.value}_minor": a[c.value] for c in Component},
            }
            for a in accounts
        ],
        schema={
            "id": pl.Int64,
            "debtor_id": pl.Int64,
            "currency": pl.String,
            "due_date": pl.Date,
            "is_secured": pl.Boolean,
            "interest_rate_annual_ppm": pl.Int64,
            "penalty_rate_annual_ppm": pl.Int64,
            **{f"{c.value}_minor": pl.Int64 for c in Component},
        },
    )
    splits, totals, after = allocate_frame(frame_payments, frame_accounts, policy)

    balances = {a["id"]: {c: a[c.value] for c in Component} for a in accounts}
    by_id = {a["id"]: a for a in accounts}
    for r in rows:
        view = [
            AccountBalance(
                i,
                dict(balances[i]),
                by_id[i]["due_date"],
                by_id[i]["is_secured"],
                by_id[i]["interest_rate_annual_ppm"],
                by_id[i]["penalty_rate_annual_ppm"],
            )
            for i in owned[r["debtor_id"]]
        ]
        wanted = list(r["_listed"] or [])
        if r["account_id"] is not None and r["account_id"] not in wanted:
            wanted.insert(0, r["account_id"])
        want = allocate(r["amount_minor"], view, policy, wanted or None, as_of=r["received_on"])
        for s in want.splits:
            balances[s.account_id][s.component] -= s.amount_minor
        got = splits.filter(pl.col("payment_id") == r["payment_id"])
        assert [
            (s["account_id"], s["component"], s["amount_minor"], s["rule_id"])
            for s in got.iter_rows(named=True)
        ] == [(s.account_id, s.component.value, s.amount_minor, s.rule_id) for s in want.splits]
        t = totals.filter(pl.col("payment_id") == r["payment_id"]).row(0, named=True)
        credit_to = r["account_id"] if r["account_id"] is not None else want.credit_account_id
        assert (t["allocated_minor"], t["credit_minor"], t["credit_account_id"]) == (
            want.allocated_minor,
            want.credit_minor,
            credit_to,
        )
    for row in after.iter_rows(named=True):
        assert {c: row[f"{c.value}_minor"] for c in Component} == balances[row["account_id"]]


def test_a_designated_account_of_another_debtor_is_refused() -> None:
    policy = load_policy(None)
    payments = pl.DataFrame(
        {
            "payment_id": [1],
            "debtor_id": [1],
            "account_id": [None],
            "designation": ["20"],
            "amount_minor": [100],
            "received_on": [ON],
        },
        schema_overrides={"account_id": pl.Int64},
    )
    accounts = pl.DataFrame(
        {
            "id": [10, 20],
            "debtor_id": [1, 2],
            "currency": ["CNY", "CNY"],
            "due_date": [ON, ON],
            "is_secured": [False, False],
            "interest_rate_annual_ppm": [0, 0],
            "penalty_rate_annual_ppm": [0, 0],
            **{f"{c.value}_minor": [100, 100] for c in Component},
        }
    )
    with pytest.raises(NotFound):
        allocate_frame(payments, accounts, policy)


def test_cn27_pro_rata_ties_go_to_the_earlier_account_as_in_allocate() -> None:
    policy = load_policy(None)
    accounts = pl.DataFrame(
        {
            "id": [11, 12, 13],
            "debtor_id": [1, 1, 1],
            "currency": ["CNY"] * 3,
            "due_date": [ON] * 3,
            "is_secured": [False] * 3,
            "interest_rate_annual_ppm": [0] * 3,
            "penalty_rate_annual_ppm": [0] * 3,
            **{f"{c.value}_minor": [1 if c is Component.PRINCIPAL else 0] * 3 for c in Component},
        }
    )
    for amount in (1, 2, 5):
        payments = pl.DataFrame(
            {
                "payment_id": [1],
                "debtor_id": [1],
                "account_id": [None],
                "designation": [None],
                "amount_minor": [amount],
                "received_on": [ON],
            },
            schema_overrides={"account_id": pl.Int64, "designation": pl.String},
        )
        splits, totals, _ = allocate_frame(payments, accounts, policy)
        view = [
            AccountBalance(i, {c: 1 if c is Component.PRINCIPAL else 0 for c in Component}, ON)
            for i in (11, 12, 13)
        ]
        want = allocate(amount, view, policy, as_of=ON)
        assert [(s["account_id"], s["amount_minor"], s["rule_id"]) for s in splits.iter_rows(named=True)] == [
            (s.account_id, s.amount_minor, s.rule_id) for s in want.splits
        ]
        assert totals["credit_minor"][0] == want.credit_minor
