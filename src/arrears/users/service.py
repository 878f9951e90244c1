"""People who use the desk: accounts and roles, passwords (argon2), sign-in with lockout, server-side
sessions with a CSRF token, API tokens for integrations, and the access log of who opened which debtor's
record or revealed which masked field (PI-9, PI-6).

The cookie carries a random token; the ``user_session`` row keeps only its SHA-256, so a copy of the
database cannot be replayed as a session; API tokens likewise (``api_token.token_sha256``). The numbers (lockout, session length) live in ``auth.toml``.
Services flush and never commit.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import tomllib
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from importlib import resources
from typing import cast

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Table, bindparam, func, insert, select
from sqlalchemy.orm import Session

from arrears.enums import Role
from arrears.errors import ArrearsError, Conflict, NotFound, ValidationFailed
from arrears.models import AccessLog, Agency, ApiToken, AppUser, LoginAttempt, UserSession

_HASHER = PasswordHasher()
# Passwords are verified one at a time per process: a verification takes 64 MiB and several threads, and a
# shift's sign-ins arriving together would otherwise take every core from the pages being worked.
_VERIFYING = threading.BoundedSemaphore(1)
# Verified when the user does not exist, so a wrong name costs the same time as a wrong password.
_DUMMY_HASH = _HASHER.hash("not-a-password")


@dataclass(frozen=True, slots=True)
class AuthPolicy:
    """Sign-in and session numbers (``users/auth.toml``)."""

    max_failed_logins: int
    failure_window_minutes: int
    lockout_minutes: int
    session_hours: int
    idle_minutes: int
    min_password_length: int


@cache
def auth_policy() -> AuthPolicy:
    """The packaged sign-in policy."""
    text = resources.files("arrears.users").joinpath("auth.toml").read_text(encoding="utf-8")
    return AuthPolicy(**tomllib.loads(text))


class LoginFailed(ArrearsError):
    """Wrong user name or password (one message for both, so names cannot be guessed)."""

    status = 401
    default_code = "login_failed"


class AccountLocked(ArrearsError):
    """Too many failed sign-ins: the account is locked for a while."""

    status = 429
    default_code = "account_locked"


@dataclass(frozen=True, slots=True)
class NewSession:
    """A session just opened: the cookie token (shown once) and the row."""

    token: str
    session: UserSession


# ------------------------------------------------------------------------------------------------ accounts


def hash_password(password: str) -> str:
    """An argon2id hash of a password."""
    return _HASHER.hash(password)


def _check_password_rules(password: str) -> None:
    minimum = auth_policy().min_password_length
    if len(password) < minimum:
        raise ValidationFailed(
            f"密码至少 {minimum} 个字符 / a password has at least {minimum} characters", code="weak_password"
        )


def _role(role: str) -> Role:
    try:
        return Role(role)
    except ValueError:
        names = ", ".join(r.value for r in Role)
        raise ValidationFailed(
            f"未知角色 {role!r}（可选：{names}） / unknown role {role!r} (one of {names})", code="bad_role"
        ) from None


def get_user(session: Session, username: str) -> AppUser:
    """A user by name."""
    user = session.scalar(select(AppUser).where(AppUser.username == username))
    if user is None:
        raise NotFound(f"用户不存在：{username} / no user {username!r}", code="user_not_found")
    return user


def add_user(
    session: Session,
    *,
    username: str,
    role: str,
    password: str,
    display_name: str | None = None,
    locale: str = "zh_CN",
    agency_id: int | None = None,
) -> AppUser:
    """Create a user with a role and a password; an agency user names their agency."""
    username = username.strip()
    if not username or len(username) > 64:
        raise ValidationFailed("用户名为 1-64 个字符 / a user name has 1-64 characters", code="bad_username")
    if session.scalar(select(AppUser.id).where(AppUser.username == username)) is not None:
        raise Conflict(f"用户已存在：{username} / user {username!r} exists", code="user_exists")
    _check_password_rules(password)
    kind = _role(role)
    if kind == Role.AGENCY and agency_id is None:
        raise ValidationFailed(
            "机构用户须指定所属机构 / an agency user needs their agency", code="agency_required"
        )
    if kind != Role.AGENCY and agency_id is not None:
        raise ValidationFailed(
            "只有机构用户属于机构 / only agency users belong to an agency", code="agency_not_allowed"
        )
    if agency_id is not None and session.get(Agency, agency_id) is None:
        raise NotFound(f"机构不存在：{agency_id} / no agency {agency_id}", code="agency_not_found")
    user = AppUser(
        username=username,
        display_name=display_name or username,
        role=kind.value,
        password_hash=hash_password(password),
        locale=locale,
        active=True,
        agency_id=agency_id,
    )
    session.add(user)
    session.flush()
    return user


def set_password(session: Session, *, username: str, password: str) -> AppUser:
    """Replace a user's password; their open sessions end."""
    user = get_user(session, username)
    _check_password_rules(password)
    user.password_hash = hash_password(password)
    for row in session.scalars(
        select(UserSession).where(UserSession.user_id == user.id, UserSession.revoked_at.is_(None))
    ):
        row.revoked_at = row.last_seen_at
    session.flush()
    return user


