"""Allocation of cases to collectors (分案) and collectors' work queues, over the database.

* `allocate_portfolio`: the daily run's allocation by rule (`queues.allocate`: even split, attributes, case
  cap, rotation); held cases and cases placed with an agency are never allocated. Only changes are written:
  the case's collector, an `AllocationEvent` (from, to, why) and the collector of the case's open work items.
* `assign_cases`: a supervisor's manual batch allocation or reassignment, with a reason, recorded the same way.
* `work_queue` / `next_case` (or why there is none: `Idle`) / `claim_work_item` / `complete_work_item`: a
  collector's calls and visits, highest priority first, each only inside its permitted window and only
  when the compliance gate allows it at that moment (the real-time check that also applies the
  per-contact-point caps).

Services flush and never commit.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime

import polars as pl
from sqlalchemy import ColumnElement, bindparam, func, select, text, update
from sqlalchemy.orm import Session

from arrears import bulk as table_bulk
from arrears import clock
from arrears.compliance.pack import load_pack
from arrears.compliance.rules import decide
from arrears.compliance.schemas import (
    AccountState,
    ActiveFlag,
    Attempt,
    Context,
    Decision,
    Purpose,
    Reason,
)
from arrears.compliance.schemas import ContactPoint as GateContactPoint
from arrears.compliance.zones import zones_for_phone
from arrears.enums import Channel, ContactKind, FlagKind, OwnerRelation, Product
from arrears.errors import ComplianceBlocked, Conflict, Forbidden, NotFound, ValidationFailed
from arrears.models import (
    Account,
    AccountFlag,
    AllocationEvent,
    AppUser,
    Case,
    CollectorProfile,
    ContactPoint,
    Creditor,
    Debtor,
    Portfolio,
    PortfolioStrategy,
    WorkItem,
)
from arrears.strategy import bulk, queues
from arrears.strategy.queues import Collector, QueueSet, load_queues

TASK_KINDS = ("call", "visit")


@dataclass(frozen=True)
class AllocationSummary:
    """What an allocation did: cases per outcome and how many rows changed."""

    counts: dict[str, int]
    changes: int
    assignments: pl.DataFrame  # one row per case: ``case_id``, ``queue``, ``assignee_id``, ``outcome``
    stage_changes: int = 0  # cases whose stage changed


# ---------------------------------------------------------------------------------------------- collectors


def set_collector(
    session: Session,
    *,
    user: str | int,
    queues: list[str],
    cap: int,
    products: list[str] | None = None,
    regions: list[str] | None = None,
    languages: list[str] | None = None,
    creditors: list[str] | None = None,
    active: bool = True,
) -> CollectorProfile:
    """Create or replace a collector's queue profile (which queues, how many cases, which attributes)."""
    if cap < 0:
        raise ValidationFailed("cap must be zero or more", code="bad_cap")
    person = get_user(session, user)
    profile = session.get(CollectorProfile, person.id)
    if profile is None:
        profile = CollectorProfile(user_id=person.id)
        session.add(profile)
    profile.queues = sorted(set(queues))
    profile.cap = cap
    profile.products = sorted(set(products or []))
    profile.regions = sorted(set(regions or []))
    profile.languages = sorted(set(languages or []))
    profile.creditors = sorted(set(creditors or []))
    profile.active = active
    session.flush()
    return profile


def get_user(session: Session, user: str | int) -> AppUser:
    """A user by id or username."""
    found = (
        session.get(AppUser, user)
        if isinstance(user, int)
        else session.scalar(select(AppUser).where(AppUser.username == user))
    )
    if found is None:
        raise NotFound(f"用户不存在：{user} / no user {user!r}", code="user_not_found")
    return found


def load_collectors(session: Session) -> list[Collector]:
    """Every active collector with a queue profile."""
    rows = session.execute(
        select(CollectorProfile)
        .join(AppUser, AppUser.id == CollectorProfile.user_id)
        .where(CollectorProfile.active.is_(True), AppUser.active.is_(True))
        .order_by(CollectorProfile.user_id)
    ).scalars()
    return [
        Collector(
            collector_id=p.user_id,
            queues=frozenset(p.queues),
            cap=p.cap,
            products=frozenset(p.products),
            regions=frozenset(p.regions),
            languages=frozenset(p.languages),
            creditors=frozenset(p.creditors),
        )
        for p in rows
    ]


