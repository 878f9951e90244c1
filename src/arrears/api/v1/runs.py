"""Daily runs, explanations, work queues and allocation over REST."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from arrears import clock
from arrears.api.deps import (
    LIST_RESPONSE,
    CurrentUser,
    PageDep,
    SessionDep,
    acting_name,
    actor_id,
    current_user,
    require,
    require_manager,
)
from arrears.api.v1.schemas import AUTH_ERRORS, ErrorOut
from arrears.enums import Role
from arrears.errors import Forbidden
from arrears.models import AllocationEvent, StrategyRun, WorkItem
from arrears.strategy import queue_service, service
from arrears.strategy import run as daily
from arrears.strategy.service import Explanation
from arrears.users import access, guard

router = APIRouter(
    prefix="/api/v1", tags=["runs"], dependencies=[Depends(current_user)], responses=AUTH_ERRORS
)
ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorOut, "description": "not found"},
    409: {"model": ErrorOut, "description": "conflict or blocked by the compliance rules"},
}


class RunIn(BaseModel):
    portfolio: str
    as_of: date
    dry_run: bool = False
    partitions: int = Field(default=1, ge=1, le=1024)


class RunOut(BaseModel):
    id: int | None
    portfolio_id: int | None
    portfolio: str | None = None
    as_of: date
    status: str
    mode: str
    partitions: int
    strategy: str | None
    strategy_version: int | None
    experiment: str | None = None
    challenger: str | None = None
    challenger_share_bp: int | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    duration_ms: int | None
    accounts_evaluated: int
    accounts_skipped: int
    changes: int
    outbox_written: int
    work_items_written: int
    rescheduled: int
    dropped: int
    stage_counts: dict[str, int]
    action_counts: dict[str, int]
    blocked_by_rule: dict[str, int]
    arm_counts: dict[str, int]
    allocation_counts: dict[str, int]
    phases: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []


def _run_out(run: StrategyRun) -> RunOut:
    return RunOut(
        id=run.id,
        portfolio_id=run.portfolio_id,
        as_of=run.as_of_date,
        status=run.status,
        mode=run.mode,
        partitions=run.partitions,
        strategy=run.strategy,
        strategy_version=run.strategy_version,
        experiment=run.experiment,
        challenger=run.challenger,
        challenger_share_bp=run.challenger_share_bp,
        started_at=run.started_at,
        finished_at=run.finished_at,
        duration_ms=run.duration_ms,
        accounts_evaluated=run.accounts_evaluated,
        accounts_skipped=run.accounts_skipped,
        changes=run.changes,
        outbox_written=run.outbox_written,
        work_items_written=run.work_items_written,
        rescheduled=run.rescheduled,
        dropped=run.dropped,
        stage_counts=run.stage_counts or {},
        action_counts=run.action_counts or {},
        blocked_by_rule=run.blocked_by_rule or {},
        arm_counts=run.arm_counts or {},
        allocation_counts=run.allocation_counts or {},
        phases=run.phases or [],
        errors=run.errors or [],
    )


def _report_out(report: daily.RunReport) -> RunOut:
    o = report.outcome
    return RunOut(
        id=None,
        portfolio_id=None,
        portfolio=report.portfolio,
        as_of=report.as_of,
        status=report.status,
        mode=report.mode,
        partitions=report.partitions,
        strategy=None,
        strategy_version=None,
        duration_ms=report.duration_ms,
        accounts_evaluated=o.accounts_evaluated,
        accounts_skipped=o.accounts_skipped,
        changes=report.changes,
        outbox_written=o.outbox,
        work_items_written=o.work_items,
        rescheduled=o.rescheduled,
        dropped=o.dropped,
        stage_counts=o.stage_counts,
        action_counts=o.action_counts,
        blocked_by_rule=o.blocked_by_rule,
        arm_counts=o.arm_counts,
        allocation_counts=report.allocation_counts,
        errors=o.errors,
    )


@router.post(
    "/runs", response_model=RunOut, status_code=201, responses=ERRORS, dependencies=[require_manager()]
)
def start_run(body: RunIn, session: SessionDep, user: CurrentUser) -> RunOut:
    """Run a portfolio's day in-process (``dry_run``: report what would happen, write nothing)."""
    report = daily.run_portfolio(
        session,
        portfolio=body.portfolio,
        as_of=body.as_of,
        now=clock.now(),
        dry_run=body.dry_run,
        partitions=body.partitions,
        requested_by=user.user.username,
    )
    if report.run_id is None:
        return _report_out(report)
    out = _run_out(service.get_run(session, run_id=report.run_id))
    out.portfolio = report.portfolio
    return out


