"""What the desk's pages show, read from the database: plain dataclasses the templates render.

Sensitive fields are masked here (PI-6); the full phone number leaves the server only in the ``tel:``
link of a number the gate allows calling right now.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import Connection, Row, Select, bindparam, null, select, type_coerce
from sqlalchemy import case as case_
from sqlalchemy.orm import Session, selectinload

from arrears import clock
from arrears.compliance import service as compliance_service
from arrears.enums import Channel
from arrears.models import (
    Account,
    Approval,
    AppUser,
    Arrangement,
    Case,
    ContactAttempt,
    ContactPoint,
    Debtor,
    Payment,
    Portfolio,
    Promise,
    WorkItem,
)
from arrears.models.base import UTCDateTime
from arrears.money import format_minor
from arrears.strategy import queue_service
from arrears.users import access
from arrears.users.masking import mask_address, mask_bank_account, mask_national_id, mask_phone
from arrears.web.i18n import Translator

PHONE_KINDS = ("mobile", "landline")


@dataclass(frozen=True, slots=True)
class ReasonView:
    rule_id: str
    text: str


@dataclass(frozen=True, slots=True)
class PhoneCheck:
    """One phone number and the gate's answer for a call at the checked moment."""

    contact_point_id: int
    masked: str
    relation: str
    owner_name: str | None
    allowed: bool
    rule_ids: tuple[str, ...]
    reasons: tuple[ReasonView, ...]
    next_allowed_local: str | None
    dial_href: str | None


@dataclass(frozen=True, slots=True)
class AccountView:
    id: int
    external_ref: str
    product: str
    currency: str
    components: tuple[tuple[str, str], ...]  # (label, formatted amount), principal first
    total_minor: int
    total: str
    due_date: str
    bank_account: str | None = None  # masked (PI-6)
    bank_name: str | None = None


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    at_local: str
    kind: str  # attempt, promise, payment
    text: str
    detail: str = ""
    blocked: bool = False
    sort_key: tuple[str, int] = ("", 0)


@dataclass
class CaseView:
    case: Case
    debtor_name: str
    national_id: str | None
    address: str | None
    employer: str | None
    assignee: str | None
    accounts: list[AccountView]
    phones: list[PhoneCheck]
    timeline: list[TimelineEntry]
    checked_at_local: str
    zone: str
    total: str
    points: list[tuple[int, str]] = field(default_factory=list)  # every phone, for the forms
    # (account id, label) of every account with a bank account, for the reveal form
    bank_accounts: list[tuple[int, str]] = field(default_factory=list)
    plans: list[PlanView] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class PlanView:
    """A stored repayment plan as the case page lists it."""

    id: int
    kind: str
    status: str
    status_code: str
    payable: str
    waived: str
    discount: str
    instalments: tuple[tuple[int, str, str], ...]  # (seq, due on, amount)
    reasons: tuple[str, ...]


def _plans(plans: list[Arrangement], t: Translator) -> list[PlanView]:
    """The case's plans, newest first."""
    key = "message_zh" if t.locale == "zh_CN" else "message_en"
    out = []
    for p in sorted(plans, key=lambda plan: plan.id, reverse=True):
        out.append(
            PlanView(
                id=p.id,
                kind=t.label("plan_kinds", p.kind),
                status=t.label("plan_statuses", p.status),
                status_code=p.status,
                payable=format_minor(p.payable_minor, p.currency, t.locale),
                waived=format_minor(p.waived_minor, p.currency, t.locale),
                discount=f"{p.discount_bps / 100:.2f}%",
                instalments=tuple(
                    (i.seq, i.due_on.isoformat(), format_minor(i.amount_minor, p.currency, t.locale))
                    for i in p.instalments
                ),
                reasons=tuple(str(r.get(key, r.get("code", ""))) for r in p.approval_reasons or []),
            )
        )
    return out


def local_text(moment: datetime | None, zone: str) -> str:
    """A timestamp as ``YYYY-MM-DD HH:MM`` in a zone ('' for None)."""
    if moment is None:
        return ""
    return clock.to_local(moment, zone).strftime("%Y-%m-%d %H:%M")


