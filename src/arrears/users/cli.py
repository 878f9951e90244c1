"""`arrears user add|password` (people who sign in to the desk) and `arrears token create|list|revoke`
(bearer tokens for integrations using the API)."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer

app = typer.Typer(help="Users and roles / 用户与角色", no_args_is_help=True)
token_app = typer.Typer(help="API tokens for integrations / 接口令牌", no_args_is_help=True)


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first: str = typer.prompt("password / 密码", hide_input=True)
    second: str = typer.prompt("again / 再次输入", hide_input=True)
    if first != second:
        from arrears.errors import ValidationFailed

        raise ValidationFailed("两次输入的密码不一致 / the passwords differ", code="password_mismatch")
    return first


@app.command("add")
def user_add(
    username: str,
    role: Annotated[str, typer.Option(help="collector, supervisor, compliance, admin, agency, read_only")],
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from the first line of stdin")
    ] = False,
    display_name: Annotated[str | None, typer.Option(help="Name shown on the pages")] = None,
    locale: Annotated[str, typer.Option(help="zh_CN or en")] = "zh_CN",
    agency_id: Annotated[int | None, typer.Option(help="The agency of an agency user")] = None,
) -> None:
    """Create a user with a role and a password / 新建用户."""
    from arrears.cli import friendly

    friendly(_add)(username, role, password_stdin, display_name, locale, agency_id)


def _add(
    username: str,
    role: str,
    password_stdin: bool,
    display_name: str | None,
    locale: str,
    agency_id: int | None,
) -> None:
    from arrears.cli import _engine, console
    from arrears.db import session_scope
    from arrears.users import service

    password = _read_password(password_stdin)
    with session_scope(_engine()) as session:
        user = service.add_user(
            session,
            username=username,
            role=role,
            password=password,
            display_name=display_name,
            locale=locale,
            agency_id=agency_id,
        )
        console.print(f"user {user.username} ({user.role}) created / 已创建")


@app.command("password")
def user_password(
    username: str,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from the first line of stdin")
    ] = False,
) -> None:
    """Set a user's password; their sessions end / 修改密码."""
    from arrears.cli import friendly

    friendly(_password)(username, password_stdin)


def _password(username: str, password_stdin: bool) -> None:
    from arrears.cli import _engine, console
    from arrears.db import session_scope
    from arrears.users import service

    password = _read_password(password_stdin)
    with session_scope(_engine()) as session:
        service.set_password(session, username=username, password=password)
        console.print(f"password of {username} changed / 密码已修改")


@token_app.command("create")
def token_create(
    username: str,
    name: Annotated[str, typer.Option(help="What the token is for, e.g. the integration's name")],
    expires: Annotated[
        str | None,
        typer.Option(help="Expiry: an ISO date/time (UTC if no offset) or a number of days, e.g. 90"),
    ] = None,
) -> None:
    """Create a token acting as USERNAME; it is printed once / 新建接口令牌（只显示一次）."""
    from arrears.cli import friendly

    friendly(_token_create)(username, name, expires)


def _expiry(text: str | None, now: datetime) -> datetime | None:
    from arrears import clock
    from arrears.errors import ValidationFailed

    if text is None:
        return None
    if text.strip().isdigit():
        return now + timedelta(days=int(text))
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValidationFailed(
            f"--expires 应为日期时间或天数 / --expires must be an ISO date/time or days: {text!r}",
            code="bad_expiry",
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return clock.as_utc(moment)


def _token_create(username: str, name: str, expires: str | None) -> None:
    from arrears import clock
    from arrears.cli import _engine, console
    from arrears.db import session_scope
    from arrears.users import service

    now = clock.now()
    with session_scope(_engine()) as session:
        made = service.create_token(
            session, username=username, name=name, at=now, expires_at=_expiry(expires, now)
        )
        until = made.row.expires_at.isoformat() if made.row.expires_at else "never / 永不"
        console.print(
            f"token {made.row.id} for {username} ({name}), expires {until}; shown once / 只显示一次:"
        )
    # The secret goes to stdout alone on its line, so scripts can capture it.
    typer.echo(made.token)


@token_app.command("list")
def token_list(username: Annotated[str | None, typer.Argument()] = None) -> None:
    """Tokens (never their secrets) / 列出令牌."""
    from arrears.cli import friendly

    friendly(_token_list)(username)


def _token_list(username: str | None) -> None:
    from rich.table import Table

    from arrears import clock
    from arrears.cli import _engine, console
    from arrears.db import session_scope
    from arrears.users import service

    now = clock.now()
    table = Table("id", "user", "role", "name", "created", "expires", "last used", "state")
    with session_scope(_engine()) as session:
        for row, user in service.list_tokens(session, username=username):
            if row.revoked_at is not None:
                state = "revoked"
            elif row.expires_at is not None and row.expires_at <= now:
                state = "expired"
            else:
                state = "active"
            table.add_row(
                str(row.id),
                user.username,
                user.role,
                row.name,
                row.created_at.isoformat(timespec="seconds"),
                row.expires_at.isoformat(timespec="seconds") if row.expires_at else "-",
                row.last_used_at.isoformat(timespec="seconds") if row.last_used_at else "-",
                state,
            )
    console.print(table)


@token_app.command("revoke")
def token_revoke(token_id: int) -> None:
    """Revoke a token by id; it stops working at once / 吊销令牌."""
    from arrears.cli import friendly

    friendly(_token_revoke)(token_id)


def _token_revoke(token_id: int) -> None:
    from arrears import clock
    from arrears.cli import _engine, console
    from arrears.db import session_scope
    from arrears.users import service

    with session_scope(_engine()) as session:
        row = service.revoke_token(session, token_id=token_id, at=clock.now())
        console.print(f"token {row.id} ({row.name}) revoked / 已吊销")
