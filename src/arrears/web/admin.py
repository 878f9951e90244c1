"""The administrator's pages: imports, users, agencies, message templates, rule packs and strategies.

Administrators only. Each page is a thin door onto the domain services the CLI and the API use: an
upload runs the normal all-or-nothing import, a template is linted by the same rule pack as at send time,
and a rule pack or strategy is validated exactly as the gate and the daily run load it.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Depends, File, Form, UploadFile
from fastapi.responses import FileResponse, HTMLResponse, Response
from sqlalchemy import func, select

from arrears import clock
from arrears.admin import service as admin_service
from arrears.agencies import service as agencies_service
from arrears.channels import service as channels_service
from arrears.channels import templates as tpl
from arrears.config import get_settings
from arrears.enums import Channel, Role
from arrears.errors import ArrearsError, ValidationFailed
from arrears.models import AppUser, ImportJob, MessageTemplate, Placement, Portfolio
from arrears.portfolios import jobs
from arrears.portfolios import service as portfolios_service
from arrears.users import service as users_service
from arrears.web.guard import ADMIN, desk_for
from arrears.web.routes import Desk, DeskRoute

router = APIRouter(prefix="/admin", include_in_schema=False, route_class=DeskRoute)
# every page here is for administrators only; anyone else gets the 403 page before the handler runs
AdminDesk = Annotated[Desk, Depends(desk_for(ADMIN))]

TEMPLATE_CHANNELS = (Channel.SMS, Channel.EMAIL, Channel.LETTER, Channel.LAWYER_LETTER)
REPORT_ROWS_SHOWN = 200


def _today(d: Desk) -> date:
    """Today where the desk works (the server's default time zone), from the request's clock."""
    return clock.to_local(d.now, get_settings().default_timezone).date()


def _refused(d: Desk, exc: ArrearsError, again: Callable[..., HTMLResponse]) -> HTMLResponse:
    """A refused form: the error page when the person may not do it at all, otherwise the same page again
    with the message (nothing the form did is kept)."""
    if exc.status == 403:
        return d.error(exc)
    d.db.rollback()
    return again(d, error=exc.message, status=exc.status)


def _checkbox(value: str | None) -> bool:
    return value in ("on", "true", "1", "yes")


# ------------------------------------------------------------------------------------------------ imports


def _imports_page(d: Desk, *, error: str | None = None, status: int = 200) -> HTMLResponse:
    portfolios = portfolios_service.list_portfolios(d.db)
    names = {p.id: p.name for p in portfolios}
    return d.page(
        "admin/imports.html",
        status=status,
        error=error,
        portfolios=portfolios,
        jobs=[(job, names.get(job.portfolio_id, "")) for job in jobs.list_jobs(d.db)],
    )


@router.get("/imports")
def imports_page(d: AdminDesk) -> HTMLResponse:
    return _imports_page(d)


@router.post("/imports")
async def start_import(
    d: AdminDesk,
    background: BackgroundTasks,
    file: Annotated[UploadFile, File()],
    portfolio_id: Annotated[str, Form()] = "",
    dry_run: Annotated[str | None, Form()] = None,
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    try:
        d.check_csrf(csrf_token)
        if not portfolio_id.isdigit():
            raise ValidationFailed(d.t("choose_portfolio"), code="portfolio_required")
        content = await file.read()
        job = jobs.create_job(
            d.db,
            portfolio_id=int(portfolio_id),
            filename=file.filename or "upload.csv",
            content=content,
            dry_run=_checkbox(dry_run),
            user_id=d.user.id,
        )
        if job.filename.lower().endswith(".csv"):
            job.rows_total = max(content.count(b"\n") - 1, 0) + (0 if content.endswith(b"\n") else 1)
    except ArrearsError as exc:
        return _refused(d, exc, _imports_page)
    background.add_task(jobs.run_job, d.request.app.state.engine, job.id)
    return d.redirect(f"/admin/imports/{job.id}")


def _report_rows(job: ImportJob, locale: str) -> tuple[list[dict[str, str]], int]:
    """The first rows of a job's problem report, in the reader's language, and how many there are."""
    if not job.report_path or not Path(job.report_path).is_file():
        return [], 0
    shown: list[dict[str, str]] = []
    total = 0
    with Path(job.report_path).open(encoding="utf-8-sig", newline="") as fh:
        for row in csv.DictReader(fh):
            total += 1
            if len(shown) < REPORT_ROWS_SHOWN:
                shown.append(
                    {
                        "row": row["行号 row"],
                        "column": row["列 column"],
                        "field": row["字段 field"],
                        "value": row["值 value"],
                        "severity": row["级别 severity"],
                        "problem": row["问题"] if locale == "zh_CN" else row["problem"],
                        "code": row["代码 code"],
                    }
                )
    return shown, total


@router.get("/imports/{job_id}")
def import_job_page(d: AdminDesk, job_id: int) -> HTMLResponse:
    try:
        job = jobs.get_job(d.db, job_id=job_id)
    except ArrearsError as exc:
        return d.error(exc)
    portfolio = d.db.get(Portfolio, job.portfolio_id)
    rows, total = _report_rows(job, d.t.locale)
    read = jobs.rows_read(job.id)
    return d.page(
        "admin/import_job.html",
        job=job,
        portfolio=portfolio.name if portfolio else "",
        running=job.status not in jobs.FINISHED,
        rows_read=read if read is not None else (job.rows_total if job.status in jobs.FINISHED else 0),
        report=rows,
        report_total=total,
    )


@router.get("/imports/{job_id}/report")
def import_job_report(d: AdminDesk, job_id: int) -> Response:
    try:
        job = jobs.get_job(d.db, job_id=job_id)
        if not job.report_path or not Path(job.report_path).is_file():
            raise ValidationFailed(d.t("no_report"), code="no_report")
    except ArrearsError as exc:
        return d.error(exc)
    d.db.commit()
    return FileResponse(
        job.report_path,
        media_type="text/csv; charset=utf-8",
        filename=f"{Path(job.filename).stem}.problems.csv",
    )


# -------------------------------------------------------------------------------------------------- users


def _users_page(
    d: Desk, *, notice: str | None = None, error: str | None = None, status: int = 200
) -> HTMLResponse:
    users = list(d.db.scalars(select(AppUser).order_by(AppUser.username)))
    return d.page(
        "admin/users.html",
        status=status,
        notice=notice,
        error=error,
        users=users,
        roles=[(r.value, d.t.label("role_names", r.value)) for r in Role],
    )


@router.get("/users")
def users_page(d: AdminDesk) -> HTMLResponse:
    return _users_page(d)


@router.post("/users")
def add_user(
    d: AdminDesk,
    username: Annotated[str, Form()] = "",
    display_name: Annotated[str, Form()] = "",
    role: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    try:
        d.check_csrf(csrf_token)
        user = users_service.add_user(
            d.db, username=username, role=role, password=password, display_name=display_name.strip() or None
        )
    except ArrearsError as exc:
        return _refused(d, exc, _users_page)
    return _users_page(d, notice=d.t("user_added", name=user.username))


@router.post("/users/{user_id}")
def update_user(
    d: AdminDesk,
    user_id: int,
    role: Annotated[str, Form()] = "",
    active: Annotated[str | None, Form()] = None,
    password: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    try:
        d.check_csrf(csrf_token)
        user = users_service.update_user(
            d.db,
            user_id=user_id,
            role=role or None,
            active=_checkbox(active),
            acting_user_id=d.user.id,
            at=d.now,
        )
        if password:
            users_service.set_password(d.db, username=user.username, password=password)
    except ArrearsError as exc:
        return _refused(d, exc, _users_page)
    return _users_page(d, notice=d.t("user_saved", name=user.username))


# ----------------------------------------------------------------------------------------------- agencies


def _agencies_page(
    d: Desk, *, notice: str | None = None, error: str | None = None, status: int = 200
) -> HTMLResponse:
    today = _today(d)
    open_counts = dict(
        d.db.execute(
            select(Placement.agency_id, func.count())
            .where(Placement.recalled_on.is_(None), Placement.expires_on > today)
            .group_by(Placement.agency_id)
        ).all()
    )
    placements = list(
        d.db.scalars(
            select(Placement)
            .where(Placement.recalled_on.is_(None), Placement.expires_on > today)
            .order_by(Placement.id.desc())
            .limit(200)
        )
    )
    agencies = agencies_service.list_agencies(d.db)
    return d.page(
        "admin/agencies.html",
        status=status,
        notice=notice,
        error=error,
        agencies=agencies,
        names={a.id: a.name for a in agencies},
        open_counts=open_counts,
        placements=placements,
        today=today.isoformat(),
    )


@router.get("/agencies")
def agencies_page(d: AdminDesk) -> HTMLResponse:
    return _agencies_page(d)


def _bps(text: str, d: Desk) -> int:
    value = text.strip().replace("%", "")
    try:
        # entered as a percentage with up to two decimals (12.5 -> 1250 bps); never through a float
        whole, _, frac = value.partition(".")
        if not whole.isdigit() or (frac and (not frac.isdigit() or len(frac) > 2)):
            raise ValueError(value)
        return int(whole) * 100 + int((frac + "00")[:2])
    except ValueError as exc:
        raise ValidationFailed(d.t("bad_commission", value=text), code="bad_commission") from exc


@router.post("/agencies")
def add_agency(
    d: AdminDesk,
    name: Annotated[str, Form()] = "",
    listed: Annotated[str | None, Form()] = None,
    commission_percent: Annotated[str, Form()] = "0",
    contact: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    try:
        d.check_csrf(csrf_token)
        agency = agencies_service.create_agency(
            d.db,
            name=name.strip(),
            listed=_checkbox(listed),
            commission_bps=_bps(commission_percent, d),
            contact=contact.strip() or None,
        )
    except ArrearsError as exc:
        return _refused(d, exc, _agencies_page)
    return _agencies_page(d, notice=d.t("agency_saved", name=agency.name))


@router.post("/agencies/{agency_id}")
def update_agency(
    d: AdminDesk,
    agency_id: int,
    listed: Annotated[str | None, Form()] = None,
    active: Annotated[str | None, Form()] = None,
    commission_percent: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    try:
        d.check_csrf(csrf_token)
        agency = agencies_service.update_agency(
            d.db,
            agency_id=agency_id,
            listed=_checkbox(listed),
            active=_checkbox(active),
            commission_bps=_bps(commission_percent, d) if commission_percent.strip() else None,
        )
    except ArrearsError as exc:
        return _refused(d, exc, _agencies_page)
    return _agencies_page(d, notice=d.t("agency_saved", name=agency.name))


@router.post("/placements/{placement_id}/recall")
def recall_placement(
    d: AdminDesk,
    placement_id: int,
    reason: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    try:
        d.check_csrf(csrf_token)
        placement = agencies_service.get_placement(d.db, placement_id=placement_id)
        agencies_service.recall_placement(
            d.db,
            placement_id=placement_id,
            recalled_on=max(_today(d), placement.placed_on),
            user_id=d.user.id,
            reason=reason,
        )
    except ArrearsError as exc:
        return _refused(d, exc, _agencies_page)
    return _agencies_page(d, notice=d.t("placement_recalled", id=placement_id))


# ---------------------------------------------------------------------------------------------- templates


def _template_form(
    d: Desk,
    *,
    values: dict[str, Any],
    issues: list[dict[str, Any]] | None = None,
    error: str | None = None,
    notice: str | None = None,
    preview: Any = None,
    status: int = 200,
) -> HTMLResponse:
    channel = Channel(values.get("channel") or Channel.SMS.value)
    portfolios = portfolios_service.list_portfolios(d.db)
    return d.page(
        "admin/template_edit.html",
        status=status,
        values=values,
        parts=tpl.channel_parts(channel),
        channels=[(c.value, d.t.label("channels", c.value)) for c in TEMPLATE_CHANNELS],
        kinds=[(k.value, d.t.label("template_kinds", k.value)) for k in tpl.TemplateKind],
        locales=tpl.supported_locales(),
        portfolios=portfolios,
        issues=issues or [],
        error=error,
        notice=notice,
        preview=preview,
        placeholders=sorted(
            tpl.placeholder_rules().allowed.get(tpl.TemplateKind(values.get("kind") or "debtor"), frozenset())
        ),
    )


@router.get("/templates")
def templates_page(d: AdminDesk) -> HTMLResponse:
    rows = channels_service.list_templates(d.db)
    names = {p.id: p.name for p in portfolios_service.list_portfolios(d.db)}
    return d.page(
        "admin/templates.html",
        templates=rows,
        names=names,
        defaults=tpl.default_templates(d.t.locale),
        channels=[(c.value, d.t.label("channels", c.value)) for c in TEMPLATE_CHANNELS],
    )


@router.get("/templates/new")
def new_template(d: AdminDesk, channel: str = "sms", default: str | None = None) -> HTMLResponse:
    try:
        chosen = Channel(channel) if channel in {c.value for c in TEMPLATE_CHANNELS} else Channel.SMS
        values: dict[str, Any] = {"channel": chosen.value, "kind": "debtor", "locale": d.t.locale, "code": ""}
        if default:
            base = tpl.default_template(default, d.t.locale)
            values.update(
                channel=base.channel.value,
                kind=base.kind.value,
                code=default,
                stage=base.stage or "",
                parts=dict(base.parts),
            )
    except ArrearsError as exc:
        return d.error(exc)
    return _template_form(d, values=values)


@router.get("/templates/{template_id}")
def edit_template(d: AdminDesk, template_id: int, case_id: str = "") -> HTMLResponse:
    try:
        row = channels_service.get_template(d.db, template_id=template_id)
        values = _template_values(row)
        preview = None
        error = None
        if case_id.strip():
            try:
                if not case_id.strip().isdigit():
                    raise ValidationFailed(d.t("bad_case_id", value=case_id), code="bad_case_id")
                preview = channels_service.preview_template(
                    d.db, template_id=row.id, case_id=int(case_id), as_of=_today(d)
                )
            except ArrearsError as exc:
                error = exc.message
    except ArrearsError as exc:
        return d.error(exc)
    return _template_form(d, values={**values, "preview_case": case_id}, preview=preview, error=error)


def _template_values(row: MessageTemplate) -> dict[str, Any]:
    return {
        "id": row.id,
        "code": row.code,
        "channel": row.channel,
        "locale": row.locale,
        "kind": row.kind,
        "stage": row.stage or "",
        "portfolio_id": row.portfolio_id,
        "version": row.version,
        "parts": dict(row.parts),
    }


@router.post("/templates")
async def save_template(d: AdminDesk) -> Response:
    form = await d.request.form()
    values: dict[str, Any] = {k: str(v) for k, v in form.items() if isinstance(v, str)}
    try:
        d.check_csrf(values.get("csrf_token"))
        channel = Channel(values.get("channel", "sms"))
        parts = {p: values.get(f"part_{p}", "") for p in tpl.channel_parts(channel)}
        if channel is Channel.EMAIL and not parts.get("html", "").strip():
            parts.pop("html", None)
        values["parts"] = parts
        portfolio = values.get("portfolio_id", "")
        row = channels_service.save_template(
            d.db,
            code=values.get("code", "").strip(),
            channel=channel,
            locale=values.get("locale", "zh_CN"),
            kind=values.get("kind", "debtor"),
            parts=parts,
            portfolio_id=int(portfolio) if portfolio.isdigit() else None,
            stage=values.get("stage", "").strip() or None,
            created_by=d.user.username,
        )
    except ArrearsError as exc:
        if exc.status == 403:
            return d.error(exc)
        d.db.rollback()
        details = exc.details if isinstance(exc.details, dict) else {}
        issues = details.get("issues") if isinstance(details.get("issues"), list) else None
        return _template_form(d, values=values, issues=issues, error=exc.message, status=exc.status)
    except ValueError:
        d.db.rollback()
        return _template_form(d, values=values, error=d.t("bad_channel"), status=422)
    return _template_form(
        d, values=_template_values(row), notice=d.t("template_saved", code=row.code, version=row.version)
    )


# ------------------------------------------------------------------------------- rule packs and strategies

DEFINITION_PATHS = {"rule-packs": admin_service.RULE_PACK, "strategies": admin_service.STRATEGY}


def _kind_of(segment: str) -> str:
    kind = DEFINITION_PATHS.get(segment)
    if kind is None:
        raise ValidationFailed(f"unknown page {segment!r}", code="not_found")
    return kind


@router.get("/{segment}")
def definitions_page(d: AdminDesk, segment: str) -> HTMLResponse:
    try:
        kind = _kind_of(segment)
        rows = admin_service.list_definitions(kind)
    except ArrearsError as exc:
        return d.error(exc)
    return d.page("admin/definitions.html", kind=kind, segment=segment, rows=rows)


def _definition_page(
    d: Desk,
    *,
    kind: str,
    segment: str,
    name: str,
    text: str,
    source: str,
    notice: str | None = None,
    error: str | None = None,
    status: int = 200,
) -> HTMLResponse:
    return d.page(
        "admin/definition_edit.html",
        status=status,
        kind=kind,
        segment=segment,
        definition_name=name,
        text=text,
        source=source,
        notice=notice,
        error=error,
        history=admin_service.history(d.db, kind=kind, name=name) if name else [],
        operator_dir=str(admin_service.operator_dir(kind)),
    )


@router.get("/{segment}/{name}")
def definition_page(d: AdminDesk, segment: str, name: str, version: int | None = None) -> HTMLResponse:
    try:
        kind = _kind_of(segment)
        found = admin_service.get_definition(kind, name)
        text = found.text
        if version is not None:
            match = [c for c in admin_service.history(d.db, kind=kind, name=name) if c.id == version]
            if match:
                text = match[0].content
    except ArrearsError as exc:
        return d.error(exc)
    return _definition_page(d, kind=kind, segment=segment, name=name, text=text, source=found.source)


@router.post("/{segment}")
def save_definition(
    d: AdminDesk,
    segment: str,
    text: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    try:
        kind = _kind_of(segment)
        d.check_csrf(csrf_token)
    except ArrearsError as exc:
        return d.error(exc)
    text = text.replace("\r\n", "\n")
    try:
        change = admin_service.save_definition(d.db, kind=kind, text=text, user_id=d.user.id)
    except ArrearsError as exc:
        d.db.rollback()
        return _definition_page(
            d, kind=kind, segment=segment, name="", text=text, source="", error=exc.message, status=exc.status
        )
    return _definition_page(
        d,
        kind=kind,
        segment=segment,
        name=change.name,
        text=text,
        source="operator",
        notice=d.t("definition_saved", name=change.name, path=change.path),
    )
