"""Channel endpoints: message templates (list, save with linting, preview with a case) and SMS receipts."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from arrears import clock
from arrears.api.deps import (
    LIST_RESPONSE,
    CurrentUser,
    PageDep,
    SessionDep,
    current_user,
    require,
    require_manager,
)
from arrears.api.v1.schemas import AUTH_ERRORS, ErrorOut
from arrears.channels import delivery, service
from arrears.channels.templates import TemplateKind
from arrears.enums import Channel
from arrears.models import MessageTemplate
from arrears.users import access, guard

router = APIRouter(
    prefix="/api/v1", tags=["channels"], dependencies=[Depends(current_user)], responses=AUTH_ERRORS
)
# Gateways call back without a token: their requests are signed (HMAC) instead.
webhooks = APIRouter(prefix="/api/v1", tags=["channels"])
_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorOut},
    409: {"model": ErrorOut},
    422: {"model": ErrorOut},
}


class TemplateIn(BaseModel):
    """A template to lint and save as the next version of (portfolio, code, channel, locale)."""

    model_config = ConfigDict(extra="forbid")

    code: str = Field(min_length=1, max_length=100)
    channel: Channel
    locale: str = "zh_CN"
    kind: TemplateKind = TemplateKind.DEBTOR
    parts: dict[str, str]
    portfolio_id: int | None = None
    stage: str | None = None


class TemplateOut(BaseModel):
    id: int
    code: str
    channel: str
    locale: str
    kind: str
    version: int
    parts: dict[str, Any]
    portfolio_id: int | None
    stage: str | None
    created_by: str | None
    created_at: datetime

    @classmethod
    def of(cls, row: MessageTemplate) -> TemplateOut:
        return cls(
            id=row.id,
            code=row.code,
            channel=row.channel,
            locale=row.locale,
            kind=row.kind,
            version=row.version,
            parts=dict(row.parts),
            portfolio_id=row.portfolio_id,
            stage=row.stage,
            created_by=row.created_by,
            created_at=row.created_at,
        )


class PreviewIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    case_id: int
    account_id: int | None = None
    contact_point_id: int | None = None
    as_of: date | None = None


class SmsLengthOut(BaseModel):
    encoding: str
    characters: int
    units: int
    segments: int
    max_segments: int
    too_long: bool


class IssueOut(BaseModel):
    code: str
    message: str
    message_zh: str
    rule_ids: list[str]
    part: str | None
    match: str | None
    highlighted: str | None


class PreviewOut(BaseModel):
    template_id: int
    code: str
    version: int
    channel: str
    locale: str
    parts: dict[str, str]
    sms: SmsLengthOut | None
    issues: list[IssueOut]


class ReceiptsOut(BaseModel):
    delivered: int
    failed: int
    pending: int
    unknown: int
    repeated: int


@router.get(
    "/templates",
    response_model=list[TemplateOut],
    responses=LIST_RESPONSE,
    dependencies=[require(*access.IN_HOUSE)],
)
def list_templates(
    session: SessionDep,
    page: PageDep,
    portfolio_id: int | None = None,
    code: str | None = None,
    channel: Channel | None = None,
    locale: str | None = None,
    all_versions: Annotated[bool, Query(description="every version, not only the newest")] = False,
) -> list[TemplateOut]:
    """Stored templates: the newest version of each (or every version)."""
    rows = service.list_templates(
        session,
        portfolio_id=portfolio_id,
        code=code,
        channel=channel,
        locale=locale,
        all_versions=all_versions,
    )
    return [TemplateOut.of(r) for r in page.of(rows)]


@router.post(
    "/templates",
    response_model=TemplateOut,
    status_code=201,
    responses=_ERRORS,
    dependencies=[require_manager()],
)
def save_template(body: TemplateIn, session: SessionDep) -> TemplateOut:
    """Lint and save a template; a failing one is refused (409 for content rules, 422 for placeholders)
    with the offending phrase and rule ids in ``details``."""
    row = service.save_template(
        session,
        code=body.code,
        channel=body.channel,
        locale=body.locale,
        kind=body.kind,
        parts=body.parts,
        portfolio_id=body.portfolio_id,
        stage=body.stage,
        created_by="api",
    )
    return TemplateOut.of(row)


@router.post("/templates/{template_id}/preview", response_model=PreviewOut, responses=_ERRORS)
def preview_template(template_id: int, body: PreviewIn, session: SessionDep, user: CurrentUser) -> PreviewOut:
    """Render a template with a real case's data; SMS length, encoding and segments."""
    guard.require_role(user.user, access.IN_HOUSE)
    if body.case_id is not None:
        guard.require_case(session, user=user.user, case_id=body.case_id)
    if body.account_id is not None:
        guard.require_account(session, user=user.user, account_id=body.account_id)
    preview = service.preview_template(
        session,
        template_id=template_id,
        case_id=body.case_id,
        account_id=body.account_id,
        contact_point_id=body.contact_point_id,
        as_of=body.as_of or clock.today(),
    )
    sms = None
    if preview.sms is not None:
        sms = SmsLengthOut(
            encoding=preview.sms.encoding.value,
            characters=preview.sms.characters,
            units=preview.sms.units,
            segments=preview.sms.segments,
            max_segments=preview.max_segments,
            too_long=preview.sms.segments > preview.max_segments,
        )
    return PreviewOut(
        template_id=preview.template_id,
        code=preview.code,
        version=preview.version,
        channel=preview.channel.value,
        locale=preview.locale,
        parts=preview.parts,
        sms=sms,
        issues=[IssueOut(**i.to_dict()) for i in preview.issues],
    )


@webhooks.post(
    "/webhooks/sms/{gateway}",
    response_model=ReceiptsOut,
    responses={403: {"model": ErrorOut}, 404: {"model": ErrorOut}},
)
async def sms_receipts(gateway: str, request: Request, session: SessionDep) -> ReceiptsOut:
    """SMS delivery receipts: the HMAC signature over the raw body is checked first (403 when wrong)."""
    body = await request.body()
    header = str(service.dispatch_settings()["webhook"]["signature_header"])
    report = delivery.record_sms_receipts(
        session, gateway=gateway, body=body, signature=request.headers.get(header), at=clock.now()
    )
    return ReceiptsOut(**vars(report))