@router.get(
    "/runs/{run_id}", response_model=RunOut, responses=ERRORS, dependencies=[require(*access.READ_ALL)]
)
def get_run(run_id: int, session: SessionDep) -> RunOut:
    return _run_out(service.get_run(session, run_id=run_id))


@router.get("/accounts/{account_id}/explain", response_model=Explanation, responses=ERRORS)
def explain(
    account_id: int, session: SessionDep, user: CurrentUser, as_of: date | None = None
) -> Explanation:
    """Why the account has its stage and actions on a date (PI-7): recorded, or a preview."""
    guard.require_account(session, user=user.user, account_id=account_id)
    return service.explain_account(session, account_id=account_id, as_of=as_of or clock.today())


class WorkItemOut(BaseModel):
    id: int
    case_id: int
    account_id: int
    kind: str
    action_key: str
    template: str
    audience: str
    priority: int
    queue: str | None
    collector_id: int | None
    status: str
    window_start_at: datetime | None
    window_end_at: datetime | None
    may_contact_now: bool | None = None
    claimed_at: datetime | None
    completed_at: datetime | None
    outcome: str | None


def _item_out(item: WorkItem, at: datetime | None = None) -> WorkItemOut:
    return WorkItemOut(
        id=item.id,
        case_id=item.case_id,
        account_id=item.account_id,
        kind=item.kind,
        action_key=item.action_key,
        template=item.template,
        audience=item.audience,
        priority=item.priority,
        queue=item.queue,
        collector_id=item.collector_id,
        status=item.status,
        window_start_at=item.window_start_at,
        window_end_at=item.window_end_at,
        may_contact_now=queue_service.in_window(item, at) if at is not None else None,
        claimed_at=item.claimed_at,
        completed_at=item.completed_at,
        outcome=item.outcome,
    )


class BlockedOut(BaseModel):
    rule_id: str
    count: int = Field(description="in-window items this rule blocks now (of those scanned)")
    zh: str
    en: str


class IdleOut(BaseModel):
    """Why there is no next item: windows not yet open, rules blocking, and when work may resume."""

    waiting: int = Field(description="open items whose window has not opened yet")
    blocked: list[BlockedOut]
    resumes_at: datetime | None = Field(description="earliest moment one of them may be worked")


class WorkQueueOut(BaseModel):
    collector_id: int
    at: datetime
    next_item_id: int | None  # the highest-priority item the collector may contact right now
    idle: IdleOut | None = None  # set when next_item_id is None
    items: list[WorkItemOut]


def _idle_out(idle: queue_service.Idle) -> IdleOut:
    return IdleOut(
        waiting=idle.waiting,
        blocked=[BlockedOut(rule_id=r.rule_id, count=n, zh=r.zh, en=r.en) for r, n in idle.blocked],
        resumes_at=idle.resumes_at,
    )


