"""Compliance endpoints: what-if checks, the contact record (through the gate) and limitation dates."""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from sqlalchemy import select

from arrears import clock
from arrears.api.deps import (
    LIST_RESPONSE,
    CurrentUser,
    PageDep,
    SessionDep,
    acting_collector,
    actor_id,
    current_user,
)
from arrears.api.v1.schemas import AUTH_ERRORS, ErrorOut
from arrears.compliance import service as compliance_service
from arrears.compliance.limitation import LimitationEvent, LimitationResult
from arrears.compliance.schemas import (
    ConsentScope,
    Decision,
    Direction,
    Outcome,
    Purpose,
    Reason,
    TemplateKind,
)
from arrears.compliance.whatif import CheckRequest, run_check
from arrears.contacts import service as contacts_service
from arrears.enums import Channel, Role
from arrears.errors import ComplianceBlocked, NotFound, ValidationFailed
from arrears.models import (
    Account,
    ChannelOptOut,
    ContactAttempt,
    ContactConsent,
    InconvenientTime,
    Portfolio,
)
from arrears.models import ContactPoint as ContactPointRow
from arrears.users import guard

router = APIRouter(
    prefix="/api/v1", tags=["compliance"], dependencies=[Depends(current_user)], responses=AUTH_ERRORS
)


class ReasonOut(BaseModel):
    rule_id: str
    code: str
    zh: str
    en: str


class DecisionOut(BaseModel):
    """The gate's answer: allowed, or blocked with rule ids, sentences and the earliest allowed time."""

    allowed: bool
    rule_ids: list[str]
    reasons: list[ReasonOut]
    warnings: list[ReasonOut]
    next_allowed_at: datetime | None
    checked_rule_ids: list[str]
    pack: str
    at: datetime


class ContactAttemptIn(BaseModel):
    """A contact attempt to record; an outbound one passes the compliance gate at ``started_at``."""

    model_config = ConfigDict(extra="forbid")

    contact_point_id: int | None = None
    channel: Channel
    direction: Direction = Direction.OUTBOUND
    collector: str | None = Field(
        None,
        max_length=100,
        description="the collector (legal sense) the contact counts under; default and, except for "
        "administrators, only value: the caller's own (in_house, or agency:<id> for an agency's people)",
    )
    agent_id: int | None = None
    account_ids: list[int] = []
    purpose: Purpose = Purpose.DEBT_COLLECTION
    started_at: AwareDatetime
    ended_at: AwareDatetime | None = None
    outcome: Outcome
    notes: str | None = None
    text: str | None = None
    visit_place: str | None = None
    visit_staff: list[str] = []
    id_shown: bool | None = None
    recording_ref: str | None = Field(None, max_length=400)
    delivered_at: AwareDatetime | None = None
    evidence_ref: str | None = Field(None, max_length=400)
    template_kind: TemplateKind | None = None
    locale: str | None = None


class CorrectionIn(BaseModel):
    """Fields to correct; the correction is a new row referencing the corrected one."""

    model_config = ConfigDict(extra="forbid")

    outcome: Outcome | None = None
    ended_at: AwareDatetime | None = None
    notes: str | None = None
    visit_place: str | None = None
    visit_staff: list[str] | None = None
    id_shown: bool | None = None
    recording_ref: str | None = Field(None, max_length=400)
    delivered_at: AwareDatetime | None = None
    evidence_ref: str | None = Field(None, max_length=400)
    account_ids: list[int] | None = None


class ContactAttemptOut(BaseModel):
    id: int
    case_id: int
    seq: int
    contact_point_id: int | None
    channel: str
    direction: str
    purpose: str
    collector: str
    agent_id: int | None
    account_ids: list[int]
    started_at: datetime
    ended_at: datetime | None
    outcome: str
    notes: str | None
    visit_place: str | None
    visit_staff: list[str]
    id_shown: bool | None
    recording_ref: str | None
    delivered_at: datetime | None
    evidence_ref: str | None
    allowed: bool
    rule_ids: list[str]
    decision: DecisionOut | None
    corrects_id: int | None
    prev_hash: str
    hash: str


class RecordedOut(BaseModel):
    attempt: ContactAttemptOut
    decision: DecisionOut | None


class EventOut(BaseModel):
    kind: str
    on: date
    end_on: date | None
    delivered: bool
    ref: str | None


class IgnoredOut(BaseModel):
    event: EventOut
    reason: ReasonOut


