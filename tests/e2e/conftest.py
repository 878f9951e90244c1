"""The real server and the system Chromium for the browser tests.

The server is uvicorn in a subprocess on a free port with a SQLite file built by ``arrears demo --no-serve``;
its clock is frozen at 10:00 Shanghai time (``ARREARS_FROZEN_NOW``) so the queue and the checks are the same
on every run. Screenshots go to ``test-artifacts/``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from e2e_support import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, FROZEN_NOW, free_port, missing

import arrears


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        missing(f"no Chromium at {CHROMIUM} (make system-deps installs Debian's chromium)")
    pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    work = tmp_path_factory.mktemp("e2e")
    env = {
        **os.environ,
        "ARREARS_DATABASE_URL": f"sqlite:///{work / 'desk.db'}",
        "ARREARS_FROZEN_NOW": FROZEN_NOW,
        "ARREARS_DOCUMENT_DIR": str(work / "documents"),
        "ARREARS_RULE_PACK_DIR": str(work / "rule-packs"),
        "ARREARS_STRATEGY_DIR": str(work / "strategies"),
        "PYTHONPATH": str(Path(arrears.__file__).parents[1]),
    }
    # Six weeks of history: the demo portfolio aged to 30 January and run then, the daily run again at the
    # February month end and on the day of the tests, so the dashboard has two month ends to roll between.
    history = [
        (
            "2026-01-30T10:00:00+08:00",
            ["demo", "--no-serve", "--accounts", "200", "--out", str(work), "--as-of", "2026-01-30"],
        ),
        ("2026-02-27T10:00:00+08:00", ["run", "--portfolio", "demo", "--as-of", "2026-02-27"]),
        (FROZEN_NOW, ["run", "--portfolio", "demo", "--as-of", "2026-03-02"]),
    ]
    for frozen, args in history:
        done = subprocess.run(
            [sys.executable, "-m", "arrears.cli", *args],
            env={**env, "ARREARS_FROZEN_NOW": frozen},
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        if args[0] == "demo":
            assert "demo1234" in done.stdout
    port = free_port()
    ARTIFACTS.mkdir(exist_ok=True)
    log = (ARTIFACTS / "server.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "arrears.api.app:create_app", "--factory", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(150):
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        else:
            pytest.fail("the server did not start")
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


@pytest.fixture(scope="module")
def browser(server: str) -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        instance = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield instance
        instance.close()
