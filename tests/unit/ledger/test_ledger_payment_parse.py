"""Payment files read amounts and dates as the account import does, however the values repeat."""

from __future__ import annotations

import unicodedata

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from arrears.ledger.payments_import import _amounts, _by_value, _parse
from arrears.portfolios.reader import ROW
from arrears.portfolios.validate import _amount, _date

amount_text = st.one_of(
    st.from_regex(r"\A-?\d{1,17}(\.\d{0,4})?\Z"),
    st.sampled_from(["¥1,234.50", " 7 ", "12.", "+5", "1e3", "RMB 10", "人民币12元", "0", "0.00", "", "abc"]),
    st.text(alphabet="0123456789.,-¥ ", max_size=8),
)


@settings(max_examples=200, deadline=None)
@given(
    values=st.lists(st.one_of(st.none(), amount_text), min_size=1, max_size=30),
    exponent=st.sampled_from([0, 2, 3]),
)
def test_payment_amounts_equal_the_import_amount_rule(values: list[str | None], exponent: int) -> None:
    series = pl.Series("v", values, dtype=pl.String)
    value, code = _amount(pl.col("v"), exponent)
    want = series.to_frame().select(value=value, code=code)
    assert _amounts(series, exponent).equals(want)


@settings(max_examples=100, deadline=None)
@given(
    values=st.lists(
        st.one_of(
            st.none(),
            st.sampled_from(
                ["2026-11-01", "2026/1/2", "20261101", "2026年11月1日", "45000", "bad", "1800-01-01"]
            ),
            st.text(alphabet="0123456789-/", max_size=10),
        ),
        min_size=1,
        max_size=30,
    )
)
def test_payment_dates_parsed_once_per_value_equal_the_import_date_rule(values: list[str | None]) -> None:
    series = pl.Series("v", values, dtype=pl.String)
    value, code = _date(pl.col("v"))
    want = series.to_frame().select(value=value, code=code)
    assert _by_value(series, _date).equals(want)


@settings(max_examples=100, deadline=None)
@given(
    values=st.lists(
        st.one_of(st.none(), st.text(alphabet="0123456789.-/ JJBANK１２３．－／　Ａｂ¥", max_size=12)),
        min_size=1,
        max_size=20,
    )
)
def test_payment_fields_are_read_as_nfkc_whichever_columns_hold_other_than_ascii(
    values: list[str | None],
) -> None:
    chunk = pl.DataFrame(
        {
            ROW: list(range(2, len(values) + 2)),
            "借据号": values,
            "还款金额": list(reversed(values)),
            "还款日期": ["2026-11-01"] * len(values),
            "流水号": [f"B{i}" for i in range(len(values))],
        },
        schema={
            ROW: pl.Int64,
            "借据号": pl.String,
            "还款金额": pl.String,
            "还款日期": pl.String,
            "流水号": pl.String,
        },
    )
    columns = {
        "account_ref": "借据号",
        "amount": "还款金额",
        "received_on": "还款日期",
        "reference": "流水号",
    }
    rows, _ = _parse(chunk, columns, 2)
    nfkc = [None if v is None else unicodedata.normalize("NFKC", v).strip() or None for v in values]
    assert rows["account_ref"].to_list() == nfkc
    ascii_only = _parse(chunk.with_columns(pl.col("借据号").str.normalize("NFKC")), columns, 2)[0]
    assert ascii_only["account_ref"].to_list() == nfkc
