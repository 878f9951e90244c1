"""Small builders for the compliance tests (plain values, no database)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from arrears.compliance.pack import RulePack, load_pack
from arrears.compliance.schemas import (
    Attempt,
    ContactPoint,
    Context,
    Direction,
    Outcome,
    PriorAttempt,
    Purpose,
)
from arrears.enums import Channel, OwnerRelation

CN = load_pack("cn")
US = load_pack("us-regf")
SHANGHAI = "Asia/Shanghai"
NEW_YORK = "America/New_York"

DEBTOR_CN = ContactPoint("+8613800138000", time_zones=(SHANGHAI,))
DEBTOR_US = ContactPoint("+12125550100", time_zones=(NEW_YORK,))


def local(zone: str, y: int, mo: int, d: int, h: int = 10, mi: int = 0, s: int = 0) -> datetime:
    """An aware-UTC instant from a local wall time."""
    return datetime(y, mo, d, h, mi, s, tzinfo=ZoneInfo(zone)).astimezone(UTC)


def sh(y: int, mo: int, d: int, h: int = 10, mi: int = 0, s: int = 0) -> datetime:
    return local(SHANGHAI, y, mo, d, h, mi, s)


def ny(y: int, mo: int, d: int, h: int = 10, mi: int = 0, s: int = 0) -> datetime:
    return local(NEW_YORK, y, mo, d, h, mi, s)


def attempt(
    at: datetime,
    contact: ContactPoint = DEBTOR_CN,
    *,
    channel: Channel = Channel.CALL,
    accounts: frozenset[int] = frozenset({1}),
    collector: str = "bank",
    purpose: Purpose = Purpose.DEBT_COLLECTION,
    direction: Direction = Direction.OUTBOUND,
    **extra: object,
) -> Attempt:
    return Attempt(
        at=at,
        channel=channel,
        contact_point=contact,
        account_ids=accounts,
        collector_id=collector,
        purpose=purpose,
        direction=direction,
        **extra,  # type: ignore[arg-type]
    )


def prior(
    at: datetime,
    outcome: Outcome = Outcome.NO_ANSWER,
    contact: ContactPoint = DEBTOR_CN,
    *,
    channel: Channel = Channel.CALL,
    accounts: frozenset[int] = frozenset({1}),
    collector: str = "bank",
    direction: Direction = Direction.OUTBOUND,
) -> PriorAttempt:
    return PriorAttempt(
        at=at,
        channel=channel,
        contact_point=contact,
        account_ids=accounts,
        collector_id=collector,
        outcome=outcome,
        direction=direction,
    )


def third_party(
    relation: OwnerRelation = OwnerRelation.EMERGENCY_CONTACT, *, debt_related: bool = False, **kw: object
) -> ContactPoint:
    return ContactPoint(
        "+8613900139000",
        owner_relation=relation,
        owner_name="李四",
        debt_related=debt_related,
        time_zones=(SHANGHAI,),
        **kw,  # type: ignore[arg-type]
    )


def calls(times: list[datetime], outcome: Outcome = Outcome.NO_ANSWER, **kw: object) -> list[PriorAttempt]:
    return [prior(t, outcome, **kw) for t in times]  # type: ignore[arg-type]


def every(start: datetime, n: int, step: timedelta) -> list[datetime]:
    return [start + i * step for i in range(n)]


__all__ = ["CN", "US", "Context", "RulePack"]