def idle_notice(idle: queue_service.Idle, t: Translator, zone: str = clock.DEFAULT_ZONE) -> str:
    """Why "next case" found nothing, in the user's language: no open items, windows not yet open (and
    when the next one opens), or which compliance rules block the items in their window now."""
    if idle.empty:
        return t("idle_no_items")
    parts = [t("no_next_case")]
    if idle.waiting:
        parts.append(t("idle_waiting", count=idle.waiting))
    for reason, count in idle.blocked:
        parts.append(
            t(
                "idle_blocked",
                count=count,
                rule=reason.rule_id,
                reason=reason.zh if t.locale == "zh_CN" else reason.en,
            )
        )
    if idle.resumes_at is not None:
        parts.append(t("idle_resumes", at=local_text(idle.resumes_at, zone)))
    return " ".join(parts)


# The case page's statements are built once: building and keying a statement on every request costs the
# web process more than the database needs to answer it.
_ACCOUNTS = (
    select(
        Account.id,
        Account.external_ref,
        Account.product,
        Account.currency,
        Account.principal_minor,
        Account.interest_minor,
        Account.penalty_minor,
        Account.fees_minor,
        Account.costs_minor,
        Account.due_date,
        Account.bank_account,
        Account.bank_name,
    )
    .where(Account.case_id == bindparam("case_id"))
    .order_by(Account.id)
)
_POINTS = select(
    ContactPoint.id,
    ContactPoint.kind,
    ContactPoint.value,
    ContactPoint.owner_relation,
    ContactPoint.owner_name,
).where(ContactPoint.debtor_id == bindparam("debtor_id"))
_ATTEMPTS = select(
    ContactAttempt.id,
    ContactAttempt.started_at,
    ContactAttempt.channel,
    ContactAttempt.outcome,
    ContactAttempt.contact_point_id,
    ContactAttempt.allowed,
    ContactAttempt.notes,
    # the stored decision is read only where the page shows its reasons (a blocked attempt)
    type_coerce(
        case_((ContactAttempt.allowed.is_(False), ContactAttempt.decision), else_=null()),
        ContactAttempt.decision.type,
    ).label("decision"),
).where(ContactAttempt.case_id == bindparam("case_id"))
_PROMISES = select(
    Promise.id,
    Promise.created_at,
    Promise.amount_minor,
    Promise.currency,
    Promise.promised_on,
    Promise.status,
).where(Promise.case_id == bindparam("case_id"))
_PAYMENTS = select(
    Payment.id,
    Payment.created_at,
    Payment.amount_minor,
    Payment.currency,
    Payment.reference,
    Payment.status,
    Payment.received_on,
).where(Payment.debtor_id == bindparam("debtor_id"))
_PLANS = (
    select(Arrangement)
    .where(Arrangement.case_id == bindparam("case_id"))
    .options(selectinload(Arrangement.instalments))
)
_HEAD = (
    select(
        Portfolio.timezone,
        Portfolio.currency,
        Debtor.name,
        Debtor.national_id,
        Debtor.address,
        Debtor.employer_name,
        select(AppUser.display_name).where(AppUser.id == bindparam("assignee_id")).scalar_subquery(),
    )
    .join_from(Portfolio, Debtor, Debtor.id == bindparam("debtor_id"))
    .where(Portfolio.id == bindparam("portfolio_id"))
)


def _reads(session: Session) -> Connection:
    """The session's connection, for the page's plain column reads: Core rows skip the ORM's loading step
    (these statements name columns, not entities). Pending ORM changes are flushed first, as a query
    through the session would."""
    session.flush()
    return session.connection()


