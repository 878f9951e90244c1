"""Where the debtor is: candidate time zones for the contact rules (CN-1, US-1).

A debtor's location may be uncertain (a US toll-free or mobile number, an address in one zone and a phone
in another). US-1 then asks that a time be convenient in *every* possible zone, so the gate works with a
set of candidate zones rather than one.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import phonenumbers
from phonenumbers import timezone as phone_timezone

from arrears.clock import zone_info
from arrears.compliance.schemas import ContactPoint, Context
from arrears.enums import ContactKind

_UNKNOWN = "Etc/Unknown"
_PHONE_KINDS = frozenset({ContactKind.MOBILE, ContactKind.LANDLINE})


@lru_cache(maxsize=4096)
def zones_for_phone(number: str, region: str | None = None) -> tuple[str, ...]:
    """IANA zones a phone number may be in (phonenumbers' geocoding data), sorted; () when unknown.

    ``number`` is E.164 (``+8613800138000``) or national with a ``region`` (``"CN"``).
    """
    try:
        parsed = phonenumbers.parse(number, region)
    except phonenumbers.NumberParseException:
        return ()
    zones = phone_timezone.time_zones_for_number(parsed)
    return tuple(sorted(z for z in zones if z != _UNKNOWN))


def candidate_zones(contact_point: ContactPoint, context: Context, default_zone: str) -> tuple[str, ...]:
    """Every zone the debtor may be in for this contact, deduplicated and sorted.

    The union of the debtor's known zones (from address or declared) and the contact point's zones (given,
    or derived from a phone number); the portfolio's zone, else ``default_zone``, when neither is known.
    """
    zones = set(context.debtor_time_zones)
    if contact_point.time_zones:
        zones.update(contact_point.time_zones)
    elif contact_point.kind in _PHONE_KINDS and contact_point.value.startswith("+"):
        zones.update(zones_for_phone(contact_point.value))
    if not zones:
        zones.add(context.portfolio_time_zone or default_zone)
    return tuple(sorted(zones))


@lru_cache(maxsize=512)
def zone(name: str) -> ZoneInfo:
    """A cached ZoneInfo (validated by `arrears.clock.zone_info`)."""
    return zone_info(name)


def local_midnight(day: date, zone_name: str) -> datetime:
    """The aware-UTC instant at which a local date starts in a zone."""
    return local_instant(day, time(0, 0), zone_name)


def local_instant(day: date, at: time, zone_name: str) -> datetime:
    """The aware-UTC instant of a local date and wall time (the earlier one if the wall time repeats)."""
    # A wall time inside a spring-forward gap does not exist; zoneinfo maps it past the gap.
    return datetime.combine(day, at, tzinfo=zone(zone_name)).astimezone(UTC)


def next_local_midnight(moment: datetime, zone_name: str) -> datetime:
    """The aware-UTC instant of the next local midnight after ``moment``."""
    day = moment.astimezone(zone(zone_name)).date()
    return local_midnight(day + timedelta(days=1), zone_name)
