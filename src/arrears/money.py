"""Money as integer minor units with an explicit currency.

Amounts are never floats. Parsing accepts the forms lenders' files use (thousands separators, currency
signs, full-width digits) and refuses anything that would need rounding; rounding, where the maths needs
it, is explicit (`round_half_up`, `split_evenly`).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
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
        fast = _plain_format(self.currency, locale) if self.minor >= 0 else None
        if fast is not None:
            return fast(self.minor)
        return _babel_format(self.minor, self.currency, locale)

    def __str__(self) -> str:
        return f"{self.decimal} {self.currency}"


def normalise_amount_text(text: str) -> str:
    """Strip currency signs, thousands separators and spaces; fold full-width characters."""
    s = unicodedata.normalize("NFKC", text).strip()
    for sign in CURRENCY_SIGNS:
        s = s.replace(sign, "")
    return s.replace(",", "").replace(" ", "").replace("\u00a0", "")


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
            raise ValidationFailed(f"not an amount: {text!r}", code="bad_amount")
        try:
            value = Decimal(s)
        except InvalidOperation as exc:  # pragma: no cover - guarded by the regex
            raise ValidationFailed(f"not an amount: {text!r}", code="bad_amount") from exc
    if value < 0 and not allow_negative:
        raise ValidationFailed(f"negative amount: {text!r}", code="negative_amount")
    scaled = value.scaleb(exponent(currency))
    if scaled != scaled.to_integral_value():
        raise ValidationFailed(f"{text!r} has more decimals than {currency} allows", code="too_many_decimals")
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


_PROBES = (0, 1, 12, 123, 1234, 12345, 123456, 1234567, 123456789, 12345678901)


@cache
def _plain_format(currency: str, locale: str) -> Callable[[int], str] | None:
    """A formatter of non-negative amounts for ``currency`` in ``locale`` that gives Babel's text without
    Babel's per-call cost (about 0.1 ms: pattern, plural and symbol look-ups): the prefix, suffix, group
    and decimal symbols read off Babel's own output, then checked against Babel on amounts of every
    length from 0 to 11 digits. None (use Babel) when the locale's output has another shape (grouping
    that is not by threes, a minimum grouping size, digits other than ASCII)."""
    places = exponent(currency)
    if places not in (0, 2):
        return None
    probe = _babel_format(1234567 * 10**places + (89 if places else 0), currency, locale)
    found = re.search(r"1(\D*)234\D*567" + (r"(\D*)89" if places else ""), probe)
    if found is None:
        return None
    prefix, suffix = probe[: found.start()], probe[found.end() :]
    group = found.group(1)
    point = found.group(2) if places else ""

    def plain(minor: int) -> str:
        whole, fraction = divmod(minor, 10**places)
        grouped = f"{whole:,}".replace(",", group) if group else str(whole)
        tail = f"{point}{fraction:0{places}d}" if places else ""
        return f"{prefix}{grouped}{tail}{suffix}"

    for minor in _PROBES:
        if plain(minor) != _babel_format(minor, currency, locale):
            return None
    return plain


def format_minor(minor: int, currency: str = "CNY", locale: str = "zh_CN") -> str:
    """Format integer minor units for people."""
    return Money(minor, currency).format(locale)
