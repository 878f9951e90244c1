"""The vectorised checks agree with the libraries they stand in for."""

from __future__ import annotations

from datetime import date

import phonenumbers
import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st
from stdnum import luhn
from stdnum.cn import ric

from arrears.portfolios.mapping import load_mapping
from arrears.portfolios.reader import ROW
from arrears.portfolios.validate import ChunkContext, luhn_valid, validate_chunk

MAPPING = load_mapping()


def run(
    rows: dict[str, list[str | None]], as_of: date = date(2025, 7, 1)
) -> tuple[pl.DataFrame, pl.DataFrame]:
    n = len(next(iter(rows.values())))
    raw = pl.DataFrame(rows, schema={k: pl.String for k in rows}).with_columns(
        pl.Series(ROW, list(range(2, n + 2)), dtype=pl.Int64)
    )
    columns = {MAPPING.field_for(h): h for h in rows}
    ctx = ChunkContext(
        mapping=MAPPING,
        columns={k: v for k, v in columns.items() if k},
        currency_exponent=2,
        currency="CNY",
        as_of=as_of,
    )
    return validate_chunk(raw, ctx)


def base(n: int) -> dict[str, list[str | None]]:
    return {
        "借据号": [f"R{i}" for i in range(n)],
        "姓名": ["张三"] * n,
        "产品类型": ["信用卡"] * n,
        "逾期金额": ["100"] * n,
        "到期日": ["2025-06-01"] * n,
        "手机号": ["13800138000"] * n,
    }


id_bodies = st.tuples(
    st.sampled_from(["110105", "310101", "440305", "510104", "999999"]),
    st.dates(min_value=date(1900, 1, 1), max_value=date(2010, 12, 31)),
    st.integers(min_value=0, max_value=999),
    st.sampled_from(list("0123456789X")),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(id_bodies, min_size=1, max_size=30))
def test_vectorised_id_check_digit_agrees_with_python_stdnum(ids: list[tuple[str, date, int, str]]) -> None:
    numbers = [f"{r}{d:%Y%m%d}{s:03d}{c}" for r, d, s, c in ids]
    rows = base(len(numbers))
    rows["身份证号"] = list(numbers)
    _stage, issues = run(rows)
    bad_rows = set(issues.filter(pl.col("code") == "id_check_digit")["row"].to_list())
    for i, n in enumerate(numbers):
        expected_bad = ric.calc_check_digit(n) != n[-1]
        assert ((i + 2) in bad_rows) == expected_bad, n


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.text(alphabet="0123456789", min_size=11, max_size=11).map(lambda s: "1" + s[1:]),
        min_size=1,
        max_size=30,
    )
)
def test_vectorised_mobile_validity_agrees_with_phonenumbers(numbers: list[str]) -> None:
    rows = base(len(numbers))
    rows["手机号"] = list(numbers)
    stage, _issues = run(rows)
    for n, value in zip(numbers, stage["mobile"].to_list(), strict=True):
        assert (value is not None) == _is_cn_mobile(n), n


def _is_cn_mobile(number: str) -> bool:
    try:
        parsed = phonenumbers.parse(number, "CN")
    except phonenumbers.NumberParseException:
        return False
    return phonenumbers.is_valid_number(parsed) and phonenumbers.number_type(parsed) in (
        phonenumbers.PhoneNumberType.MOBILE,
        phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE,
    )


def test_dates_in_every_supported_style() -> None:
    rows = base(6)
    rows["到期日"] = ["2025-06-07", "2025/6/7", "2025年6月7日", "20250607", "45815", "2025-06-07 00:00:00"]
    stage, issues = run(rows)
    assert issues.filter(pl.col("severity") == "error").height == 0
    assert set(stage["due_date"].to_list()) == {date(2025, 6, 7)}


def test_impossible_date_and_unknown_product_are_row_errors() -> None:
    rows = base(2)
    rows["到期日"] = ["2025-02-30", "2025-06-01"]
    rows["产品类型"] = ["信用卡", "火箭"]
    _stage, issues = run(rows)
    assert sorted(zip(issues["row"].to_list(), issues["code"].to_list(), strict=True)) == [
        (2, "bad_date"),
        (3, "bad_enum"),
    ]


def test_unknown_region_is_a_warning_not_an_error() -> None:
    number = "99999919800101001"
    number += ric.calc_check_digit(number + "0")
    rows = base(1)
    rows["身份证号"] = [number]
    _stage, issues = run(rows)
    assert issues.select("code", "severity").rows() == [("id_region_unknown", "warning")]


def test_days_past_due_gives_the_due_date() -> None:
    rows = base(1)
    del rows["到期日"]
    rows["逾期天数"] = ["30"]
    stage, issues = run(rows)
    assert issues.height == 0
    assert stage["due_date"].to_list() == [date(2025, 6, 1)]


def test_rates_percent_and_fraction() -> None:
    rows = base(3)
    rows["年利率"] = ["24%", "0.24", "15.4"]
    stage, issues = run(rows)
    assert issues.height == 0
    assert stage["interest_rate_annual_ppm"].to_list() == [240000, 240000, 154000]


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["010", "021", "0755", "0571"]),
            st.text(alphabet="0123456789", min_size=7, max_size=8),
        ),
        min_size=1,
        max_size=30,
    )
)
def test_vectorised_landline_validity_agrees_with_phonenumbers(numbers: list[tuple[str, str]]) -> None:
    written = [f"{area}-{local}" for area, local in numbers]
    rows = base(len(written))
    rows["固定电话"] = list(written)
    stage, _issues = run(rows)
    for n, value in zip(written, stage["landline"].to_list(), strict=True):
        parsed = phonenumbers.parse(n, "CN")
        expected = phonenumbers.is_valid_number(parsed) and phonenumbers.number_type(parsed) in (
            phonenumbers.PhoneNumberType.FIXED_LINE,
            phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE,
        )
        assert (value is not None) == expected, n


