"""The compliance gate for a whole day's plan at once: the pure `decide` called once per group, not per row.

A planned contact's decision at plan time depends only on a handful of attributes: the rule pack, the
channel, the action's local window, the debtor's candidate time zones, the contact point's owner and
opt-out, whether the debtor's own numbers are all invalid (CN-3), the product (CN-8), whether the debt is
time-barred (CN-22 / US-8) and the purpose. Rows with the same attributes get the same decision, so
`check_planned` calls `arrears.compliance.rules.decide` once per distinct group, with an empty history:
per-contact-point caps and frequency rules (CN-2, US-2) concern calls, which the real-time gate checks
again when a collector claims the work item.

Outcome per row (``gate`` column):

* ``allowed``: the contact may happen at the window's start (``planned_for``) until ``window_end_at``;
* ``rescheduled``: blocked at the window's start, allowed later (the gate's ``next_allowed_at``, kept
  inside the action's window on that day or one of the next `SEARCH_DAYS` days);
* ``blocked``: only a person or new facts can allow it (a standing rule, no contact point, no window);
  ``rule_ids`` and ``reason`` say why.

Legal referrals have no channel (an approval request, never sent to the debtor) and pass through as
``approval``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

import polars as pl

from arrears.compliance.pack import RulePack
from arrears.compliance.rules import decide
from arrears.compliance.schemas import AccountState, Attempt, Context, Decision, Purpose
from arrears.compliance.schemas import ContactPoint as GateContactPoint
from arrears.compliance.zones import local_instant, zones_for_phone
from arrears.enums import Channel, ContactKind, OwnerRelation, Product

SEARCH_DAYS = 7  # how many later days a blocked contact may move to, inside its action window
PHONE_PREFIX = 8  # characters of an E.164 number that decide its zones (country + area code and more)
NO_CONTACT = "no_contact_point"
NO_WINDOW = "no_window"

GATE_COLUMNS = (
    "channel",
    "window_start",
    "window_end",
    "zones",
    "has_contact",
    "contact_kind",
    "owner_relation",
    "debt_related",
    "opted_out",
    "numbers_invalid",
    "time_barred",
    "product",
    "audience",
)
"""The attributes a plan-time decision depends on (the group key)."""

_RESULT_SCHEMA: dict[str, pl.DataType] = {
    "gate": pl.String(),
    "planned_for": pl.Datetime("us", "UTC"),
    "window_end_at": pl.Datetime("us", "UTC"),
    "gate_rule_ids": pl.List(pl.String()),
    "gate_reason": pl.String(),
}


@dataclass(frozen=True, slots=True)
class GroupOutcome:
    """The decision for one group of planned contacts."""

    gate: str
    planned_for: datetime | None
    window_end_at: datetime | None
    rule_ids: tuple[str, ...]
    reason: str | None


def phone_zones(values: pl.Series) -> pl.Series:
    """Candidate zones (``"A|B"``, sorted; ``""`` when unknown) of E.164 phone numbers.

    Zones are looked up once per `PHONE_PREFIX`-character prefix with one real number as representative:
    phonenumbers keys its zone data by shorter prefixes than that, and a million distinct numbers would
    otherwise cost a million parses.
    """
    frame = pl.DataFrame({"value": values}, schema={"value": pl.String()})
    prefixes = (
        frame.filter(pl.col("value").str.starts_with("+"))
        .with_columns(pl.col("value").str.slice(0, PHONE_PREFIX).alias("prefix"))
        .group_by("prefix")
        .agg(pl.col("value").min().alias("sample"))
    )
    lookup = prefixes.with_columns(
        pl.Series("zones", ["|".join(zones_for_phone(v)) for v in prefixes["sample"]], dtype=pl.String())
    ).select("prefix", "zones")
    return (
        frame.with_columns(pl.col("value").str.slice(0, PHONE_PREFIX).alias("prefix"))
        .join(lookup, on="prefix", how="left", maintain_order="left")
        .select(pl.col("zones").fill_null(""))
        .to_series()
        .alias("zones")
    )


def _reason_text(decision: Decision) -> str:
    return "; ".join(f"{r.rule_id} {r.zh} / {r.en}" for r in decision.reasons)


def _window(day: date, start: time, end: time, zones: tuple[str, ...]) -> tuple[datetime, datetime]:
    """The window in UTC on a local date: open once it has opened in every zone, until it closes in any."""
    opens = max(local_instant(day, start, z) for z in zones)
    closes = min(local_instant(day, end, z) for z in zones)
    return opens, closes


def decide_group(
    key: dict[str, object], *, pack: RulePack, as_of: date, portfolio_zone: str, collector_id: str
) -> GroupOutcome:
    """Decide one group (a row of the `GATE_COLUMNS` values) on ``as_of``; see the module docstring."""
    channel = key["channel"]
    start, end = key["window_start"], key["window_end"]
    assert isinstance(start, time) and isinstance(end, time)
    zone_text = str(key["zones"] or "")
    zones = tuple(z for z in zone_text.split("|") if z) or (portfolio_zone,)
    if channel is None:  # a legal referral: an approval request, not a contact
        opens, closes = _window(as_of, start, end, (portfolio_zone,))
        return GroupOutcome("approval", opens, closes, (), None)
    if not key["has_contact"]:
        return GroupOutcome(
            "blocked", None, None, (), f"{NO_CONTACT}: 没有可用的联系方式 / no usable contact point"
        )
    third_party = key["audience"] == "third_party"
    point = GateContactPoint(
        value=f"group:{zone_text}",
        kind=ContactKind(str(key["contact_kind"] or ContactKind.OTHER.value)),
        owner_relation=OwnerRelation(str(key["owner_relation"] or OwnerRelation.SELF.value)),
        debt_related=bool(key["debt_related"]),
        opted_out=bool(key["opted_out"]),
        time_zones=zones,
    )
    product = str(key["product"] or Product.OTHER.value)
    context = Context(
        portfolio_time_zone=portfolio_zone,
        debtor_numbers_invalid=bool(key["numbers_invalid"]),
        accounts={
            0: AccountState(
                product=Product(product) if product in Product._value2member_map_ else Product.OTHER,
                time_barred=bool(key["time_barred"]),
            )
        },
    )
    purpose = Purpose.MESSAGE_PASSING if third_party else Purpose.DEBT_COLLECTION

    def check(at: datetime) -> Decision:
        attempt = Attempt(
            at=at,
            channel=Channel(str(channel)),
            contact_point=point,
            account_ids=frozenset({0}),
            collector_id=collector_id,
            purpose=purpose,
        )
        return decide(attempt, (), context, pack)

    opens, closes = _window(as_of, start, end, zones)
    first = check(opens)
    if first.allowed and opens < closes:
        return GroupOutcome("allowed", opens, closes, (), None)
    rule_ids, reason = (
        first.rule_ids,
        _reason_text(first) or f"{NO_WINDOW}: 各时区无共同窗口 / no common window",
    )
    later = first.next_allowed_at
    for offset in range(SEARCH_DAYS + 1):
        if later is None:
            return GroupOutcome("blocked", None, None, rule_ids, reason)
        day_opens, day_closes = _window(as_of + timedelta(days=offset), start, end, zones)
        candidate = max(day_opens, later)
        if candidate >= day_closes:
            continue
        decision = check(candidate)
        if decision.allowed:
            return GroupOutcome("rescheduled", candidate, day_closes, rule_ids, reason)
        later = decision.next_allowed_at
    return GroupOutcome(
        "blocked", None, None, rule_ids, f"{reason}; {NO_WINDOW}: 近期无允许的联系时间 / no allowed time soon"
    )


def check_planned(
    planned: pl.DataFrame, *, pack: RulePack, as_of: date, portfolio_zone: str, collector_id: str
) -> pl.DataFrame:
    """Add the gate's outcome to every planned action (columns `GATE_COLUMNS` required).

    Adds ``gate``, ``planned_for`` and ``window_end_at`` (UTC), ``gate_rule_ids`` and ``gate_reason``.
    """
    keys = list(GATE_COLUMNS)
    if planned.height == 0:
        return planned.with_columns(pl.lit(None, dtype).alias(name) for name, dtype in _RESULT_SCHEMA.items())
    groups = planned.select(keys).unique(maintain_order=True)
    outcomes = [
        decide_group(row, pack=pack, as_of=as_of, portfolio_zone=portfolio_zone, collector_id=collector_id)
        for row in groups.iter_rows(named=True)
    ]
    results = groups.with_columns(*_outcome_series(outcomes))
    return planned.join(results, on=keys, how="left", maintain_order="left", nulls_equal=True)


def _outcome_series(outcomes: Iterable[GroupOutcome]) -> list[pl.Series]:
    items = list(outcomes)
    return [
        pl.Series("gate", [o.gate for o in items], dtype=pl.String()),
        pl.Series("planned_for", [_utc(o.planned_for) for o in items], dtype=pl.Datetime("us", "UTC")),
        pl.Series("window_end_at", [_utc(o.window_end_at) for o in items], dtype=pl.Datetime("us", "UTC")),
        pl.Series("gate_rule_ids", [list(o.rule_ids) for o in items], dtype=pl.List(pl.String())),
        pl.Series("gate_reason", [o.reason for o in items], dtype=pl.String()),
    ]


def _utc(moment: datetime | None) -> datetime | None:
    return moment.astimezone(UTC) if moment is not None else None
