"""The collection desk's pages: sign-in, the work queue, the case page and its forms.

Server-rendered (Jinja2) by the same FastAPI app as the API. Every page needs a signed-in person (a
server-side session; the cookie is HttpOnly and SameSite=Lax) and every form carries the session's CSRF
token. The case page is the debtor's record: each view is written to the access log (PI-9). Who may open
and work a case is ``users/guard.py``, the same rules the API applies (a collector: their own and their
team's cases; an agency user: only cases placed with their agency, while placed). Masked fields are shown
in clear only through the reveal form, which needs a reason and is logged.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import date, datetime
from typing import Annotated, Any
from urllib.parse import quote, urlsplit

from fastapi import APIRouter, Depends, Form, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from jinja2 import Environment, PackageLoader, select_autoescape
from sqlalchemy.exc import DataError
from sqlalchemy.orm import Session

from arrears import clock
from arrears.agencies import service as agencies_service
from arrears.api.deps import SessionDep
from arrears.arrangements import service as arrangements_service
from arrears.compliance.schemas import Outcome
from arrears.config import get_settings
from arrears.contacts import service as contacts_service
from arrears.db import session_factory
from arrears.enums import Channel, Role
from arrears.errors import ArrearsError, Forbidden, NotFound, ValidationFailed
from arrears.ledger import service as ledger_service
from arrears.models import Account, AppUser, Case, UserSession, WorkItem
from arrears.models.base import MAX_ID
from arrears.money import format_minor, parse_minor
from arrears.strategy import queue_service
from arrears.users import access, guard
from arrears.users import service as users_service
from arrears.web import views
from arrears.web.i18n import LOCALES, Translator, pick_locale

SESSION_COOKIE = "arrears_session"
LANG_COOKIE = "arrears_lang"
LOGIN_CSRF_COOKIE = "arrears_login_csrf"
CALL_OUTCOMES = (
    Outcome.NO_ANSWER,
    Outcome.BUSY,
    Outcome.NOT_CONNECTED,
    Outcome.VOICEMAIL,
    Outcome.RIGHT_PARTY,
    Outcome.THIRD_PARTY,
    Outcome.WRONG_NUMBER,
    Outcome.PROMISE,
    Outcome.REFUSED,
    Outcome.DISPUTE_RAISED,
    Outcome.CALLBACK_REQUESTED,
)
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


class DeskRoute(APIRoute):
    """A desk route: input no browser form sends gets a page, never the API's JSON error.

    A field that does not parse (a letter where an id belongs), a missing field, or a number beyond what
    the database holds is answered by `bad_input_page`: the case page (or the error page) saying the form
    could not be read, with HTTP 422. The request's own transaction has been rolled back by then, so
    nothing of the form is stored.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handle(request)
            except RequestValidationError as exc:
                fields = _field_names(exc)
                return await run_in_threadpool(bad_input_page, request, "form_unreadable", fields)
            except (DataError, OverflowError):
                return await run_in_threadpool(bad_input_page, request, "value_out_of_range", "")

        return route


def _field_names(exc: RequestValidationError) -> str:
    names: list[str] = []
    for error in exc.errors():
        location = error.get("loc") or ()
        name = str(location[-1]) if location else ""
        if name and name not in names:
            names.append(name)
    return ", ".join(names)


