"""Portfolio reports over the database, each one or two grouped queries (set-based; no row loops over
accounts). Read-only: nothing here writes.

* `aging`: open accounts and their balance by days-past-due bucket on a date (from the earliest unpaid
  due date, the same DPD the daily run uses).
* `roll_rates`: bucket to bucket month over month, from the daily run's decisions at each month end.
* `collected`: payments received per day (net of reversals), today's and the month's totals.
* `promises_summary`: promises due today, due in the coming week, broken today and this month.
* `blocked_by_rule`: contacts the rules blocked on a day: planned by the run, calls and visits logged
  at the desk, messages stopped at send time; counted per rule id.
* `runs` / `runs_on`: the daily run's rows; `team_queues`: each collector's cases and work items.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from itertools import pairwise
from typing import Any

from sqlalchemy import and_, case, func, or_, select, true
from sqlalchemy.orm import Session, aliased
from sqlalchemy.sql.elements import ColumnElement

from arrears import clock
from arrears.models import (
    Account,
    AppUser,
    Case,
    CollectorProfile,
    ContactAttempt,
    OutboxMessage,
    Payment,
    Promise,
    StrategyDecision,
    StrategyRun,
    WorkItem,
)
from arrears.reports.buckets import (
    BUCKET_NAMES,
    BUCKETS,
    LEFT,
    Roll,
    due_date_bounds,
    fill_days,
    month_end_snapshots,
    month_start,
    rolls,
)

OPEN_ACCOUNT = ("active",)
_BALANCE = Account.balance_minor


def _scoped(column: Any, portfolio_id: int | None) -> ColumnElement[bool]:
    return column == portfolio_id if portfolio_id is not None else true()


def day_bounds(day: date, zone: str) -> tuple[datetime, datetime]:
    """A local day in ``zone`` as a UTC half-open interval (timestamps are stored in UTC)."""
    start = datetime.combine(day, time(0), tzinfo=clock.zone_info(zone))
    return clock.as_utc(start), clock.as_utc(start + timedelta(days=1))


# --- aging ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BucketRow:
    bucket: str
    accounts: int
    balance_minor: int


@dataclass(frozen=True, slots=True)
class Aging:
    as_of: date
    currency: str
    buckets: tuple[BucketRow, ...]

    @property
    def accounts(self) -> int:
        return sum(b.accounts for b in self.buckets)

    @property
    def balance_minor(self) -> int:
        return sum(b.balance_minor for b in self.buckets)


def _bucket_by_due_date(as_of: date) -> Any:
    whens = [(Account.due_date >= bound, name) for name, bound in due_date_bounds(as_of)[:-1]]
    return case(*whens, else_=BUCKET_NAMES[-1])


def aging(session: Session, *, as_of: date, portfolio_id: int | None = None, currency: str = "CNY") -> Aging:
    """Open accounts with a balance, by DPD bucket on ``as_of``: how many and how much (every bucket is
    listed, empty ones with zeros)."""
    bucket = _bucket_by_due_date(as_of).label("bucket")
    rows = session.execute(
        select(bucket, func.count(), func.coalesce(func.sum(_BALANCE), 0))
        .where(
            Account.status.in_(OPEN_ACCOUNT),
            Account.currency == currency,
            _BALANCE > 0,
            _scoped(Account.portfolio_id, portfolio_id),
        )
        .group_by(bucket)
    ).all()
    found = {name: (int(n), int(total)) for name, n, total in rows}
    return Aging(
        as_of=as_of,
        currency=currency,
        buckets=tuple(BucketRow(name, *found.get(name, (0, 0))) for name in BUCKET_NAMES),
    )


# --- roll rates ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RollStep:
    """From one month-end snapshot to the next: counts ``(from, to) -> accounts`` and the rates."""

    from_on: date
    to_on: date
    moves: dict[tuple[str, str], int]
    rolls: tuple[Roll, ...]


def _bucket_by_dpd(column: Any) -> Any:
    whens = [(column <= 0, BUCKET_NAMES[0])]
    whens += [(column <= high, name) for name, _low, high in BUCKETS[1:] if high is not None]
    return case(*whens, else_=BUCKET_NAMES[-1])


def snapshot_dates(
    session: Session, *, since: date, through: date, portfolio_id: int | None = None
) -> list[date]:
    """The month-end snapshots among the dates the daily run decided on (last run date of each month)."""
    dates = session.scalars(
        select(StrategyRun.as_of_date)
        .where(
            StrategyRun.status == "succeeded",
            StrategyRun.as_of_date >= since,
            StrategyRun.as_of_date <= through,
            _scoped(StrategyRun.portfolio_id, portfolio_id),
        )
        .distinct()
    ).all()
    return month_end_snapshots(dates)


def roll_rates(
    session: Session, *, through: date, months: int = 6, portfolio_id: int | None = None
) -> list[RollStep]:
    """Bucket to bucket between consecutive month-end snapshots of the last ``months`` months, oldest
    first: one grouped query per step, joining the two days' decisions on the account. An account decided
    at the first snapshot and not at the next has left (``left``: paid off, closed or recalled)."""
    since = month_start(through) - timedelta(days=31 * months)
    snaps = snapshot_dates(session, since=since, through=through, portfolio_id=portfolio_id)
    steps = []
    before, after = aliased(StrategyDecision), aliased(StrategyDecision)
    for first, second in pairwise(snaps):
        start = _bucket_by_dpd(before.dpd).label("from_bucket")
        end = case((after.account_id.is_(None), LEFT), else_=_bucket_by_dpd(after.dpd)).label("to_bucket")
        rows = session.execute(
            select(start, end, func.count())
            .select_from(before)
            .outerjoin(
                after,
                and_(
                    after.as_of_date == second,
                    after.portfolio_id == before.portfolio_id,
                    after.account_id == before.account_id,
                ),
            )
            .where(before.as_of_date == first, _scoped(before.portfolio_id, portfolio_id))
            .group_by(start, end)
        ).all()
        moves = {(str(a), str(b)): int(n) for a, b, n in rows}
        steps.append(RollStep(first, second, moves, tuple(rolls(moves))))
    return steps


# --- collections ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Collected:
    today: date
    currency: str
    today_minor: int
    month_minor: int
    days: tuple[tuple[date, int], ...]  # every day of the window, oldest first


def collected(
    session: Session,
    *,
    today: date,
    days: int = 30,
    portfolio_id: int | None = None,
    currency: str = "CNY",
) -> Collected:
    """Payments received per day over the last ``days`` days (reversed payments left out), with today's
    and the calendar month's totals."""
    first = min(today - timedelta(days=days - 1), month_start(today))
    rows = session.execute(
        select(Payment.received_on, func.sum(Payment.amount_minor))
        .where(
            Payment.received_on >= first,
            Payment.received_on <= today,
            Payment.reversed_on.is_(None),
            Payment.currency == currency,
            _scoped(Payment.portfolio_id, portfolio_id),
        )
        .group_by(Payment.received_on)
    ).all()
    per_day = {d: int(total) for d, total in rows}
    month = sum(v for d, v in per_day.items() if d >= month_start(today))
    window = fill_days(today - timedelta(days=days - 1), today, per_day)
    return Collected(today, currency, per_day.get(today, 0), month, tuple(window))


