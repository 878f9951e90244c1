"""Page-level role checks for the desk's supervisor, compliance and administration pages (least privilege,
PI-1, PI-9; the per-case rules live in ``users.access``)."""

from __future__ import annotations

from collections.abc import Callable, Collection

from fastapi import Request
from fastapi.responses import Response

from arrears.enums import Role
from arrears.errors import ArrearsError, Forbidden
from arrears.web.navigation import SUPERVISING
from arrears.web.routes import Desk, DeskDep

ADMIN = frozenset({Role.ADMIN.value})
COMPLIANCE = frozenset({Role.COMPLIANCE.value, Role.ADMIN.value, Role.READ_ONLY.value})


def require_role(d: Desk, roles: Collection[str] = SUPERVISING) -> None:
    """Refuse (403, in the person's language) a page meant for other roles."""
    if d.user.role not in roles:
        message = "supervisor_only" if roles == SUPERVISING else "page_not_for_role"
        raise Forbidden(d.t(message), code="role_refused")


class PageRefused(Exception):
    """A page refused before its handler runs; the exception handler answers with the rendered refusal."""

    def __init__(self, response: Response) -> None:
        super().__init__("page refused")
        self.response = response


def page_refused(_request: Request, exc: Exception) -> Response:
    """Exception handler: the refusal page a role dependency rendered."""
    assert isinstance(exc, PageRefused)
    return exc.response


def desk_for(roles: Collection[str]) -> Callable[[Desk], Desk]:
    """A dependency: the signed-in desk, or the 403 page for anyone whose role is not among ``roles``."""

    def check(d: DeskDep) -> Desk:
        try:
            require_role(d, roles)
        except ArrearsError as exc:
            raise PageRefused(d.error(exc)) from exc
        return d

    return check
