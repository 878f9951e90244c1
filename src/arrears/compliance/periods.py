"""Calendar arithmetic for the rules: years, months, business days, and the periods built on them.

Pure date maths; the numbers come from the rule pack (US-7 validation period, CN-8 / CN-33 / PI-10 / US-9
record retention).
"""

from __future__ import annotations

import calendar
from collections.abc import Collection
from datetime import date, timedelta

from arrears.compliance.pack import RulePack
from arrears.errors import ValidationFailed

_WEEKEND = frozenset({5, 6})


def add_years(day: date, years: int) -> date:
    """The same calendar date ``years`` later (29 February becomes 28 February)."""
    try:
        return day.replace(year=day.year + years)
    except ValueError:
        return day.replace(year=day.year + years, day=28)


def add_months(day: date, months: int) -> date:
    """The same day of the month ``months`` later (or earlier), clamped to the month's last day."""
    index = day.year * 12 + (day.month - 1) + months
    year, month = divmod(index, 12)
    last = calendar.monthrange(year, month + 1)[1]
    return date(year, month + 1, min(day.day, last))


def add_business_days(day: date, days: int, holidays: Collection[date] = ()) -> date:
    """``days`` business days after ``day`` (Saturdays, Sundays and ``holidays`` skipped)."""
    current = day
    remaining = days
    while remaining > 0:
        current += timedelta(days=1)
        if current.weekday() not in _WEEKEND and current not in holidays:
            remaining -= 1
    return current


def validation_period_ends_on(sent_on: date, pack: RulePack, holidays: Collection[date] = ()) -> date:
    """US-7: receipt is assumed N business days after sending; the validation period ends M days later."""
    rule = pack.validation
    if rule is None:
        raise ValidationFailed(f"rule pack {pack.name} has no validation period", code="no_validation_rule")
    receipt = add_business_days(sent_on, rule.assumed_receipt_business_days, holidays)
    return receipt + timedelta(days=rule.period_days)


def retention_until(record: str, counted_from: date, pack: RulePack) -> tuple[date, str]:
    """CN-8, CN-33, PI-10, US-9: the last day a kind of record must be kept, and the rule id."""
    for rule in pack.retention:
        if rule.record == record:
            return add_years(counted_from, rule.years), rule.id
    known = ", ".join(r.record for r in pack.retention)
    raise ValidationFailed(
        f"rule pack {pack.name} has no retention rule for {record!r} (known: {known})",
        code="no_retention_rule",
    )
