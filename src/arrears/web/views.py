"""What the desk's pages show, read from the database: plain dataclasses the templates render.

Sensitive fields are masked here (PI-6); the full phone number leaves the server only in the ``tel:``
link of a number the gate allows calling right now.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

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
from arrears.money import format_minor
from arrears.users import access
from arrears.users.masking import mask_address, mask_national_id, mask_phone
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
    portfolio: Portfolio
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


def _plans(session: Session, case_id: int, t: Translator) -> list[PlanView]:
    key = "message_zh" if t.locale == "zh_CN" else "message_en"
    out = []
    for p in session.scalars(
        select(Arrangement).where(Arrangement.case_id == case_id).order_by(Arrangement.id.desc())
    ):
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


def _accounts(session: Session, case_id: int, t: Translator) -> list[AccountView]:
    rows = session.scalars(select(Account).where(Account.case_id == case_id).order_by(Account.id))
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
            )
        )
    return views


def _phones(
    session: Session, case: Case, at: datetime, zone: str, t: Translator, collector: str
) -> tuple[list[PhoneCheck], list[tuple[int, str]]]:
    points = session.scalars(
        select(ContactPoint)
        .where(ContactPoint.debtor_id == case.debtor_id, ContactPoint.kind.in_(PHONE_KINDS))
        .order_by(ContactPoint.owner_relation != "self", ContactPoint.id)
    ).all()
    checks = []
    for p in points:
        decision = compliance_service.check_contact(
            session, case_id=case.id, contact_point_id=p.id, channel=Channel.CALL, at=at, collector=collector
        )
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
    labels = [(p.id, f"{mask_phone(p.value)} · {t.label('relations', p.owner_relation)}") for p in points]
    return checks, labels


def _timeline(session: Session, case: Case, zone: str, t: Translator) -> list[TimelineEntry]:
    entries: list[TimelineEntry] = []
    points = {
        p.id: mask_phone(p.value) or ""
        for p in session.scalars(select(ContactPoint).where(ContactPoint.debtor_id == case.debtor_id))
    }
    for a in session.scalars(select(ContactAttempt).where(ContactAttempt.case_id == case.id)):
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
                + (f" · {points.get(a.contact_point_id, '')}" if a.contact_point_id else ""),
                detail=reasons or (a.notes or ""),
                blocked=not a.allowed,
                sort_key=(a.started_at.isoformat(), a.id),
            )
        )
    for p in session.scalars(select(Promise).where(Promise.case_id == case.id)):
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
    for pay in session.scalars(select(Payment).where(Payment.debtor_id == case.debtor_id)):
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
    for plan in session.scalars(select(Arrangement).where(Arrangement.case_id == case.id)):
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
    decisions = session.execute(
        select(Approval, AppUser.display_name)
        .join(AppUser, AppUser.id == Approval.user_id)
        .where(Approval.subject_kind == "arrangement", Approval.subject_id.in_(plan_ids))
    ).all()
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
    (``users.access.collecting_party``)."""
    portfolio = session.get(Portfolio, case.portfolio_id)
    debtor = session.get(Debtor, case.debtor_id)
    assert portfolio is not None and debtor is not None  # foreign keys
    zone = portfolio.timezone
    assignee = session.get(AppUser, case.assignee_id) if case.assignee_id else None
    accounts = _accounts(session, case.id, t)
    phones, labels = _phones(session, case, at, zone, t, collector)
    currency = accounts[0].currency if accounts else portfolio.currency
    return CaseView(
        case=case,
        portfolio=portfolio,
        debtor_name=debtor.name,
        national_id=mask_national_id(debtor.national_id),
        address=mask_address(debtor.address),
        employer=debtor.employer_name,
        assignee=assignee.display_name if assignee else None,
        accounts=accounts,
        phones=phones,
        timeline=_timeline(session, case, zone, t),
        checked_at_local=local_text(at, zone),
        zone=zone,
        total=format_minor(sum(a.total_minor for a in accounts), currency, t.locale),
        points=labels,
        plans=_plans(session, case.id, t),
    )


@dataclass(frozen=True, slots=True)
class QueueRow:
    item_id: int
    case_id: int
    debtor_name: str
    kind: str
    priority: int
    window: str
    status: str
    collector: str


def queue_rows(session: Session, items: list[WorkItem], t: Translator) -> list[QueueRow]:
    """Rows of the work-queue table (debtor names and collectors looked up in two queries)."""
    case_ids = {i.case_id for i in items}
    names: dict[int, str] = dict(
        session.execute(
            select(Case.id, Debtor.name)
            .join(Debtor, Debtor.id == Case.debtor_id)
            .where(Case.id.in_(case_ids))
        ).all()
    )
    zones: dict[int, str] = dict(session.execute(select(Portfolio.id, Portfolio.timezone)).all())
    users: dict[int, str] = dict(
        session.execute(
            select(AppUser.id, AppUser.display_name).where(
                AppUser.id.in_({i.collector_id for i in items if i.collector_id})
            )
        ).all()
    )
    rows = []
    for i in items:
        zone = zones.get(i.portfolio_id, clock.DEFAULT_ZONE)
        start, end = local_text(i.window_start_at, zone), local_text(i.window_end_at, zone)
        rows.append(
            QueueRow(
                item_id=i.id,
                case_id=i.case_id,
                debtor_name=names.get(i.case_id, ""),
                kind=t.label("channels", "call" if i.kind == "call" else "visit"),
                priority=i.priority,
                window=f"{start} – {end[-5:]}" if start else "",
                status=t.label("statuses", i.status),
                collector=users.get(i.collector_id or 0, ""),
            )
        )
    return rows


def zone_of(session: Session, case: Case) -> str:
    """The time zone of a case's portfolio (local times on the pages and in the forms)."""
    portfolio = session.get(Portfolio, case.portfolio_id)
    return portfolio.timezone if portfolio is not None else clock.DEFAULT_ZONE
