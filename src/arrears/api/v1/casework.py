"""Case work endpoints: holds and disputes, promises, arrangements (with quotes), legal cases, agencies and
placements. Thin: each one calls a service; errors are ArrearsError JSON ``{code, message, details}``.

Every endpoint needs an API token or a desk session (``api/deps.py``). The acting user is the caller; a
user id in the body (``user_id``, ``taken_by_id`` ...) may name someone else only for an administrator's
token (an integration recording staff's work), and the service still checks that user's role. Case-level
rules are ``users/guard.py``, the same as the pages'.
"""

from __future__ import annotations

import base64
import binascii
from datetime import date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from arrears import clock
from arrears.agencies import service as agencies
from arrears.api.deps import (
    LIST_RESPONSE,
    CurrentUser,
    PageDep,
    SessionDep,
    actor_id,
    current_user,
    require,
    require_manager,
)
from arrears.api.v1.schemas import AUTH_ERRORS
from arrears.arrangements import service as arrangements
from arrears.arrangements.quote import Quote
from arrears.enums import FlagKind, Product, Role
from arrears.errors import NotFound, ValidationFailed
from arrears.holds import documents
from arrears.holds import service as holds
from arrears.legal import bundle
from arrears.legal import service as legal
from arrears.legal.milestones import LegalCaseKind, Milestone
from arrears.models import (
    AccountFlag,
    Agency,
    Arrangement,
    Dispute,
    Document,
    EvidenceBundle,
    HoldEvent,
    LegalCase,
    Placement,
    Portfolio,
    Promise,
)
from arrears.users import access, guard

router = APIRouter(
    prefix="/api/v1", tags=["casework"], dependencies=[Depends(current_user)], responses=AUTH_ERRORS
)
# Who may clear a hold or resolve a dispute.
CLEARERS = frozenset({Role.SUPERVISOR, Role.COMPLIANCE, Role.ADMIN})


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


# --- shapes --------------------------------------------------------------------------------------------


class HoldIn(BaseModel):
    kind: FlagKind
    reason_code: str = Field(min_length=1, max_length=32)
    reason: str | None = None
    expires_on: date | None = None
    user_id: int | None = None


class HoldOut(_Out):
    id: int
    account_id: int
    case_id: int
    kind: str
    reason_code: str | None
    reason: str | None
    source: str
    expires_on: date | None
    created_at: datetime
    cleared_at: datetime | None
    cleared_by_id: int | None
    clear_reason: str | None


class ClearIn(BaseModel):
    user_id: int
    reason: str = Field(min_length=1)


class HoldEventOut(_Out):
    id: int
    flag_id: int
    event: str
    occurred_at: datetime
    user_id: int | None
    reason: str | None


class AsOfIn(BaseModel):
    as_of: date


class ReleasedOut(BaseModel):
    released: list[int]


class EvidenceIn(BaseModel):
    filename: str = Field(min_length=1, max_length=255)
    media_type: str = "application/octet-stream"
    content_base64: str = Field(min_length=1)


class DisputeIn(BaseModel):
    reason_code: str = Field(min_length=1, max_length=32)
    received_on: date
    description: str | None = None
    written: bool = False
    user_id: int | None = None
    evidence: list[EvidenceIn] = []


class DocumentOut(_Out):
    id: int
    kind: str
    filename: str
    media_type: str
    sha256: str
    size_bytes: int
    case_id: int | None
    dispute_id: int | None
    legal_case_id: int | None


class DisputeOut(_Out):
    id: int
    account_id: int
    case_id: int
    flag_id: int
    reason_code: str
    description: str | None
    received_on: date
    written: bool
    within_validation_period: bool
    verification_sent_on: date | None
    status: str
    resolution: str | None
    resolved_by_id: int | None
    documents: list[DocumentOut] = []


class ResolveIn(BaseModel):
    outcome: Literal["upheld", "rejected"]
    resolution: str = Field(min_length=1)
    user_id: int


class VerificationIn(BaseModel):
    sent_on: date
    user_id: int


class ValidationNoticeIn(BaseModel):
    sent_on: date


class PromiseIn(BaseModel):
    account_id: int
    amount_minor: int = Field(gt=0)
    promised_on: date
    made_on: date
    channel: str = "call"
    taken_by_id: int | None = None