def _accounts(session: Session, case_id: int, t: Translator) -> list[AccountView]:
    rows = _reads(session).execute(_ACCOUNTS, {"case_id": case_id})
    views = []
    for a in rows:
        parts = (
            ("principal", a.principal_minor),
            ("interest", a.interest_minor),
            ("penalty", a.penalty_minor),
            ("fees", a.fees_minor),
            ("costs", a.costs_minor),
        )
        total = sum(v for _, v in parts)
        views.append(
            AccountView(
                id=a.id,
                external_ref=a.external_ref,
                product=t.label("products", a.product),
                currency=a.currency,
                components=tuple((t(name), format_minor(v, a.currency, t.locale)) for name, v in parts),
                total_minor=total,
                total=format_minor(total, a.currency, t.locale),
                due_date=a.due_date.isoformat() if a.due_date else "",
                bank_account=mask_bank_account(a.bank_account),
                bank_name=a.bank_name,
            )
        )
    return views


def _points(session: Session, debtor_id: int) -> list[Row[Any]]:
    """The debtor's contact points (the call panel's phones, the timeline's numbers), in one query."""
    return list(_reads(session).execute(_POINTS, {"debtor_id": debtor_id}))


def _phones(
    session: Session,
    case: Case,
    points: list[Row[Any]],
    at: datetime,
    zone: str,
    t: Translator,
    collector: str,
) -> tuple[list[PhoneCheck], list[tuple[int, str]]]:
    """The debtor's phones, own numbers first, each with the gate's answer for a call at ``at``."""
    phones = sorted(
        (p for p in points if p.kind in PHONE_KINDS), key=lambda p: (p.owner_relation != "self", p.id)
    )
    decisions = (
        compliance_service.check_contacts(
            session,
            case_id=case.id,
            contact_point_ids=[p.id for p in phones],
            channel=Channel.CALL,
            at=at,
            collector=collector,
        )
        if phones
        else {}
    )
    checks = []
    for p in phones:
        decision = decisions[p.id]
        reasons = tuple(
            ReasonView(r.rule_id, r.zh if t.locale == "zh_CN" else r.en) for r in decision.reasons
        )
        checks.append(
            PhoneCheck(
                contact_point_id=p.id,
                masked=mask_phone(p.value) or "",
                relation=t.label("relations", p.owner_relation),
                owner_name=p.owner_name if p.owner_relation != "self" else None,
                allowed=decision.allowed,
                rule_ids=decision.rule_ids,
                reasons=reasons,
                next_allowed_local=local_text(decision.next_allowed_at, zone) or None,
                dial_href=f"tel:{p.value}" if decision.allowed else None,
            )
        )
    labels = [(p.id, f"{mask_phone(p.value)} · {t.label('relations', p.owner_relation)}") for p in phones]
    return checks, labels


