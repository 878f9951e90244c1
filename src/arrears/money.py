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
from functools import lru_cache

from babel import Locale
from babel.numbers import format_currency, get_currency_precision

from arrears.errors import ValidationFailed

CURRENCY_SIGNS = ("¥", "￥", "$", "€", "£", "CNY", "RMB", "USD", "EUR", "HKD", "元", "人民币")
_AMOUNT_RE = re.compile(r"^-?\d+(\.\d+)?$")


def exponent(currency: str) -> int:
    """Number of decimal places of the currency's minor unit (CNY 2, JPY 0)."""
    try:
        return int(get_currency_precision(currency.upper()))
    except Exception as exc:  # Babel raises plain errors for unknown codes
        raise ValidationFailed(f"unknown currency {currency!r}", code="unknown_currency") from exc


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
        return str(format_currency(self.decimal, self.currency, locale=_locale(locale)))

    def __str__(self) -> str:
        return f"{self.decimal} {self.currency}"


@lru_cache(maxsize=64)
def _locale(name: str) -> Locale:
    # Babel parses a locale name on every call; a message formats two amounts.
    return Locale.parse(name)


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


def format_minor(minor: int, currency: str = "CNY", locale: str = "zh_CN") -> str:
    """Format integer minor units for people."""
    return Money(minor, currency).format(locale)