router = APIRouter(include_in_schema=False, route_class=DeskRoute)
templates = Environment(
    loader=PackageLoader("arrears.web", "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
    auto_reload=False,  # templates ship with the package: no stat() of every template on every page
)


class SignInRequired(Exception):
    """No live session: the page answers with a redirect to the sign-in page."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


def _client_ip(request: Request) -> str | None:
    return request.client.host if request.client else None


def back_path(request: Request) -> str:
    """Where an error page's link goes: the page of this site the request came from (its Referer), or the
    work queue when there is none, it is another site's, or it is the page that failed."""
    referer = urlsplit(request.headers.get("referer", ""))
    if referer.netloc != request.url.netloc or not referer.path:
        return "/queue"
    target = referer.path + (f"?{referer.query}" if referer.query else "")
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return "/queue" if target == here else _safe_next(target)


def _safe_next(target: str | None) -> str:
    """Only local paths: never redirect a signed-in person to another site."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/queue"


def render(
    request: Request,
    name: str,
    t: Translator,
    *,
    status: int = 200,
    cookies: dict[str, str] | None = None,
    **ctx: Any,
) -> HTMLResponse:
    """A page from a template, with the translator, the other locale and security headers."""
    html = templates.get_template(name).render(
        request=request, t=t, locale=t.locale, other_locale="en" if t.locale == "zh_CN" else "zh_CN", **ctx
    )
    response = HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)
    for key, value in (cookies or {}).items():
        response.set_cookie(
            key, value, httponly=True, samesite="strict", secure=request.url.scheme == "https"
        )
    return response


@dataclass
class Desk:
    """A signed-in request: the database session, the person, their web session and words."""

    request: Request
    db: Session
    user: AppUser
    user_session: UserSession
    t: Translator
    now: datetime

    def page(self, name: str, *, status: int = 200, **ctx: Any) -> HTMLResponse:
        """Render a page for this person (their name, role and CSRF token are in every page).

        The request's work (the access-log row, a recorded attempt) is committed first: the response
        may reach the browser before a dependency's teardown runs, and the next request must see it.
        """
        self.db.commit()
        return render(
            self.request,
            name,
            self.t,
            status=status,
            user=self.user,
            csrf=self.user_session.csrf_token,
            **ctx,
        )

    def redirect(self, url: str) -> RedirectResponse:
        """Commit, then send the browser on (a POST's effects are visible to the page it asks for next)."""
        self.db.commit()
        return RedirectResponse(url, status_code=303)

    def error(self, exc: ArrearsError) -> HTMLResponse:
        """An error as a readable page with the error's HTTP status, and a way back to the page the person
        came from (`back_path`)."""
        title = self.t("forbidden") if exc.status == 403 else self.t("error")
        return self.page(
            "error.html",
            status=exc.status,
            title=title,
            message=exc.message,
            code=exc.code,
            back=back_path(self.request),
        )

    def check_csrf(self, token: str | None) -> None:
        """Refuse a form without the session's CSRF token."""
        if not users_service.csrf_ok(self.user_session, token):
            raise Forbidden(self.t("csrf_failed"), code="csrf_failed")


def desk(request: Request, db: SessionDep) -> Desk:
    """The signed-in person, or a redirect to the sign-in page."""
    now = clock.now()
    found = users_service.resume_session(db, token=request.cookies.get(SESSION_COOKIE), at=now)
    if found is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise SignInRequired(target)
    row, user = found
    locale = pick_locale(request.cookies.get(LANG_COOKIE), user.locale, get_settings().locale)
    return Desk(request=request, db=db, user=user, user_session=row, t=Translator(locale), now=now)


DeskDep = Annotated[Desk, Depends(desk)]


def sign_in_redirect(_request: Request, exc: Exception) -> Response:
    """Exception handler: send a visitor without a session to the sign-in page."""
    target = exc.next_path if isinstance(exc, SignInRequired) else "/queue"
    return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)


# ------------------------------------------------------------------------------------------------- sign-in


def _anonymous_translator(request: Request) -> Translator:
    return Translator(pick_locale(request.cookies.get(LANG_COOKIE), get_settings().locale))


@router.get("/login")
def login_page(request: Request, next: str | None = None) -> HTMLResponse:
    t = _anonymous_translator(request)
    token = request.cookies.get(LOGIN_CSRF_COOKIE) or secrets.token_urlsafe(24)
    return render(
        request, "login.html", t, login_csrf=token, next=_safe_next(next), cookies={LOGIN_CSRF_COOKIE: token}
    )


@router.post("/login")
def login_submit(
    request: Request,
    db: SessionDep,
    username: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/queue",
) -> Response:
    t = _anonymous_translator(request)
    expected = request.cookies.get(LOGIN_CSRF_COOKIE) or ""
    fresh = secrets.token_urlsafe(24)

    def again(message: str, status: int) -> HTMLResponse:
        db.commit()  # the failed attempt counts towards the lockout even if the browser is quick
        return render(
            request,
            "login.html",
            t,
            status=status,
            login_csrf=fresh,
            next=_safe_next(next),
            username=username,
            error=message,
            cookies={LOGIN_CSRF_COOKIE: fresh},
        )

    if not expected or not secrets.compare_digest(expected, csrf_token):
        return again(t("csrf_failed"), 403)
    now = clock.now()
    try:
        user = users_service.authenticate(
            db, username=username, password=password, at=now, ip=_client_ip(request)
        )
    except users_service.AccountLocked as exc:
        until = datetime.fromisoformat(exc.details["locked_until"])
        return again(t("account_locked", until=views.local_text(until, clock.DEFAULT_ZONE)), 429)
    except users_service.LoginFailed:
        return again(t("login_failed"), 401)
    try:
        guard.check_network(db, user=user, ip=_client_ip(request))
    except guard.NetworkRefused:
        return again(t("network_refused"), 403)
    opened = users_service.open_session(db, user=user, at=now, ip=_client_ip(request))
    db.commit()  # the session exists before the browser follows the redirect
    response = RedirectResponse(_safe_next(next), status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        opened.token,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
        max_age=users_service.auth_policy().session_hours * 3600,
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE)
    return response


@router.post("/logout")
def logout(d: DeskDep, csrf_token: Annotated[str, Form()] = "") -> Response:
    try:
        d.check_csrf(csrf_token)
    except ArrearsError as exc:
        return d.error(exc)
    users_service.close_session(d.db, token=d.request.cookies.get(SESSION_COOKIE), at=d.now)
    response = d.redirect("/login")
    response.delete_cookie(SESSION_COOKIE)
    return response


@router.get("/lang/{code}")
def switch_language(request: Request, code: str, next: str | None = None) -> Response:
    response = RedirectResponse(_safe_next(next), status_code=303)
    if code in LOCALES:
        response.set_cookie(LANG_COOKIE, code, samesite="lax", max_age=365 * 24 * 3600)
    return response


@router.get("/")
def home() -> Response:
    return RedirectResponse("/queue", status_code=303)


# ---------------------------------------------------------------------------------------------- work queue


def _queue_page(d: Desk, *, notice: str | None = None, status: int = 200) -> HTMLResponse:
    own = d.user.role == Role.COLLECTOR
    if own or access.sees_all_queues(d.user.role):
        rows = views.queue_rows(d.db, collector_id=d.user.id if own else None, at=d.now, t=d.t)
    else:
        rows = []
    placed = (
        agencies_service.placed_now(d.db, agency_id=d.user.agency_id, as_of=guard.today())
        if d.user.role == Role.AGENCY and d.user.agency_id is not None
        else None
    )
    return d.page(
        "queue.html",
        status=status,
        rows=rows,
        placed=placed,
        money=lambda minor, currency: format_minor(minor, currency, d.t.locale),
        own=own,
        notice=notice,
    )


@router.get("/queue")
def queue_page(d: DeskDep) -> HTMLResponse:
    return _queue_page(d)


@router.post("/queue/next")
def queue_next(d: DeskDep, csrf_token: Annotated[str, Form()] = "") -> Response:
    try:
        d.check_csrf(csrf_token)
        if d.user.role != Role.COLLECTOR:
            raise Forbidden(d.t("not_your_case"), code="not_a_collector")
        item = queue_service.next_case_or_idle(d.db, collector_id=d.user.id, at=d.now)
        if isinstance(item, queue_service.Idle):
            return _queue_page(d, notice=views.idle_notice(item, d.t))
        queue_service.claim_work_item(d.db, item_id=item.id, collector_id=d.user.id, at=d.now)
    except ArrearsError as exc:
        return d.error(exc)
    return d.redirect(f"/cases/{item.case_id}?item={item.id}")


@router.get("/cases")
def go_to_case(d: DeskDep, case_id: str = "") -> Response:
    if not case_id.strip().isdigit():
        return _queue_page(d)
    return d.redirect(f"/cases/{int(case_id)}")


# ----------------------------------------------------------------------------------------------- case page


def _case(d: Desk, case_id: int, *, work: bool = False) -> Case:
    return guard.require_case(d.db, user=d.user, case_id=case_id, work=work, message=d.t("not_your_case"))


def _parse_at(text: str | None, zone: str, default: datetime) -> datetime:
    """``at`` from a query or form: ISO, with an offset or as local time in the portfolio's zone."""
    if not text:
        return default
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ValidationFailed(f"时间格式应为 YYYY-MM-DDTHH:MM / bad time {text!r}", code="bad_time") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=clock.zone_info(zone))
    return clock.as_utc(moment)