def portfolio_queue_set(session: Session, portfolio_id: int) -> QueueSet:
    """The queue set a portfolio uses (``default`` unless configured)."""
    config = session.get(PortfolioStrategy, portfolio_id)
    return load_queues(config.queue_set if config is not None else "default")


# ---------------------------------------------------------------------------------------------- allocation


_CASE_SCHEMA: dict[str, pl.DataType] = {
    "case_id": pl.Int64(),
    "stage": pl.String(),
    "lead_stage": pl.String(),
    "collector_id": pl.Int64(),
    "dpd": pl.Int64(),
    "priority": pl.Int64(),
    "product": pl.String(),
    "held": pl.Int64(),
    "language": pl.String(),
    "region": pl.String(),
    "assigned_on": pl.Date(),
    "placed": pl.Int64(),
}


def stage_order(session: Session, portfolio_id: int) -> dict[str, int]:
    """Position of each stage in the portfolio's strategies (champion first, then the challenger)."""
    from arrears.strategy.loader import load_strategy

    portfolio = session.get(Portfolio, portfolio_id)
    if portfolio is None:
        raise NotFound(f"portfolio {portfolio_id} does not exist", code="portfolio_not_found")
    names = [portfolio.strategy]
    config = session.get(PortfolioStrategy, portfolio_id)
    if config is not None and config.challenger and config.experiment:
        names.append(config.challenger)
    order: dict[str, int] = {}
    for name in names:
        for index, stage in enumerate(load_strategy(name).stages):
            order.setdefault(stage.name, index)
    return order


# What the allocation reads of each decision of the date: ``held`` is 1 when the account had open flags.
DECIDED_SCHEMA: dict[str, pl.DataType] = {
    "case_id": pl.Int64(),
    "account_id": pl.Int64(),
    "stage": pl.String(),
    "dpd": pl.Int64(),
    "priority": pl.Int64(),
    "product": pl.String(),
    "held": pl.Int64(),
}


