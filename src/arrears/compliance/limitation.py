"""Limitation dates (CN-20..CN-26, US-8): `limitation_date(events, pack, as_of=...) -> LimitationResult`.

The period runs from the due date (for an instalment debt, the last instalment's due date, CN-21) for
``period_years``. An interrupting event before expiry (a demand that reached the debtor with delivery
evidence or a deduction, CN-25; a promise, partial payment, arrangement, extension request, CN-26; a
lawsuit or arbitration, CN-24) restarts the full period from its date. An obstacle in the last
``suspension_window_months`` suspends the period, which then ends ``suspension_tail_months`` after the
obstacle is gone (CN-23). Nothing goes beyond ``absolute_years`` from the due date (CN-20).

``limitation_on`` is the last day on which the claim is still within the period (the same calendar date
``period_years`` after the start, art. 201 counting); the debt is time-barred on any later day (CN-22).
An acknowledgment after expiry does not restart the period: it is reported as ``waived_by`` (the debtor
can no longer rely on the expiry, CN-22), and the debt stays marked time-barred, so the gate keeps
refusing threats of legal action; a lawyer decides what the waiver allows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from functools import cache
from typing import TYPE_CHECKING, Any

from arrears.compliance import messages
from arrears.compliance.pack import Limitation, RulePack
from arrears.compliance.periods import add_months, add_years
from arrears.compliance.schemas import LimitationEventKind, Reason
from arrears.errors import ValidationFailed

if TYPE_CHECKING:  # polars is loaded by the functions that build frames, not by the gate's imports
    import polars as pl

_K = LimitationEventKind


@dataclass(frozen=True, slots=True)
class LimitationEvent:
    """Something that starts, interrupts or suspends the period.

    ``delivered`` says a demand reached the debtor with evidence (CN-25); ``end_on`` closes an obstacle
    (None = still there); ``ref`` points at the record it comes from (contact attempt, payment ...).
    """

    kind: LimitationEventKind
    on: date
    end_on: date | None = None
    delivered: bool = False
    ref: str | None = None


@dataclass(frozen=True, slots=True)
class LimitationResult:
    """The limitation date, whether it has passed at ``as_of``, and the event that set it."""

    limitation_on: date | None  # None: no due date known, or suspended by an obstacle that has not ended
    time_barred: bool
    as_of: date
    starts_on: date | None
    set_by: LimitationEvent | None
    rule_id: str
    explanation: Reason
    ignored: tuple[tuple[LimitationEvent, Reason], ...] = ()
    waived_by: LimitationEvent | None = None


def _why(code: str, rule_id: str, event: LimitationEvent | None = None, **params: object) -> Reason:
    terms = {"event": f"events.{event.kind.value}"} if event is not None else None
    return messages.reason(code, rule_id, terms, **params)


def _rule_for(rule: Limitation, kind: LimitationEventKind) -> str:
    if kind in rule.demand_events:
        return rule.demand_rule_id or rule.interruption_rule_id or rule.id
    if kind in rule.acknowledgment_events:
        return rule.acknowledgment_rule_id or rule.interruption_rule_id or rule.id
    return rule.interruption_rule_id or rule.id


def limitation_date(events: Iterable[LimitationEvent], pack: RulePack, *, as_of: date) -> LimitationResult:
    """Compute the limitation date of one debt from its events (any order) under ``pack``.

    Raises `ValidationFailed` when the pack has no limitation rule or an obstacle ends before it starts.
    """
    rule = pack.limitation
    if rule is None:
        raise ValidationFailed(f"rule pack {pack.name} has no limitation rule", code="no_limitation_rule")
    items = sorted(events, key=lambda e: (e.on, e.kind.value, e.end_on or date.max, e.ref or "", e.delivered))
    for e in items:
        if e.end_on is not None and e.end_on < e.on:
            raise ValidationFailed(f"{e.kind.value} event ends before it starts ({e.on})", code="bad_event")
    dues = [e for e in items if e.kind == _K.DUE]
    if not dues:
        return LimitationResult(
            limitation_on=None,
            time_barred=False,
            as_of=as_of,
            starts_on=None,
            set_by=None,
            rule_id=rule.id,
            explanation=_why("limitation_no_due", rule.id),
        )
    start = dues[-1]  # CN-21: an instalment debt runs from the last instalment's due date
    years = rule.period_years
    expiry: date | None = add_years(start.on, years)
    set_by: LimitationEvent = start
    if len(dues) > 1 and rule.instalment_rule_id:
        rule_id = rule.instalment_rule_id
        why = _why("limitation_from_last_instalment", rule_id, on=start.on, years=years, until=expiry)
    else:
        rule_id = rule.id
        why = _why("limitation_from_due", rule_id, on=start.on, years=years, until=expiry)
    ignored: list[tuple[LimitationEvent, Reason]] = []
    waived_by: LimitationEvent | None = None

    for e in items:
        if e.kind == _K.DUE or e.on < start.on:
            continue
        if e.kind == _K.OBSTACLE:
            # CN-23: an obstacle in the last months of the period suspends it.
            window, tail = rule.suspension_window_months, rule.suspension_tail_months
            if rule.suspension_rule_id is None or window is None or tail is None or expiry is None:
                continue
            if e.on <= expiry and (e.end_on is None or e.end_on >= add_months(expiry, -window)):
                rule_id, set_by = rule.suspension_rule_id, e
                if e.end_on is None:
                    expiry = None
                    why = _why("limitation_suspended_open", rule_id, on=e.on, window=window)
                else:
                    expiry = max(expiry, add_months(e.end_on, tail))
                    why = _why(
                        "limitation_suspended", rule_id, on=e.on, window=window, tail=tail, until=expiry
                    )
            continue
        if e.kind not in rule.interrupting_events:
            continue
        kind_rule = _rule_for(rule, e.kind)
        if e.kind == _K.DEMAND and rule.require_delivery_evidence and not e.delivered:
            # CN-25: a demand counts only when it reached the debtor, which the evidence shows.
            ignored.append((e, _why("limitation_ignored_no_evidence", kind_rule, on=e.on)))
            continue
        if expiry is not None and e.on > expiry:
            # CN-22: too late to interrupt; an acknowledgment waives the defence instead.
            if e.kind in rule.acknowledgment_events and waived_by is None:
                waived_by = e
            ignored.append(
                (e, _why("limitation_ignored_after_expiry", rule.time_barred_rule_id or rule.id, e, on=e.on))
            )
            continue
        # CN-24 / CN-25 / CN-26: interruption restarts the full period.
        expiry = add_years(e.on, years)
        rule_id, set_by = kind_rule, e
        why = _why("limitation_interrupted", rule_id, e, on=e.on, years=years, until=expiry)

    if rule.absolute_years is not None:
        cap = add_years(start.on, rule.absolute_years)
        if expiry is None or expiry > cap:
            expiry, set_by = cap, start
            rule_id = rule.absolute_rule_id or rule.id
            why = _why("limitation_absolute", rule_id, on=start.on, years=rule.absolute_years, until=cap)

    return LimitationResult(
        limitation_on=expiry,
        time_barred=expiry is not None and as_of > expiry,
        as_of=as_of,
        starts_on=start.on,
        set_by=set_by,
        rule_id=rule_id,
        explanation=why,
        ignored=tuple(ignored),
        waived_by=waived_by,
    )


# One stored row per account (`account_limitation`, without the portfolio, the date and the timestamps).
@cache
def row_schema() -> dict[str, pl.DataType]:
    """The columns of a stored limitation row and their types."""
    import polars as pl

    return {
        "account_id": pl.Int64(),
        "limitation_on": pl.Date(),
        "time_barred": pl.Boolean(),
        "starts_on": pl.Date(),
        "rule_id": pl.String(),
        "set_by_kind": pl.String(),
        "set_by_on": pl.Date(),
        "set_by_ref": pl.String(),
        "waived_by_ref": pl.String(),
        "explanation_zh": pl.String(),
        "explanation_en": pl.String(),
    }


def result_row(account_id: int, r: LimitationResult) -> dict[str, Any]:
    """A `LimitationResult` as the row ``row_schema` describes."""
    return {
        "account_id": account_id,
        "limitation_on": r.limitation_on,
        "time_barred": r.time_barred,
        "starts_on": r.starts_on,
        "rule_id": r.rule_id,
        "set_by_kind": r.set_by.kind.value if r.set_by else None,
        "set_by_on": r.set_by.on if r.set_by else None,
        "set_by_ref": r.set_by.ref if r.set_by else None,
        "waived_by_ref": r.waived_by.ref if r.waived_by else None,
        "explanation_zh": r.explanation.zh,
        "explanation_en": r.explanation.en,
    }


def due_ref(account_id: int) -> str:
    """The reference a due-date event carries: the account it belongs to."""
    return f"account:{account_id}"


def due_events_of(account_id: int, days: Iterable[date]) -> list[LimitationEvent]:
    """One account's due-date events (CN-20 / CN-21), one per distinct date."""
    return [LimitationEvent(_K.DUE, d, ref=due_ref(account_id)) for d in sorted(set(days))]


def limitation_frame(
    dues: pl.DataFrame,
    others: Mapping[int, Sequence[LimitationEvent]],
    pack: RulePack,
    *,
    as_of: date,
) -> pl.DataFrame:
    """`limitation_date` of many accounts at once, as rows of `row_schema` sorted by account.

    ``dues`` has ``account_id`` and ``due_dates`` (a list of the account's due dates); ``others`` the
    accounts' other events (promises, demands, payments ...). An account with other events is computed
    one by one; an account with due dates only depends on nothing but its latest due date and whether it
    has more than one (`limitation_date` ignores every earlier due date but for choosing the instalment
    rule), so `limitation_date` runs once per such pair and the result is shared, with the account's
    own reference. Equal to calling `limitation_date` per account (a property test holds them together).
    """
    import polars as pl

    if pack.limitation is None:
        raise ValidationFailed(f"rule pack {pack.name} has no limitation rule", code="no_limitation_rule")
    dues = dues.select(
        pl.col("account_id").cast(pl.Int64),
        pl.col("due_dates").list.drop_nulls().list.unique().list.sort().alias("due_dates"),
    )
    mixed_ids = set(others)
    rows: list[dict[str, Any]] = []
    with_due: set[int] = set()
    if mixed_ids:
        mixed = dues.filter(pl.col("account_id").is_in(list(mixed_ids)))
        for account_id, days in mixed.iter_rows():
            with_due.add(account_id)
            events = [*due_events_of(account_id, days), *others[account_id]]
            rows.append(result_row(account_id, limitation_date(events, pack, as_of=as_of)))
    for account_id in sorted(mixed_ids - with_due):
        rows.append(result_row(account_id, limitation_date(others[account_id], pack, as_of=as_of)))
    simple = dues.filter(~pl.col("account_id").is_in(list(mixed_ids))).with_columns(
        pl.col("due_dates").list.last().alias("_start"),
        (pl.col("due_dates").list.len() > 1).alias("_several"),
    )
    parts = [pl.DataFrame(rows, schema=row_schema(), orient="row")]
    if simple.height:
        keys = simple.group_by("_start", "_several").agg(
            pl.col("due_dates").first(), pl.col("account_id").first()
        )
        shared = [
            {
                "_start": start,
                "_several": several,
                **result_row(rep, limitation_date(due_events_of(rep, days), pack, as_of=as_of)),
            }
            for start, several, days, rep in keys.select(
                "_start", "_several", "due_dates", "account_id"
            ).iter_rows()
        ]
        table = pl.DataFrame(
            shared, schema={"_start": pl.Date(), "_several": pl.Boolean(), **row_schema()}, orient="row"
        ).drop("account_id")
        joined = simple.select("account_id", "_start", "_several").join(
            table, on=["_start", "_several"], how="left"
        )
        ref = pl.lit("account:") + pl.col("account_id").cast(pl.String)
        parts.append(
            joined.with_columns(
                pl.when(pl.col("set_by_kind") == _K.DUE.value)
                .then(ref)
                .otherwise(pl.col("set_by_ref"))
                .alias("set_by_ref")
            ).select(list(row_schema()))
        )
    return pl.concat(parts).sort("account_id")