# --- promises ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Count:
    count: int
    amount_minor: int


@dataclass(frozen=True, slots=True)
class PromisesSummary:
    due_today: Count
    due_week: Count
    broken_today: Count
    broken_month: Count


BROKEN = ("broken", "partly_kept")


def promises_summary(
    session: Session, *, today: date, portfolio_id: int | None = None, currency: str = "CNY"
) -> PromisesSummary:
    """Pending promises due today and in the next seven days; promises broken (or kept only in part)
    today and since the first of the month. One grouped query."""
    week_end = today + timedelta(days=7)
    broke_on = func.coalesce(Promise.broken_on, Promise.deadline_on)
    pending = Promise.status == "pending"
    broken = Promise.status.in_(BROKEN)
    kinds = case(
        (and_(pending, Promise.promised_on == today), "due_today"),
        (and_(pending, Promise.promised_on > today, Promise.promised_on <= week_end), "due_week"),
        (and_(broken, broke_on == today), "broken_today"),
        (and_(broken, broke_on >= month_start(today), broke_on < today), "broken_month"),
        else_="other",
    ).label("kind")
    scope = (
        select(Promise.id).join(Case, Case.id == Promise.case_id).where(Case.portfolio_id == portfolio_id)
        if portfolio_id is not None
        else None
    )
    query = (
        select(kinds, func.count(), func.coalesce(func.sum(Promise.amount_minor - Promise.paid_minor), 0))
        .where(
            Promise.currency == currency,
            or_(
                and_(pending, Promise.promised_on >= today, Promise.promised_on <= week_end),
                and_(broken, broke_on >= month_start(today), broke_on <= today),
            ),
        )
        .group_by(kinds)
    )
    if scope is not None:
        query = query.where(Promise.id.in_(scope))
    found = {k: Count(int(n), int(a)) for k, n, a in session.execute(query).all()}
    zero = Count(0, 0)
    today_due = found.get("due_today", zero)
    week = found.get("due_week", zero)
    broken_today = found.get("broken_today", zero)
    earlier = found.get("broken_month", zero)
    return PromisesSummary(
        due_today=today_due,
        due_week=Count(today_due.count + week.count, today_due.amount_minor + week.amount_minor),
        broken_today=broken_today,
        broken_month=Count(
            broken_today.count + earlier.count, broken_today.amount_minor + earlier.amount_minor
        ),
    )