def _case_page(
    d: Desk,
    case: Case,
    *,
    at: datetime | None = None,
    notice: str | None = None,
    error: str | None = None,
    blocked: Any = None,
    item_id: int | None = None,
    status: int = 200,
    revealed: dict[str, str | None] | None = None,
) -> HTMLResponse:
    moment = at or d.now
    allowed = guard.case_access(d.db, user=d.user, case=case)
    view = views.case_view(
        d.db, case=case, at=moment, t=d.t, collector=access.collecting_party(d.user.agency_id)
    )
    users_service.log_access(
        d.db, user_id=d.user.id, debtor_id=case.debtor_id, case_id=case.id, at=d.now, ip=_client_ip(d.request)
    )
    today = clock.to_local(d.now, view.zone).date()
    return d.page(
        "case.html",
        status=status,
        view=view,
        notice=notice,
        error=error,
        blocked=blocked,
        item_id=item_id,
        outcomes=[(o.value, d.t.label("outcomes", o.value)) for o in CALL_OUTCOMES],
        today=today.isoformat(),
        can_work=allowed.work,
        can_reveal=allowed.reveal,
        revealed=revealed or {},
        payment_key=secrets.token_urlsafe(16),
    )


def bad_input_page(request: Request, message_key: str, fields: str) -> Response:
    """The page for a request whose input could not be read (see `DeskRoute`).

    The case page with the message when the address names a case the person may open, else the error
    page; a visitor without a session is sent to sign in, as on every page.
    """
    with session_factory(request.app.state.engine)() as db:
        try:
            d = desk(request, db)
        except SignInRequired as exc:
            return sign_in_redirect(request, exc)
        error = ValidationFailed(d.t(message_key, fields=fields), code=message_key)
        case_id = record_id(str(request.path_params.get("case_id", "")))
        if case_id is not None:
            try:
                case = _case(d, case_id)
            except ArrearsError:
                return d.error(error)
            return _case_page(d, case, error=error.message, status=error.status)
        return d.error(error)


