"""The only place that reads the wall clock.

Everything else takes an explicit time or date (``--as-of``), so batches can be replayed and tested.
Timestamps are stored in UTC; contact rules convert to the debtor's local zone with `to_local`.
"""

from __future__ import annotations

import os
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from arrears.errors import ValidationFailed

DEFAULT_ZONE = "Asia/Shanghai"
FROZEN_NOW_ENV = "ARREARS_FROZEN_NOW"


def now() -> datetime:
    """Current time, timezone-aware UTC.

    ``ARREARS_FROZEN_NOW`` (an ISO timestamp with its offset) freezes it: demos and end-to-end tests
    replay a fixed moment, e.g. ``2026-03-02T10:00:00+08:00``.
    """
    frozen = os.environ.get(FROZEN_NOW_ENV)
    if frozen:
        moment = datetime.fromisoformat(frozen)
        if moment.tzinfo is None:
            raise ValidationFailed(f"{FROZEN_NOW_ENV} needs an offset, got {frozen!r}", code="naive_datetime")
        return moment.astimezone(UTC)
    return datetime.now(UTC)


def today(zone: str = DEFAULT_ZONE) -> date:
    """Today's date in a zone (a portfolio's business day)."""
    return now().astimezone(zone_info(zone)).date()


def zone_info(name: str) -> ZoneInfo:
    """A ZoneInfo for an IANA name, with a clear error for a wrong one."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValidationFailed(f"unknown time zone {name!r}", code="unknown_time_zone") from exc


def as_utc(moment: datetime) -> datetime:
    """Normalise an aware datetime to UTC; a naive one is refused (its zone would be a guess)."""
    if moment.tzinfo is None:
        raise ValidationFailed("timestamp has no time zone", code="naive_datetime")
    return moment.astimezone(UTC)


def to_local(moment: datetime, zone: str) -> datetime:
    """The same instant in a local zone."""
    return as_utc(moment).astimezone(zone_info(zone))


def parse_as_of(text: str | None, zone: str = DEFAULT_ZONE) -> date:
    """Parse an ``--as-of`` date (ISO ``YYYY-MM-DD``); ``None`` means today in the zone."""
    if text is None or text == "":
        return today(zone)
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise ValidationFailed(f"--as-of must be YYYY-MM-DD, got {text!r}", code="bad_as_of") from exc
