"""Who may do what in case work: a role check on a user id, with a message in zh_CN and en."""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy.orm import Session

from arrears.enums import Role
from arrears.errors import Forbidden, NotFound
from arrears.models import AppUser

#: Roles that may clear a hold or resolve a dispute (RULEBOOK: "cleared by an authorised user").
CLEARING_ROLES = frozenset({Role.SUPERVISOR, Role.COMPLIANCE, Role.ADMIN})
#: Roles that may approve a plan beyond policy or a legal referral, or recall a placement by hand.
APPROVING_ROLES = frozenset({Role.SUPERVISOR, Role.ADMIN})


def get_user(session: Session, user_id: int) -> AppUser:
    """The user, or NotFound."""
    user = session.get(AppUser, user_id)
    if user is None:
        raise NotFound(f"用户不存在：{user_id} / user {user_id} does not exist", code="user_not_found")
    return user


def require_role(session: Session, *, user_id: int, roles: Collection[str], action: str) -> AppUser:
    """The user if active and holding one of ``roles``; otherwise Forbidden naming the roles needed."""
    user = get_user(session, user_id)
    if not user.active or user.role not in {str(r) for r in roles}:
        needed = ", ".join(sorted(str(r) for r in roles))
        raise Forbidden(
            f"用户 {user.username} 无权{action}（需要角色：{needed}） / "
            f"user {user.username} may not {action} (needs one of: {needed})",
            code="role_required",
            details={"user_id": user_id, "role": user.role, "roles": sorted(str(r) for r in roles)},
        )
    return user