NOTICES = {
    "attempt": "attempt_recorded",
    "promise": "promise_recorded",
    "payment": "payment_posted",
    "plan": "plan_agreed",
    "plan_pending": "plan_pending",
}


@router.get("/cases/{case_id}")
def case_page(
    d: DeskDep, case_id: int, at: str | None = None, done: str | None = None, item: int | None = None
) -> HTMLResponse:
    try:
        case = _case(d, case_id)
        moment = _parse_at(at, views.zone_of(d.db, case), d.now) if at else d.now
    except ArrearsError as exc:
        return d.error(exc)
    notice = d.t(NOTICES[done]) if done in NOTICES else None
    return _case_page(d, case, at=moment, notice=notice, item_id=item)


def _form_error(d: Desk, case: Case, exc: ArrearsError) -> HTMLResponse:
    return _case_page(d, case, error=exc.message, status=exc.status)


@router.post("/cases/{case_id}/attempts")
def log_attempt(
    d: DeskDep,
    case_id: int,
    contact_point_id: Annotated[int, Form()],
    outcome: Annotated[str, Form()],
    csrf_token: Annotated[str, Form()] = "",
    notes: Annotated[str, Form()] = "",
    started_at: Annotated[str, Form()] = "",
    item_id: Annotated[str, Form()] = "",
) -> Response:
    try:
        d.check_csrf(csrf_token)
        case = _case(d, case_id, work=True)
    except ArrearsError as exc:
        return d.error(exc)
    try:
        moment = _parse_at(started_at, views.zone_of(d.db, case), d.now) if started_at else d.now
        if outcome not in {o.value for o in CALL_OUTCOMES}:
            raise ValidationFailed(f"未知结果 {outcome!r} / unknown outcome {outcome!r}", code="bad_outcome")
        recorded = contacts_service.record_attempt(
            d.db,
            case_id=case.id,
            contact_point_id=contact_point_id,
            channel=Channel.CALL,
            started_at=moment,
            outcome=Outcome(outcome),
            collector=access.collecting_party(d.user.agency_id),
            agent_id=d.user.id,
            notes=notes.strip() or None,
            recorded_at=d.now,
        )
    except ArrearsError as exc:
        return _form_error(d, case, exc)
    if recorded.blocked:
        return _case_page(d, case, error=d.t("attempt_blocked"), blocked=recorded.decision, status=409)
    if item_id.isdigit():
        item = d.db.get(WorkItem, int(item_id))
        if item is not None and item.status == "claimed" and item.collector_id == d.user.id:
            queue_service.complete_work_item(
                d.db, item_id=item.id, collector_id=d.user.id, outcome=outcome, at=d.now, note=notes or None
            )
    return d.redirect(f"/cases/{case.id}?done=attempt")