def update_user(
    session: Session,
    *,
    user_id: int,
    role: str | None = None,
    active: bool | None = None,
    display_name: str | None = None,
    acting_user_id: int | None = None,
    at: datetime,
) -> AppUser:
    """Change a user's role, activity or name. A deactivated user's sessions end at once.

    An administrator cannot take away their own administration (role or activity), so the desk always
    keeps someone who can manage users.
    """
    user = session.get(AppUser, user_id)
    if user is None:
        raise NotFound(f"用户不存在：{user_id} / no user {user_id}", code="user_not_found")
    new_role = _role(role).value if role is not None else user.role
    if user.id == acting_user_id and (new_role != user.role or active is False):
        raise Conflict(
            "不能停用自己或更改自己的角色 / you cannot deactivate yourself or change your own role",
            code="self_change_refused",
        )
    user.role = new_role
    if display_name is not None and display_name.strip():
        user.display_name = display_name.strip()[:200]
    if active is not None and active != user.active:
        user.active = active
        if not active:
            for row in session.scalars(
                select(UserSession).where(UserSession.user_id == user.id, UserSession.revoked_at.is_(None))
            ):
                row.revoked_at = at
    session.flush()
    return user


# ------------------------------------------------------------------------------------------------- sign-in


def locked_until(session: Session, *, username: str, at: datetime) -> datetime | None:
    """When the account unlocks, or None if it is not locked at ``at``.

    Locked after ``max_failed_logins`` failures in a row (no success after them) inside the window; the
    lock lasts ``lockout_minutes`` from the last failure.
    """
    policy = auth_policy()
    since = at - timedelta(minutes=max(policy.failure_window_minutes, policy.lockout_minutes))
    last_success = session.scalar(
        select(func.max(LoginAttempt.at)).where(
            LoginAttempt.username == username, LoginAttempt.succeeded.is_(True), LoginAttempt.at >= since
        )
    )
    floor = max(since, last_success) if last_success is not None else since
    failures = list(
        session.scalars(
            select(LoginAttempt.at)
            .where(
                LoginAttempt.username == username,
                LoginAttempt.succeeded.is_(False),
                LoginAttempt.at > floor,
                LoginAttempt.at <= at,
            )
            .order_by(LoginAttempt.at)
        )
    )
    if len(failures) < policy.max_failed_logins:
        return None
    window = timedelta(minutes=policy.failure_window_minutes)
    tail = failures[-policy.max_failed_logins :]
    if tail[-1] - tail[0] > window:
        return None
    until = tail[-1] + timedelta(minutes=policy.lockout_minutes)
    return until if until > at else None