# --- contacts blocked by rule --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BlockedRow:
    rule_id: str
    planned: int  # planned contacts the day's run held back
    desk: int  # calls and visits logged at the desk and refused
    sending: int  # messages the gate stopped at send time

    @property
    def total(self) -> int:
        return self.planned + self.desk + self.sending


def _rule_ids(decision: dict[str, Any] | None) -> list[str]:
    if not decision:
        return []
    ids = decision.get("rule_ids")
    if isinstance(ids, list):
        return [str(i) for i in ids]
    return [str(r.get("rule_id")) for r in decision.get("reasons", []) if isinstance(r, dict)]


def blocked_by_rule(
    session: Session, *, day: date, zone: str = clock.DEFAULT_ZONE, portfolio_id: int | None = None
) -> list[BlockedRow]:
    """Contacts blocked on a local day, per rule id, most blocked first.

    Three sources, each read with one query: the day's runs (their ``blocked_by_rule`` counts), refused
    attempts recorded that day (their decision's rule ids) and outbox messages blocked at send time.
    """
    start, end = day_bounds(day, zone)
    planned: Counter[str] = Counter()
    for counts in session.scalars(
        select(StrategyRun.blocked_by_rule).where(
            StrategyRun.as_of_date == day, _scoped(StrategyRun.portfolio_id, portfolio_id)
        )
    ):
        for rule, n in (counts or {}).items():
            planned[str(rule)] += int(n)
    desk: Counter[str] = Counter()
    attempts = select(ContactAttempt.decision).where(
        ContactAttempt.allowed.is_(False), ContactAttempt.started_at >= start, ContactAttempt.started_at < end
    )
    if portfolio_id is not None:
        attempts = attempts.join(Case, Case.id == ContactAttempt.case_id).where(
            Case.portfolio_id == portfolio_id
        )
    for decision in session.scalars(attempts):
        desk.update(_rule_ids(decision))
    sending: Counter[str] = Counter()
    for ids in session.scalars(
        select(OutboxMessage.rule_ids).where(
            OutboxMessage.status == "blocked",
            OutboxMessage.updated_at >= start,
            OutboxMessage.updated_at < end,
            _scoped(OutboxMessage.portfolio_id, portfolio_id),
        )
    ):
        sending.update(str(i) for i in ids or [])
    rules = set(planned) | set(desk) | set(sending)
    out = [BlockedRow(r, planned[r], desk[r], sending[r]) for r in rules]
    return sorted(out, key=lambda row: (-row.total, row.rule_id))