def _timeline(
    session: Session,
    case: Case,
    points: list[Row[Any]],
    plans: list[Arrangement],
    zone: str,
    t: Translator,
) -> list[TimelineEntry]:
    entries: list[TimelineEntry] = []
    masked = {p.id: mask_phone(p.value) or "" for p in points}
    reads = _reads(session)
    for a in reads.execute(_ATTEMPTS, {"case_id": case.id}):
        reasons = ""
        if not a.allowed and a.decision:
            key = "zh" if t.locale == "zh_CN" else "en"
            reasons = "; ".join(f"{r['rule_id']}: {r[key]}" for r in a.decision.get("reasons", []))
        entries.append(
            TimelineEntry(
                at_local=local_text(a.started_at, zone),
                kind="attempt",
                text=t(
                    "timeline_attempt",
                    channel=t.label("channels", a.channel),
                    outcome=t.label("outcomes", a.outcome),
                )
                + (f" · {masked.get(a.contact_point_id, '')}" if a.contact_point_id else ""),
                detail=reasons or (a.notes or ""),
                blocked=not a.allowed,
                sort_key=(a.started_at.isoformat(), a.id),
            )
        )
    for p in reads.execute(_PROMISES, {"case_id": case.id}):
        entries.append(
            TimelineEntry(
                at_local=local_text(p.created_at, zone),
                kind="promise",
                text=t(
                    "timeline_promise",
                    amount=format_minor(p.amount_minor, p.currency, t.locale),
                    promised_on=p.promised_on.isoformat(),
                    status=t.label("statuses", p.status),
                ),
                sort_key=(p.created_at.isoformat(), p.id),
            )
        )
    for pay in reads.execute(_PAYMENTS, {"debtor_id": case.debtor_id}):
        entries.append(
            TimelineEntry(
                at_local=local_text(pay.created_at, zone),
                kind="payment",
                text=t(
                    "timeline_payment",
                    amount=format_minor(pay.amount_minor, pay.currency, t.locale),
                    reference=pay.reference,
                    status=t.label("statuses", pay.status),
                ),
                detail=pay.received_on.isoformat(),
                sort_key=(pay.created_at.isoformat(), pay.id),
            )
        )
    plan_ids = []
    for plan in plans:
        plan_ids.append(plan.id)
        entries.append(
            TimelineEntry(
                at_local=local_text(plan.created_at, zone),
                kind="plan",
                text=t(
                    "timeline_plan",
                    kind=t.label("plan_kinds", plan.kind),
                    amount=format_minor(plan.payable_minor, plan.currency, t.locale),
                    status=t.label("plan_statuses", plan.status),
                ),
                detail=t(
                    "timeline_plan_detail",
                    count=len(plan.instalments),
                    discount=f"{plan.discount_bps / 100:.2f}%",
                ),
                sort_key=(plan.created_at.isoformat(), plan.id),
            )
        )
    decisions = (
        session.execute(
            select(Approval, AppUser.display_name)
            .join(AppUser, AppUser.id == Approval.user_id)
            .where(Approval.subject_kind == "arrangement", Approval.subject_id.in_(plan_ids))
        ).all()
        if plan_ids
        else []
    )
    for approval, name in decisions:
        entries.append(
            TimelineEntry(
                at_local=local_text(approval.decided_at, zone),
                kind="approval",
                text=t(
                    "timeline_approval",
                    who=name,
                    decision=t.label("decisions", approval.decision),
                    id=approval.subject_id,
                ),
                detail=approval.reason or "",
                sort_key=(approval.decided_at.isoformat(), approval.id),
            )
        )
    entries.sort(key=lambda e: e.sort_key, reverse=True)
    return entries


def case_view(
    session: Session, *, case: Case, at: datetime, t: Translator, collector: str = access.IN_HOUSE_COLLECTOR
) -> CaseView:
    """Everything the case page shows; the call panel is checked at ``at``, for calls made as ``collector``
    (``users.access.collecting_party``).

    A handful of indexed queries: the portfolio with the debtor and the assignee's name, the accounts,
    the contact points, the gate's facts (once for every phone), the attempts, promises, payments and
    plans (with their instalments).
    """
    head = (
        _reads(session)
        .execute(
            _HEAD,
            {"portfolio_id": case.portfolio_id, "debtor_id": case.debtor_id, "assignee_id": case.assignee_id},
        )
        .one_or_none()
    )
    assert head is not None  # foreign keys
    zone, portfolio_currency, debtor_name, national_id, address, employer, assignee = head
    accounts = _accounts(session, case.id, t)
    points = _points(session, case.debtor_id)
    phones, labels = _phones(session, case, points, at, zone, t, collector)
    plans = list(session.scalars(_PLANS, {"case_id": case.id}))
    currency = accounts[0].currency if accounts else portfolio_currency
    return CaseView(
        case=case,
        debtor_name=debtor_name,
        national_id=mask_national_id(national_id),
        address=mask_address(address),
        employer=employer,
        assignee=assignee,
        accounts=accounts,
        phones=phones,
        timeline=_timeline(session, case, points, plans, zone, t),
        checked_at_local=local_text(at, zone),
        zone=zone,
        total=format_minor(sum(a.total_minor for a in accounts), currency, t.locale),
        points=labels,
        bank_accounts=[
            (a.id, f"{t('bank_account')} · {a.external_ref} · {a.bank_account}")
            for a in accounts
            if a.bank_account
        ],
        plans=_plans(plans, t),
    )


class QueueRow(NamedTuple):
    """One line of the work-queue table (a tuple: the template unpacks it, no attribute lookups per cell)."""

    item_id: int
    case_id: int
    debtor_name: str
    kind: str
    priority: int
    window: str
    status: str
    collector: str


