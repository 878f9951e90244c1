"""The supervisor's pages: the portfolio's health (dashboard with charts), the team's queues and
reassignment, approvals (discounts and other plans beyond a collector's authority, legal referrals) and the
daily run's history. Supervisors and administrators only (`guard.desk_for`).

Thin: the numbers come from `reports.service`, reassignment from `strategy.queue_service.assign_cases`,
decisions from `arrangements.service` and `legal.service`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Depends, Form
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select

from arrears import clock
from arrears.arrangements import service as arrangements_service
from arrears.errors import ArrearsError, NotFound, ValidationFailed
from arrears.legal import service as legal_service
from arrears.models import (
    AllocationEvent,
    AppUser,
    Arrangement,
    Case,
    CollectorProfile,
    Debtor,
    LegalCase,
    Portfolio,
    StrategyRun,
)
from arrears.money import format_minor
from arrears.reports import service as reports
from arrears.reports.buckets import BUCKET_NAMES, LEFT
from arrears.strategy import jobs as run_jobs
from arrears.strategy import queue_service
from arrears.web import views
from arrears.web.charts import Series, bar_chart
from arrears.web.guard import desk_for
from arrears.web.navigation import SUPERVISING
from arrears.web.routes import Desk, DeskRoute

router = APIRouter(include_in_schema=False, route_class=DeskRoute)
# every page here is for supervisors and administrators; anyone else gets the 403 page before the handler runs
SupervisorDesk = Annotated[Desk, Depends(desk_for(SUPERVISING))]


def _percent(bps: int) -> str:
    return f"{bps / 100:.2f}%"


def _local_today(d: Desk) -> date:
    return clock.to_local(d.now, clock.DEFAULT_ZONE).date()


def _portfolio_choice(d: Desk, text: str | None) -> tuple[int | None, list[tuple[int, str]]]:
    choices = [(p.id, p.name) for p in d.db.scalars(select(Portfolio).order_by(Portfolio.id))]
    chosen = int(text) if text and text.isdigit() and int(text) in {i for i, _ in choices} else None
    return chosen, choices


# ---------------------------------------------------------------------------------------------- dashboard


@router.get("/supervisor")
def dashboard(d: SupervisorDesk, portfolio: str | None = None) -> HTMLResponse:
    t = d.t
    portfolio_id, choices = _portfolio_choice(d, portfolio)
    # one portfolio's day is its own time zone's; all of them together are the desk's
    chosen = d.db.get(Portfolio, portfolio_id) if portfolio_id else None
    zone = chosen.timezone if chosen else clock.DEFAULT_ZONE
    today = clock.to_local(d.now, zone).date()
    currency = reports.currencies(d.db, [portfolio_id] if portfolio_id else None)[0]

    def money(minor: int) -> str:
        return format_minor(minor, currency, t.locale)

    def short_money(minor: int) -> str:  # axis labels: whole units, grouped
        return f"{minor // 100:,}"

    aging = reports.aging(d.db, as_of=today, portfolio_id=portfolio_id, currency=currency)
    bucket_labels = [t.label("buckets", b.bucket) for b in aging.buckets]
    aging_chart = bar_chart(
        title=t("aging_chart_title", day=today.isoformat()),
        labels=bucket_labels,
        series=[Series(t("balance"), [b.balance_minor for b in aging.buckets])],
        show=short_money,
        test_id="chart-aging",
    )
    steps = reports.roll_rates(d.db, through=today, months=6, portfolio_id=portfolio_id)
    shown_steps = steps[-3:]
    roll_chart = None
    if shown_steps:
        roll_chart = bar_chart(
            title=t("roll_chart_title"),
            labels=[t.label("buckets", b) for b in BUCKET_NAMES[:-1]],
            series=[
                Series(
                    f"{s.from_on:%m-%d} → {s.to_on:%m-%d}",
                    [next((r.roll_bps for r in s.rolls if r.from_bucket == b), 0) for b in BUCKET_NAMES[:-1]],
                )
                for s in shown_steps
            ],
            show=lambda bps: f"{bps // 100}%",
            test_id="chart-roll",
        )
    latest = steps[-1] if steps else None
    matrix_to = [*BUCKET_NAMES, LEFT]
    collected = reports.collected(d.db, today=today, days=30, portfolio_id=portfolio_id, currency=currency)
    collected_chart = bar_chart(
        title=t("collected_chart_title"),
        labels=[f"{day:%m-%d}" for day, _ in collected.days],
        series=[Series(t("collected"), [v for _, v in collected.days])],
        show=short_money,
        label_every=5,
        test_id="chart-collected",
    )
    promises = reports.promises_summary(d.db, today=today, portfolio_id=portfolio_id, currency=currency)
    blocked = reports.blocked_by_rule(d.db, day=today, zone=zone, portfolio_id=portfolio_id)
    todays_runs = [r for r in reports.runs_on(d.db, day=today) if portfolio_id in (None, r.portfolio_id)]
    names = dict(choices)
    return d.page(
        "dashboard.html",
        today=today.isoformat(),
        currency=currency,
        money=money,
        percent=_percent,
        aging=aging,
        aging_chart=aging_chart,
        bucket_labels=bucket_labels,
        roll_chart=roll_chart,
        latest=latest,
        matrix_to=matrix_to,
        collected=collected,
        collected_chart=collected_chart,
        promises=promises,
        blocked=blocked,
        todays_runs=todays_runs,
        portfolio_names=names,
        portfolio_id=portfolio_id,
        portfolios=choices,
    )


# ------------------------------------------------------------------------------------------- team, reassign


@dataclass(frozen=True, slots=True)
class EventRow:
    at_local: str
    case_id: int
    from_name: str
    to_name: str
    outcome: str
    reason: str
    actor: str


def _team_page(
    d: Desk, *, notice: str | None = None, error: str | None = None, status: int = 200, form: Any = None
) -> HTMLResponse:
    team = reports.team_queues(d.db, now=d.now)
    names = {row.user_id: row.display_name for row in team}
    events = list(d.db.scalars(select(AllocationEvent).order_by(AllocationEvent.id.desc()).limit(20)))
    missing = {i for e in events for i in (e.from_collector_id, e.to_collector_id) if i and i not in names}
    if missing:
        names.update(
            dict(d.db.execute(select(AppUser.id, AppUser.display_name).where(AppUser.id.in_(missing))).all())
        )
    rows = [
        EventRow(
            at_local=views.local_text(e.created_at, clock.DEFAULT_ZONE),
            case_id=e.case_id,
            from_name=names.get(e.from_collector_id or 0, "—"),
            to_name=names.get(e.to_collector_id or 0, "—"),
            outcome=d.t.label("allocation_outcomes", e.outcome),
            # the daily run's rows all carry the same stored reason; its outcome says more
            reason=(e.reason or "") if e.outcome == "manual" else d.t.label("allocation_outcomes", e.outcome),
            actor=e.actor or d.t("daily_run"),
        )
        for e in events
    ]
    collectors = [
        (u.username, u.display_name or u.username)
        for u in d.db.scalars(
            select(AppUser)
            .join(CollectorProfile, CollectorProfile.user_id == AppUser.id)
            .where(CollectorProfile.active.is_(True), AppUser.active.is_(True))
            .order_by(AppUser.username)
        )
    ]
    return d.page(
        "team.html",
        status=status,
        notice=notice,
        error=error,
        team=team,
        events=rows,
        collectors=collectors,
        form=form or {},
    )


@router.get("/supervisor/team")
def team_page(d: SupervisorDesk, done: str | None = None) -> HTMLResponse:
    return _team_page(d, notice=d.t("reassigned", count=done) if done and done.isdigit() else None)


def parse_case_ids(text: str) -> list[int]:
    """Case ids typed by a person: numbers separated by commas, spaces or new lines."""
    parts = [p for p in re.split(r"[\s,，;；]+", text.strip()) if p]
    bad = [p for p in parts if not p.isdigit()]
    if bad or not parts:
        raise ValidationFailed(
            f"案件号应为数字 / case ids must be numbers: {', '.join(bad) or '—'}", code="bad_case_ids"
        )
    return list(dict.fromkeys(int(p) for p in parts))


@router.post("/supervisor/team/reassign")
def reassign(
    d: SupervisorDesk,
    case_ids: Annotated[str, Form()] = "",
    collector: Annotated[str, Form()] = "",
    reason: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    try:
        d.check_csrf(csrf_token)
    except ArrearsError as exc:
        return d.error(exc)
    form = {"case_ids": case_ids, "collector": collector, "reason": reason}
    try:
        ids = parse_case_ids(case_ids)
        if not reason.strip():
            raise ValidationFailed(d.t("reason_required"), code="reason_required")
        events = queue_service.assign_cases(
            d.db,
            case_ids=ids,
            collector=collector,
            actor=d.user.username,
            reason=reason,
            as_of=_local_today(d),
            now=d.now,
        )
    except ArrearsError as exc:
        d.db.rollback()  # all or nothing: a refused batch leaves every case where it was
        return _team_page(d, error=exc.message, status=exc.status, form=form)
    return d.redirect(f"/supervisor/team?done={len(events)}")


# ---------------------------------------------------------------------------------------------- approvals


@dataclass(frozen=True, slots=True)
class PlanApproval:
    id: int
    case_id: int
    debtor_name: str
    kind: str
    balance: str
    waived: str
    payable: str
    discount: str
    instalments: int
    first_due: str
    last_due: str
    reasons: tuple[str, ...]
    created_by: str
    quoted_on: str


@dataclass(frozen=True, slots=True)
class ReferralApproval:
    id: int
    case_id: int
    debtor_name: str
    kind: str
    law_firm: str
    referred_on: str
    referred_by: str


def _approvals_page(
    d: Desk, *, notice: str | None = None, error: str | None = None, status: int = 200
) -> HTMLResponse:
    t = d.t
    plans = list(
        d.db.scalars(
            select(Arrangement).where(Arrangement.status == "pending_approval").order_by(Arrangement.id)
        )
    )
    legal = list(
        d.db.scalars(select(LegalCase).where(LegalCase.status == "pending_approval").order_by(LegalCase.id))
    )
    case_ids = {p.case_id for p in plans} | {lc.case_id for lc in legal}
    debtors: dict[int, str] = dict(
        d.db.execute(
            select(Case.id, Debtor.name)
            .join(Debtor, Debtor.id == Case.debtor_id)
            .where(Case.id.in_(case_ids))
        ).all()
    )
    user_ids = {p.created_by_id for p in plans if p.created_by_id} | {lc.referred_by_id for lc in legal}
    people: dict[int, str] = dict(
        d.db.execute(select(AppUser.id, AppUser.display_name).where(AppUser.id.in_(user_ids))).all()
    )
    key = "message_zh" if t.locale == "zh_CN" else "message_en"
    plan_rows = [
        PlanApproval(
            id=p.id,
            case_id=p.case_id,
            debtor_name=debtors.get(p.case_id, ""),
            kind=t.label("plan_kinds", p.kind),
            balance=format_minor(p.balance_minor, p.currency, t.locale),
            waived=format_minor(p.waived_minor, p.currency, t.locale),
            payable=format_minor(p.payable_minor, p.currency, t.locale),
            discount=_percent(p.discount_bps),
            instalments=len(p.instalments),
            first_due=p.instalments[0].due_on.isoformat() if p.instalments else "",
            last_due=p.instalments[-1].due_on.isoformat() if p.instalments else "",
            reasons=tuple(str(r.get(key, r.get("code", ""))) for r in p.approval_reasons),
            created_by=people.get(p.created_by_id or 0, "—"),
            quoted_on=p.quoted_on.isoformat(),
        )
        for p in plans
    ]
    referral_rows = [
        ReferralApproval(
            id=lc.id,
            case_id=lc.case_id,
            debtor_name=debtors.get(lc.case_id, ""),
            kind=t.label("legal_kinds", lc.kind),
            law_firm=lc.law_firm_name,
            referred_on=lc.referred_on.isoformat(),
            referred_by=people.get(lc.referred_by_id, "—"),
        )
        for lc in legal
    ]
    return d.page(
        "approvals.html",
        status=status,
        notice=notice,
        error=error,
        plans=plan_rows,
        referrals=referral_rows,
    )


DECIDED = {"approved": "decision_approved", "rejected": "decision_rejected"}


@router.get("/supervisor/approvals")
def approvals_page(d: SupervisorDesk, done: str | None = None) -> HTMLResponse:
    return _approvals_page(d, notice=d.t(DECIDED[done]) if done in DECIDED else None)


def _decision(text: str) -> bool:
    if text not in ("approve", "reject"):
        raise ValidationFailed(f"未知决定 / unknown decision {text!r}", code="bad_decision")
    return text == "approve"


@router.post("/supervisor/approvals/arrangements/{arrangement_id}")
def decide_plan(
    d: SupervisorDesk,
    arrangement_id: int,
    decision: Annotated[str, Form()] = "",
    reason: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    try:
        d.check_csrf(csrf_token)
    except ArrearsError as exc:
        return d.error(exc)
    try:
        approve = _decision(decision)
        if approve:
            arrangements_service.approve_arrangement(
                d.db,
                arrangement_id=arrangement_id,
                user_id=d.user.id,
                at=d.now,
                reason=reason.strip() or None,
            )
        else:
            if not reason.strip():
                raise ValidationFailed(d.t("reason_required"), code="reason_required")
            arrangements_service.reject_arrangement(
                d.db, arrangement_id=arrangement_id, user_id=d.user.id, at=d.now, reason=reason.strip()
            )
    except ArrearsError as exc:
        d.db.rollback()
        return _approvals_page(d, error=exc.message, status=exc.status)
    return d.redirect(f"/supervisor/approvals?done={'approved' if approve else 'rejected'}")


@router.post("/supervisor/approvals/legal/{legal_case_id}")
def decide_legal(
    d: SupervisorDesk,
    legal_case_id: int,
    decision: Annotated[str, Form()] = "",
    reason: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    try:
        d.check_csrf(csrf_token)
    except ArrearsError as exc:
        return d.error(exc)
    try:
        approve = _decision(decision)
        if not approve and not reason.strip():
            raise ValidationFailed(d.t("reason_required"), code="reason_required")
        legal_service.decide_referral(
            d.db,
            legal_case_id=legal_case_id,
            user_id=d.user.id,
            approve=approve,
            at=d.now,
            reason=reason.strip() or None,
        )
    except ArrearsError as exc:
        d.db.rollback()
        return _approvals_page(d, error=exc.message, status=exc.status)
    return d.redirect(f"/supervisor/approvals?done={'approved' if approve else 'rejected'}")


# ------------------------------------------------------------------------------------------------- runs


@dataclass(frozen=True, slots=True)
class RunRow:
    run: StrategyRun
    portfolio: str
    started_local: str
    finished_local: str
    seconds: str
    phases_done: int
    blocked_total: int


def _run_row(run: StrategyRun, names: dict[int, str]) -> RunRow:
    return RunRow(
        run=run,
        portfolio=names.get(run.portfolio_id, str(run.portfolio_id)),
        started_local=views.local_text(run.started_at, clock.DEFAULT_ZONE),
        finished_local=views.local_text(run.finished_at, clock.DEFAULT_ZONE),
        seconds=f"{run.duration_ms / 1000:.1f}" if run.duration_ms is not None else "",
        phases_done=len(run.phases or []),
        blocked_total=sum(int(v) for v in (run.blocked_by_rule or {}).values()),
    )


@dataclass(frozen=True)
class DeskRunRow:
    job: run_jobs.RunJob
    started_local: str
    finished_local: str


def _runs_page(
    d: Desk, *, error: ArrearsError | None = None, form: dict[str, str] | None = None
) -> HTMLResponse:
    names: dict[int, str] = dict(d.db.execute(select(Portfolio.id, Portfolio.name)).all())
    rows = [_run_row(r, names) for r in reports.runs(d.db, limit=100)]
    started = [
        DeskRunRow(
            job=j,
            started_local=views.local_text(j.started_at, clock.DEFAULT_ZONE),
            finished_local=views.local_text(j.finished_at, clock.DEFAULT_ZONE),
        )
        for j in run_jobs.recent()
    ]
    running = any(r.run.status == "running" for r in rows) or any(j.job.running for j in started)
    return d.page(
        "runs.html",
        rows=rows,
        started=started,
        portfolios=sorted(names.items(), key=lambda kv: kv[1]),
        today=_local_today(d).isoformat(),
        form=form or {},
        error=error.message if error else None,
        refresh=5 if running else None,
        status=error.status if error else 200,
    )


@router.get("/supervisor/runs")
def runs_page(d: SupervisorDesk) -> HTMLResponse:
    return _runs_page(d)


@router.post("/supervisor/runs")
def start_run(
    d: SupervisorDesk,
    background: BackgroundTasks,
    portfolio_id: Annotated[str, Form()] = "",
    as_of: Annotated[str, Form()] = "",
    dry_run: Annotated[str | None, Form()] = None,
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    """Start the day's run of a portfolio in the background; the page follows its phases."""
    form = {"portfolio_id": portfolio_id, "as_of": as_of, "dry_run": "on" if dry_run else ""}
    try:
        d.check_csrf(csrf_token)
    except ArrearsError as exc:
        return d.error(exc)
    try:
        portfolio = d.db.get(Portfolio, int(portfolio_id)) if portfolio_id.isdigit() else None
        if portfolio is None:
            raise ValidationFailed(d.t("choose_portfolio"), code="portfolio_required")
        try:
            day = date.fromisoformat(as_of.strip())
        except ValueError as exc:
            raise ValidationFailed(
                f"{d.t('as_of')}：{as_of!r} 不是日期 / {as_of!r} is not a date (YYYY-MM-DD)", code="bad_date"
            ) from exc
        job = run_jobs.start(
            portfolio=portfolio.name,
            as_of=day,
            dry_run=bool(dry_run),
            requested_by=d.user.username,
            now=d.now,
        )
    except ArrearsError as exc:
        return _runs_page(d, error=exc, form=form)
    background.add_task(run_jobs.execute, d.request.app.state.engine, job.id)
    return d.redirect("/supervisor/runs")