# --- runs ----------------------------------------------------------------------------------------------


def runs(session: Session, *, limit: int = 50, portfolio_id: int | None = None) -> list[StrategyRun]:
    """The daily run's rows, newest first."""
    return list(
        session.scalars(
            select(StrategyRun)
            .where(_scoped(StrategyRun.portfolio_id, portfolio_id))
            .order_by(StrategyRun.started_at.desc(), StrategyRun.id.desc())
            .limit(limit)
        )
    )


def runs_on(session: Session, *, day: date) -> list[StrategyRun]:
    """The runs for an as-of date (every portfolio), newest first."""
    return list(
        session.scalars(
            select(StrategyRun).where(StrategyRun.as_of_date == day).order_by(StrategyRun.id.desc())
        )
    )


# --- team ----------------------------------------------------------------------------------------------


@dataclass
class TeamRow:
    user_id: int
    username: str
    display_name: str
    cap: int | None
    cases: int = 0
    open_items: int = 0
    claimed_items: int = 0
    done_today: int = 0
    queues: list[str] = field(default_factory=list)


def team_queues(session: Session, *, now: datetime, zone: str = clock.DEFAULT_ZONE) -> list[TeamRow]:
    """Each collector (a queue profile or the collector role) with assigned cases and work items: open
    and claimed now, done today. Three grouped queries."""
    people = session.execute(
        select(AppUser, CollectorProfile)
        .outerjoin(CollectorProfile, CollectorProfile.user_id == AppUser.id)
        .where(
            AppUser.active.is_(True), or_(AppUser.role == "collector", CollectorProfile.user_id.is_not(None))
        )
        .order_by(AppUser.username)
    ).all()
    rows = {
        u.id: TeamRow(
            u.id,
            u.username,
            u.display_name or u.username,
            p.cap if p else None,
            queues=list(p.queues) if p else [],
        )
        for u, p in people
    }
    ids = list(rows)
    if not ids:
        return []
    for uid, n in session.execute(
        select(Case.assignee_id, func.count()).where(Case.assignee_id.in_(ids)).group_by(Case.assignee_id)
    ):
        if uid is not None:
            rows[uid].cases = int(n)
    start, end = day_bounds(clock.to_local(now, zone).date(), zone)
    live = and_(WorkItem.window_end_at > now, WorkItem.status.in_(("open", "claimed")))
    done = and_(WorkItem.status == "done", WorkItem.completed_at >= start, WorkItem.completed_at < end)
    for uid, status, n in session.execute(
        select(WorkItem.collector_id, WorkItem.status, func.count())
        .where(WorkItem.collector_id.in_(ids), WorkItem.kind.in_(("call", "visit")), or_(live, done))
        .group_by(WorkItem.collector_id, WorkItem.status)
    ):
        if uid is None:
            continue
        row = rows[uid]
        if status == "open":
            row.open_items = int(n)
        elif status == "claimed":
            row.claimed_items = int(n)
        else:
            row.done_today = int(n)
    return list(rows.values())


def currencies(session: Session, portfolio_ids: Sequence[int] | None = None) -> list[str]:
    """The currencies of open accounts, most accounts first (the dashboard shows the first)."""
    query = select(Account.currency, func.count()).where(Account.status.in_(OPEN_ACCOUNT))
    if portfolio_ids is not None:
        query = query.where(Account.portfolio_id.in_(portfolio_ids))
    rows = session.execute(query.group_by(Account.currency).order_by(func.count().desc())).all()
    return [c for c, _ in rows] or ["CNY"]
