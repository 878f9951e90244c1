"""Money as integer minor units with an explicit currency.

Amounts are never floats. Parsing accepts the forms lenders' files use (thousands separators, currency
signs, full-width digits) and refuses anything that would need rounding; rounding, where the maths needs
it, is explicit (`round_half_up`, `split_evenly`).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from functools import cache

from babel import Locale
from babel.numbers import format_currency, get_currency_precision

from arrears.errors import ValidationFailed

CURRENCY_SIGNS = ("¥", "￥", "$", "€", "£", "CNY", "RMB", "USD", "EUR", "HKD", "元", "人民币")
_AMOUNT_RE = re.compile(r"^-?\d+(\.\d+)?$")


def exponent(currency: str) -> int:
    """Number of decimal places of the currency's minor unit (CNY 2, JPY 0)."""
    try:
        return _precision(currency.upper())
    except Exception as exc:  # Babel raises plain errors for unknown codes
        raise ValidationFailed(f"unknown currency {currency!r}", code="unknown_currency") from exc


@cache
def _precision(code: str) -> int:
    return int(get_currency_precision(code))


@cache
def _locale(name: str) -> Locale:
    # Parsed once: Babel builds a fresh Locale (and merges its data) for every call given a name.
    return Locale.parse(name)


@dataclass(frozen=True, slots=True, order=True)
class Money:
    """An amount in integer minor units (fen, cents) of one currency."""

    minor: int
    currency: str = "CNY"

    def __post_init__(self) -> None:
        if not isinstance(self.minor, int) or isinstance(self.minor, bool):
            raise TypeError("Money.minor must be an int of minor units")

    def __add__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.minor + other.minor, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.minor - other.minor, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.minor, self.currency)

    def _same(self, other: Money) -> None:
        if self.currency != other.currency:
            raise ValueError(f"cannot combine {self.currency} with {other.currency}")

    @property
    def decimal(self) -> Decimal:
        """The amount as an exact Decimal in major units (for display and export only)."""
        return Decimal(self.minor).scaleb(-exponent(self.currency))

    def format(self, locale: str = "zh_CN") -> str:
        """Locale-formatted amount, e.g. ``¥1,234.50``."""
        return format_minor(self.minor, self.currency, locale)

    def __str__(self) -> str:
        return f"{self.decimal} {self.currency}"


def normalise_amount_text(text: str) -> str:
    """Strip currency signs, thousands separators and spaces; fold full-width characters."""
    s = unicodedata.normalize("NFKC", text).strip()
    for sign in CURRENCY_SIGNS:
        s = s.replace(sign, "")
    return s.replace(",", "").replace(" ", "").replace("\u00a0", "")


#: The largest amount the product takes, in minor units (10 trillion yuan): far above any real debt, and
#: far enough below the database's 64-bit integers that sums of many such amounts cannot overflow.
MAX_MINOR = 10**15


def check_magnitude(amount_minor: int, shown: object) -> None:
    """Refuse an amount beyond `MAX_MINOR` either way (``shown``: how the user wrote it)."""
    if abs(amount_minor) > MAX_MINOR:
        raise ValidationFailed(f"金额过大：{shown!r} / amount too large: {shown!r}", code="amount_too_large")


def parse_minor(text: str | int | Decimal, currency: str = "CNY", *, allow_negative: bool = False) -> int:
    """Parse a human amount into integer minor units.

    ``"1,234.5"`` -> 123450 for CNY. An amount with more decimals than the currency has is refused
    rather than rounded silently.
    """
    if isinstance(text, int) and not isinstance(text, bool):
        value = Decimal(text)
    elif isinstance(text, Decimal):
        value = text
    else:
        s = normalise_amount_text(str(text))
        if not _AMOUNT_RE.match(s):
            raise ValidationFailed(f"不是有效金额：{text!r} / not an amount: {text!r}", code="bad_amount")
        try:
            value = Decimal(s)
        except InvalidOperation as exc:  # pragma: no cover - guarded by the regex
            raise ValidationFailed(
                f"不是有效金额：{text!r} / not an amount: {text!r}", code="bad_amount"
            ) from exc
    if value < 0 and not allow_negative:
        raise ValidationFailed(f"金额不能为负：{text!r} / negative amount: {text!r}", code="negative_amount")
    scaled = value.scaleb(exponent(currency))
    if scaled != scaled.to_integral_value():
        raise ValidationFailed(
            f"{text!r} 的小数位超过 {currency} 允许的位数 / {text!r} has more decimals than {currency} allows",
            code="too_many_decimals",
        )
    check_magnitude(int(scaled), text)
    return int(scaled)