def _queue_statement(*, own: bool) -> Select[Any]:
    """The work-queue table's query: one collector's queue (``own``) or everyone's open items, with debtor
    names, time zones and collectors in the same query. Bound parameters: ``at`` (and ``collector_id``)."""
    # the page of items first (off the queue's index), then their names: the limit applies before the joins
    conditions = queue_service.queue_conditions(
        collector_id=bindparam("collector_id") if own else None,
        at=bindparam("at", type_=WorkItem.window_end_at.type),
    )
    items = (
        select(
            WorkItem.id,
            WorkItem.case_id,
            WorkItem.kind,
            WorkItem.priority,
            WorkItem.status,
            WorkItem.window_start_at,
            WorkItem.window_end_at,
            WorkItem.collector_id,
            WorkItem.portfolio_id,
        )
        .where(*conditions)
        .order_by(*queue_service.QUEUE_ORDER)
        .limit(queue_service.QUEUE_LIMIT)
        .subquery("item")
    )
    i = items.c
    return (
        select(
            i.id,
            i.case_id,
            i.kind,
            i.priority,
            i.status,
            # as the driver gives them: the loop below converts each distinct window once
            type_coerce(i.window_start_at, _DRIVER_MOMENT),
            type_coerce(i.window_end_at, _DRIVER_MOMENT),
            i.collector_id,
            Debtor.name,
            Portfolio.timezone,
            AppUser.display_name,
        )
        .select_from(items)
        .outerjoin(Case, Case.id == i.case_id)
        .outerjoin(Debtor, Debtor.id == Case.debtor_id)
        .outerjoin(Portfolio, Portfolio.id == i.portfolio_id)
        .outerjoin(AppUser, AppUser.id == i.collector_id)
        .order_by(i.priority.desc(), i.window_start_at, i.id)
    )


_DRIVER_MOMENT = UTCDateTime.impl
_MOMENT = UTCDateTime()
# Built once: building and keying this statement cost a fifth of the queue page's own work.
_QUEUE = {own: _queue_statement(own=own) for own in (True, False)}


def queue_rows(session: Session, *, collector_id: int | None, at: datetime, t: Translator) -> list[QueueRow]:
    """Rows of the work-queue table: one collector's queue, or (``collector_id`` None) every collector's
    open items, with debtor names, time zones and collectors in the same query."""
    # Core rows (no ORM loading step): the page reads plain values
    connection = session.connection()
    if collector_id is None:
        rows = connection.execute(_QUEUE[False], {"at": at})
    else:
        rows = connection.execute(_QUEUE[True], {"at": at, "collector_id": collector_id})
    dialect = connection.dialect
    kinds = {"call": t.label("channels", "call"), "visit": t.label("channels", "visit")}
    statuses: dict[str, str] = {}
    windows: dict[tuple[datetime | None, datetime | None, str], str] = {}  # a day's items share windows
    out = []
    for item_id, case_id, kind, priority, status, starts, ends, collector, name, zone, user in rows:
        key = (starts, ends, zone or clock.DEFAULT_ZONE)
        window = windows.get(key)
        if window is None:
            start = local_text(_MOMENT.process_result_value(starts, dialect), key[2])
            end = local_text(_MOMENT.process_result_value(ends, dialect), key[2])
            window = windows[key] = f"{start} – {end[-5:]}" if start else ""
        label = statuses.get(status)
        if label is None:
            label = statuses[status] = t.label("statuses", status)
        out.append(
            QueueRow(
                item_id,
                case_id,
                name or "",
                kinds["call" if kind == "call" else "visit"],
                priority,
                window,
                label,
                (user or "") if collector else "",
            )
        )
    return out


def zone_of(session: Session, case: Case) -> str:
    """The time zone of a case's portfolio (local times on the pages and in the forms)."""
    portfolio = session.get(Portfolio, case.portfolio_id)
    return portfolio.timezone if portfolio is not None else clock.DEFAULT_ZONE