class LimitationOut(BaseModel):
    """An account's limitation date, whether it has passed, and the event that set it."""

    account_id: int
    as_of: date
    limitation_on: date | None
    time_barred: bool
    starts_on: date | None
    rule_id: str
    set_by: EventOut | None
    explanation: ReasonOut
    ignored: list[IgnoredOut]
    waived_by: EventOut | None


BLOCKED: dict[int | str, dict[str, Any]] = {
    409: {"model": ErrorOut, "description": "blocked by the compliance gate (stored as blocked)"},
    404: {"model": ErrorOut, "description": "not found"},
}


def _reason(r: Reason) -> ReasonOut:
    return ReasonOut(**r.to_dict())


def decision_out(d: Decision) -> DecisionOut:
    """The API shape of a decision."""
    return DecisionOut(
        allowed=d.allowed,
        rule_ids=list(d.rule_ids),
        reasons=[_reason(r) for r in d.reasons],
        warnings=[_reason(w) for w in d.warnings],
        next_allowed_at=d.next_allowed_at,
        checked_rule_ids=list(d.checked_rule_ids),
        pack=d.pack,
        at=d.at,
    )


def attempt_out(row: ContactAttempt) -> ContactAttemptOut:
    """The API shape of a stored attempt."""
    return ContactAttemptOut(
        id=row.id,
        case_id=row.case_id,
        seq=row.seq,
        contact_point_id=row.contact_point_id,
        channel=row.channel,
        direction=row.direction,
        purpose=row.purpose,
        collector=row.collector,
        agent_id=row.agent_id,
        account_ids=list(row.account_ids),
        started_at=row.started_at,
        ended_at=row.ended_at,
        outcome=row.outcome,
        notes=row.notes,
        visit_place=row.visit_place,
        visit_staff=[s for s in (row.visit_staff or "").split("\n") if s],
        id_shown=row.id_shown,
        recording_ref=row.recording_ref,
        delivered_at=row.delivered_at,
        evidence_ref=row.evidence_ref,
        allowed=row.allowed,
        rule_ids=[r for r in row.rule_ids.split(",") if r],
        decision=DecisionOut.model_validate(row.decision) if row.decision else None,
        corrects_id=row.corrects_id,
        prev_hash=row.prev_hash,
        hash=row.hash,
    )


def _event(e: LimitationEvent) -> EventOut:
    return EventOut(kind=e.kind.value, on=e.on, end_on=e.end_on, delivered=e.delivered, ref=e.ref)


def limitation_out(account_id: int, r: LimitationResult) -> LimitationOut:
    """The API shape of a limitation result."""
    return LimitationOut(
        account_id=account_id,
        as_of=r.as_of,
        limitation_on=r.limitation_on,
        time_barred=r.time_barred,
        starts_on=r.starts_on,
        rule_id=r.rule_id,
        set_by=_event(r.set_by) if r.set_by else None,
        explanation=_reason(r.explanation),
        ignored=[IgnoredOut(event=_event(e), reason=_reason(why)) for e, why in r.ignored],
        waived_by=_event(r.waived_by) if r.waived_by else None,
    )


@router.post("/compliance/check", response_model=DecisionOut)
def what_if_check(body: CheckRequest) -> DecisionOut:
    """A what-if: attempt + history + context + pack in, decision out. Nothing is read or stored."""
    return decision_out(run_check(body))


@router.post(
    "/cases/{case_id}/contact-attempts", response_model=RecordedOut, status_code=201, responses=BLOCKED
)
def record_contact_attempt(
    case_id: int, body: ContactAttemptIn, session: SessionDep, user: CurrentUser
) -> Any:
    """Record an attempt. A blocked outbound attempt is stored as blocked and answered 409 with the decision."""
    guard.require_case(session, user=user.user, case_id=case_id, work=True)
    recorded = contacts_service.record_attempt(
        session,
        case_id=case_id,
        contact_point_id=body.contact_point_id,
        channel=body.channel,
        direction=body.direction,
        collector=acting_collector(user, body.collector),
        agent_id=actor_id(user, body.agent_id),
        account_ids=body.account_ids,
        purpose=body.purpose,
        started_at=body.started_at,
        ended_at=body.ended_at,
        outcome=body.outcome,
        notes=body.notes,
        text=body.text,
        visit_place=body.visit_place,
        visit_staff="\n".join(body.visit_staff) or None,
        id_shown=body.id_shown,
        recording_ref=body.recording_ref,
        delivered_at=body.delivered_at,
        evidence_ref=body.evidence_ref,
        template_kind=body.template_kind,
        locale=body.locale,
        recorded_at=clock.now(),
    )
    out = RecordedOut(
        attempt=attempt_out(recorded.attempt),
        decision=decision_out(recorded.decision) if recorded.decision else None,
    )
    if recorded.blocked:
        assert recorded.decision is not None
        why = "; ".join(r.en for r in recorded.decision.reasons)
        error = ComplianceBlocked(
            f"blocked by {', '.join(recorded.decision.rule_ids)}: {why}",
            details=out.model_dump(mode="json"),
        )
        # Returned, not raised: the blocked attempt must be committed with the request.
        return JSONResponse(status_code=error.status, content=error.to_dict())
    return out


