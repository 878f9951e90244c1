"""Page-level role checks for the desk's supervisor pages (the case rules live in ``users.access``)."""

from __future__ import annotations

from collections.abc import Collection

from arrears.errors import Forbidden
from arrears.web.navigation import SUPERVISING
from arrears.web.routes import Desk


def require_role(d: Desk, roles: Collection[str] = SUPERVISING) -> None:
    """Refuse (403, in the person's language) a page meant for other roles."""
    if d.user.role not in roles:
        raise Forbidden(d.t("supervisor_only"), code="role_refused")