def authenticate(
    session: Session, *, username: str, password: str, at: datetime, ip: str | None = None
) -> AppUser:
    """Check a password; every try is recorded. Raises LoginFailed, or AccountLocked while locked."""
    username = username.strip()
    until = locked_until(session, username=username, at=at)
    if until is not None:
        session.add(LoginAttempt(username=username, at=at, succeeded=False, ip=ip))
        session.flush()
        raise AccountLocked(
            "登录失败次数过多，账户已暂时锁定 / too many failed sign-ins, the account is locked for now",
            details={"locked_until": until.isoformat()},
        )
    user = session.scalar(select(AppUser).where(AppUser.username == username))
    ok = False
    try:
        with _VERIFYING:
            ok = _HASHER.verify(user.password_hash if user and user.password_hash else _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        ok = False
    ok = ok and user is not None and bool(user.password_hash) and user.active
    session.add(LoginAttempt(username=username, at=at, succeeded=ok, ip=ip))
    session.flush()
    if not ok or user is None:
        raise LoginFailed("用户名或密码错误 / wrong user name or password")
    if _HASHER.check_needs_rehash(user.password_hash or ""):
        user.password_hash = hash_password(password)
    return user


def _sha(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def open_session(session: Session, *, user: AppUser, at: datetime, ip: str | None = None) -> NewSession:
    """A new server-side session with its own CSRF token."""
    token = secrets.token_urlsafe(32)
    row = UserSession(
        token_sha256=_sha(token),
        user_id=user.id,
        csrf_token=secrets.token_urlsafe(24),
        expires_at=at + timedelta(hours=auth_policy().session_hours),
        last_seen_at=at,
        ip=ip,
    )
    session.add(row)
    session.flush()
    return NewSession(token=token, session=row)


# Built once (every request runs it; building and keying it per request is CPU the database does not need).
_RESUME = (
    select(UserSession, AppUser)
    .outerjoin(AppUser, AppUser.id == UserSession.user_id)
    .where(UserSession.token_sha256 == bindparam("token_sha256"))
)


def resume_session(
    session: Session, *, token: str | None, at: datetime
) -> tuple[UserSession, AppUser] | None:
    """The live session and user for a cookie token, or None (unknown, ended, expired, idle, inactive)."""
    if not token:
        return None
    # the session and its person in one query: every page asks this first
    found = session.execute(_RESUME, {"token_sha256": _sha(token)}).one_or_none()
    if found is None:
        return None
    row, user = found
    if row.revoked_at is not None or row.expires_at <= at:
        return None
    if at - row.last_seen_at > timedelta(minutes=auth_policy().idle_minutes):
        return None
    if user is None or not user.active:
        return None
    if at - row.last_seen_at > timedelta(minutes=1):  # one write a minute at most
        row.last_seen_at = at
        session.flush()
    return row, user


def close_session(session: Session, *, token: str | None, at: datetime) -> None:
    """Sign out: the session ends now."""
    if not token:
        return
    row = session.scalar(select(UserSession).where(UserSession.token_sha256 == _sha(token)))
    if row is not None and row.revoked_at is None:
        row.revoked_at = at
        session.flush()


def csrf_ok(user_session: UserSession, submitted: str | None) -> bool:
    """Whether a form's CSRF token is the session's (compared in constant time)."""
    return bool(submitted) and secrets.compare_digest(user_session.csrf_token, submitted or "")


# ------------------------------------------------------------------------------------------ the access log


def log_access(
    session: Session,
    *,
    user_id: int,
    debtor_id: int,
    case_id: int | None,
    at: datetime,
    action: str = "view_case",
    ip: str | None = None,
    reason: str | None = None,
) -> int:
    """Record that a person read a debtor's record (PI-9) or revealed a masked field (with the reason);
    returns the row's id. One INSERT, written at once (every case page view writes one), through the
    session's connection: a plain table insert skips the ORM's bulk-insert machinery."""
    session.flush()  # pending ORM rows it may refer to go first, as they would for a session statement
    return int(
        session.connection()
        .execute(
            _LOG_ACCESS,
            {
                "user_id": user_id,
                "debtor_id": debtor_id,
                "case_id": case_id,
                "action": action,
                "at": at,
                "ip": ip,
                "reason": reason,
            },
        )
        .scalar_one()
    )


_ACCESS_LOG = cast(Table, AccessLog.__table__)
_LOG_ACCESS = insert(_ACCESS_LOG).returning(_ACCESS_LOG.c.id)


def access_log(session: Session, *, debtor_id: int) -> list[AccessLog]:
    """Who read a debtor's record, oldest first."""
    return list(
        session.scalars(select(AccessLog).where(AccessLog.debtor_id == debtor_id).order_by(AccessLog.id))
    )


# ---------------------------------------------------------------------------------------------- API tokens


@dataclass(frozen=True, slots=True)
class NewToken:
    """A token just created: the secret (shown once, never stored) and the row."""

    token: str
    row: ApiToken


TOKEN_PREFIX = "arr_"


def create_token(
    session: Session, *, username: str, name: str, at: datetime, expires_at: datetime | None = None
) -> NewToken:
    """A bearer token acting as ``username`` (with that user's role and agency)."""
    user = get_user(session, username)
    name = name.strip()
    if not name or len(name) > 100:
        raise ValidationFailed(
            "令牌名称为 1-100 个字符 / a token name has 1-100 characters", code="bad_token_name"
        )
    if expires_at is not None and expires_at <= at:
        raise ValidationFailed("过期时间须在将来 / the expiry must be in the future", code="bad_expiry")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(user_id=user.id, name=name, token_sha256=_sha(token), created_at=at, expires_at=expires_at)
    session.add(row)
    session.flush()
    return NewToken(token=token, row=row)


def resolve_token(
    session: Session, *, token: str | None, at: datetime, ip: str | None = None
) -> AppUser | None:
    """The user a live token acts as, or None (unknown, revoked, expired, user inactive)."""
    if not token:
        return None
    row = session.scalar(select(ApiToken).where(ApiToken.token_sha256 == _sha(token)))
    if row is None or row.revoked_at is not None or (row.expires_at is not None and row.expires_at <= at):
        return None
    user = session.get(AppUser, row.user_id)
    if user is None or not user.active:
        return None
    if row.last_used_at is None or at - row.last_used_at > timedelta(minutes=1) or row.last_used_ip != ip:
        row.last_used_at = at
        row.last_used_ip = ip
        session.flush()
    return user


def revoke_token(session: Session, *, token_id: int, at: datetime) -> ApiToken:
    """End a token now (it stops working on the next request)."""
    row = session.get(ApiToken, token_id)
    if row is None:
        raise NotFound(f"令牌不存在：{token_id} / no token {token_id}", code="token_not_found")
    if row.revoked_at is None:
        row.revoked_at = at
        session.flush()
    return row


def list_tokens(session: Session, *, username: str | None = None) -> list[tuple[ApiToken, AppUser]]:
    """Tokens with their users, oldest first (optionally one user's)."""
    query = select(ApiToken, AppUser).join(AppUser, AppUser.id == ApiToken.user_id).order_by(ApiToken.id)
    if username is not None:
        query = query.where(AppUser.username == username)
    return [(t, u) for t, u in session.execute(query).tuples()]
