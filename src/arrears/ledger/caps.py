"""The LPR table and the caps on charges (CN-30 and per-product caps), as data.

`LprTable` answers "which one-year LPR was in force on a date" from ``ledger/data/lpr.toml``.
`CapTable` answers "what annual cap applies to this account": for private lending (the creditor is not a
licensed lender) CN-30 caps contract interest, penalty interest and fees together at 4 x the one-year LPR
at the contract date; licensed lenders' products carry their own configured caps (``caps.toml``).

A cap is an annual rate on the contract principal over the time since the contract date; `cap_amount`
turns it into the most that may have been charged by the end of a day.
"""

from __future__ import annotations

import bisect
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from importlib import resources
from typing import Any

from arrears.enums import Product
from arrears.errors import ConfigurationError, NotFound

PPM = 1_000_000
DAYS_PER_YEAR_FOR_CAPS = 365  # caps are annual rates applied per actual day (ACT/365)


@dataclass(frozen=True, slots=True)
class LprRate:
    """One published LPR, in force from ``effective_date`` until the next row."""

    effective_date: date
    one_year_ppm: int
    five_year_ppm: int


@dataclass(frozen=True, slots=True)
class LprTable:
    """Published LPRs, sorted by date."""

    rates: tuple[LprRate, ...]

    def __post_init__(self) -> None:
        dates = [r.effective_date for r in self.rates]
        if not dates or dates != sorted(set(dates)):
            raise ConfigurationError(
                "LPR table must have rows in increasing date order", code="bad_lpr_table"
            )

    @property
    def dates(self) -> list[date]:
        """Effective dates, ascending."""
        return [r.effective_date for r in self.rates]

    def on(self, day: date) -> LprRate:
        """The LPR in force on ``day``; a day before the first row is refused (no LPR existed yet)."""
        i = bisect.bisect_right(self.dates, day) - 1
        if i < 0:
            raise NotFound(
                f"no LPR published on or before {day} (该日期前无LPR报价)",
                code="lpr_unknown",
                details=str(day),
            )
        return self.rates[i]

    def one_year_ppm(self, day: date) -> int:
        """The one-year LPR in force on ``day``, in parts per million."""
        return self.on(day).one_year_ppm


def parse_lpr_table(data: Mapping[str, Any]) -> LprTable:
    """An `LprTable` from the TOML structure of ``lpr.toml``."""
    try:
        rows = [
            LprRate(r["effective_date"], int(r["one_year_ppm"]), int(r["five_year_ppm"]))
            for r in data["rate"]
        ]
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigurationError(f"bad LPR table: {exc}", code="bad_lpr_table") from exc
    return LprTable(tuple(rows))


def load_lpr_table() -> LprTable:
    """The shipped LPR table (``ledger/data/lpr.toml``)."""
    text = resources.files("arrears.ledger").joinpath("data", "lpr.toml").read_text(encoding="utf-8")
    return parse_lpr_table(tomllib.loads(text))


@dataclass(frozen=True, slots=True)
class CapTable:
    """Cap parameters: CN-30 for private lending, per-product annual caps for licensed lenders."""

    private_rule_id: str
    lpr_multiplier: int
    licensed_rule_id: str
    licensed_default_ppm: int | None
    licensed_product_ppm: Mapping[str, int] = field(default_factory=dict)

    def annual_cap(
        self, *, licensed_lender: bool, product: Product | str, origination_date: date, lpr: LprTable
    ) -> tuple[int | None, str]:
        """The annual cap in ppm for an account and the rule that sets it; ``None`` when uncapped.

        CN-30: private lending uses the one-year LPR in force at the contract (origination) date, however
        the LPR moves afterwards.
        """
        if licensed_lender:
            ppm = self.licensed_product_ppm.get(str(product), self.licensed_default_ppm)
            return ppm, self.licensed_rule_id
        return self.lpr_multiplier * lpr.one_year_ppm(origination_date), self.private_rule_id


def parse_caps(data: Mapping[str, Any]) -> CapTable:
    """A `CapTable` from the TOML structure of ``caps.toml``."""
    try:
        private = data["private_lending"]
        licensed = data["licensed"]
        if private.get("lpr_tenor", "one_year") != "one_year":
            raise ValueError("only the one-year LPR is supported for CN-30")
        default = licensed.get("default_annual_ppm")
        return CapTable(
            private_rule_id=str(private["rule_id"]),
            lpr_multiplier=int(private["lpr_multiplier"]),
            licensed_rule_id=str(licensed["rule_id"]),
            licensed_default_ppm=None if default is None else int(default),
            licensed_product_ppm={str(k): int(v) for k, v in licensed.get("product_annual_ppm", {}).items()},
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigurationError(f"bad caps table: {exc}", code="bad_caps") from exc


def load_caps() -> CapTable:
    """The shipped caps (``ledger/data/caps.toml``)."""
    text = resources.files("arrears.ledger").joinpath("data", "caps.toml").read_text(encoding="utf-8")
    return parse_caps(tomllib.loads(text))


def cap_amount(cap_base_minor: int, annual_cap_ppm: int, origination_date: date, through_date: date) -> int:
    """The most that may have been charged by the end of ``through_date``: base x rate x days / 365.

    Days count the contract date itself, so the cap after the first day is one day's worth. Rounded down
    (a cap is never exceeded). Computed as quotient and remainder so that a vectorised twin can stay in
    64-bit integers.
    """
    days = (through_date - origination_date).days + 1
    if days <= 0 or cap_base_minor <= 0:
        return 0
    per_year = cap_base_minor * annual_cap_ppm
    q, r = divmod(per_year, DAYS_PER_YEAR_FOR_CAPS * PPM)
    return q * days + (r * days) // (DAYS_PER_YEAR_FOR_CAPS * PPM)


def lpr_dates_and_rates(lpr: LprTable) -> tuple[Sequence[date], Sequence[int]]:
    """The table as two parallel columns (for vectorised look-ups)."""
    return [r.effective_date for r in lpr.rates], [r.one_year_ppm for r in lpr.rates]
