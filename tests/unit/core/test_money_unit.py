from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from arrears import money as money_mod
from arrears.errors import ValidationFailed
from arrears.money import Money, format_minor, parse_minor, split_evenly


@pytest.mark.parametrize(
    ("text", "minor"),
    [("1,234.5", 123450), ("￥１,２３４.５０", 123450), ("CNY 500", 50000), ("0.01", 1), ("12元", 1200)],
)
def test_parse_minor_accepts_lenders_formats(text: str, minor: int) -> None:
    assert parse_minor(text, "CNY") == minor


@pytest.mark.parametrize(
    ("text", "code"), [("-5", "negative_amount"), ("1.234", "too_many_decimals"), ("abc", "bad_amount")]
)
def test_parse_minor_refuses_instead_of_rounding(text: str, code: str) -> None:
    with pytest.raises(ValidationFailed) as exc:
        parse_minor(text, "CNY")
    assert exc.value.code == code


def test_currency_exponent_is_respected() -> None:
    assert parse_minor("500", "JPY") == 500
    with pytest.raises(ValidationFailed):
        parse_minor("5.5", "JPY")


@given(st.integers(min_value=0, max_value=10**15), st.integers(min_value=1, max_value=600))
def test_split_evenly_sums_exactly_and_differs_by_at_most_one(total: int, parts: int) -> None:
    split = split_evenly(total, parts)
    assert sum(split) == total
    assert max(split) - min(split) <= 1


@given(st.integers(min_value=0, max_value=10**12))
def test_decimal_round_trip(minor: int) -> None:
    m = Money(minor, "CNY")
    assert parse_minor(m.decimal, "CNY") == minor
    assert m.decimal == Decimal(minor) / 100


def test_money_refuses_floats_and_mixed_currencies() -> None:
    with pytest.raises(TypeError):
        Money(1.5, "CNY")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Money(1, "CNY") + Money(1, "USD")
    assert format_minor(123450, "CNY", "zh_CN") == "¥1,234.50"


@pytest.mark.parametrize("currency", ["CNY", "USD", "EUR", "JPY", "KWD"])
@pytest.mark.parametrize("locale", ["zh_CN", "en_US", "de_DE", "fr_FR", "hi_IN"])
def test_fast_money_format_matches_babel(currency: str, locale: str) -> None:
    amounts = [0, 1, 9, 10, 99, 100, 999, 1000, 12345, 99999, 100000, 1234567, 10**12 + 7, -1, -123456]
    for minor in [*amounts, *range(0, 5000, 37)]:
        assert Money(minor, currency).format(locale) == money_mod._babel_format(minor, currency, locale)


@given(
    minor=st.integers(min_value=-(10**15), max_value=10**15),
    currency=st.sampled_from(["CNY", "USD", "HKD", "JPY", "KWD", "EUR"]),
    locale=st.sampled_from(["zh_CN", "en"]),
)
def test_format_minor_writes_what_babel_writes(minor: int, currency: str, locale: str) -> None:
    # the desk formats amounts from a layout derived from Babel's; the text must not change
    assert format_minor(minor, currency, locale) == money_mod._babel_format(minor, currency, locale)


def test_an_amount_beyond_any_real_debt_is_refused_not_overflowed() -> None:
    assert parse_minor("10,000,000,000,000") == money_mod.MAX_MINOR  # 10 trillion yuan, in fen
    for too_large in ("10000000000000.01", "99999999999999999999999", 10**13 + 1):
        with pytest.raises(ValidationFailed) as refused:
            parse_minor(too_large)
        assert refused.value.code == "amount_too_large"
    with pytest.raises(ValidationFailed) as refused:
        parse_minor("-99999999999999999999999", allow_negative=True)
    assert refused.value.code == "amount_too_large"
