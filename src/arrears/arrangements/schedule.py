"""Schedule maths: due dates by frequency (with month-end handling) and amounts that sum exactly."""

from __future__ import annotations

import calendar
from datetime import date, timedelta

from arrears.arrangements.schemas import Frequency, InstalmentKind, MonthEnd, ScheduledInstalment
from arrears.errors import ValidationFailed
from arrears.money import split_evenly

_DAYS = {Frequency.WEEKLY: 7, Frequency.FORTNIGHTLY: 14}


def _last_day(year: int, month: int) -> int:
    return calendar.monthrange(year, month)[1]


def add_months(
    start: date, months: int, *, anchor_day: int | None = None, to_month_end: bool = False
) -> date:
    """``start`` moved by ``months`` calendar months, keeping ``anchor_day`` (default: start's day).

    A day that does not exist in the target month becomes that month's last day; ``to_month_end`` always
    lands on the last day.
    """
    index = start.year * 12 + (start.month - 1) + months
    year, month = divmod(index, 12)
    month += 1
    last = _last_day(year, month)
    if to_month_end:
        return date(year, month, last)
    day = anchor_day if anchor_day is not None else start.day
    return date(year, month, min(day, last))


def months_between(start: date, end: date) -> int:
    """Whole calendar months from ``start`` to ``end``, a part month counting as one (0 if end <= start)."""
    if end <= start:
        return 0
    months = (end.year - start.year) * 12 + (end.month - start.month)
    # add_months(start, months - 1) lies in the month before end's, so only one step up can be needed.
    return months + 1 if add_months(start, months) < end else months


def due_dates(
    first_on: date, count: int, frequency: Frequency, *, month_end: MonthEnd = MonthEnd.CLAMP
) -> list[date]:
    """``count`` due dates from ``first_on``, every week, fortnight or month.

    Monthly dates are computed from the first date, never from the previous one, so a short month does not
    pull the rest of the schedule earlier (Jan 31, Feb 28, Mar 31, Apr 30 ...).
    """
    if count < 1:
        raise ValidationFailed("an instalment plan needs at least one instalment", code="bad_count")
    if frequency is Frequency.MONTHLY:
        follow = month_end is MonthEnd.FOLLOW and first_on.day == _last_day(first_on.year, first_on.month)
        return [add_months(first_on, k, to_month_end=follow) for k in range(count)]
    step = _DAYS[frequency]
    return [first_on + timedelta(days=step * k) for k in range(count)]


def split_amount(total_minor: int, count: int, *, rounding_unit_minor: int = 1) -> list[int]:
    """Split ``total_minor`` into ``count`` positive amounts that sum exactly to it.

    With a rounding unit of 1 the amounts differ by at most one minor unit (the first ones carry the
    remainder). With a larger unit (e.g. 100 fen = whole yuan) every amount but the last is the same
    multiple of the unit and the last one takes what is left, so it is never smaller than the others.
    """
    if count < 1:
        raise ValidationFailed("an instalment plan needs at least one instalment", code="bad_count")
    if rounding_unit_minor < 1:
        raise ValidationFailed("the rounding unit must be at least one minor unit", code="bad_rounding")
    if total_minor < count:
        raise ValidationFailed(
            "the amount is too small for that many instalments", code="instalments_too_small"
        )
    if rounding_unit_minor == 1:
        return split_evenly(total_minor, count)
    base = (total_minor // count) // rounding_unit_minor * rounding_unit_minor
    if base == 0:
        raise ValidationFailed(
            "the amount is too small for that many instalments at this rounding unit",
            code="instalments_too_small",
        )
    return [base] * (count - 1) + [total_minor - base * (count - 1)]


def instalment_schedule(
    total_minor: int,
    count: int,
    frequency: Frequency,
    first_on: date,
    *,
    down_payment_minor: int = 0,
    down_payment_on: date | None = None,
    rounding_unit_minor: int = 1,
    month_end: MonthEnd = MonthEnd.CLAMP,
) -> tuple[ScheduledInstalment, ...]:
    """The schedule of a plan of ``count`` regular instalments, after an optional down payment.

    The lines always sum to ``total_minor``. The down payment (if any) is line 1, due on
    ``down_payment_on`` (default: ``first_on``), which may not be after the first regular instalment.
    """
    if total_minor <= 0:
        raise ValidationFailed("the plan total must be positive", code="bad_total")
    if down_payment_minor < 0 or down_payment_minor >= total_minor:
        raise ValidationFailed(
            "the down payment must be at least zero and less than the total", code="bad_down_payment"
        )
    lines: list[ScheduledInstalment] = []
    if down_payment_minor > 0:
        dp_on = down_payment_on or first_on
        if dp_on > first_on:
            raise ValidationFailed(
                "the down payment cannot fall after the first instalment", code="bad_down_payment_date"
            )
        lines.append(ScheduledInstalment(1, dp_on, down_payment_minor, InstalmentKind.DOWN_PAYMENT))
    amounts = split_amount(total_minor - down_payment_minor, count, rounding_unit_minor=rounding_unit_minor)
    dates = due_dates(first_on, count, frequency, month_end=month_end)
    offset = len(lines)
    lines.extend(
        ScheduledInstalment(offset + i + 1, on, amount)
        for i, (on, amount) in enumerate(zip(dates, amounts, strict=True))
    )
    return tuple(lines)