def _account_of(d: Desk, case: Case, account_id: int) -> Account:
    account = d.db.get(Account, account_id)
    if account is None or account.case_id != case.id:
        raise NotFound(
            f"账户不属于该案件 / account {account_id} is not in this case", code="account_not_found"
        )
    return account


def _date(text: str, name: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise ValidationFailed(
            f"{name} 应为 YYYY-MM-DD / {name} must be YYYY-MM-DD", code="bad_date"
        ) from exc


@router.post("/cases/{case_id}/promises")
def add_promise(
    d: DeskDep,
    case_id: int,
    account_id: Annotated[int, Form()],
    amount: Annotated[str, Form()],
    promised_on: Annotated[str, Form()],
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    try:
        d.check_csrf(csrf_token)
        case = _case(d, case_id, work=True)
    except ArrearsError as exc:
        return d.error(exc)
    try:
        account = _account_of(d, case, account_id)
        arrangements_service.record_promise(
            d.db,
            account_id=account.id,
            amount_minor=parse_minor(amount, account.currency),
            promised_on=_date(promised_on, "promised_on"),
            made_on=clock.to_local(d.now, views.zone_of(d.db, case)).date(),
            channel=Channel.CALL,
            taken_by_id=d.user.id,
        )
    except ArrearsError as exc:
        return _form_error(d, case, exc)
    return d.redirect(f"/cases/{case.id}?done=promise")


@router.post("/cases/{case_id}/payments")
def add_payment(
    d: DeskDep,
    case_id: int,
    account_id: Annotated[int, Form()],
    amount: Annotated[str, Form()],
    reference: Annotated[str, Form()],
    received_on: Annotated[str, Form()],
    csrf_token: Annotated[str, Form()] = "",
    payment_key: Annotated[str, Form()] = "",
) -> Response:
    try:
        d.check_csrf(csrf_token)
        case = _case(d, case_id, work=True)
    except ArrearsError as exc:
        return d.error(exc)
    try:
        account = _account_of(d, case, account_id)
        ledger_service.post_payment(
            d.db,
            portfolio_id=case.portfolio_id,
            amount_minor=parse_minor(amount, account.currency),
            received_on=_date(received_on, "received_on"),
            reference=reference,
            account_id=account.id,
            # the form's one-time key: a double submit posts once
            idempotency_key=f"desk:{d.user.id}:{payment_key}" if payment_key else None,
            collector=d.user.username,
            now=d.now,
        )
    except ArrearsError as exc:
        return _form_error(d, case, exc)
    return d.redirect(f"/cases/{case.id}?done=payment")


# The reveal's refusals, by the guard's error code, in the reader's language (the guard's own messages are
# bilingual text for the API).
REVEAL_REFUSALS = {
    "reason_required": "reveal_reason_required",
    "bad_field": "reveal_bad_field",
    "reveal_forbidden": "reveal_forbidden",
    "not_your_case": "reveal_forbidden",
    "debtor_not_found": "reveal_not_found",
    "contact_point_not_found": "reveal_not_found",
    "account_not_found": "reveal_not_found",
    "nothing_to_reveal": "reveal_nothing",
}


def record_id(text: str) -> int | None:
    """A record id from a form field: plain ASCII digits naming a possible row, else None.

    ``str.isdigit`` also accepts other scripts' digits and superscripts (``١``, ``²``), which ``int`` reads
    differently or not at all, and numbers no row can have; none of these names a record.
    """
    text = text.strip()
    if not text or len(text) > 10 or not (text.isascii() and text.isdigit()):
        return None
    value = int(text)
    return value if 0 < value <= MAX_ID else None


@router.post("/cases/{case_id}/reveal")
def reveal(
    d: DeskDep,
    case_id: int,
    field: Annotated[str, Form()],
    reason: Annotated[str, Form()] = "",
    contact_point_id: Annotated[str, Form()] = "",
    account_id: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    """Show one masked field in clear on the case page; the reveal and its reason go to the access log.

    The page's case must be one the person may open (``_case``); the guard then checks that they may reveal
    on it, that a phone is one of this debtor's contact points and a bank account one of this case's
    accounts. A refusal is the case page with the reason in the reader's language, and nothing is logged as
    revealed: the access log gets a reveal only when the value is shown.
    """
    try:
        d.check_csrf(csrf_token)
        case = _case(d, case_id)
    except ArrearsError as exc:
        return d.error(exc)
    if field.startswith("contact_point:"):  # the form's select names a phone as contact_point:<id>
        field, contact_point_id = "contact_point", field.split(":", 1)[1]
    if field.startswith("bank_account:"):  # and an account's bank account as bank_account:<account id>
        field, account_id = "bank_account", field.split(":", 1)[1]
    try:
        shown = guard.reveal(
            d.db,
            user=d.user,
            debtor_id=case.debtor_id,
            field=field,
            contact_point_id=record_id(contact_point_id) if field == "contact_point" else None,
            account_id=record_id(account_id) if field == "bank_account" else None,
            reason=reason,
            at=d.now,
            case_id=case.id,
            ip=_client_ip(d.request),
        )
    except ArrearsError as exc:
        key = REVEAL_REFUSALS.get(exc.code)
        return _case_page(d, case, error=d.t(key) if key else exc.message, status=exc.status)
    # named by what it is: a contact point as a phone, an e-mail address or a postal address
    labels = {
        "email": d.t.label("channels", "email"),
        "mobile": d.t("phone"),
        "landline": d.t("phone"),
        "other": d.t.label("channels", "other"),
    }
    label = labels.get(shown.kind) or d.t(shown.kind)
    return _case_page(d, case, notice=d.t("revealed_logged"), revealed={label: shown.value})