def _allocation_frame(
    session: Session,
    *,
    portfolio_id: int,
    as_of: date,
    order: Mapping[str, int],
    decided: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """One row per case decided on ``as_of``: its stored and its lead stage, and what allocation reads.

    The lead stage is that of the case's most overdue account in a stage (ties: strategy order, account
    id); the run writes it together with the collector, so a case row is written once a day at most.
    ``decided``: every decision of the date (`DECIDED_SCHEMA`), when the caller holds them all; otherwise
    they are read.
    """
    day = as_of.isoformat()
    pid = int(portfolio_id)
    # The day's decisions, narrow, once: summed per case and ranked for the lead stage here, rather than
    # sorted and grouped by the database and read a second time for the staged ones.
    if decided is None:
        decided = bulk.read_frame(
            session,
            "SELECT sd.case_id, sd.account_id, sd.stage, sd.dpd, sd.priority, a.product,"
            " CASE WHEN sd.flags IS NOT NULL AND sd.flags <> '' THEN 1 ELSE 0 END AS held"
            " FROM strategy_decision sd JOIN account a ON a.id = sd.account_id"
            f" WHERE sd.portfolio_id = {pid} AND sd.as_of_date = '{day}'",
            DECIDED_SCHEMA,
        )
    per_case = decided.group_by("case_id").agg(
        pl.col("dpd").filter(pl.col("stage").is_not_null()).max().alias("dpd"),
        pl.col("priority").max(),
        pl.col("product").min(),
        pl.col("held").max(),
    )
    # A case under a placement on the date (placed, not recalled, term not ended) is the agency's (PI-4).
    sql = (
        "SELECT c.id AS case_id, c.stage, c.assignee_id AS collector_id,"
        " d.preferred_language AS language,"
        " CASE WHEN d.id_type = 'resident_id' THEN SUBSTR(d.national_id, 1, 2) END AS region,"
        " c.assigned_on, CASE WHEN pc.case_id IS NULL THEN 0 ELSE 1 END AS placed"
        ' FROM "case" c JOIN debtor d ON d.id = c.debtor_id'
        " LEFT JOIN (SELECT DISTINCT p.case_id FROM placement p"
        f'  JOIN "case" c3 ON c3.id = p.case_id AND c3.portfolio_id = {pid}'
        f"  WHERE p.recalled_on IS NULL AND p.placed_on <= '{day}' AND p.expires_on > '{day}') pc"
        " ON pc.case_id = c.id"
        f" WHERE c.portfolio_id = {pid}"
    )
    stored = bulk.read_frame(
        session,
        sql,
        {
            k: v
            for k, v in _CASE_SCHEMA.items()
            if k not in ("lead_stage", "dpd", "priority", "product", "held")
        },
    )
    cases = stored.join(per_case, on="case_id", how="inner").sort("case_id")
    staged = decided.filter(pl.col("stage").is_not_null()).select("case_id", "account_id", "stage", "dpd")
    leads = (
        staged.with_columns(
            pl.col("stage")
            .replace_strict(dict(order), default=len(order), return_dtype=pl.Int64)
            .alias("_order")
        )
        .sort(["case_id", "dpd", "_order", "account_id"], descending=[False, True, False, False])
        .unique("case_id", keep="first", maintain_order=True)
        .select("case_id", pl.col("stage").alias("lead_stage"))
    )
    return cases.join(leads, on="case_id", how="left", maintain_order="left").select(list(_CASE_SCHEMA))


def _queue_cases(frame: pl.DataFrame, *, locale: str, creditor: str | None) -> pl.DataFrame:
    """The allocation frame as `queues.allocate_frame` reads it (`queues.CASE_SCHEMA`)."""
    return frame.select(
        "case_id",
        pl.col("lead_stage").alias("stage"),
        pl.col("dpd").fill_null(0),
        pl.col("priority").fill_null(0),
        "product",
        "region",
        pl.col("language").fill_null(locale),
        pl.lit(creditor, pl.String()).alias("creditor"),
        (pl.col("held").fill_null(0) != 0).alias("held"),
        (pl.col("placed").fill_null(0) != 0).alias("placed"),
        "collector_id",
        "assigned_on",
    )


def allocate_portfolio(
    session: Session,
    *,
    portfolio_id: int,
    as_of: date,
    now: datetime | None = None,
    run_id: int | None = None,
    queue_set: QueueSet | None = None,
    order: Mapping[str, int] | None = None,
    before_sync: Callable[[pl.DataFrame], None] | None = None,
    decided: pl.DataFrame | None = None,
) -> AllocationSummary:
    """Bring the portfolio's cases decided on ``as_of`` to their lead stage and allocate them to
    collectors; write only what changes (one update per changed case: stage and collector together).

    A case that is not allocated (held, placed, in no queue, nobody with room) loses its collector.
    ``order`` is the strategies' stage order (`stage_order`), looked up when not given. ``before_sync`` is
    called with the decided cases' ``case_id`` and ``assignee_id`` once they are written, before the open
    calls and visits are moved to their case's collector (the daily run writes its new items there).
    ``decided``: every decision of the date (`DECIDED_SCHEMA`) when the caller holds them (a run in one
    process that decided every account of the date); they are then not read back.
    """
    now = now or clock.now()
    portfolio = session.get(Portfolio, portfolio_id)
    if portfolio is None:
        raise NotFound(f"portfolio {portfolio_id} does not exist", code="portfolio_not_found")
    creditor = session.get(Creditor, portfolio.creditor_id)
    queue_set = queue_set or portfolio_queue_set(session, portfolio_id)
    if order is None:
        order = stage_order(session, portfolio_id)
    frame = _allocation_frame(session, portfolio_id=portfolio_id, as_of=as_of, order=order, decided=decided)
    cases = _queue_cases(
        frame, locale=portfolio.locale, creditor=creditor.name if creditor is not None else None
    )
    assigned, _loads = queues.allocate_frame(cases, load_collectors(session), queue_set, as_of)
    counts = dict(assigned.group_by("outcome").len().sort("outcome").iter_rows())
    both = pl.concat(
        [
            frame.select("case_id", "stage", "lead_stage", "collector_id", "assigned_on"),
            assigned.drop("case_id"),
        ],
        how="horizontal",
    )
    moved_now = (pl.col("assignee_id") != pl.col("collector_id")).fill_null(
        pl.col("assignee_id").is_null() != pl.col("collector_id").is_null()
    )
    restaged = (pl.col("lead_stage") != pl.col("stage")).fill_null(
        pl.col("lead_stage").is_null() != pl.col("stage").is_null()
    )
    both = both.with_columns(moved_now.alias("_moved"), restaged.alias("_restaged"))
    stamp = pl.lit(now, pl.Datetime("us", "UTC"))
    # a case given to another collector is theirs from today; one that only changes stage keeps its day
    since = (
        pl.when(~pl.col("_moved"))
        .then(pl.col("assigned_on"))
        .when(pl.col("assignee_id").is_not_null())
        .then(pl.lit(as_of, pl.Date()))
    )
    changed = both.filter(pl.col("_moved") | pl.col("_restaged")).select(
        pl.col("case_id").alias("id"),
        pl.col("lead_stage").alias("stage"),
        "assignee_id",
        since.alias("assigned_on"),
        stamp.alias("updated_at"),
    )
    bulk.update_frame(session, "case", changed, key="id")
    moved = both.filter(pl.col("_moved"))
    if moved.height:
        events = moved.select(
            "case_id",
            pl.col("collector_id").alias("from_collector_id"),
            pl.col("assignee_id").alias("to_collector_id"),
            "queue",
            "outcome",
            pl.lit(portfolio_id, pl.Int64()).alias("portfolio_id"),
            pl.lit(run_id, pl.Int64()).alias("run_id"),
            pl.lit("daily run allocation / 每日分案").alias("reason"),
            pl.lit(as_of).alias("effective_on"),
            stamp.alias("created_at"),
        )
        # a portfolio's first allocation gives every case its first collector: into a table holding fewer
        # events than that, the index is built once after the load
        with table_bulk.indexes_deferred(session, ["allocation_event"], rows=events.height):
            bulk.insert_frame(session, "allocation_event", events)
    if before_sync is not None:
        before_sync(both.select("case_id", "assignee_id"))
    synced = sync_work_items(session, portfolio_id=portfolio_id, now=now)
    session.flush()
    return AllocationSummary(
        counts=counts,
        changes=moved.height * 2 + synced,
        assignments=assigned,
        stage_changes=int(both["_restaged"].sum()),
    )


def sync_work_items(
    session: Session, *, portfolio_id: int, now: datetime, case_ids: list[int] | None = None
) -> int:
    """Give open calls and visits to their case's collector (none when the case has none); rows changed."""
    distinct = "IS DISTINCT FROM" if bulk.dialect(session) == "postgresql" else "IS NOT"
    scope = ""
    if case_ids is not None:
        if not case_ids:
            return 0
        scope = " AND work_item.case_id IN (" + ",".join(str(int(i)) for i in case_ids) + ")"
    sql = (
        'UPDATE work_item SET collector_id = c.assignee_id, updated_at = :now FROM "case" c'
        " WHERE c.id = work_item.case_id AND work_item.portfolio_id = :pid AND work_item.status = 'open'"
        f" AND work_item.kind IN ('call', 'visit'){scope} AND work_item.collector_id {distinct} c.assignee_id"
    )
    result = session.execute(text(sql), {"now": now, "pid": portfolio_id})
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def _open_flag_cases(session: Session, case_ids: list[int], as_of: date) -> list[int]:
    rows = session.scalars(
        select(AccountFlag.case_id)
        .where(
            AccountFlag.case_id.in_(case_ids),
            AccountFlag.cleared_at.is_(None),
            (AccountFlag.expires_on.is_(None)) | (AccountFlag.expires_on > as_of),
        )
        .distinct()
    )
    return sorted(rows)


def assign_cases(
    session: Session,
    *,
    case_ids: list[int],
    collector: str | int,
    actor: str,
    reason: str,
    as_of: date,
    now: datetime | None = None,
) -> list[AllocationEvent]:
    """A supervisor's manual batch allocation or reassignment: all the cases or none, each recorded.

    Refused for held cases (an open flag stops collection) and for a collector without an active profile.
    """
    now = now or clock.now()
    if not reason or not reason.strip():
        raise ValidationFailed("请说明原因 / a reason is required", code="reason_required")
    if not case_ids:
        raise ValidationFailed("no cases given", code="no_cases")
    person = get_user(session, collector)
    profile = session.get(CollectorProfile, person.id)
    if profile is None or not profile.active or not person.active:
        raise Conflict(
            f"{person.username} 不是在岗催收员 / {person.username} is not an active collector",
            code="not_a_collector",
        )
    cases = list(session.scalars(select(Case).where(Case.id.in_(case_ids)).order_by(Case.id)))
    missing = sorted(set(case_ids) - {c.id for c in cases})
    if missing:
        raise NotFound(f"案件不存在 / no such cases: {missing}", code="case_not_found")
    held = _open_flag_cases(session, [c.id for c in cases], as_of)
    if held:
        raise Conflict(
            f"案件有停催标记，不能分配 / cases are held by an open flag and cannot be allocated: {held}",
            code="case_held",
        )
    events: list[AllocationEvent] = []
    for case in cases:
        if case.assignee_id == person.id:
            continue
        event = AllocationEvent(
            portfolio_id=case.portfolio_id,
            case_id=case.id,
            from_collector_id=case.assignee_id,
            to_collector_id=person.id,
            outcome="manual",
            reason=reason.strip(),
            actor=actor,
            effective_on=as_of,
            created_at=now,
        )
        case.assignee_id = person.id
        case.assigned_on = as_of
        session.add(event)
        events.append(event)
    session.flush()
    for portfolio_id in {c.portfolio_id for c in cases}:
        sync_work_items(
            session,
            portfolio_id=portfolio_id,
            now=now,
            case_ids=[c.id for c in cases if c.portfolio_id == portfolio_id],
        )
    session.flush()
    return events


def allocation_history(session: Session, *, case_id: int) -> list[AllocationEvent]:
    """Every change of a case's collector, oldest first."""
    return list(
        session.scalars(
            select(AllocationEvent).where(AllocationEvent.case_id == case_id).order_by(AllocationEvent.id)
        )
    )


# ---------------------------------------------------------------------------------------------- work queue


def in_window(item: WorkItem, at: datetime) -> bool:
    """Whether ``at`` lies inside the item's permitted window."""
    if item.window_start_at is None or item.window_end_at is None:
        return False
    return item.window_start_at <= at < item.window_end_at


QUEUE_STATUSES = ("open", "claimed")
QUEUE_ORDER = (WorkItem.priority.desc(), WorkItem.window_start_at, WorkItem.id)
QUEUE_LIMIT = 200


def queue_conditions(
    *, collector_id: int | ColumnElement[int] | None, at: datetime | ColumnElement[datetime]
) -> list[ColumnElement[bool]]:
    """What a work queue lists: open and claimed calls and visits still inside their window, of one
    collector (``collector_id``) or of everyone (None). Ordered by `QUEUE_ORDER`. Either value may be a
    bound parameter, for a statement built once and run with each request's values."""
    conditions = [
        # literal values: a prepared statement's generic plan can then use ``ix_work_item_queue``
        WorkItem.status.in_(
            bindparam("queue_statuses", QUEUE_STATUSES, expanding=True, literal_execute=True)
        ),
        WorkItem.kind.in_(TASK_KINDS),
        WorkItem.window_end_at > at,
    ]
    if collector_id is not None:
        conditions.insert(0, WorkItem.collector_id == collector_id)
    return conditions


def work_queue(
    session: Session, *, collector_id: int, at: datetime, limit: int = QUEUE_LIMIT
) -> list[WorkItem]:
    """A collector's open and claimed calls and visits, highest priority first, still inside their window."""
    return list(
        session.scalars(
            select(WorkItem)
            .where(*queue_conditions(collector_id=collector_id, at=at))
            .order_by(*QUEUE_ORDER)
            .limit(limit)
        )
    )


@dataclass(frozen=True)
class Idle:
    """Why a collector has nothing to work right now, so the desk can say so rather than show an empty list.

    ``waiting`` open calls and visits whose window has not opened yet; ``blocked`` the in-window items the
    gate refuses now, counted per rule id with the first reason seen for that rule (of the items scanned);
    ``resumes_at`` the earliest moment one of them may be worked: a window opening or a gate's
    ``next_allowed_at`` (None when only a person or new facts can allow any of them).
    """

    waiting: int
    blocked: tuple[tuple[Reason, int], ...]
    resumes_at: datetime | None

    @property
    def empty(self) -> bool:
        """No open call or visit at all (none waiting, none blocked)."""
        return not self.waiting and not self.blocked


def next_case(session: Session, *, collector_id: int, at: datetime, scan: int = 50) -> WorkItem | None:
    """The highest-priority open item the collector may work right now: in its window, allowed by the gate."""
    found = next_case_or_idle(session, collector_id=collector_id, at=at, scan=scan)
    return None if isinstance(found, Idle) else found


def next_case_or_idle(
    session: Session, *, collector_id: int, at: datetime, scan: int = 50
) -> WorkItem | Idle:
    """`next_case`, or when there is none, why (`Idle`): windows not yet open, or which rules block."""
    # the collector's open calls and visits whose window has not closed
    still_open = (
        WorkItem.collector_id == collector_id,
        WorkItem.status == "open",
        WorkItem.kind.in_(TASK_KINDS),
        WorkItem.window_end_at > at,
    )
    candidates = session.scalars(
        select(WorkItem)
        .where(*still_open, WorkItem.window_start_at <= at)
        .order_by(WorkItem.priority.desc(), WorkItem.window_start_at, WorkItem.id)
        .limit(scan)
    )
    blocked: dict[str, tuple[Reason, int]] = {}
    resumes: list[datetime] = []
    for item in candidates:
        decision = gate_now(session, item=item, at=at)
        if decision.allowed:
            return item
        if decision.next_allowed_at is not None and (
            item.window_end_at is None or decision.next_allowed_at < clock.as_utc(item.window_end_at)
        ):
            resumes.append(decision.next_allowed_at)
        for reason in decision.reasons:
            first, count = blocked.get(reason.rule_id, (reason, 0))
            blocked[reason.rule_id] = (first, count + 1)
    waiting, opens_at = session.execute(
        select(func.count(), func.min(WorkItem.window_start_at)).where(
            *still_open, WorkItem.window_start_at > at
        )
    ).one()
    if opens_at is not None:
        resumes.append(clock.as_utc(opens_at))
    return Idle(
        waiting=int(waiting or 0),
        blocked=tuple(sorted(blocked.values(), key=lambda pair: (-pair[1], pair[0].rule_id))),
        resumes_at=min(resumes) if resumes else None,
    )


def gate_now(session: Session, *, item: WorkItem, at: datetime) -> Decision:
    """The compliance gate for a work item at ``at``, as the real-time check at claim time.

    The contact record (previous attempts) is read as empty until the contact log exists; flags, opt-outs,
    quiet hours and third-party rules apply now.
    """
    account = session.get(Account, item.account_id)
    portfolio = session.get(Portfolio, item.portfolio_id)
    if account is None or portfolio is None:
        raise NotFound(f"work item {item.id} refers to a missing account", code="account_not_found")
    debtor = session.get(Debtor, account.debtor_id)
    creditor = session.get(Creditor, portfolio.creditor_id)
    point = session.get(ContactPoint, item.contact_point_id) if item.contact_point_id else None
    if point is not None:
        zones: tuple[str, ...] = (point.timezone,) if point.timezone else ()
        if not zones and point.kind in ("mobile", "landline") and point.value.startswith("+"):
            zones = zones_for_phone(point.value)
        gate_point = GateContactPoint(
            value=point.value,
            kind=ContactKind(point.kind),
            owner_relation=OwnerRelation(point.owner_relation),
            owner_name=point.owner_name,
            debt_related=point.debt_related,
            opted_out=point.opted_out,
            time_zones=tuple(zones),
        )
    else:
        gate_point = GateContactPoint(
            value=debtor.address if debtor and debtor.address else "address", kind=ContactKind.ADDRESS
        )
    flags = session.scalars(
        select(AccountFlag).where(AccountFlag.account_id == account.id, AccountFlag.cleared_at.is_(None))
    )
    active = tuple(
        ActiveFlag(kind=FlagKind(f.kind), account_id=f.account_id, reason=f.reason)
        for f in flags
        if f.kind in FlagKind._value2member_map_ and (f.expires_on is None or f.expires_on > at.date())
    )
    own_phones = session.scalars(
        select(ContactPoint.is_valid).where(
            ContactPoint.debtor_id == account.debtor_id,
            ContactPoint.owner_relation == "self",
            ContactPoint.kind.in_(("mobile", "landline")),
        )
    ).all()
    product = account.product if account.product in Product._value2member_map_ else Product.OTHER.value
    attempt = Attempt(
        at=at,
        channel=Channel.VISIT if item.kind == "visit" else Channel.CALL,
        contact_point=gate_point,
        account_ids=frozenset({account.id}),
        collector_id=creditor.name if creditor else str(portfolio.id),
        purpose=Purpose.MESSAGE_PASSING if item.audience == "third_party" else Purpose.DEBT_COLLECTION,
    )
    context = Context(
        debtor_time_zones=(debtor.timezone,) if debtor is not None and debtor.timezone else (),
        portfolio_time_zone=portfolio.timezone,
        flags=active,
        debtor_numbers_invalid=not any(own_phones),
        accounts={account.id: AccountState(product=Product(product))},
    )
    return decide(attempt, (), context, load_pack(portfolio.rule_pack))


def _owned(session: Session, item_id: int, collector_id: int) -> WorkItem:
    item = session.get(WorkItem, item_id)
    if item is None:
        raise NotFound(f"工作项不存在：{item_id} / no work item {item_id}", code="work_item_not_found")
    if item.collector_id != collector_id:
        raise Forbidden(
            f"工作项 {item_id} 不在你的队列中 / work item {item_id} is not in your queue",
            code="not_your_item",
        )
    return item


def claim_work_item(session: Session, *, item_id: int, collector_id: int, at: datetime) -> WorkItem:
    """Claim a call or visit: inside its window, allowed by the gate right now, not claimed by anyone else."""
    item = _owned(session, item_id, collector_id)
    if item.status != "open":
        raise Conflict(
            f"工作项 {item_id} 状态为 {item.status} / work item {item_id} is {item.status}", code="not_open"
        )
    if not in_window(item, at):
        start = item.window_start_at.isoformat() if item.window_start_at else "-"
        end = item.window_end_at.isoformat() if item.window_end_at else "-"
        raise Conflict(
            f"不在允许的时间窗口内（{start} 至 {end}） / outside the permitted window ({start} to {end})",
            code="outside_window",
            details={"window_start_at": start, "window_end_at": end},
        )
    decision = gate_now(session, item=item, at=at)
    if not decision.allowed:
        rules = ", ".join(decision.rule_ids)
        later = decision.next_allowed_at.isoformat() if decision.next_allowed_at else None
        raise ComplianceBlocked(
            f"合规规则禁止此次联系（{rules}） / the compliance rules block this contact ({rules})"
            + (f"; 最早 {later} / earliest {later}" if later else ""),
            details=decision.to_dict(),
        )
    claimed = session.execute(
        update(WorkItem)
        .where(WorkItem.id == item.id, WorkItem.status == "open")
        .values(status="claimed", claimed_at=at, updated_at=at)
        .execution_options(synchronize_session=False)
    )
    if not claimed.rowcount:  # type: ignore[attr-defined]
        raise Conflict(
            f"工作项 {item_id} 已被领取 / work item {item_id} was claimed already", code="not_open"
        )
    session.refresh(item)
    return item


def complete_work_item(
    session: Session, *, item_id: int, collector_id: int, outcome: str, at: datetime, note: str | None = None
) -> WorkItem:
    """Close a claimed item with its outcome (the contact itself is logged by the contact record)."""
    item = _owned(session, item_id, collector_id)
    if item.status != "claimed":
        raise Conflict(
            f"工作项 {item_id} 需先领取 / work item {item_id} must be claimed first (it is {item.status})",
            code="not_claimed",
        )
    if not outcome or len(outcome) > 32:
        raise ValidationFailed("outcome is required (at most 32 characters)", code="bad_outcome")
    item.status = "done"
    item.outcome = outcome
    item.note = note
    item.completed_at = at
    item.updated_at = at
    session.flush()
    return item