def test_a_landline_outside_the_allocated_ranges_is_refused_as_phonenumbers_refuses_it() -> None:
    rows = base(2)
    rows["固定电话"] = ["021-80078612", "021-60078612"]
    stage, issues = run(rows)
    assert not phonenumbers.is_valid_number(phonenumbers.parse("021-80078612", "CN"))
    assert stage["landline"].to_list() == [None, "+862160078612"]
    assert issues.select("row", "code").rows() == [(2, "bad_landline")]


def test_demo_landlines_are_all_accepted_by_the_import() -> None:
    from arrears import demo

    generated = demo.generate_rows(accounts=3000, seed=11, as_of=date(2025, 7, 1))
    landlines = [r[demo.HEADERS.index("固定电话")] for r in generated]
    landlines = [n for n in landlines if n]
    assert len(landlines) > 500
    rows = base(len(landlines))
    rows["固定电话"] = landlines
    stage, issues = run(rows)
    assert issues.filter(pl.col("field") == "landline").height == 0
    assert stage["landline"].null_count() == 0


plain_rows = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=10**15 - 1),
        st.sampled_from(["", ".5", ".05", ".50", ".99"]),
        st.dates(min_value=date(1900, 1, 1), max_value=date(2200, 12, 31)),
        st.text(alphabet="0123456789", min_size=10, max_size=10).map(lambda s: "1" + s),
    ),
    min_size=1,
    max_size=30,
)


@settings(max_examples=100, deadline=None)
@given(plain_rows)
def test_fast_path_of_plain_values_agrees_with_the_general_parsing(
    values: list[tuple[int, str, date, str]],
) -> None:
    """A chunk of plain values only takes the fast path; one odd value sends its field down the general
    parsing. The plain rows must come out the same either way."""

    def chunk(odd: bool) -> dict[str, list[str | None]]:
        rows = base(len(values) + 1)
        rows["本金"] = [f"{n}{frac}" for n, frac, _d, _m in values] + ["¥1,000.00" if odd else "1"]
        rows["到期日"] = [d.isoformat() for _n, _f, d, _m in values] + [
            "2025年6月7日" if odd else "2025-06-07"
        ]
        rows["手机号"] = [m for *_x, m in values] + ["+86 138-0013-8000" if odd else "13800138000"]
        rows["紧急联系人"] = ["李四"] * (len(values) + 1)
        rows["紧急联系人电话"] = [m for *_x, m in values] + ["010-62345678" if odd else "13800138000"]
        return rows

    columns = ["principal_minor", "due_date", "mobile", "ec1_phone", "ec1_kind"]
    fast, fast_issues = run(chunk(odd=False))
    general, general_issues = run(chunk(odd=True))
    n = len(values)
    assert fast.select(columns).head(n).rows() == general.select(columns).head(n).rows()
    assert (
        fast_issues.filter(pl.col("row") <= n + 1).rows()
        == general_issues.filter(pl.col("row") <= n + 1).rows()
    )
    assert general.select(columns).row(n) == (
        100000,
        date(2025, 6, 7),
        "+8613800138000",
        "+861062345678",
        "landline",
    )


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(alphabet="0123456789", min_size=1, max_size=36), min_size=1, max_size=40))
def test_vectorised_luhn_check_agrees_with_python_stdnum(numbers: list[str]) -> None:
    got = pl.DataFrame({"n": numbers}).select(luhn_valid(pl.col("n")))["n"].to_list()
    assert got == [luhn.is_valid(n) for n in numbers]


def test_luhn_check_is_null_for_missing_and_non_digit_values() -> None:
    got = pl.DataFrame({"n": [None, "62220212a4", ""]}).select(luhn_valid(pl.col("n")))["n"].to_list()
    assert got == [None, None, None]


def test_bank_account_is_normalised_checked_and_a_failed_card_check_only_warns() -> None:
    rows = base(6)
    rows["还款账号"] = [
        "6222 0212-3456 7890 128",  # a valid card with spaces and dashes
        "６２２５８８１２３４５６７８９８",  # full-width digits, 16 digits, valid
        "6222021234567890127",  # 19 digits, fails the Luhn check: warning
        "12345678901234567890",  # 20 digits: no card check
        "123456789",  # too short: error
        "6222O21234567890128",  # a letter O: error
    ]
    rows["开户行"] = ["中国工商银行", None, None, None, None, None]
    stage, issues = run(rows)
    assert stage["bank_account"].to_list() == [
        "6222021234567890128",
        "6225881234567898",
        "6222021234567890127",
        "12345678901234567890",
        None,
        None,
    ]
    assert stage["bank_name"].to_list()[0] == "中国工商银行"
    found = (
        issues.filter(pl.col("field") == "bank_account").select("row", "column", "code", "severity").rows()
    )
    assert sorted(found) == [
        (4, "还款账号", "bank_account_luhn", "warning"),
        (6, "还款账号", "bad_bank_account", "error"),
        (7, "还款账号", "bad_bank_account", "error"),
    ]
    assert luhn.is_valid("6225881234567898") and luhn.is_valid("6222021234567890128")


def test_bank_account_headers_do_not_take_the_account_reference_headers() -> None:
    for header in ("银行卡号", "还款账号", "还款卡号", "银行账号", "bank account", "Bank_Account"):
        assert MAPPING.field_for(header) == "bank_account", header
    for header in ("开户行", "开户银行", "bank"):
        assert MAPPING.field_for(header) == "bank_name", header
    for header in ("账号", "卡号", "account number", "account_no"):
        assert MAPPING.field_for(header) == "external_ref", header
