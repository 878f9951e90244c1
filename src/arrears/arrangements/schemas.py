"""Small value types shared by the arrangement modules (promises, schedules, breaches)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from enum import StrEnum

from arrears.errors import ValidationFailed


class ArrangementKind(StrEnum):
    """What kind of plan was agreed (GLOSSARY: arrangement / 还款方案)."""

    LUMP_SUM = "lump_sum"
    INSTALMENTS = "instalments"
    EXTENSION = "extension"
    SETTLEMENT = "settlement"
    PAYMENT_IN_KIND = "payment_in_kind"


class Frequency(StrEnum):
    """How often regular instalments fall due."""

    WEEKLY = "weekly"
    FORTNIGHTLY = "fortnightly"
    MONTHLY = "monthly"


class MonthEnd(StrEnum):
    """How monthly dates behave when the anchor day does not exist in a month.

    ``clamp``: keep the first date's day of month, or the month's last day when the month is shorter
    (Jan 31 -> Feb 28 -> Mar 31). ``follow``: as ``clamp``, and a first date on the last day of its month
    keeps to month ends (Apr 30 -> May 31 -> Jun 30).
    """

    CLAMP = "clamp"
    FOLLOW = "follow"


class InstalmentKind(StrEnum):
    """What one scheduled line is."""

    DOWN_PAYMENT = "down_payment"
    REGULAR = "regular"
    IN_KIND = "in_kind"


@dataclass(frozen=True, slots=True)
class ScheduledInstalment:
    """One line of a plan's schedule: the ``seq``-th amount due on ``due_on``."""

    seq: int
    due_on: date
    amount_minor: int
    kind: InstalmentKind = InstalmentKind.REGULAR

    def __post_init__(self) -> None:
        if self.seq < 1:
            raise ValidationFailed("instalment seq starts at 1", code="bad_instalment_seq")
        if self.amount_minor <= 0:
            raise ValidationFailed("an instalment amount must be positive", code="bad_instalment_amount")


@dataclass(frozen=True, slots=True)
class Payment:
    """Money received for an account or a plan (net of reversals: a reversed payment is left out)."""

    received_on: date
    amount_minor: int
    currency: str = "CNY"
    ref: str | None = None

    def __post_init__(self) -> None:
        if self.amount_minor <= 0:
            raise ValidationFailed("a payment amount must be positive", code="bad_payment_amount")


@dataclass(frozen=True, slots=True)
class Arrangement:
    """An agreed (saved) plan, as the limitation and breach logic need it."""

    ref: str
    kind: ArrangementKind
    agreed_on: date
    currency: str
    schedule: tuple[ScheduledInstalment, ...]
    accrual_paused: bool = False
