"""Arrangement policy per portfolio, as data (TOML): limits on discounts, terms and instalments, and the
thresholds above which a supervisor must approve a plan.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from importlib import resources
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from arrears.arrangements.schemas import ArrangementKind
from arrears.enums import Component, Role
from arrears.errors import ConfigurationError, ValidationFailed
from arrears.money import format_minor

BPS = 10_000  # basis points in a whole

Unit = Literal["bps", "minor", "count", "months", "days", "kind"]


class DiscountBand(BaseModel):
    """The maximum discount for accounts in a DPD range (inclusive) and balance range ([min, max))."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    dpd_min: int = Field(default=0, ge=0)
    dpd_max: int | None = Field(default=None, ge=0)
    balance_min_minor: int = Field(default=0, ge=0)
    balance_max_minor: int | None = Field(default=None, ge=0)
    max_discount_bps: int = Field(ge=0, le=BPS)

    def matches(self, dpd: int, balance_minor: int) -> bool:
        """Whether an account with this DPD and balance falls in the band."""
        if dpd < self.dpd_min or (self.dpd_max is not None and dpd > self.dpd_max):
            return False
        if balance_minor < self.balance_min_minor:
            return False
        return self.balance_max_minor is None or balance_minor < self.balance_max_minor


class ApprovalThresholds(BaseModel):
    """Within policy, what still needs a supervisor's approval (``None`` = no threshold)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    approver_role: Role = Role.SUPERVISOR
    discount_bps_over: int | None = Field(default=None, ge=0, le=BPS)
    waiver_minor_over: int | None = Field(default=None, ge=0)
    instalments_over: int | None = Field(default=None, ge=0)
    accrual_pause: bool = True
    kinds: frozenset[ArrangementKind] = frozenset({ArrangementKind.PAYMENT_IN_KIND})

    @field_validator("kinds")
    @classmethod
    def _in_kind_always(cls, kinds: frozenset[ArrangementKind]) -> frozenset[ArrangementKind]:
        # Payment in kind always needs approval, whatever the file says: its value is a judgement.
        return kinds | {ArrangementKind.PAYMENT_IN_KIND}


class ArrangementPolicy(BaseModel):
    """The arrangement policy of a portfolio (see ``policies/default.toml`` for the meaning of fields)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    version: int = 1
    currency: str = "CNY"
    max_instalments: int = Field(ge=1)
    max_term_months: int = Field(ge=0)
    min_instalment_minor: int = Field(ge=0)
    max_extension_days: int = Field(ge=0)
    max_settlement_payments: int = Field(ge=1)
    breach_days: int = Field(ge=1)
    promise_grace_days: int = Field(ge=0)
    waiver_order: tuple[Component, ...]
    component_waiver_bps: dict[Component, int] = Field(default_factory=dict)
    discount_bands: tuple[DiscountBand, ...] = ()
    approval: ApprovalThresholds = ApprovalThresholds()

    @field_validator("waiver_order")
    @classmethod
    def _order_complete(cls, order: tuple[Component, ...]) -> tuple[Component, ...]:
        if sorted(order) != sorted(Component):
            raise ValueError("waiver_order must list every component exactly once")
        return order

    @field_validator("component_waiver_bps")
    @classmethod
    def _bps_range(cls, caps: dict[Component, int]) -> dict[Component, int]:
        for component, bps in caps.items():
            if not 0 <= bps <= BPS:
                raise ValueError(f"component_waiver_bps.{component} must be within 0..{BPS}")
        return caps

    def max_discount_bps(self, dpd: int, balance_minor: int) -> int:
        """The maximum overall discount for an account: the first matching band's, else 0."""
        for band in self.discount_bands:
            if band.matches(dpd, balance_minor):
                return band.max_discount_bps
        return 0

    def component_cap_minor(self, component: Component, balance_minor: int) -> int:
        """The most of ``component`` that may be waived within policy (rounded down to a minor unit)."""
        return balance_minor * self.component_waiver_bps.get(component, 0) // BPS


def policy_from_mapping(data: dict[str, Any]) -> ArrangementPolicy:
    """Validate a policy read from TOML (or stored as JSON); a bad file is a configuration error."""
    try:
        return ArrangementPolicy.model_validate(data)
    except ValidationError as exc:
        raise ConfigurationError(
            f"invalid arrangement policy: {exc.error_count()} error(s)",
            code="bad_arrangement_policy",
            details=exc.errors(include_url=False),
        ) from exc


def parse_policy(text: str) -> ArrangementPolicy:
    """A policy from TOML text (an operator's own file)."""
    try:
        return policy_from_mapping(tomllib.loads(text))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"arrangement policy is not valid TOML: {exc}", code="bad_toml") from exc


@cache
def load_policy(name: str = "default") -> ArrangementPolicy:
    """A policy shipped with the package (``arrangements/policies/<name>.toml``)."""
    resource = resources.files("arrears.arrangements").joinpath("policies", f"{name}.toml")
    if not resource.is_file():
        raise ValidationFailed(f"unknown arrangement policy {name!r}", code="unknown_arrangement_policy")
    return parse_policy(resource.read_text(encoding="utf-8"))


# --- findings: which limit a quote exceeds, or why it needs approval, in both languages ---------------


@cache
def _messages() -> dict[str, Any]:
    text = resources.files("arrears.arrangements").joinpath("messages.toml").read_text(encoding="utf-8")
    return tomllib.loads(text)


def _show(value: int | str, unit: Unit, currency: str, locale: str) -> str:
    if isinstance(value, str):  # a kind
        return str(_messages()["kinds"][locale].get(value, value))
    if unit == "bps":
        percent = (Decimal(value) / 100).normalize()
        return f"{percent:f}%"
    if unit == "minor":
        return format_minor(value, currency, locale)
    return str(value)


@dataclass(frozen=True, slots=True)
class PolicyFinding:
    """One exceeded limit or approval trigger, with what the limit was and what the quote has."""

    code: str
    limit: int
    actual: int | str
    unit: Unit
    message_zh: str
    message_en: str
    component: Component | None = None


def finding(
    code: str,
    *,
    limit: int,
    actual: int | str,
    unit: Unit,
    currency: str,
    component: Component | None = None,
) -> PolicyFinding:
    """Build a finding with its zh_CN and en messages from ``messages.toml``."""
    texts = _messages()[code]
    rendered = {}
    for locale in ("zh_CN", "en"):
        rendered[locale] = texts[locale].format(
            limit=_show(limit, unit, currency, locale),
            actual=_show(actual, unit, currency, locale),
            component=_messages()["components"][locale][component.value] if component else "",
        )
    return PolicyFinding(
        code=code,
        limit=limit,
        actual=actual,
        unit=unit,
        message_zh=rendered["zh_CN"],
        message_en=rendered["en"],
        component=component,
    )