class PromiseOut(_Out):
    id: int
    account_id: int
    case_id: int
    amount_minor: int
    currency: str
    promised_on: date
    made_on: date
    deadline_on: date
    channel: str
    taken_by_id: int | None
    status: str
    paid_minor: int
    kept_on: date | None
    broken_on: date | None


class QuoteIn(BaseModel):
    account_ids: list[int] = Field(min_length=1)
    as_of: date
    request: dict[str, Any]


class ArrangementIn(QuoteIn):
    created_by_id: int | None = None
    agreed_on: date | None = None


class InstalmentLineOut(_Out):
    seq: int
    due_on: date
    amount_minor: int
    kind: str
    status: str
    paid_minor: int
    paid_on: date | None


class WaiverOut(_Out):
    account_id: int
    component: str
    amount_minor: int
    posted_at: datetime | None


class ArrangementOut(_Out):
    id: int
    case_id: int
    kind: str
    status: str
    currency: str
    quoted_on: date
    agreed_on: date
    balance_minor: int
    waived_minor: int
    payable_minor: int
    discount_bps: int
    within_policy: bool
    requires_approval: bool
    approval_reasons: list[dict[str, Any]]
    paid_minor: int
    breach_on: date | None
    breached_seq: int | None
    completed_on: date | None
    account_ids: list[int]
    instalments: list[InstalmentLineOut]
    waivers: list[WaiverOut]


class DecisionIn(BaseModel):
    user_id: int
    reason: str | None = None


class ReferralIn(BaseModel):
    account_ids: list[int] = Field(min_length=1)
    kind: LegalCaseKind
    referred_by_id: int
    referred_on: date
    law_firm_name: str = Field(min_length=1)
    law_firm_address: str | None = None
    law_firm_phone: str | None = None
    lawyer_name: str | None = None
    body: str | None = None
    time_barred_account_ids: list[int] = []


class ReferralDecisionIn(BaseModel):
    user_id: int
    approve: bool
    reason: str | None = None
    time_barred_account_ids: list[int] = []


class MilestoneIn(BaseModel):
    milestone: Milestone
    occurred_on: date
    document_id: int | None = None
    note: str | None = None
    user_id: int | None = None
    case_number: str | None = None
    body: str | None = None


class MilestoneOut(_Out):
    milestone: str
    occurred_on: date
    document_id: int | None
    note: str | None
    recorded_by_id: int | None


class CostIn(BaseModel):
    account_id: int
    description: str = Field(min_length=1, max_length=200)
    costs_minor: int = Field(gt=0)
    incurred_on: date
    user_id: int | None = None


class CostReverseIn(BaseModel):
    reversed_on: date
    reason: str = Field(min_length=1, max_length=400)
    user_id: int | None = None


class CostCorrectIn(BaseModel):
    costs_minor: int = Field(gt=0)
    corrected_on: date
    reason: str = Field(min_length=1, max_length=400)
    description: str | None = Field(default=None, min_length=1, max_length=200)
    user_id: int | None = None


class EvidenceBundleOut(_Out):
    id: int
    case_id: int
    legal_case_id: int | None
    document_id: int
    as_of: date
    generated_at: datetime
    generated_by_id: int | None
    generator_version: str
    sha256: str
    size_bytes: int
    file_count: int
    chain_ok: bool


class CostOut(_Out):
    id: int
    account_id: int
    description: str
    costs_minor: int
    currency: str
    incurred_on: date
    posted: bool
    posting_id: int | None
    reversed_on: date | None
    reversal_reason: str | None


class LegalCaseOut(_Out):
    id: int
    case_id: int
    kind: str
    status: str
    body: str | None
    case_number: str | None
    milestone: str | None
    law_firm_name: str
    lawyer_name: str | None
    referred_on: date
    referred_by_id: int
    approved_by_id: int | None
    account_ids: list[int]
    milestones: list[MilestoneOut]
    costs: list[CostOut]


class LetterIn(BaseModel):
    letter_date: date
    user_id: int | None = None
    locale: str | None = None


class AgencyIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    listed: bool
    active: bool = True
    commission_bps: int = Field(default=0, ge=0, le=10_000)
    contact: str | None = None


class AgencyPatch(BaseModel):
    listed: bool | None = None
    active: bool | None = None
    commission_bps: int | None = Field(default=None, ge=0, le=10_000)
    login_ip_allowlist: list[str] | None = Field(
        default=None, max_length=100, description="networks (CIDR) its users may sign in from; [] = anywhere"
    )


