"""Page-level role checks shared by the desk's back-office pages (least privilege, PI-1, PI-9)."""

from __future__ import annotations

from arrears.enums import Role
from arrears.errors import Forbidden
from arrears.web.routes import Desk

ADMIN = frozenset({Role.ADMIN})
COMPLIANCE = frozenset({Role.COMPLIANCE, Role.ADMIN, Role.READ_ONLY})


def require_role(d: Desk, roles: frozenset[Role]) -> None:
    """Refuse the page (403, a readable message) to anyone whose role is not among ``roles``."""
    if d.user.role not in {r.value for r in roles}:
        raise Forbidden(d.t("page_not_for_role"), code="role_required")
