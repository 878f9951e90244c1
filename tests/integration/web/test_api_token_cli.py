"""`arrears token create|list|revoke` against a real database and the API that honours the tokens."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import Engine

import arrears
from arrears.api.app import create_app


def _cli(args: list[str], db_url: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ARREARS_DATABASE_URL": db_url, "PYTHONPATH": str(Path(arrears.__file__).parents[1])}
    return subprocess.run(
        [sys.executable, "-m", "arrears.cli", *args], input=stdin, env=env, capture_output=True, text=True
    )


def test_a_token_is_printed_once_works_on_the_api_is_listed_without_its_secret_and_revoked(
    sqlite_engine: Engine,
) -> None:
    url = sqlite_engine.url.render_as_string(hide_password=False)
    name = f"feed{uuid.uuid4().hex[:8]}"
    assert (
        _cli(
            ["user", "add", name, "--role", "supervisor", "--password-stdin"], url, "long-pass-9\n"
        ).returncode
        == 0
    )
    made = _cli(["token", "create", name, "--name", "crm feed", "--expires", "30"], url)
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip().splitlines()[-1]
    assert token.startswith("arr_")
    client = TestClient(create_app(sqlite_engine), headers={"Authorization": f"Bearer {token}"})
    assert client.get("/api/v1/portfolios").status_code == 200
    listed = _cli(["token", "list", name], url)
    assert listed.returncode == 0 and "active" in listed.stdout and token not in listed.stdout
    token_id = next(line.split()[1] for line in listed.stdout.splitlines() if "active" in line)
    revoked = _cli(["token", "revoke", token_id], url)
    assert revoked.returncode == 0, revoked.stderr
    assert client.get("/api/v1/portfolios").status_code == 401
    assert "revoked" in _cli(["token", "list", name], url).stdout
    bad = _cli(["token", "create", name, "--name", "x", "--expires", "soon"], url)
    assert bad.returncode != 0 and "bad_expiry" in (bad.stdout + bad.stderr)
