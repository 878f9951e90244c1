"""Days past due from the ledger: instalments covered oldest first, a single due date cured when paid."""

from __future__ import annotations

from datetime import date

import polars as pl
from hypothesis import given
from hypothesis import strategies as st

from arrears.strategy.dpd import ACCOUNTS_SCHEMA, INSTALMENTS_SCHEMA, RECEIVED_SCHEMA, dpd_frame

AS_OF = date(2026, 6, 15)


def _accounts(rows: list[tuple[int, str, date, int]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=ACCOUNTS_SCHEMA, orient="row")


def _schedule(account_id: int, first: date, n: int, amount: int) -> list[tuple[int, int, date, int]]:
    out = []
    for k in range(n):
        month = first.month - 1 + k
        out.append((account_id, k + 1, date(first.year + month // 12, month % 12 + 1, first.day), amount))
    return out


def _instalments(rows: list[tuple[int, int, date, int]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=INSTALMENTS_SCHEMA, orient="row")


def _received(rows: list[tuple[int, int]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=RECEIVED_SCHEMA, orient="row")


def _dpd(accounts: pl.DataFrame, instalments: pl.DataFrame, received: pl.DataFrame) -> dict[int, int]:
    out = dpd_frame(accounts, instalments, received, as_of=AS_OF)
    return dict(out.select("account_id", "dpd").iter_rows())


# An instalment loan of 1,000.00 a month, unpaid since 15 March: March, April, May and June are due.
LOAN = _accounts([(1, "instalment_loan", date(2026, 3, 15), 400_000)])
SCHEDULE = _instalments(_schedule(1, date(2026, 1, 15), 12, 100_000))


def test_without_payments_dpd_counts_from_the_imported_due_date() -> None:
    assert _dpd(LOAN, SCHEDULE, _received([])) == {1: (AS_OF - date(2026, 3, 15)).days}


def test_a_partial_payment_of_the_oldest_instalment_does_not_move_dpd() -> None:
    assert _dpd(LOAN, SCHEDULE, _received([(1, 99_999)])) == {1: 92}


def test_paying_the_oldest_instalment_moves_dpd_to_the_next_one() -> None:
    assert _dpd(LOAN, SCHEDULE, _received([(1, 100_000)])) == {1: (AS_OF - date(2026, 4, 15)).days}
    assert _dpd(LOAN, SCHEDULE, _received([(1, 250_000)])) == {1: (AS_OF - date(2026, 5, 15)).days}


def test_paying_every_instalment_due_leaves_the_next_one_not_yet_due() -> None:
    # March to June paid: July's instalment is the oldest unpaid, due in 30 days
    assert _dpd(LOAN, SCHEDULE, _received([(1, 400_000)])) == {1: -30}


def test_every_instalment_covered_is_nothing_overdue() -> None:
    assert _dpd(LOAN, SCHEDULE, _received([(1, 10_000_000)])) == {1: 0}


def test_instalments_before_the_imported_due_date_count_as_paid_at_import() -> None:
    # January and February were paid before the import: 100,000 covers March, not January
    assert _dpd(LOAN, SCHEDULE, _received([(1, 100_000)]))[1] == (AS_OF - date(2026, 4, 15)).days


def test_single_due_account_is_cured_once_the_overdue_amount_is_paid() -> None:
    card = _accounts([(2, "credit_card", date(2026, 5, 1), 50_000)])
    empty = _instalments([])
    assert _dpd(card, empty, _received([])) == {2: 45}
    assert _dpd(card, empty, _received([(2, 49_999)])) == {2: 45}  # partly paid: still overdue
    assert _dpd(card, empty, _received([(2, 50_000)])) == {2: 0}


def test_an_instalment_product_without_a_schedule_follows_the_single_due_rule() -> None:
    bnpl = _accounts([(3, "bnpl", date(2026, 6, 1), 30_000)])
    assert _dpd(bnpl, _instalments([]), _received([(3, 10_000)])) == {3: 14}
    assert _dpd(bnpl, _instalments([]), _received([(3, 30_000)])) == {3: 0}


def test_rows_keep_their_order_and_schedules_of_other_accounts_are_ignored() -> None:
    accounts = _accounts(
        [
            (5, "credit_card", date(2026, 6, 10), 1_000),
            (1, "instalment_loan", date(2026, 3, 15), 400_000),
            (4, "consumer_loan", date(2026, 7, 1), 1_000),
        ]
    )
    out = dpd_frame(accounts, SCHEDULE, _received([(1, 100_000), (9, 5)]), as_of=AS_OF)
    assert out["account_id"].to_list() == [5, 1, 4]
    assert out["dpd"].to_list() == [5, (AS_OF - date(2026, 4, 15)).days, -16]


@given(
    n=st.integers(1, 24),
    amount=st.integers(1, 500_000),
    unpaid_from=st.integers(0, 23),
    paid=st.integers(0, 20_000_000),
)
def test_days_overdue_never_rise_as_more_money_arrives(
    n: int, amount: int, unpaid_from: int, paid: int
) -> None:
    first = date(2025, 1, 15)
    rows = _schedule(7, first, n, amount)
    due = rows[min(unpaid_from, n - 1)][2]
    accounts = _accounts([(7, "instalment_loan", due, amount)])
    schedule = _instalments(rows)
    less = _dpd(accounts, schedule, _received([(7, paid)]))[7]
    more = _dpd(accounts, schedule, _received([(7, paid + amount)]))[7]
    assert max(more, 0) <= max(less, 0)  # paid off entirely is 0, not 'next one not due yet'
    # and the date DPD counts from is always one of the unpaid instalments' due dates, or none
    out = dpd_frame(accounts, schedule, _received([(7, paid)]), as_of=AS_OF)
    counted = out["dpd_due_date"][0]
    assert counted is None or counted in {r[2] for r in rows if r[2] >= due}
    assert less == ((AS_OF - counted).days if counted is not None else 0)
