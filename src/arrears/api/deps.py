"""Request dependencies: the database session (the request is the edge that commits) and who is asking.

The session dependency is function-scoped, so the commit happens before the response is sent: a client
that acts on a response (follows a redirect, reads back what it posted) always sees the committed work.

Every API router depends on ``current_user`` (``CurrentUser``): a bearer API token or the desk's session
cookie. Role checks are ``require(Role.SUPERVISOR, ...)``; case-level checks are ``users/guard.py``, the
same functions the pages use.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

import anyio
import anyio.to_thread
from fastapi import Depends, Query, Request, Response
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from arrears import clock
from arrears.db import session_factory
from arrears.enums import Role
from arrears.errors import Forbidden, Unauthorized
from arrears.models import AppUser
from arrears.users import access, guard
from arrears.users import service as users_service

T = TypeVar("T")


async def get_session(request: Request) -> AsyncIterator[Session]:
    """A session for one request, committed when the endpoint succeeds and rolled back when it fails.

    Opening a session touches no connection, so it happens on the event loop; only a session with a
    transaction still open at the end needs a worker thread for its COMMIT or ROLLBACK (a page that
    committed its work already needs none). Each request then waits for a thread once or twice instead
    of three or four times, which is CPU the server spends on every page.
    """
    session = session_factory(request.app.state.engine)()
    try:
        yield session
        if session.in_transaction():
            await _finish(session.commit)
    except BaseException:
        if session.in_transaction():
            await _finish(session.rollback)
        raise
    finally:
        if session.in_transaction():
            await _finish(session.close)
        else:
            session.close()  # nothing to roll back: no connection is touched


async def _finish(step: Callable[[], None]) -> None:
    # Shielded (a client that hangs up must not leave a transaction open) and outside the shared thread
    # limit: a COMMIT waiting for a free thread while the threads wait for its connection would deadlock.
    with anyio.CancelScope(shield=True):
        await anyio.to_thread.run_sync(step, limiter=anyio.CapacityLimiter(1))


SessionDep = Annotated[Session, Depends(get_session, scope="function")]


# ------------------------------------------------------------------------------------------- who is asking

SESSION_COOKIE = "arrears_session"  # the desk's cookie (web/routes.py uses the same name)
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="bearerToken",
    description="An API token from `arrears token create USER --name ...`: `Authorization: Bearer arr_...`",
)
_cookie = APIKeyCookie(
    name=SESSION_COOKIE,
    auto_error=False,
    scheme_name="deskSession",
    description=f"The desk's session cookie; requests that change state also send the `{CSRF_HEADER}` header "
    "with the session's CSRF token.",
)


@dataclass(frozen=True, slots=True)
class Principal:
    """The person or integration behind a request, and how they proved it."""

    user: AppUser
    via: str  # "token" or "session"

    @property
    def id(self) -> int:
        return self.user.id

    @property
    def role(self) -> str:
        return self.user.role


def _client_ip(request: Request) -> str | None:
    return request.client.host if request.client else None


def current_user(
    request: Request,
    session: SessionDep,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    cookie: Annotated[str | None, Depends(_cookie)],
) -> Principal:
    """Authenticate a request: a bearer API token, or the desk's session cookie (with CSRF on writes).

    401 without credentials or with unknown, revoked or expired ones; 403 for a session without the CSRF
    header on a state-changing request, or an agency user outside the agency's allowed networks.
    """
    now = clock.now()
    ip = _client_ip(request)
    if bearer is not None:
        user = users_service.resolve_token(session, token=bearer.credentials, at=now, ip=ip)
        if user is None:
            raise Unauthorized("令牌无效、已过期或已吊销 / the token is unknown, expired or revoked")
        guard.check_network(session, user=user, ip=ip)
        return Principal(user=user, via="token")
    if cookie:
        found = users_service.resume_session(session, token=cookie, at=now)
        if found is None:
            raise Unauthorized("会话已结束，请重新登录 / the session has ended, sign in again")
        row, user = found
        if request.method not in SAFE_METHODS and not users_service.csrf_ok(
            row, request.headers.get(CSRF_HEADER)
        ):
            raise Forbidden(
                f"缺少或错误的 {CSRF_HEADER} / missing or wrong {CSRF_HEADER} header", code="csrf_failed"
            )
        return Principal(user=user, via="session")
    raise Unauthorized("需要登录或接口令牌 / sign in or send an API token (Authorization: Bearer ...)")


CurrentUser = Annotated[Principal, Depends(current_user)]


def require(*roles: Role) -> Any:
    """A dependency that lets only these roles through (403 ``role_forbidden`` for the others)."""
    allowed = frozenset(roles)

    def check(principal: CurrentUser) -> Principal:
        guard.require_role(principal.user, allowed)
        return principal

    return Depends(check)


def require_manager() -> Any:
    """Supervisors and administrators: portfolio-wide operations."""
    return require(*access.MANAGE)


def actor_id(principal: Principal, given: int | None) -> int:
    """The user an action is recorded for: the caller, or (administrators only, e.g. an integration's
    token) the user named in the request. Services still check the named user's own role."""
    if given is None or given == principal.id:
        return principal.id
    if principal.role != Role.ADMIN:
        raise Forbidden(
            "只能以本人身份操作 / you may act only as yourself (user_id must be your own)",
            code="acting_as_other",
        )
    return given