def round_half_up(value: Decimal) -> int:
    """Round an exact Decimal number of minor units to an int, halves away from zero."""
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def split_evenly(total_minor: int, parts: int) -> list[int]:
    """Split a total into ``parts`` integer amounts that differ by at most one minor unit and sum exactly.

    The larger parts come first, so a schedule's early instalments carry the remainder.
    """
    if parts <= 0:
        raise ValueError("parts must be positive")
    base, remainder = divmod(total_minor, parts)
    return [base + 1 if i < remainder else base for i in range(parts)]


def _babel_format(minor: int, currency: str, locale: str) -> str:
    value = Decimal(minor).scaleb(-exponent(currency))
    return str(format_currency(value, currency, locale=_locale(locale)))


def format_minor(minor: int, currency: str = "CNY", locale: str = "zh_CN") -> str:
    """Format integer minor units for people (the same text as ``Money(minor, currency).format(locale)``)."""
    layout = _layout(currency, locale)
    if layout is None:
        return _babel_format(minor, currency, locale)
    return layout.render(minor)


@dataclass(frozen=True, slots=True)
class _Layout:
    """How a locale writes amounts of one currency: sign and symbol around digits grouped in threes."""

    positive: tuple[str, str]  # text before and after the digits
    negative: tuple[str, str]
    group: str
    decimal: str
    digits: int  # the currency's minor digits

    def render(self, minor: int) -> str:
        before, after = self.negative if minor < 0 else self.positive
        whole, part = divmod(abs(minor), 10**self.digits)
        text = f"{whole:,}".replace(",", self.group)
        if self.digits:
            text += self.decimal + str(part).rjust(self.digits, "0")
        return before + text + after


# Amounts that exercise the sign, the grouping and the minor digits: a layout is used only where it writes
# every one of them exactly as Babel does.
_PROBES = (0, 1, 7, 99, 100, 1_005, 123_456, 100_000_000, 123_456_789_012, -1, -123_456, -100_000_000)


@cache
def _layout(currency: str, locale: str) -> _Layout | None:
    """Babel's formatting of a (currency, locale), reduced to a layout; None where the reduction is not
    exact (another grouping or digit system), which then goes through Babel each time.

    Babel parses and applies the locale's number pattern on every call, a large share of the case page's
    CPU (a page formats dozens of amounts); the layout writes the same text directly."""
    digits = exponent(currency)
    sample = 10 ** (digits + 6) + (1 if digits else 0)  # 1,000,000.0...1: two group separators
    try:
        plus = _babel_format(sample, currency, locale)
        minus = _babel_format(-sample, currency, locale)
    except ValueError:
        return None
    core = re.search(r"1(\D)000(\D)000(?:(\D)(\d+))?", plus)
    if core is None or (digits and core.group(3) is None) or (not digits and core.group(3) is not None):
        return None
    found = re.search(re.escape(core.group(0)), minus)
    if found is None:
        return None
    layout = _Layout(
        positive=(plus[: core.start()], plus[core.end() :]),
        negative=(minus[: found.start()], minus[found.end() :]),
        group=core.group(1),
        decimal=core.group(3) or "",
        digits=digits,
    )
    if core.group(1) != core.group(2) or any(
        layout.render(v) != _babel_format(v, currency, locale) for v in _PROBES
    ):
        return None
    return layout
