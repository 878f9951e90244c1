"""Page-level role checks for the desk's supervisor, compliance and administration pages (least privilege,
PI-1, PI-9; the per-case rules live in ``users.access``)."""

from __future__ import annotations

from collections.abc import Collection

from arrears.enums import Role
from arrears.errors import Forbidden
from arrears.web.navigation import SUPERVISING
from arrears.web.routes import Desk

ADMIN = frozenset({Role.ADMIN.value})
COMPLIANCE = frozenset({Role.COMPLIANCE.value, Role.ADMIN.value, Role.READ_ONLY.value})


def require_role(d: Desk, roles: Collection[str] = SUPERVISING) -> None:
    """Refuse (403, in the person's language) a page meant for other roles."""
    if d.user.role not in roles:
        message = "supervisor_only" if roles == SUPERVISING else "page_not_for_role"
        raise Forbidden(d.t(message), code="role_refused")