def _sorted_counts(counts: dict[str, Any] | None) -> list[tuple[str, int]]:
    return sorted(((str(k), int(v)) for k, v in (counts or {}).items()), key=lambda kv: (-kv[1], kv[0]))


def phase_line(phase: dict[str, Any]) -> tuple[str, str, str]:
    """A recorded phase as (name, status, details): seconds, changes and counts as ``key value``."""
    parts = []
    if "seconds" in phase:
        parts.append(f"{phase['seconds']} s")
    counts = phase.get("counts")
    if isinstance(counts, dict):
        parts.extend(f"{k} {v}" for k, v in counts.items())
    if "changes" in phase:
        parts.append(f"changes {phase['changes']}")
    parts.extend(
        f"{k} {v}" for k, v in phase.items() if k not in ("name", "status", "seconds", "counts", "changes")
    )
    return str(phase.get("name", "")), str(phase.get("status", "")), " · ".join(parts)


@router.get("/supervisor/runs/{run_id}")
def run_page(d: SupervisorDesk, run_id: int) -> HTMLResponse:
    try:
        run = d.db.get(StrategyRun, run_id)
        if run is None:
            raise NotFound(f"批次不存在：{run_id} / run {run_id} not found", code="run_not_found")
    except ArrearsError as exc:
        return d.error(exc)
    names: dict[int, str] = dict(d.db.execute(select(Portfolio.id, Portfolio.name)).all())
    return d.page(
        "run.html",
        row=_run_row(run, names),
        stages=_sorted_counts(run.stage_counts),
        actions=_sorted_counts(run.action_counts),
        blocked=_sorted_counts(run.blocked_by_rule),
        allocation=_sorted_counts(run.allocation_counts),
        phases=[phase_line(p) for p in run.phases or []],
        arms=_sorted_counts(run.arm_counts),
        refresh=5 if run.status == "running" else None,
    )
