"""The compliance officer's pages: every contact allowed or blocked with its rule ids, holds, disputes and
complaints, the access log, and one case's record with its hash-chain check.

Compliance officers, administrators and read-only auditors. These pages read; they change nothing, except
that opening a case's record is itself written to the access log (PI-9).
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import Select, func, select

from arrears import clock
from arrears.config import get_settings
from arrears.contacts import service as contacts_service
from arrears.enums import Channel, FlagKind
from arrears.errors import ArrearsError, Forbidden, NotFound, ValidationFailed
from arrears.legal import bundle as bundle_service
from arrears.models import (
    AccessLog,
    AccountFlag,
    AppUser,
    Case,
    ContactAttempt,
    Debtor,
    Dispute,
)
from arrears.users import service as users_service
from arrears.web.guard import COMPLIANCE, desk_for
from arrears.web.routes import Desk, DeskRoute

router = APIRouter(prefix="/compliance", include_in_schema=False, route_class=DeskRoute)
# compliance officers, administrators and read-only auditors; anyone else gets the 403 page first
OversightDesk = Annotated[Desk, Depends(desk_for(COMPLIANCE))]

PAGE_SIZE = 100


def _zone() -> str:
    return get_settings().default_timezone


def _local(moment: datetime | None) -> str:
    if moment is None:
        return ""
    return clock.to_local(moment, _zone()).strftime("%Y-%m-%d %H:%M")


def _day_bounds(text: str, *, end: bool) -> datetime | None:
    """A ``YYYY-MM-DD`` filter as a UTC instant: the start of that local day (or of the next, for ``to``)."""
    if not text.strip():
        return None
    try:
        day = datetime.strptime(text.strip(), "%Y-%m-%d").date()
    except ValueError as exc:
        raise ValidationFailed(f"日期格式应为 YYYY-MM-DD / bad date {text!r}", code="bad_date") from exc
    if end:
        day += timedelta(days=1)
    return clock.as_utc(datetime(day.year, day.month, day.day, tzinfo=clock.zone_info(_zone())))


def _page_number(text: str) -> int:
    return int(text) if text.isdigit() and int(text) > 0 else 1


def _contacts_query(
    *, decision: str, rule: str, channel: str, case_id: str, since: datetime | None, until: datetime | None
) -> Select[Any]:
    query = select(ContactAttempt)
    if decision == "blocked":
        query = query.where(ContactAttempt.allowed.is_(False))
    elif decision == "allowed":
        query = query.where(ContactAttempt.allowed.is_(True))
    if rule.strip():
        query = query.where(ContactAttempt.rule_ids.contains(rule.strip().upper()))
    if channel in {c.value for c in Channel}:
        query = query.where(ContactAttempt.channel == channel)
    if case_id.strip():
        if not case_id.strip().isdigit():
            raise ValidationFailed(f"案件编号应为数字 / bad case id {case_id!r}", code="bad_case_id")
        query = query.where(ContactAttempt.case_id == int(case_id))
    if since is not None:
        query = query.where(ContactAttempt.started_at >= since)
    if until is not None:
        query = query.where(ContactAttempt.started_at < until)
    return query


def _reason(attempt: ContactAttempt, locale: str) -> str:
    decision = attempt.decision or {}
    reasons = decision.get("reasons") if isinstance(decision, dict) else None
    if not isinstance(reasons, list):
        return ""
    texts = []
    for item in reasons:
        if isinstance(item, dict):
            text = item.get("zh" if locale == "zh_CN" else "en") or item.get("message") or ""
            texts.append(str(text))
    return "；".join(t for t in texts if t)


@router.get("/contacts")
def contacts_page(
    d: OversightDesk,
    decision: str = "",
    rule: str = "",
    channel: str = "",
    case_id: str = "",
    start: str = "",
    end: str = "",
    page: str = "1",
) -> HTMLResponse:
    query: Select[Any] | None = None
    error: str | None = None
    try:
        since, until = _day_bounds(start, end=False), _day_bounds(end, end=True)
        query = _contacts_query(
            decision=decision, rule=rule, channel=channel, case_id=case_id, since=since, until=until
        )
    except ArrearsError as exc:
        error = exc.message
    number = _page_number(page)
    rows: list[ContactAttempt] = []
    total = 0
    by_rule: Counter[str] = Counter()
    if query is not None:
        total = d.db.scalar(select(func.count()).select_from(query.subquery())) or 0
        rows = list(
            d.db.scalars(
                query.order_by(ContactAttempt.started_at.desc(), ContactAttempt.id.desc())
                .limit(PAGE_SIZE)
                .offset((number - 1) * PAGE_SIZE)
            )
        )
        blocked = query.where(ContactAttempt.allowed.is_(False)).with_only_columns(ContactAttempt.rule_ids)
        for (ids,) in d.db.execute(blocked.limit(100_000)):
            by_rule.update(part for part in (ids or "").split(",") if part)
    names = dict(
        d.db.execute(
            select(Case.id, Debtor.name)
            .join(Debtor, Debtor.id == Case.debtor_id)
            .where(Case.id.in_({r.case_id for r in rows}))
        ).all()
    )
    return d.page(
        "oversight/contacts.html",
        error=error,
        rows=[
            {
                "at": _local(r.started_at),
                "case_id": r.case_id,
                "debtor": names.get(r.case_id, ""),
                "channel": d.t.label("channels", r.channel),
                "direction": d.t.label("directions", r.direction),
                "collector": r.collector,
                "outcome": d.t.label("outcomes", r.outcome),
                "allowed": r.allowed,
                "rule_ids": r.rule_ids,
                "reason": _reason(r, d.t.locale),
            }
            for r in rows
        ],
        total=total,
        page=number,
        pages=max((total + PAGE_SIZE - 1) // PAGE_SIZE, 1),
        by_rule=sorted(by_rule.items(), key=lambda kv: (-kv[1], kv[0])),
        filters={
            "decision": decision,
            "rule": rule,
            "channel": channel,
            "case_id": case_id,
            "start": start,
            "end": end,
        },
        channels=[(c.value, d.t.label("channels", c.value)) for c in Channel],
        zone=_zone(),
    )


@router.get("/holds")
def holds_page(d: OversightDesk, kind: str = "") -> HTMLResponse:
    today = clock.to_local(d.now, _zone()).date()
    query = (
        select(AccountFlag, Debtor.name)
        .join(Case, Case.id == AccountFlag.case_id)
        .join(Debtor, Debtor.id == Case.debtor_id)
        .where(
            AccountFlag.cleared_at.is_(None),
            (AccountFlag.expires_on.is_(None)) | (AccountFlag.expires_on > today),
        )
    )
    if kind in {k.value for k in FlagKind}:
        query = query.where(AccountFlag.kind == kind)
    flags = d.db.execute(query.order_by(AccountFlag.id.desc()).limit(500)).all()
    counts = dict(
        d.db.execute(
            select(AccountFlag.kind, func.count())
            .where(
                AccountFlag.cleared_at.is_(None),
                (AccountFlag.expires_on.is_(None)) | (AccountFlag.expires_on > today),
            )
            .group_by(AccountFlag.kind)
        ).all()
    )
    disputes = list(
        d.db.scalars(
            select(Dispute).where(Dispute.status != "resolved").order_by(Dispute.id.desc()).limit(200)
        )
    )
    return d.page(
        "oversight/holds.html",
        flags=[(flag, name) for flag, name in flags],
        counts=[(k.value, d.t.label("flag_kinds", k.value), counts.get(k.value, 0)) for k in FlagKind],
        kind=kind,
        disputes=disputes,
    )


@router.get("/access-log")
def access_log_page(d: OversightDesk, user: str = "", debtor_id: str = "", page: str = "1") -> HTMLResponse:
    try:
        query = select(AccessLog, AppUser.username).join(
            AppUser, AppUser.id == AccessLog.user_id, isouter=True
        )
        if user.strip():
            query = query.where(AppUser.username == user.strip())
        if debtor_id.strip():
            if not debtor_id.strip().isdigit():
                raise ValidationFailed(
                    f"债务人编号应为数字 / bad debtor id {debtor_id!r}", code="bad_debtor_id"
                )
            query = query.where(AccessLog.debtor_id == int(debtor_id))
    except ArrearsError as exc:
        return d.page(
            "oversight/access_log.html",
            error=exc.message,
            rows=[],
            total=0,
            page=1,
            pages=1,
            filters={"user": user, "debtor_id": debtor_id},
        )
    number = _page_number(page)
    total = d.db.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = d.db.execute(
        query.order_by(AccessLog.at.desc(), AccessLog.id.desc())
        .limit(PAGE_SIZE)
        .offset((number - 1) * PAGE_SIZE)
    ).all()
    return d.page(
        "oversight/access_log.html",
        rows=[
            {
                "at": _local(row.at),
                "user": username or str(row.user_id),
                "action": d.t.label("access_actions", row.action),
                "debtor_id": row.debtor_id,
                "case_id": row.case_id,
                "ip": row.ip or "",
            }
            for row, username in rows
        ],
        total=total,
        page=number,
        pages=max((total + PAGE_SIZE - 1) // PAGE_SIZE, 1),
        filters={"user": user, "debtor_id": debtor_id},
    )


@router.get("/cases/{case_id}")
def case_record_page(d: OversightDesk, case_id: int) -> HTMLResponse:
    try:
        case = d.db.get(Case, case_id)
        if case is None:
            raise NotFound(f"案件不存在：{case_id} / case {case_id} not found", code="case_not_found")
    except ArrearsError as exc:
        return d.error(exc)
    report = contacts_service.verify_chain(d.db, case_id=case_id)
    attempts = list(
        d.db.scalars(
            select(ContactAttempt).where(ContactAttempt.case_id == case_id).order_by(ContactAttempt.seq)
        )
    )
    debtor = d.db.get(Debtor, case.debtor_id)
    users_service.log_access(
        d.db,
        user_id=d.user.id,
        debtor_id=case.debtor_id,
        case_id=case.id,
        at=d.now,
        ip=d.request.client.host if d.request.client else None,
        action="view_record",
    )
    broken = {link.attempt_id for link in report.broken}
    return d.page(
        "oversight/case_record.html",
        case=case,
        bundles=bundle_service.list_bundles(d.db, case_id=case_id),
        may_build=d.user.role in ("compliance", "admin"),
        debtor=debtor.name if debtor else "",
        report=report,
        rows=[
            {
                "seq": a.seq,
                "at": _local(a.started_at),
                "channel": d.t.label("channels", a.channel),
                "outcome": d.t.label("outcomes", a.outcome),
                "allowed": a.allowed,
                "rule_ids": a.rule_ids,
                "collector": a.collector,
                "hash": a.hash[:12],
                "broken": a.id in broken,
                "corrects": a.corrects_id,
            }
            for a in attempts
        ],
    )


@router.post("/cases/{case_id}/bundle")
def build_bundle(d: OversightDesk, case_id: int, csrf_token: Annotated[str, Form()] = "") -> Response:
    """Build, record and download the case's evidence bundle (compliance officers and administrators)."""
    try:
        d.check_csrf(csrf_token)
        if d.user.role not in ("compliance", "admin"):
            raise Forbidden(d.t("page_not_for_role"), code="role_refused")
        case = d.db.get(Case, case_id)
        if case is None:
            raise NotFound(f"案件不存在：{case_id} / case {case_id} not found", code="case_not_found")
        built = bundle_service.build_bundle(
            d.db,
            case_id=case_id,
            as_of=clock.to_local(d.now, _zone()).date(),
            generated_at=d.now,
            generated_by_id=d.user.id,
            locale=d.t.locale,
        )
    except ArrearsError as exc:
        return d.error(exc)
    d.db.commit()
    return _zip(built.zip_bytes, built.filename, built.sha256)


@router.get("/bundles/{bundle_id}")
def download_bundle(d: OversightDesk, bundle_id: int) -> Response:
    """A stored bundle as it was generated (checked against its recorded hash); the download is logged."""
    try:
        row, content = bundle_service.read_bundle(d.db, bundle_id=bundle_id, user_id=d.user.id, at=d.now)
    except ArrearsError as exc:
        return d.error(exc)
    d.db.commit()
    return _zip(content, f"evidence-bundle-{row.case_id}-{row.id}.zip", row.sha256)


def _zip(content: bytes, filename: str, sha256: str) -> Response:
    return Response(
        content,
        media_type="application/zip",
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "X-Content-SHA256": sha256,
            "Cache-Control": "no-store",
        },
    )