def acting_collector(principal: Principal, given: str | None) -> str:
    """The collector (legal sense, US-3) a recorded contact counts under: the caller's own
    (``users.access.collecting_party``), or, for administrators only (an integration's token), the one
    named in the request. Nobody else can spread calls over invented collectors."""
    own = access.collecting_party(principal.user.agency_id)
    if given is None or given == own:
        return own
    if principal.role != Role.ADMIN:
        raise Forbidden(
            f"只能以本机构身份联系 / contacts count under your own collector ({own})",
            code="acting_as_other_collector",
        )
    return given


def acting_name(
    principal: Principal, given: str | None, *, allowed: Collection[str], refusal: Forbidden
) -> str:
    """A username recorded for an action: the caller's, or (roles in ``allowed`` only) the one named."""
    if given is None or given == principal.user.username:
        return principal.user.username
    if principal.role not in allowed:
        raise refusal
    return given


def credited_to(principal: Principal, given: str | None) -> str:
    """Whom a payment is credited to: the caller, or anyone a supervisor or administrator names."""
    refusal = Forbidden(
        "只能记入本人名下 / a payment can be credited only to yourself", code="crediting_other"
    )
    return acting_name(principal, given, allowed=access.MANAGE, refusal=refusal)


# ---------------------------------------------------------------------------------------------- list pages

TOTAL_HEADER = "X-Total-Count"
# The 200 response of a list endpoint documents the total header (merged with its response model).
LIST_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "one page of the list",
        "headers": {TOTAL_HEADER: {"description": "rows in the whole list", "schema": {"type": "integer"}}},
    }
}


@dataclass(slots=True)
class Page:
    """``limit``/``offset`` of a list endpoint; the whole list's size goes into ``X-Total-Count``."""

    limit: int
    offset: int
    response: Response

    def of(self, rows: Sequence[T]) -> list[T]:
        """This page of ``rows`` (the total is set on the response)."""
        self.total(len(rows))
        return list(rows[self.offset : self.offset + self.limit])

    def total(self, count: int) -> None:
        self.response.headers[TOTAL_HEADER] = str(count)


def page(
    response: Response,
    limit: Annotated[int, Query(ge=1, le=1000, description="rows per page")] = 500,
    offset: Annotated[int, Query(ge=0, le=10_000_000, description="rows to skip")] = 0,
) -> Page:
    return Page(limit=limit, offset=offset, response=response)


PageDep = Annotated[Page, Depends(page)]