class AgencyOut(_Out):
    id: int
    name: str
    listed: bool
    active: bool
    commission_bps: int
    login_ip_allowlist: list[str]


class RuleIn(BaseModel):
    dpd_min: int | None = Field(default=None, ge=0)
    dpd_max: int | None = Field(default=None, ge=0)
    balance_min_minor: int | None = Field(default=None, ge=0)
    balance_max_minor: int | None = Field(default=None, ge=0)
    product: Product | None = None
    max_cases: int | None = Field(default=None, ge=1)


class PlacementIn(BaseModel):
    agency_id: int
    placed_on: date
    expires_on: date
    placed_by_id: int | None = None
    case_ids: list[int] | None = None
    portfolio_id: int | None = None
    rule: RuleIn | None = None


class PlacementOut(_Out):
    id: int
    case_id: int
    agency_id: int
    placed_on: date
    expires_on: date
    placed_by_id: int | None
    recalled_on: date | None
    recalled_by_id: int | None
    recall_reason: str | None


class RecallIn(BaseModel):
    user_id: int
    reason: str = Field(min_length=1)
    recalled_on: date


# 64-bit integers: what the database and the payments frame hold (a larger number is invalid input).
BigInt = Annotated[int, Field(ge=-(2**63), le=2**63 - 1)]


class CommissionIn(BaseModel):
    payments: list[tuple[BigInt, date, BigInt]] = Field(
        description="(account_id, received_on, amount_minor) rows, e.g. from the ledger"
    )
    period_start: date | None = None
    period_end: date | None = None


class CommissionOut(BaseModel):
    placement_id: int
    case_id: int
    collected_minor: int
    commission_bps: int
    commission_minor: int


# --- converters ----------------------------------------------------------------------------------------


def _dispute_out(session: Session, dispute: Dispute) -> DisputeOut:
    out = DisputeOut.model_validate(dispute)
    out.documents = [
        DocumentOut.model_validate(d) for d in holds.dispute_documents(session, dispute_id=dispute.id)
    ]
    return out


def _arrangement_out(plan: Arrangement) -> ArrangementOut:
    return ArrangementOut.model_validate(
        {
            **{c: getattr(plan, c) for c in ArrangementOut.model_fields if hasattr(plan, c)},
            "account_ids": arrangements.account_ids_of(plan),
            "instalments": [InstalmentLineOut.model_validate(i) for i in plan.instalments],
            "waivers": [WaiverOut.model_validate(w) for w in plan.waivers],
        }
    )


def _legal_out(case: LegalCase) -> LegalCaseOut:
    return LegalCaseOut.model_validate(
        {
            **{c: getattr(case, c) for c in LegalCaseOut.model_fields if hasattr(case, c)},
            "account_ids": [link.account_id for link in case.accounts],
            "milestones": [MilestoneOut.model_validate(m) for m in case.milestones],
            "costs": [CostOut.model_validate(c) for c in case.costs],
        }
    )


