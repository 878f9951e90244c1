"""The plan calculator (还款方案试算) of a case: pick a kind (lump sum, instalments, extension, settlement,
payment in kind), preview the quote (schedule, waivers, discount, policy limits, whether a supervisor must
approve) and agree it. Previews are GET requests and write nothing; agreeing is a POST with the same fields,
stored by `arrangements.service.create_arrangement` (active, or pending a supervisor's approval).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Form
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select

from arrears import clock
from arrears.arrangements import service as arrangements_service
from arrears.arrangements.quote import Quote
from arrears.arrangements.schemas import ArrangementKind, Frequency
from arrears.errors import ArrearsError, ValidationFailed
from arrears.models import Account, Case, Debtor
from arrears.money import format_minor, parse_minor
from arrears.users import access
from arrears.users import service as users_service
from arrears.web import views
from arrears.web.i18n import Translator
from arrears.web.routes import Desk, DeskDep, DeskRoute, _case

router = APIRouter(include_in_schema=False, route_class=DeskRoute)

KINDS = tuple(k.value for k in ArrangementKind)
FIELDS = (
    "pay_on",
    "count",
    "frequency",
    "first_on",
    "down_payment",
    "down_payment_on",
    "new_due_on",
    "accrual_paused",
    "settle_amount",
    "payments",
    "asset_description",
    "agreed_value",
    "transfer_on",
    "waive_shortfall",
)


def _date(t: Translator, values: Mapping[str, str], name: str) -> str:
    text = values.get(name, "").strip()
    try:
        return date.fromisoformat(text).isoformat()
    except ValueError as exc:
        raise ValidationFailed(
            t("bad_date", field=t(f"plan_{name}"), value=text or "—"), code="bad_date"
        ) from exc


def _amount(t: Translator, values: Mapping[str, str], name: str, currency: str, *, required: bool) -> int:
    text = values.get(name, "").strip()
    if not text and not required:
        return 0
    try:
        minor = parse_minor(text, currency)
    except ValidationFailed as exc:
        raise ValidationFailed(
            t("bad_amount", field=t(f"plan_{name}"), value=text or "—"), code="bad_amount"
        ) from exc
    if required and minor <= 0:
        raise ValidationFailed(t("bad_amount", field=t(f"plan_{name}"), value=text), code="bad_amount")
    return minor


def _count(t: Translator, values: Mapping[str, str], name: str) -> int:
    text = values.get(name, "").strip()
    if not text.isdigit() or int(text) < 1:
        raise ValidationFailed(t("bad_count", field=t(f"plan_{name}"), value=text or "—"), code="bad_count")
    return int(text)


def _frequency(t: Translator, values: Mapping[str, str]) -> str:
    value = values.get("frequency") or Frequency.MONTHLY.value
    if value not in {f.value for f in Frequency}:
        raise ValidationFailed(t("bad_choice", field=t("plan_frequency"), value=value), code="bad_frequency")
    return value


def plan_request(t: Translator, kind: str, values: Mapping[str, str], currency: str) -> dict[str, Any]:
    """The calculator's form fields as an arrangement request (``arrangements.quote``), each field checked
    with a message naming it (bad amount, bad date, bad count)."""
    if kind == ArrangementKind.LUMP_SUM:
        return {"kind": kind, "pay_on": _date(t, values, "pay_on")}
    if kind == ArrangementKind.INSTALMENTS:
        request: dict[str, Any] = {
            "kind": kind,
            "count": _count(t, values, "count"),
            "frequency": _frequency(t, values),
            "first_on": _date(t, values, "first_on"),
        }
        down = _amount(t, values, "down_payment", currency, required=False)
        if down:
            request["down_payment_minor"] = down
            request["down_payment_on"] = _date(t, values, "down_payment_on")
        return request
    if kind == ArrangementKind.EXTENSION:
        return {
            "kind": kind,
            "new_due_on": _date(t, values, "new_due_on"),
            "accrual_paused": values.get("accrual_paused") in ("1", "on", "true"),
        }
    if kind == ArrangementKind.SETTLEMENT:
        return {
            "kind": kind,
            "settle_minor": _amount(t, values, "settle_amount", currency, required=True),
            "payments": _count(t, values, "payments"),
            "first_on": _date(t, values, "first_on"),
            "frequency": _frequency(t, values),
        }
    if kind == ArrangementKind.PAYMENT_IN_KIND:
        description = values.get("asset_description", "").strip()
        if not description:
            raise ValidationFailed(
                t("field_required", field=t("plan_asset_description")), code="field_required"
            )
        return {
            "kind": kind,
            "asset_description": description,
            "agreed_value_minor": _amount(t, values, "agreed_value", currency, required=True),
            "transfer_on": _date(t, values, "transfer_on"),
            "waive_shortfall": values.get("waive_shortfall") in ("1", "on", "true"),
        }
    raise ValidationFailed(t("bad_choice", field=t("plan_kind"), value=kind), code="bad_kind")


def _pydantic_message(t: Translator, exc: ValidationFailed) -> str:
    details = exc.details if isinstance(exc.details, list) else []
    parts = []
    for item in details:
        loc = [str(p) for p in item.get("loc", ()) if str(p) not in KINDS]
        name = loc[-1] if loc else ""
        label = t(f"plan_{name}") if name else ""
        parts.append(f"{label}: {item.get('msg', '')}" if label else str(item.get("msg", "")))
    return t("plan_invalid") + (" — " + "; ".join(parts) if parts else "")


@dataclass(frozen=True, slots=True)
class QuoteView:
    quote: Quote
    schedule: list[tuple[int, str, str, str]]
    balance: str
    waived: str
    payable: str
    remaining: str
    discount: str
    waivers: list[tuple[str, str]]
    limits: list[str]
    reasons: list[str]


def quote_view(t: Translator, q: Quote) -> QuoteView:
    """A quote as the page shows it (amounts formatted, messages in the page's language)."""
    cur = q.currency

    def money(minor: int) -> str:
        return format_minor(minor, cur, t.locale)

    zh = t.locale == "zh_CN"
    return QuoteView(
        quote=q,
        schedule=[
            (s.seq, s.due_on.isoformat(), money(s.amount_minor), t.label("instalment_kinds", s.kind.value))
            for s in q.schedule
        ],
        balance=money(q.balance_minor),
        waived=money(q.waived_minor),
        payable=money(q.payable_minor),
        remaining=money(q.remaining_minor),
        discount=f"{q.discount_bps / 100:.2f}%",
        waivers=[(t(c.value), money(v)) for c, v in q.waiver_by_component.items() if v],
        limits=[f.message_zh if zh else f.message_en for f in q.limits_exceeded],
        reasons=[f.message_zh if zh else f.message_en for f in q.approval_reasons],
    )


def _accounts(d: Desk, case: Case) -> list[Account]:
    return list(d.db.scalars(select(Account).where(Account.case_id == case.id).order_by(Account.id)))


def _chosen(accounts: list[Account], ids: list[str]) -> list[int]:
    own = {a.id for a in accounts}
    picked = [int(i) for i in ids if i.isdigit() and int(i) in own]
    return picked or sorted(own)


def _plan_page(
    d: Desk,
    case: Case,
    *,
    kind: str,
    values: Mapping[str, str],
    account_ids: list[str],
    preview: bool,
    error: str | None = None,
    status: int = 200,
) -> HTMLResponse:
    t = d.t
    zone = views.zone_of(d.db, case)
    today = clock.to_local(d.now, zone).date()
    accounts = _accounts(d, case)
    chosen = _chosen(accounts, account_ids)
    currency = accounts[0].currency if accounts else "CNY"
    view = None
    if preview and error is None and accounts:
        try:
            request = arrangements_service.parse_request(plan_request(t, kind, values, currency))
            view = quote_view(
                t,
                arrangements_service.quote_arrangement(
                    d.db, account_ids=chosen, request=request, as_of=today
                ),
            )
        except ValidationFailed as exc:
            error = _pydantic_message(t, exc) if exc.code == "bad_arrangement_request" else exc.message
            status = 422
        except ArrearsError as exc:
            error, status = exc.message, exc.status
    defaults = {"first_on": today.isoformat(), "pay_on": today.isoformat(), "count": "6", "payments": "1"}
    form = {name: values.get(name, defaults.get(name, "")) for name in FIELDS}
    live = arrangements_service.list_arrangements(d.db, case_id=case.id)
    debtor = d.db.get(Debtor, case.debtor_id)
    users_service.log_access(  # the calculator shows the debtor's balances: a read of the record (PI-9)
        d.db,
        user_id=d.user.id,
        debtor_id=case.debtor_id,
        case_id=case.id,
        at=d.now,
        action="view_plan_calculator",
        ip=d.request.client.host if d.request.client else None,
    )
    return d.page(
        "plan.html",
        status=status,
        error=error,
        case=case,
        debtor_name=debtor.name if debtor else "",
        accounts=[
            (a.id, a.external_ref, format_minor(views_total(a), a.currency, t.locale), a.id in chosen)
            for a in accounts
        ],
        kind=kind,
        kinds=[(k, t.label("plan_kinds", k)) for k in KINDS],
        frequencies=[(f.value, t.label("frequencies", f.value)) for f in Frequency],
        form=form,
        view=view,
        today=today.isoformat(),
        plans=live,
        can_work=access.may_work_case(role=d.user.role, user_id=d.user.id, assignee_id=case.assignee_id),
    )


def views_total(account: Account) -> int:
    """An account's whole balance."""
    return (
        account.principal_minor
        + account.interest_minor
        + account.penalty_minor
        + account.fees_minor
        + account.costs_minor
    )


@router.get("/cases/{case_id}/plan")
def plan_calculator(d: DeskDep, case_id: int, kind: str = "instalments", preview: str = "") -> HTMLResponse:
    try:
        case = _case(d, case_id, work=True)
    except ArrearsError as exc:
        return d.error(exc)
    params = d.request.query_params
    values = {name: params.get(name, "") for name in FIELDS if name in params}
    chosen_kind = kind if kind in KINDS else ArrangementKind.INSTALMENTS.value
    return _plan_page(
        d,
        case,
        kind=chosen_kind,
        values=values,
        account_ids=params.getlist("account_ids"),
        preview=bool(preview),
    )


@router.post("/cases/{case_id}/plan")
def agree_plan(
    d: DeskDep,
    case_id: int,
    kind: Annotated[str, Form()] = "",
    account_ids: Annotated[list[str] | None, Form()] = None,
    csrf_token: Annotated[str, Form()] = "",
    pay_on: Annotated[str, Form()] = "",
    count: Annotated[str, Form()] = "",
    frequency: Annotated[str, Form()] = "",
    first_on: Annotated[str, Form()] = "",
    down_payment: Annotated[str, Form()] = "",
    down_payment_on: Annotated[str, Form()] = "",
    new_due_on: Annotated[str, Form()] = "",
    accrual_paused: Annotated[str, Form()] = "",
    settle_amount: Annotated[str, Form()] = "",
    payments: Annotated[str, Form()] = "",
    asset_description: Annotated[str, Form()] = "",
    agreed_value: Annotated[str, Form()] = "",
    transfer_on: Annotated[str, Form()] = "",
    waive_shortfall: Annotated[str, Form()] = "",
) -> Response:
    try:
        d.check_csrf(csrf_token)
        case = _case(d, case_id, work=True)
    except ArrearsError as exc:
        return d.error(exc)
    given = locals()
    values = {name: str(given[name]) for name in FIELDS if given[name]}
    ids = account_ids or []
    accounts = _accounts(d, case)
    t = d.t
    try:
        if kind not in KINDS:
            raise ValidationFailed(t("bad_choice", field=t("plan_kind"), value=kind), code="bad_kind")
        currency = accounts[0].currency if accounts else "CNY"
        request = arrangements_service.parse_request(plan_request(t, kind, values, currency))
        zone = views.zone_of(d.db, case)
        plan = arrangements_service.create_arrangement(
            d.db,
            account_ids=_chosen(accounts, ids),
            request=request,
            as_of=clock.to_local(d.now, zone).date(),
            created_by_id=d.user.id,
        )
    except ArrearsError as exc:
        d.db.rollback()  # nothing of a refused plan stays
        message = (
            _pydantic_message(t, exc)
            if isinstance(exc, ValidationFailed) and exc.code == "bad_arrangement_request"
            else exc.message
        )
        return _plan_page(
            d,
            case,
            kind=kind if kind in KINDS else ArrangementKind.INSTALMENTS.value,
            values=values,
            account_ids=ids,
            preview=False,
            error=message,
            status=exc.status,
        )
    done = "plan_pending" if plan.status == "pending_approval" else "plan"
    return d.redirect(f"/cases/{case.id}?done={done}")