@router.get(
    "/cases/{case_id}/contact-attempts", response_model=list[ContactAttemptOut], responses=LIST_RESPONSE
)
def list_contact_attempts(
    case_id: int, session: SessionDep, user: CurrentUser, page: PageDep
) -> list[ContactAttemptOut]:
    """The case's contact record in chain order, corrections included."""
    guard.require_case(session, user=user.user, case_id=case_id)
    return [attempt_out(a) for a in page.of(contacts_service.list_attempts(session, case_id=case_id))]


@router.post(
    "/contact-attempts/{attempt_id}/corrections",
    response_model=ContactAttemptOut,
    status_code=201,
    responses=BLOCKED,
)
def correct_contact_attempt(
    attempt_id: int, body: CorrectionIn, session: SessionDep, user: CurrentUser
) -> ContactAttemptOut:
    """Correct an attempt by appending a new row that references it (whoever may work the case, or a
    compliance officer)."""
    guard.require_subject(
        session,
        user=user.user,
        kind="contact_attempt",
        subject_id=attempt_id,
        work=user.role != Role.COMPLIANCE,
    )
    changes: dict[str, Any] = body.model_dump(exclude_unset=True)
    if "visit_staff" in changes:
        changes["visit_staff"] = "\n".join(changes["visit_staff"] or []) or None
    row = contacts_service.correct_attempt(session, attempt_id=attempt_id, changes=changes)
    return attempt_out(row)


@router.get("/accounts/{account_id}/limitation", response_model=LimitationOut, responses=BLOCKED)
def get_limitation(
    account_id: int,
    session: SessionDep,
    user: CurrentUser,
    as_of: Annotated[
        date | None, Query(description="Date to evaluate (default: today, portfolio zone)")
    ] = None,
) -> LimitationOut:
    """The account's limitation date and why (CN-20..CN-26, US-8)."""
    guard.require_account(session, user=user.user, account_id=account_id)
    zone = session.scalar(
        select(Portfolio.timezone)
        .join(Account, Account.portfolio_id == Portfolio.id)
        .where(Account.id == account_id)
    )
    if zone is None:
        raise NotFound(f"account {account_id} not found", code="account_not_found")
    day = as_of or clock.today(zone)
    result = compliance_service.account_limitation(session, account_id=account_id, as_of=day)
    return limitation_out(account_id, result)


# --- what the debtor asked for: consents, inconvenient times, opt-outs -------------------------------

FACT_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorOut, "description": "debtor or record not found"},
    409: {"model": ErrorOut, "description": "already ended"},
    422: {"model": ErrorOut, "description": "invalid input"},
}


class ConsentIn(BaseModel):
    """A consent the debtor gave: what it lifts, from when, until when, for which contact point and debts."""

    model_config = ConfigDict(extra="forbid")

    scope: ConsentScope
    granted_at: AwareDatetime
    expires_at: AwareDatetime | None = None
    contact_point_id: int | None = Field(None, description="None = every contact point of the debtor")
    account_ids: list[int] | None = Field(None, description="None = every debt of the debtor")
    source_attempt_id: int | None = Field(None, description="the contact attempt in which it was given")


class ConsentOut(BaseModel):
    id: int
    debtor_id: int
    scope: str
    granted_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    contact_point_id: int | None
    account_ids: list[int] | None
    source_attempt_id: int | None


class InconvenientTimeIn(BaseModel):
    """A time the debtor named as inconvenient, in the debtor's local time (``starts`` > ``ends`` wraps
    midnight; equal = the whole day)."""

    model_config = ConfigDict(extra="forbid")

    starts: time
    ends: time
    weekdays: list[Annotated[int, Field(ge=0, le=6)]] = Field(
        [], description="0 = Monday .. 6 = Sunday; empty = every day"
    )


