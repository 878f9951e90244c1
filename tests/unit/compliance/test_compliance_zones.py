"""Candidate time zones (CN-1, US-1)."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from arrears.compliance.schemas import ContactPoint, Context
from arrears.compliance.zones import candidate_zones, local_instant, zones_for_phone
from arrears.enums import ContactKind

ZONES = ["Asia/Shanghai", "America/New_York", "America/Los_Angeles", "Europe/London", "Australia/Lord_Howe"]


def test_zones_for_phone_from_number() -> None:
    assert zones_for_phone("+8613800138000") == ("Asia/Shanghai",)
    assert zones_for_phone("+13105550100") == ("America/Los_Angeles",)
    assert len(zones_for_phone("+18005550100")) > 5  # toll-free: anywhere in the plan
    assert zones_for_phone("not a number") == ()


def test_candidate_zones_union_of_address_and_phone_with_portfolio_fallback() -> None:
    la = ContactPoint("+13105550100")
    assert candidate_zones(la, Context(debtor_time_zones=("America/New_York",)), "Asia/Shanghai") == (
        "America/Los_Angeles",
        "America/New_York",
    )
    email = ContactPoint("a@example.com", kind=ContactKind.EMAIL)
    assert candidate_zones(email, Context(), "Asia/Shanghai") == ("Asia/Shanghai",)
    assert candidate_zones(email, Context(portfolio_time_zone="Europe/London"), "Asia/Shanghai") == (
        "Europe/London",
    )


@given(
    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2060, 1, 1), timezones=st.just(UTC)),
    st.sampled_from(ZONES),
)
def test_time_zone_conversion_round_trips(moment: datetime, zone_name: str) -> None:
    from zoneinfo import ZoneInfo

    local = moment.astimezone(ZoneInfo(zone_name))
    back = local_instant(local.date(), local.time(), zone_name)
    # Wall times repeat once a year (fall back); the round trip then lands on the earlier instant.
    assert back == moment or (local.fold == 1 and back < moment)
    assert back.astimezone(ZoneInfo(zone_name)).replace(tzinfo=None, fold=0) == local.replace(
        tzinfo=None, fold=0
    )
