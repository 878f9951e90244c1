"""`arrears user add|password` and the sign-in service (lockout window, sessions, password rules)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

import arrears
from arrears.errors import Conflict, ValidationFailed
from arrears.users import service as users

T0 = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)


def _cli(args: list[str], db_url: str, stdin: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "ARREARS_DATABASE_URL": db_url,
        "PYTHONPATH": str(Path(arrears.__file__).parents[1]),
    }
    return subprocess.run(
        [sys.executable, "-m", "arrears.cli", *args], input=stdin, env=env, capture_output=True, text=True
    )


def test_user_add_and_password_from_stdin(sqlite_engine: Engine) -> None:
    url = sqlite_engine.url.render_as_string(hide_password=False)
    name = f"u{uuid.uuid4().hex[:8]}"
    added = _cli(["user", "add", name, "--role", "collector", "--password-stdin"], url, "first-pass-1\n")
    assert added.returncode == 0, added.stderr
    bad_role = _cli(["user", "add", name + "x", "--role", "boss", "--password-stdin"], url, "first-pass-1\n")
    assert bad_role.returncode == 2 and "bad_role" in bad_role.stderr
    changed = _cli(["user", "password", name, "--password-stdin"], url, "second-pass-2\n")
    assert changed.returncode == 0, changed.stderr
    with Session(sqlite_engine) as s:
        assert users.authenticate(s, username=name, password="second-pass-2", at=T0).username == name
        with pytest.raises(users.LoginFailed):
            users.authenticate(s, username=name, password="first-pass-1", at=T0 + timedelta(seconds=1))


def test_passwords_are_argon2_hashes_and_short_ones_or_duplicate_names_are_refused(session: Session) -> None:
    name = f"u{uuid.uuid4().hex[:8]}"
    user = users.add_user(session, username=name, role="supervisor", password="long-enough")
    assert user.password_hash and user.password_hash.startswith("$argon2id$")
    with pytest.raises(ValidationFailed):
        users.add_user(session, username=name + "2", role="supervisor", password="short")
    with pytest.raises(Conflict):
        users.add_user(session, username=name, role="supervisor", password="long-enough")


def test_failures_spread_over_more_than_the_window_do_not_lock(session: Session) -> None:
    name = f"u{uuid.uuid4().hex[:8]}"
    users.add_user(session, username=name, role="collector", password="long-enough")
    for i in range(5):
        with pytest.raises(users.LoginFailed):
            users.authenticate(session, username=name, password="nope", at=T0 + timedelta(minutes=4 * i))
    # five failures across 16 minutes: not five inside fifteen
    assert users.locked_until(session, username=name, at=T0 + timedelta(minutes=16, seconds=1)) is None


def test_a_success_resets_the_failure_count(session: Session) -> None:
    name = f"u{uuid.uuid4().hex[:8]}"
    users.add_user(session, username=name, role="collector", password="long-enough")
    for i in range(4):
        with pytest.raises(users.LoginFailed):
            users.authenticate(session, username=name, password="nope", at=T0 + timedelta(seconds=i))
    users.authenticate(session, username=name, password="long-enough", at=T0 + timedelta(seconds=10))
    with pytest.raises(users.LoginFailed):
        users.authenticate(session, username=name, password="nope", at=T0 + timedelta(seconds=11))
    assert users.locked_until(session, username=name, at=T0 + timedelta(seconds=12)) is None


def test_sessions_end_on_sign_out_on_idle_and_on_a_password_change(session: Session) -> None:
    name = f"u{uuid.uuid4().hex[:8]}"
    user = users.add_user(session, username=name, role="collector", password="long-enough")
    first = users.open_session(session, user=user, at=T0)
    assert users.resume_session(session, token=first.token, at=T0 + timedelta(minutes=5)) is not None
    assert users.resume_session(session, token=first.token, at=T0 + timedelta(hours=5)) is None  # idle
    second = users.open_session(session, user=user, at=T0)
    users.close_session(session, token=second.token, at=T0 + timedelta(minutes=1))
    assert users.resume_session(session, token=second.token, at=T0 + timedelta(minutes=2)) is None
    third = users.open_session(session, user=user, at=T0)
    users.set_password(session, username=name, password="another-one")
    assert users.resume_session(session, token=third.token, at=T0 + timedelta(minutes=1)) is None
    assert users.resume_session(session, token="forged", at=T0) is None