class InconvenientTimeOut(BaseModel):
    id: int
    debtor_id: int
    starts: time
    ends: time
    weekdays: list[int]
    removed_at: datetime | None


class OptOutIn(BaseModel):
    """An opt-out of a whole channel, or of one contact point (give exactly one)."""

    model_config = ConfigDict(extra="forbid")

    channel: Channel | None = None
    contact_point_id: int | None = None
    at: AwareDatetime | None = Field(None, description="when the debtor asked; default now")


class OptOutOut(BaseModel):
    kind: str = Field(description="channel | contact_point")
    id: int | None = Field(description="the channel opt-out's id (None for a contact point)")
    debtor_id: int
    channel: str | None
    contact_point_id: int | None
    opted_out_at: datetime | None
    withdrawn_at: datetime | None


def _consent_out(row: ContactConsent) -> ConsentOut:
    return ConsentOut(
        id=row.id,
        debtor_id=row.debtor_id,
        scope=row.scope,
        granted_at=row.granted_at,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
        contact_point_id=row.contact_point_id,
        account_ids=row.account_ids,
        source_attempt_id=row.source_attempt_id,
    )


def _window_out(row: InconvenientTime) -> InconvenientTimeOut:
    return InconvenientTimeOut(
        id=row.id,
        debtor_id=row.debtor_id,
        starts=row.starts,
        ends=row.ends,
        weekdays=[int(d) for d in row.weekdays.split(",") if d.strip()],
        removed_at=row.removed_at,
    )


def _channel_opt_out(row: ChannelOptOut) -> OptOutOut:
    return OptOutOut(
        kind="channel",
        id=row.id,
        debtor_id=row.debtor_id,
        channel=row.channel,
        contact_point_id=None,
        opted_out_at=row.opted_out_at,
        withdrawn_at=row.withdrawn_at,
    )


def _point_opt_out(row: ContactPointRow) -> OptOutOut:
    return OptOutOut(
        kind="contact_point",
        id=None,
        debtor_id=row.debtor_id,
        channel=None,
        contact_point_id=row.id,
        opted_out_at=row.opted_out_at,
        withdrawn_at=None,
    )


def _moment(at: datetime | None) -> datetime:
    return clock.as_utc(at) if at is not None else clock.now()


@router.post(
    "/debtors/{debtor_id}/consents", response_model=ConsentOut, status_code=201, responses=FACT_ERRORS
)
def add_consent(debtor_id: int, body: ConsentIn, session: SessionDep) -> ConsentOut:
    """Record a consent (CN-1 quiet hours, CN-2 call cap, US-1 inconvenient time, US-4 call frequency)."""
    row = contacts_service.add_consent(
        session,
        debtor_id=debtor_id,
        scope=body.scope,
        granted_at=body.granted_at,
        expires_at=body.expires_at,
        contact_point_id=body.contact_point_id,
        account_ids=body.account_ids,
        source_attempt_id=body.source_attempt_id,
    )
    return _consent_out(row)


@router.get("/debtors/{debtor_id}/consents", response_model=list[ConsentOut], responses=FACT_ERRORS)
def list_consents(
    debtor_id: int,
    session: SessionDep,
    include_ended: Annotated[bool, Query(description="also revoked consents")] = False,
) -> list[ConsentOut]:
    """The debtor's consents, oldest first."""
    rows = contacts_service.list_consents(session, debtor_id=debtor_id, include_ended=include_ended)
    return [_consent_out(r) for r in rows]


@router.delete("/debtors/{debtor_id}/consents/{consent_id}", response_model=ConsentOut, responses=FACT_ERRORS)
def revoke_consent(
    debtor_id: int,
    consent_id: int,
    session: SessionDep,
    at: Annotated[AwareDatetime | None, Query(description="when it was revoked; default now")] = None,
) -> ConsentOut:
    """The debtor withdrew the consent; the record stays, with ``revoked_at``."""
    row = contacts_service.revoke_consent(session, debtor_id=debtor_id, consent_id=consent_id, at=_moment(at))
    return _consent_out(row)


@router.post(
    "/debtors/{debtor_id}/inconvenient-times",
    response_model=InconvenientTimeOut,
    status_code=201,
    responses=FACT_ERRORS,
)
def add_inconvenient_time(
    debtor_id: int, body: InconvenientTimeIn, session: SessionDep
) -> InconvenientTimeOut:
    """Record a time the debtor named as inconvenient (US-1); the gate blocks contact in it."""
    row = contacts_service.add_inconvenient_time(
        session, debtor_id=debtor_id, starts=body.starts, ends=body.ends, weekdays=body.weekdays
    )
    return _window_out(row)


