"""`limitation_frame` (many accounts at once) agrees with `limitation_date` (one account) on every input."""

from __future__ import annotations

from datetime import date, timedelta

import polars as pl
from compliance_builders import CN, US
from hypothesis import given, settings
from hypothesis import strategies as st

from arrears.compliance.limitation import (
    LimitationEvent,
    due_events_of,
    limitation_date,
    limitation_frame,
    result_row,
)
from arrears.compliance.schemas import LimitationEventKind as K

days = st.dates(min_value=date(2016, 1, 1), max_value=date(2027, 12, 31))
due_dates = st.lists(st.one_of(st.none(), days), min_size=1, max_size=4).filter(
    lambda ds: any(d is not None for d in ds)
)
other = st.builds(
    LimitationEvent,
    kind=st.sampled_from([K.PROMISE, K.DEMAND, K.PARTIAL_PAYMENT, K.ARRANGEMENT, K.LAWSUIT]),
    on=days,
    delivered=st.booleans(),
    ref=st.sampled_from(["promise:1", "contact_attempt:2", "payment:3", None]),
)
obstacle = st.builds(
    lambda on, length: LimitationEvent(
        K.OBSTACLE, on, end_on=None if length is None else on + timedelta(days=length), ref="obstacle:1"
    ),
    days,
    st.one_of(st.none(), st.integers(0, 900)),
)
account = st.tuples(due_dates, st.lists(st.one_of(other, obstacle), max_size=3))


def _one_by_one(
    accounts: dict[int, tuple[list[date | None], list[LimitationEvent]]], pack: object, as_of: date
) -> list[dict[str, object]]:
    rows = []
    for account_id in sorted(accounts):
        dues, rest = accounts[account_id]
        events = [*due_events_of(account_id, [d for d in dues if d is not None]), *rest]
        rows.append(result_row(account_id, limitation_date(events, pack, as_of=as_of)))  # type: ignore[arg-type]
    return rows


@settings(max_examples=150, deadline=None)
@given(
    st.dictionaries(st.integers(1, 10_000), account, min_size=1, max_size=30),
    st.sampled_from([CN, US]),
    days,
)
def test_the_frame_equals_the_rule_applied_to_each_account(
    accounts: dict[int, tuple[list[date | None], list[LimitationEvent]]], pack: object, as_of: date
) -> None:
    dues = pl.DataFrame(
        {"account_id": list(accounts), "due_dates": [d for d, _ in accounts.values()]},
        schema={"account_id": pl.Int64(), "due_dates": pl.List(pl.Date())},
    )
    others = {a: rest for a, (_d, rest) in accounts.items() if rest}
    frame = limitation_frame(dues, others, pack, as_of=as_of)  # type: ignore[arg-type]
    assert frame.to_dicts() == _one_by_one(accounts, pack, as_of)


def test_accounts_with_due_dates_only_share_one_computation_but_keep_their_own_reference() -> None:
    dues = pl.DataFrame(
        {
            "account_id": [1, 2, 3],
            "due_dates": [[date(2021, 5, 1)], [date(2021, 5, 1)], [date(2020, 1, 1), date(2021, 5, 1)]],
        },
        schema={"account_id": pl.Int64(), "due_dates": pl.List(pl.Date())},
    )
    frame = limitation_frame(dues, {}, CN, as_of=date(2024, 5, 2))
    assert frame["set_by_ref"].to_list() == ["account:1", "account:2", "account:3"]
    assert frame["rule_id"].to_list() == ["CN-20", "CN-20", "CN-21"]
    assert frame["time_barred"].to_list() == [True, True, True]
    assert frame["limitation_on"].to_list() == [date(2024, 5, 1)] * 3