@router.get("/work-queue", response_model=WorkQueueOut, responses=ERRORS)
def work_queue(
    session: SessionDep,
    caller: CurrentUser,
    collector: Annotated[
        str | None,
        Query(
            description="collector id or username (default: the caller); others' queues need a supervisor's or reader's role"
        ),
    ] = None,
    at: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> WorkQueueOut:
    moment = clock.as_utc(at) if at is not None else clock.now()
    if collector is None:
        user = caller.user
    else:
        user = queue_service.get_user(session, int(collector) if collector.isdigit() else collector)
    if user.id != caller.id:
        guard.require_role(caller.user, access.READ_ALL)
    items = queue_service.work_queue(session, collector_id=user.id, at=moment, limit=limit)
    following = queue_service.next_case_or_idle(session, collector_id=user.id, at=moment)
    if isinstance(following, queue_service.Idle):
        next_item_id, idle = None, _idle_out(following)
    else:
        next_item_id, idle = following.id, None
    return WorkQueueOut(
        collector_id=user.id,
        at=moment,
        next_item_id=next_item_id,
        idle=idle,
        items=[_item_out(i, moment) for i in items],
    )


class ClaimIn(BaseModel):
    collector_id: int
    at: datetime | None = None


class CompleteIn(BaseModel):
    collector_id: int
    outcome: str = Field(min_length=1, max_length=32)
    note: str | None = None
    at: datetime | None = None


@router.post("/work-items/{item_id}/claim", response_model=WorkItemOut, responses=ERRORS)
def claim(item_id: int, body: ClaimIn, session: SessionDep, user: CurrentUser) -> WorkItemOut:
    """Claim a call or visit: only inside its window and when the compliance gate allows it now."""
    guard.require_role(user.user, frozenset({Role.COLLECTOR, Role.ADMIN}))
    guard.require_subject(session, user=user.user, kind="work_item", subject_id=item_id, work=True)
    at = clock.as_utc(body.at) if body.at else clock.now()
    item = queue_service.claim_work_item(
        session, item_id=item_id, collector_id=actor_id(user, body.collector_id), at=at
    )
    return _item_out(item, at)


@router.post("/work-items/{item_id}/complete", response_model=WorkItemOut, responses=ERRORS)
def complete(item_id: int, body: CompleteIn, session: SessionDep, user: CurrentUser) -> WorkItemOut:
    guard.require_subject(session, user=user.user, kind="work_item", subject_id=item_id, work=True)
    at = clock.as_utc(body.at) if body.at else clock.now()
    item = queue_service.complete_work_item(
        session,
        item_id=item_id,
        collector_id=actor_id(user, body.collector_id),
        outcome=body.outcome,
        note=body.note,
        at=at,
    )
    return _item_out(item, at)


class AllocationIn(BaseModel):
    case_ids: list[int] = Field(min_length=1)
    collector: str
    reason: str = Field(min_length=1)
    actor: str | None = Field(
        None,
        description="recorded as the one who moved the cases; default and, except for administrators, "
        "only value: the caller's username",
    )
    as_of: date | None = None


class AllocationEventOut(BaseModel):
    id: int
    case_id: int
    from_collector_id: int | None
    to_collector_id: int | None
    queue: str | None
    outcome: str
    reason: str | None
    actor: str | None
    effective_on: date
    created_at: datetime


def _event_out(e: AllocationEvent) -> AllocationEventOut:
    return AllocationEventOut(
        id=e.id,
        case_id=e.case_id,
        from_collector_id=e.from_collector_id,
        to_collector_id=e.to_collector_id,
        queue=e.queue,
        outcome=e.outcome,
        reason=e.reason,
        actor=e.actor,
        effective_on=e.effective_on,
        created_at=e.created_at,
    )


@router.post(
    "/allocations",
    response_model=list[AllocationEventOut],
    status_code=201,
    responses=ERRORS,
    dependencies=[require_manager()],
)
def allocate_by_hand(body: AllocationIn, session: SessionDep, user: CurrentUser) -> list[AllocationEventOut]:
    """A supervisor's batch allocation or reassignment, with a reason; all cases or none."""
    refusal = Forbidden(
        "只能以本人身份分配 / allocations are recorded as yourself (actor must be your username)",
        code="acting_as_other",
    )
    actor = acting_name(user, body.actor, allowed={Role.ADMIN}, refusal=refusal)
    events = queue_service.assign_cases(
        session,
        case_ids=body.case_ids,
        collector=int(body.collector) if body.collector.isdigit() else body.collector,
        actor=actor,
        reason=body.reason,
        as_of=body.as_of or clock.today(),
    )
    return [_event_out(e) for e in events]


@router.get(
    "/cases/{case_id}/allocations",
    response_model=list[AllocationEventOut],
    responses={**ERRORS, **LIST_RESPONSE},
)
def case_allocations(
    case_id: int, session: SessionDep, user: CurrentUser, page: PageDep
) -> list[AllocationEventOut]:
    guard.require_case(session, user=user.user, case_id=case_id)
    return [_event_out(e) for e in page.of(queue_service.allocation_history(session, case_id=case_id))]