def _decode(evidence: EvidenceIn) -> holds.Evidence:
    try:
        content = base64.b64decode(evidence.content_base64, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValidationFailed(
            f"文件内容不是有效的 base64 / {evidence.filename}: content is not valid base64", code="bad_base64"
        ) from exc
    return holds.Evidence(evidence.filename, content, evidence.media_type)


# --- holds and disputes --------------------------------------------------------------------------------


@router.post("/accounts/{account_id}/holds", response_model=HoldOut, status_code=201)
def place_hold(account_id: int, body: HoldIn, session: SessionDep, user: CurrentUser) -> AccountFlag:
    guard.require_account(session, user=user.user, account_id=account_id, work=True)
    return holds.place_hold(
        session,
        account_id=account_id,
        kind=body.kind,
        reason_code=body.reason_code,
        reason=body.reason,
        expires_on=body.expires_on,
        user_id=actor_id(user, body.user_id),
        at=clock.now(),
    )


@router.get("/accounts/{account_id}/holds", response_model=list[HoldOut], responses=LIST_RESPONSE)
def list_holds(
    account_id: int, session: SessionDep, user: CurrentUser, page: PageDep, as_of: date | None = None
) -> list[AccountFlag]:
    """Holds in force on ``as_of`` (default: today in the default zone)."""
    guard.require_account(session, user=user.user, account_id=account_id)
    return page.of(holds.active_holds(session, as_of=as_of or clock.today(), account_ids=[account_id]))


@router.post("/holds/{flag_id}/clear", response_model=HoldOut)
def clear_hold(flag_id: int, body: ClearIn, session: SessionDep, user: CurrentUser) -> AccountFlag:
    guard.require_role(user.user, CLEARERS)
    guard.require_subject(session, user=user.user, kind="hold", subject_id=flag_id)
    return holds.clear_hold(
        session, flag_id=flag_id, user_id=actor_id(user, body.user_id), reason=body.reason, at=clock.now()
    )


@router.get("/holds/{flag_id}/events", response_model=list[HoldEventOut], responses=LIST_RESPONSE)
def hold_events(flag_id: int, session: SessionDep, user: CurrentUser, page: PageDep) -> list[HoldEvent]:
    guard.require_subject(session, user=user.user, kind="hold", subject_id=flag_id)
    return page.of(holds.hold_events(session, flag_id=flag_id))


@router.post("/holds/release-expired", response_model=ReleasedOut, dependencies=[require_manager()])
def release_expired(body: AsOfIn, session: SessionDep, user: CurrentUser) -> ReleasedOut:
    released = holds.release_expired_holds(session, as_of=body.as_of, at=clock.now())
    return ReleasedOut(released=[f.id for f in released])


@router.post("/accounts/{account_id}/validation-notice", status_code=204)
def validation_notice(
    account_id: int, body: ValidationNoticeIn, session: SessionDep, user: CurrentUser
) -> None:
    guard.require_account(session, user=user.user, account_id=account_id, work=True)
    holds.record_validation_notice(session, account_id=account_id, sent_on=body.sent_on)


@router.post("/accounts/{account_id}/disputes", response_model=DisputeOut, status_code=201)
def open_dispute(account_id: int, body: DisputeIn, session: SessionDep, user: CurrentUser) -> DisputeOut:
    guard.require_account(session, user=user.user, account_id=account_id, work=True)
    dispute = holds.open_dispute(
        session,
        account_id=account_id,
        reason_code=body.reason_code,
        received_on=body.received_on,
        description=body.description,
        written=body.written,
        user_id=actor_id(user, body.user_id),
        evidence=[_decode(e) for e in body.evidence],
        at=clock.now(),
    )
    return _dispute_out(session, dispute)


@router.get("/disputes/{dispute_id}", response_model=DisputeOut)
def get_dispute(dispute_id: int, session: SessionDep, user: CurrentUser) -> DisputeOut:
    guard.require_subject(session, user=user.user, kind="dispute", subject_id=dispute_id)
    dispute = session.get(Dispute, dispute_id)
    if dispute is None:  # pragma: no cover - require_subject raised already
        raise NotFound(f"异议不存在：{dispute_id} / dispute {dispute_id} not found", code="dispute_not_found")
    return _dispute_out(session, dispute)


@router.post("/disputes/{dispute_id}/evidence", response_model=DocumentOut, status_code=201)
def add_evidence(
    dispute_id: int, body: EvidenceIn, session: SessionDep, user: CurrentUser, user_id: int | None = None
) -> Document:
    guard.require_subject(session, user=user.user, kind="dispute", subject_id=dispute_id, work=True)
    item = _decode(body)
    return holds.add_dispute_evidence(
        session,
        dispute_id=dispute_id,
        filename=item.filename,
        content=item.content,
        media_type=item.media_type,
        user_id=actor_id(user, user_id),
        at=clock.now(),
    )


@router.post("/disputes/{dispute_id}/resolve", response_model=DisputeOut)
def resolve_dispute(dispute_id: int, body: ResolveIn, session: SessionDep, user: CurrentUser) -> DisputeOut:
    guard.require_role(user.user, CLEARERS)
    guard.require_subject(session, user=user.user, kind="dispute", subject_id=dispute_id)
    dispute = holds.resolve_dispute(
        session,
        dispute_id=dispute_id,
        outcome=body.outcome,
        resolution=body.resolution,
        user_id=actor_id(user, body.user_id),
        at=clock.now(),
    )
    return _dispute_out(session, dispute)


@router.post("/disputes/{dispute_id}/verification", response_model=DisputeOut)
def verification_sent(
    dispute_id: int, body: VerificationIn, session: SessionDep, user: CurrentUser
) -> DisputeOut:
    guard.require_subject(session, user=user.user, kind="dispute", subject_id=dispute_id, work=True)
    dispute = holds.record_verification_sent(
        session,
        dispute_id=dispute_id,
        sent_on=body.sent_on,
        user_id=actor_id(user, body.user_id),
        at=clock.now(),
    )
    return _dispute_out(session, dispute)


@router.get("/documents/{document_id}/content")
def document_content(document_id: int, session: SessionDep, user: CurrentUser) -> Response:
    """The stored file (checked against its SHA-256), e.g. a lawyer's letter PDF."""
    guard.require_subject(session, user=user.user, kind="document", subject_id=document_id)
    doc, content = documents.read_document(session, document_id=document_id)
    return Response(
        content,
        media_type=doc.media_type,
        headers={
            "Content-Disposition": f'attachment; filename="{doc.filename}"',
            "X-Content-SHA256": doc.sha256,
        },
    )


# --- promises ------------------------------------------------------------------------------------------


@router.post("/promises", response_model=PromiseOut, status_code=201)
def record_promise(body: PromiseIn, session: SessionDep, user: CurrentUser) -> Promise:
    guard.require_account(session, user=user.user, account_id=body.account_id, work=True)
    return arrangements.record_promise(
        session,
        account_id=body.account_id,
        amount_minor=body.amount_minor,
        promised_on=body.promised_on,
        made_on=body.made_on,
        channel=body.channel,
        taken_by_id=actor_id(user, body.taken_by_id),
    )


@router.get("/accounts/{account_id}/promises", response_model=list[PromiseOut], responses=LIST_RESPONSE)
def list_promises(account_id: int, session: SessionDep, user: CurrentUser, page: PageDep) -> list[Promise]:
    guard.require_account(session, user=user.user, account_id=account_id)
    return page.of(arrangements.list_promises(session, account_id=account_id))


# --- arrangements --------------------------------------------------------------------------------------


@router.post("/arrangements/quote", response_model=Quote)
def quote_arrangement(body: QuoteIn, session: SessionDep, user: CurrentUser) -> Quote:
    """Preview a plan: schedule, waivers by component, policy findings. Nothing is saved."""
    guard.require_accounts(session, user=user.user, account_ids=body.account_ids)
    request = arrangements.parse_request(body.request)
    return arrangements.quote_arrangement(
        session, account_ids=body.account_ids, request=request, as_of=body.as_of
    )


@router.post("/arrangements", response_model=ArrangementOut, status_code=201)
def create_arrangement(body: ArrangementIn, session: SessionDep, user: CurrentUser) -> ArrangementOut:
    guard.require_accounts(session, user=user.user, account_ids=body.account_ids, work=True)
    plan = arrangements.create_arrangement(
        session,
        account_ids=body.account_ids,
        request=arrangements.parse_request(body.request),
        as_of=body.as_of,
        created_by_id=actor_id(user, body.created_by_id),
        agreed_on=body.agreed_on,
    )
    return _arrangement_out(plan)


@router.get("/arrangements/{arrangement_id}", response_model=ArrangementOut)
def get_arrangement(arrangement_id: int, session: SessionDep, user: CurrentUser) -> ArrangementOut:
    guard.require_subject(session, user=user.user, kind="arrangement", subject_id=arrangement_id)
    return _arrangement_out(arrangements.get_arrangement(session, arrangement_id=arrangement_id))


@router.post("/arrangements/{arrangement_id}/approve", response_model=ArrangementOut)
def approve_arrangement(
    arrangement_id: int, body: DecisionIn, session: SessionDep, user: CurrentUser
) -> ArrangementOut:
    guard.require_role(user.user, access.MANAGE)
    guard.require_subject(session, user=user.user, kind="arrangement", subject_id=arrangement_id)
    plan = arrangements.approve_arrangement(
        session,
        arrangement_id=arrangement_id,
        user_id=actor_id(user, body.user_id),
        reason=body.reason,
        at=clock.now(),
    )
    return _arrangement_out(plan)


@router.post("/arrangements/{arrangement_id}/reject", response_model=ArrangementOut)
def reject_arrangement(
    arrangement_id: int, body: DecisionIn, session: SessionDep, user: CurrentUser
) -> ArrangementOut:
    guard.require_role(user.user, access.MANAGE)
    guard.require_subject(session, user=user.user, kind="arrangement", subject_id=arrangement_id)
    plan = arrangements.reject_arrangement(
        session,
        arrangement_id=arrangement_id,
        user_id=actor_id(user, body.user_id),
        reason=body.reason or "",
        at=clock.now(),
    )
    return _arrangement_out(plan)


# --- legal ---------------------------------------------------------------------------------------------


@router.post("/legal-cases", response_model=LegalCaseOut, status_code=201)
def refer_to_legal(body: ReferralIn, session: SessionDep, user: CurrentUser) -> LegalCaseOut:
    guard.require_accounts(session, user=user.user, account_ids=body.account_ids, work=True)
    case = legal.refer_to_legal(
        session,
        account_ids=body.account_ids,
        kind=body.kind,
        referred_by_id=actor_id(user, body.referred_by_id),
        referred_on=body.referred_on,
        law_firm_name=body.law_firm_name,
        law_firm_address=body.law_firm_address,
        law_firm_phone=body.law_firm_phone,
        lawyer_name=body.lawyer_name,
        body=body.body,
        time_barred_account_ids=frozenset(body.time_barred_account_ids),
    )
    return _legal_out(case)


@router.get("/legal-cases/{legal_case_id}", response_model=LegalCaseOut)
def get_legal_case(legal_case_id: int, session: SessionDep, user: CurrentUser) -> LegalCaseOut:
    guard.require_subject(session, user=user.user, kind="legal_case", subject_id=legal_case_id)
    return _legal_out(legal.get_legal_case(session, legal_case_id=legal_case_id))


@router.post("/legal-cases/{legal_case_id}/decision", response_model=LegalCaseOut)
def decide_referral(
    legal_case_id: int, body: ReferralDecisionIn, session: SessionDep, user: CurrentUser
) -> LegalCaseOut:
    guard.require_role(user.user, access.MANAGE)
    case = legal.decide_referral(
        session,
        legal_case_id=legal_case_id,
        user_id=actor_id(user, body.user_id),
        approve=body.approve,
        reason=body.reason,
        time_barred_account_ids=frozenset(body.time_barred_account_ids),
        at=clock.now(),
    )
    return _legal_out(case)


@router.post("/legal-cases/{legal_case_id}/milestones", response_model=LegalCaseOut, status_code=201)
def record_milestone(
    legal_case_id: int, body: MilestoneIn, session: SessionDep, user: CurrentUser
) -> LegalCaseOut:
    guard.require_role(user.user, access.MANAGE)
    legal.record_milestone(
        session,
        legal_case_id=legal_case_id,
        milestone=body.milestone,
        occurred_on=body.occurred_on,
        document_id=body.document_id,
        note=body.note,
        user_id=actor_id(user, body.user_id),
        case_number=body.case_number,
        body=body.body,
    )
    return _legal_out(legal.get_legal_case(session, legal_case_id=legal_case_id))


@router.post("/legal-cases/{legal_case_id}/costs", response_model=CostOut, status_code=201)
def add_cost(legal_case_id: int, body: CostIn, session: SessionDep, user: CurrentUser) -> Any:
    guard.require_role(user.user, access.MANAGE)
    return legal.add_cost(
        session,
        legal_case_id=legal_case_id,
        account_id=body.account_id,
        description=body.description,
        costs_minor=body.costs_minor,
        incurred_on=body.incurred_on,
        user_id=body.user_id,
    )


@router.post("/legal-costs/{cost_id}/reverse", response_model=CostOut)
def reverse_cost(cost_id: int, body: CostReverseIn, session: SessionDep, user: CurrentUser) -> Any:
    """Undo a legal cost recorded in error: its ``costs`` posting is reversed (refused once paid)."""
    guard.require_role(user.user, access.MANAGE)
    return legal.reverse_cost(
        session,
        cost_id=cost_id,
        reversed_on=body.reversed_on,
        reason=body.reason,
        user_id=actor_id(user, body.user_id),
    )


@router.post("/legal-costs/{cost_id}/correct", response_model=CostOut, status_code=201)
def correct_cost(cost_id: int, body: CostCorrectIn, session: SessionDep, user: CurrentUser) -> Any:
    """Correct a legal cost's amount: the old posting is reversed, the new cost returned."""
    guard.require_role(user.user, access.MANAGE)
    return legal.correct_cost(
        session,
        cost_id=cost_id,
        costs_minor=body.costs_minor,
        corrected_on=body.corrected_on,
        reason=body.reason,
        description=body.description,
        user_id=actor_id(user, body.user_id),
    )


# Who may build and download evidence bundles: the people who send a case to lawyers or check it.
BUNDLERS = frozenset({Role.SUPERVISOR, Role.COMPLIANCE, Role.ADMIN})

_ZIP: dict[int | str, dict[str, Any]] = {
    200: {"content": {"application/zip": {"schema": {"type": "string", "format": "binary"}}}}
}


@router.get("/cases/{case_id}/evidence-bundle", response_class=Response, responses=_ZIP)
def evidence_bundle(
    case_id: int,
    session: SessionDep,
    as_of: date | None = None,
    locale: Literal["zh_CN", "en"] | None = None,
    user_id: int | None = None,
    *,
    user: CurrentUser,
) -> Response:
    """Build and record the case's evidence bundle (ZIP). Headers carry its SHA-256, the stored bundle id
    and the contact record's hash-chain result (``ok`` / ``broken``)."""
    guard.require_role(user.user, BUNDLERS)
    case = guard.require_case(session, user=user.user, case_id=case_id)
    portfolio = session.get(Portfolio, case.portfolio_id)
    assert portfolio is not None
    built = bundle.build_bundle(
        session,
        case_id=case_id,
        as_of=as_of or clock.today(portfolio.timezone),
        generated_at=clock.now(),
        generated_by_id=actor_id(user, user_id),
        locale=locale,
    )
    assert built.record is not None
    return Response(
        built.zip_bytes,
        media_type="application/zip",
        headers={
            "Content-Disposition": f'attachment; filename="{built.filename}"',
            "X-Content-SHA256": built.sha256,
            "X-Evidence-Bundle-Id": str(built.record.id),
            "X-Chain-Status": "ok" if built.chain.ok else "broken",
        },
    )


@router.get("/cases/{case_id}/evidence-bundles", response_model=list[EvidenceBundleOut])
def evidence_bundles(case_id: int, session: SessionDep, user: CurrentUser) -> Any:
    """Bundles generated for a case, newest first."""
    guard.require_role(user.user, BUNDLERS)
    guard.require_case(session, user=user.user, case_id=case_id)
    return bundle.list_bundles(session, case_id=case_id)


@router.get("/evidence-bundles/{bundle_id}/content", response_class=Response, responses=_ZIP)
def evidence_bundle_content(
    bundle_id: int, session: SessionDep, user: CurrentUser, user_id: int | None = None
) -> Response:
    """A stored bundle, as generated (checked against its recorded SHA-256); the download is logged."""
    guard.require_role(user.user, BUNDLERS)
    stored = session.get(EvidenceBundle, bundle_id)
    if stored is None:
        raise NotFound(
            f"证据材料不存在：{bundle_id} / evidence bundle {bundle_id} not found", code="bundle_not_found"
        )
    guard.require_case(session, user=user.user, case_id=stored.case_id)
    row, content = bundle.read_bundle(
        session, bundle_id=bundle_id, user_id=actor_id(user, user_id), at=clock.now()
    )
    doc = session.get(Document, row.document_id)
    filename = doc.filename if doc else f"evidence-bundle-{row.id}.zip"
    return Response(
        content,
        media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="{filename}"', "X-Content-SHA256": row.sha256},
    )


@router.post("/legal-cases/{legal_case_id}/lawyer-letter", response_model=DocumentOut, status_code=201)
def lawyer_letter(legal_case_id: int, body: LetterIn, session: SessionDep, user: CurrentUser) -> Document:
    """Generate and store the lawyer's letter PDF; download it from ``/documents/{id}/content``."""
    guard.require_role(user.user, access.MANAGE)
    return legal.lawyer_letter(
        session,
        legal_case_id=legal_case_id,
        letter_date=body.letter_date,
        user_id=actor_id(user, body.user_id),
        locale=body.locale,
    ).document


# --- agencies and placements ---------------------------------------------------------------------------


@router.post("/agencies", response_model=AgencyOut, status_code=201, dependencies=[require(Role.ADMIN)])
def create_agency(body: AgencyIn, session: SessionDep, user: CurrentUser) -> Agency:
    return agencies.create_agency(
        session,
        name=body.name,
        listed=body.listed,
        active=body.active,
        commission_bps=body.commission_bps,
        contact=body.contact,
    )


@router.get(
    "/agencies",
    response_model=list[AgencyOut],
    responses=LIST_RESPONSE,
    dependencies=[require(*access.IN_HOUSE)],
)
def list_agencies(session: SessionDep, user: CurrentUser, page: PageDep) -> list[Agency]:
    return page.of(agencies.list_agencies(session))


@router.patch("/agencies/{agency_id}", response_model=AgencyOut, dependencies=[require(Role.ADMIN)])
def update_agency(agency_id: int, body: AgencyPatch, session: SessionDep, user: CurrentUser) -> Agency:
    return agencies.update_agency(
        session,
        agency_id=agency_id,
        listed=body.listed,
        active=body.active,
        commission_bps=body.commission_bps,
        login_ip_allowlist=body.login_ip_allowlist,
    )


@router.post(
    "/placements", response_model=list[PlacementOut], status_code=201, dependencies=[require_manager()]
)
def place(body: PlacementIn, session: SessionDep, user: CurrentUser) -> list[Placement]:
    """Place the given ``case_ids``, or the cases of ``portfolio_id`` that match ``rule`` (CN-7 checked)."""
    if body.case_ids is not None:
        return agencies.place_cases(
            session,
            agency_id=body.agency_id,
            case_ids=body.case_ids,
            placed_on=body.placed_on,
            expires_on=body.expires_on,
            placed_by_id=actor_id(user, body.placed_by_id),
        )
    if body.portfolio_id is None:
        raise ValidationFailed(
            "须给出 case_ids 或 portfolio_id 与 rule / give case_ids, or portfolio_id with a rule",
            code="placement_target_required",
        )
    rule = agencies.PlacementRule(**(body.rule or RuleIn()).model_dump())
    return agencies.place_batch(
        session,
        portfolio_id=body.portfolio_id,
        agency_id=body.agency_id,
        rule=rule,
        placed_on=body.placed_on,
        expires_on=body.expires_on,
        placed_by_id=actor_id(user, body.placed_by_id),
    )


@router.get("/agencies/{agency_id}/placements", response_model=list[PlacementOut], responses=LIST_RESPONSE)
def agency_placements(
    agency_id: int, session: SessionDep, user: CurrentUser, page: PageDep
) -> list[Placement]:
    """The agency's placements: for in-house readers, and for the agency's own users."""
    if not (access.has_role(user.role, access.READ_ALL) or user.user.agency_id == agency_id):
        guard.require_role(user.user, access.READ_ALL)
    agencies.get_agency(session, agency_id=agency_id)
    return page.of(agencies.list_placements(session, agency_id=agency_id))


@router.post(
    "/placements/{placement_id}/recall", response_model=PlacementOut, dependencies=[require_manager()]
)
def recall(placement_id: int, body: RecallIn, session: SessionDep, user: CurrentUser) -> Placement:
    return agencies.recall_placement(
        session,
        placement_id=placement_id,
        recalled_on=body.recalled_on,
        user_id=actor_id(user, body.user_id),
        reason=body.reason,
    )


@router.post(
    "/placements/recall-expired", response_model=list[PlacementOut], dependencies=[require_manager()]
)
def recall_expired(body: AsOfIn, session: SessionDep, user: CurrentUser) -> list[Placement]:
    return agencies.recall_expired_placements(session, as_of=body.as_of)


@router.post(
    "/agencies/{agency_id}/commission", response_model=list[CommissionOut], dependencies=[require_manager()]
)
def commission(
    agency_id: int,
    body: CommissionIn,
    session: SessionDep,
    user: CurrentUser,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> list[CommissionOut]:
    """Commission per placement on the payments given (the ledger's, once it exists)."""
    rows = agencies.commissions(
        session,
        agency_id=agency_id,
        payments=arrangements.payments_frame(body.payments),
        period_start=body.period_start,
        period_end=body.period_end,
    )
    return [CommissionOut.model_validate(r, from_attributes=True) for r in rows[:limit]]
