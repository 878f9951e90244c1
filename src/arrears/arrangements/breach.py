"""Breach detection for agreed plans: where each instalment stands and whether the plan is active,
completed or breached, one plan at a time (`plan_status`) or many at once for the daily run
(`plan_status_frame`, Polars). Both give the same answers; a property test holds them together.

Payments are applied to instalments in order (the earliest instalment first). An instalment becomes
*missed* and the plan *breached* on ``due_on + breach_days`` if the instalment is not fully paid before
that day. ``as_of`` is a whole day: payments received on it count.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum

import polars as pl

from arrears.arrangements.schemas import Payment, ScheduledInstalment
from arrears.errors import ValidationFailed


class InstalmentState(StrEnum):
    """Where one instalment stands on a date."""

    PENDING = "pending"  # nothing paid yet, not yet ``breach_days`` late
    PARTLY_PAID = "partly_paid"  # part paid, not yet ``breach_days`` late
    PAID = "paid"
    MISSED = "missed"  # not fully paid and ``breach_days`` or more late


class PlanState(StrEnum):
    """Where a plan stands on a date. A breach stays a breach: it re-opens negotiation (DESIGN)."""

    ACTIVE = "active"
    COMPLETED = "completed"
    BREACHED = "breached"


@dataclass(frozen=True, slots=True)
class InstalmentStatus:
    """One instalment on ``as_of``: how much of it is paid, when it was paid in full, how late it is."""

    seq: int
    due_on: date
    amount_minor: int
    paid_minor: int
    status: InstalmentState
    paid_on: date | None
    days_late: int
    breach_on: date | None  # set when this instalment breached the plan (on or before as_of)


@dataclass(frozen=True, slots=True)
class PlanStatus:
    """A plan on ``as_of``: its state, the breach date and the instalment that caused it, money totals."""

    status: PlanState
    breach_on: date | None
    breached_seq: int | None
    total_minor: int
    paid_minor: int  # all payments received up to as_of (may exceed the total)
    outstanding_minor: int
    completed_on: date | None
    instalments: tuple[InstalmentStatus, ...]


def _check_breach_days(breach_days: int) -> None:
    if breach_days < 1:
        raise ValidationFailed("breach_days must be at least 1", code="bad_breach_days")


def plan_status(
    schedule: Sequence[ScheduledInstalment], payments: Iterable[Payment], *, as_of: date, breach_days: int
) -> PlanStatus:
    """The state of one plan on ``as_of`` (``breach_days`` from the portfolio's arrangement policy)."""
    _check_breach_days(breach_days)
    lines = sorted(schedule, key=lambda line: line.seq)
    if not lines:
        raise ValidationFailed("a plan needs a schedule", code="empty_schedule")
    covered = [0] * len(lines)
    paid_on: list[date | None] = [None] * len(lines)
    received = 0
    index = 0
    for payment in sorted((p for p in payments if p.received_on <= as_of), key=lambda p: p.received_on):
        received += payment.amount_minor
        left = payment.amount_minor
        while left > 0 and index < len(lines):
            take = min(left, lines[index].amount_minor - covered[index])
            covered[index] += take
            left -= take
            if covered[index] == lines[index].amount_minor:
                paid_on[index] = payment.received_on
                index += 1

    statuses: list[InstalmentStatus] = []
    for line, paid, on in zip(lines, covered, paid_on, strict=True):
        breach_day = line.due_on + timedelta(days=breach_days)
        breached = as_of >= breach_day and (on is None or on >= breach_day)
        if on is not None:
            state, late = InstalmentState.PAID, max(0, (on - line.due_on).days)
        else:
            late = max(0, (as_of - line.due_on).days)
            if as_of >= breach_day:
                state = InstalmentState.MISSED
            elif paid > 0:
                state = InstalmentState.PARTLY_PAID
            else:
                state = InstalmentState.PENDING
        statuses.append(
            InstalmentStatus(
                line.seq,
                line.due_on,
                line.amount_minor,
                paid,
                state,
                on,
                late,
                breach_day if breached else None,
            )
        )

    breaches = [(s.breach_on, s.seq) for s in statuses if s.breach_on is not None]
    breach_on, breached_seq = min(breaches) if breaches else (None, None)
    total = sum(line.amount_minor for line in lines)
    all_paid = all(on is not None for on in paid_on)
    completed_on = max(on for on in paid_on if on is not None) if all_paid else None
    if breach_on is not None:
        plan_state = PlanState.BREACHED
    elif all_paid:
        plan_state = PlanState.COMPLETED
    else:
        plan_state = PlanState.ACTIVE
    return PlanStatus(
        status=plan_state,
        breach_on=breach_on,
        breached_seq=breached_seq,
        total_minor=total,
        paid_minor=received,
        outstanding_minor=max(0, total - received),
        completed_on=completed_on,
        instalments=tuple(statuses),
    )


# --- vectorised: the daily run over many plans --------------------------------------------------------


def instalment_status_frame(
    schedule: pl.DataFrame, payments: pl.DataFrame, *, as_of: date, breach_days: int
) -> pl.DataFrame:
    """Every instalment of many plans on ``as_of``, as `plan_status` would report it.

    ``schedule``: ``plan_id, seq, due_on (Date), amount_minor (Int64)``; ``payments``:
    ``plan_id, received_on (Date), amount_minor (Int64)`` (positive amounts, reversals left out).
    Returns ``plan_id, seq, due_on, amount_minor, paid_minor, status, paid_on, days_late, breach_on``.
    """
    _check_breach_days(breach_days)
    sched = (
        schedule.select(
            "plan_id",
            pl.col("seq").cast(pl.Int64),
            pl.col("due_on").cast(pl.Date),
            pl.col("amount_minor").cast(pl.Int64),
        )
        .sort("plan_id", "seq")
        .with_columns(cum_due=pl.col("amount_minor").cum_sum().over("plan_id"))
    )
    pays = (
        payments.select(
            pl.col("plan_id").cast(sched.schema["plan_id"]),
            pl.col("received_on").cast(pl.Date),
            pl.col("amount_minor").cast(pl.Int64),
        )
        .filter(pl.col("received_on") <= as_of)
        .sort("plan_id", "received_on")
        .with_columns(cum_paid=pl.col("amount_minor").cum_sum().over("plan_id"))
    )
    received = pays.group_by("plan_id").agg(received_minor=pl.col("amount_minor").sum())
    # The payment that first brings the running total up to an instalment's running total pays it off.
    paid_off = sched.join_asof(
        pays.select("plan_id", "cum_paid", paid_on="received_on"),
        left_on="cum_due",
        right_on="cum_paid",
        by="plan_id",
        strategy="forward",
        check_sortedness=False,
    )
    breach_day = pl.col("due_on") + pl.duration(days=breach_days)
    as_of_lit = pl.lit(as_of, dtype=pl.Date)
    late_to = pl.coalesce("paid_on", as_of_lit)
    return (
        paid_off.join(received, on="plan_id", how="left")
        .with_columns(pl.col("received_minor").fill_null(0))
        .with_columns(
            paid_minor=(pl.col("received_minor") - pl.col("cum_due") + pl.col("amount_minor")).clip(
                0, pl.col("amount_minor")
            ),
            days_late=pl.max_horizontal((late_to - pl.col("due_on")).dt.total_days(), pl.lit(0)),
            breach_on=pl.when(
                (as_of_lit >= breach_day) & (pl.col("paid_on").is_null() | (pl.col("paid_on") >= breach_day))
            ).then(breach_day),
        )
        .with_columns(
            status=pl.when(pl.col("paid_on").is_not_null())
            .then(pl.lit(InstalmentState.PAID.value))
            .when(as_of_lit >= breach_day)
            .then(pl.lit(InstalmentState.MISSED.value))
            .when(pl.col("paid_minor") > 0)
            .then(pl.lit(InstalmentState.PARTLY_PAID.value))
            .otherwise(pl.lit(InstalmentState.PENDING.value))
        )
        .select(
            "plan_id",
            "seq",
            "due_on",
            "amount_minor",
            "paid_minor",
            "status",
            "paid_on",
            pl.col("days_late").cast(pl.Int64),
            "breach_on",
        )
        .sort("plan_id", "seq")
    )


def plan_status_frame(
    schedule: pl.DataFrame, payments: pl.DataFrame, *, as_of: date, breach_days: int
) -> pl.DataFrame:
    """Many plans on ``as_of``, one row each, as `plan_status` would report them.

    Inputs as for `instalment_status_frame`. Returns ``plan_id, status, breach_on, breached_seq,
    total_minor, paid_minor, outstanding_minor, completed_on``.
    """
    lines = instalment_status_frame(schedule, payments, as_of=as_of, breach_days=breach_days)
    received = (
        payments.filter(pl.col("received_on") <= as_of)
        .group_by(pl.col("plan_id").cast(lines.schema["plan_id"]))
        .agg(paid_minor=pl.col("amount_minor").cast(pl.Int64).sum())
    )
    plans = lines.group_by("plan_id").agg(
        total_minor=pl.col("amount_minor").sum(),
        breach_on=pl.col("breach_on").min(),
        breached_seq=pl.col("seq").filter(pl.col("breach_on") == pl.col("breach_on").min()).min(),
        all_paid=pl.col("paid_on").is_not_null().all(),
        last_paid_on=pl.col("paid_on").max(),
    )
    return (
        plans.join(received, on="plan_id", how="left")
        .with_columns(pl.col("paid_minor").fill_null(0))
        .with_columns(
            status=pl.when(pl.col("breach_on").is_not_null())
            .then(pl.lit(PlanState.BREACHED.value))
            .when(pl.col("all_paid"))
            .then(pl.lit(PlanState.COMPLETED.value))
            .otherwise(pl.lit(PlanState.ACTIVE.value)),
            outstanding_minor=(pl.col("total_minor") - pl.col("paid_minor")).clip(lower_bound=0),
            completed_on=pl.when(pl.col("all_paid")).then(pl.col("last_paid_on")),
        )
        .select(
            "plan_id",
            "status",
            "breach_on",
            "breached_seq",
            "total_minor",
            "paid_minor",
            "outstanding_minor",
            "completed_on",
        )
        .sort("plan_id")
    )


def schedule_frame(plans: Mapping[int, Sequence[ScheduledInstalment]]) -> pl.DataFrame:
    """Schedules of several plans as the frame `plan_status_frame` takes (for tests and small batches)."""
    rows = [
        {"plan_id": plan_id, "seq": s.seq, "due_on": s.due_on, "amount_minor": s.amount_minor}
        for plan_id, lines in plans.items()
        for s in lines
    ]
    return pl.DataFrame(
        rows, schema={"plan_id": pl.Int64, "seq": pl.Int64, "due_on": pl.Date, "amount_minor": pl.Int64}
    )


def payment_frame(plans: Mapping[int, Iterable[Payment]]) -> pl.DataFrame:
    """Payments of several plans as the frame `plan_status_frame` takes (for tests and small batches)."""
    rows = [
        {"plan_id": plan_id, "received_on": p.received_on, "amount_minor": p.amount_minor}
        for plan_id, pays in plans.items()
        for p in pays
    ]
    return pl.DataFrame(rows, schema={"plan_id": pl.Int64, "received_on": pl.Date, "amount_minor": pl.Int64})
