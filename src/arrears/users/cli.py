"""`arrears user add|password`: people who sign in to the desk."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

app = typer.Typer(help="Users and roles / 用户与角色", no_args_is_help=True)


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
) -> None:
    """Create a user with a role and a password / 新建用户."""
    from arrears.cli import friendly

    friendly(_add)(username, role, password_stdin, display_name, locale)


def _add(username: str, role: str, password_stdin: bool, display_name: str | None, locale: str) -> None:
    from arrears.cli import _engine, console
    from arrears.db import session_scope
    from arrears.users import service

    password = _read_password(password_stdin)
    with session_scope(_engine()) as session:
        user = service.add_user(
            session, username=username, role=role, password=password, display_name=display_name, locale=locale
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