@router.get(
    "/debtors/{debtor_id}/inconvenient-times", response_model=list[InconvenientTimeOut], responses=FACT_ERRORS
)
def list_inconvenient_times(
    debtor_id: int,
    session: SessionDep,
    include_ended: Annotated[bool, Query(description="also removed ones")] = False,
) -> list[InconvenientTimeOut]:
    """The times the debtor named as inconvenient."""
    rows = contacts_service.list_inconvenient_times(session, debtor_id=debtor_id, include_ended=include_ended)
    return [_window_out(r) for r in rows]


@router.delete(
    "/debtors/{debtor_id}/inconvenient-times/{window_id}",
    response_model=InconvenientTimeOut,
    responses=FACT_ERRORS,
)
def remove_inconvenient_time(
    debtor_id: int,
    window_id: int,
    session: SessionDep,
    at: Annotated[AwareDatetime | None, Query(description="from when; default now")] = None,
) -> InconvenientTimeOut:
    """The debtor no longer names this time; the record stays, with ``removed_at``."""
    row = contacts_service.remove_inconvenient_time(
        session, debtor_id=debtor_id, window_id=window_id, at=_moment(at)
    )
    return _window_out(row)


@router.post(
    "/debtors/{debtor_id}/opt-outs", response_model=OptOutOut, status_code=201, responses=FACT_ERRORS
)
def add_opt_out(debtor_id: int, body: OptOutIn, session: SessionDep) -> OptOutOut:
    """Record an opt-out of a channel or of one contact point (ALL-2, US-13)."""
    if (body.channel is None) == (body.contact_point_id is None):
        raise ValidationFailed(
            "请给出 channel 或 contact_point_id 之一 / give exactly one of channel and contact_point_id",
            code="bad_opt_out",
        )
    at = _moment(body.at)
    if body.channel is not None:
        return _channel_opt_out(
            contacts_service.opt_out_channel(session, debtor_id=debtor_id, channel=body.channel, at=at)
        )
    assert body.contact_point_id is not None
    point = contacts_service.set_contact_point_opt_out(
        session, debtor_id=debtor_id, contact_point_id=body.contact_point_id, opted_out=True, at=at
    )
    return _point_opt_out(point)


@router.get("/debtors/{debtor_id}/opt-outs", response_model=list[OptOutOut], responses=FACT_ERRORS)
def list_opt_outs(
    debtor_id: int,
    session: SessionDep,
    include_ended: Annotated[bool, Query(description="also withdrawn channel opt-outs")] = False,
) -> list[OptOutOut]:
    """The debtor's channel opt-outs, then the contact points opted out."""
    rows = contacts_service.list_opt_outs(session, debtor_id=debtor_id, include_ended=include_ended)
    points = session.scalars(
        select(ContactPointRow)
        .where(ContactPointRow.debtor_id == debtor_id, ContactPointRow.opted_out.is_(True))
        .order_by(ContactPointRow.id)
    )
    return [*(_channel_opt_out(r) for r in rows), *(_point_opt_out(p) for p in points)]


@router.delete("/debtors/{debtor_id}/opt-outs/{opt_out_id}", response_model=OptOutOut, responses=FACT_ERRORS)
def withdraw_opt_out(
    debtor_id: int,
    opt_out_id: int,
    session: SessionDep,
    at: Annotated[AwareDatetime | None, Query(description="from when; default now")] = None,
) -> OptOutOut:
    """The debtor wants to hear on this channel again; the record stays, with ``withdrawn_at``."""
    row = contacts_service.withdraw_opt_out(
        session, debtor_id=debtor_id, opt_out_id=opt_out_id, at=_moment(at)
    )
    return _channel_opt_out(row)


@router.delete(
    "/debtors/{debtor_id}/contact-points/{contact_point_id}/opt-out",
    response_model=OptOutOut,
    responses=FACT_ERRORS,
)
def withdraw_contact_point_opt_out(
    debtor_id: int,
    contact_point_id: int,
    session: SessionDep,
    at: Annotated[AwareDatetime | None, Query(description="from when; default now")] = None,
) -> OptOutOut:
    """The debtor opted this contact point back in."""
    point = contacts_service.set_contact_point_opt_out(
        session, debtor_id=debtor_id, contact_point_id=contact_point_id, opted_out=False, at=_moment(at)
    )
    out = _point_opt_out(point)
    return out.model_copy(update={"withdrawn_at": _moment(at)})
