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
    demo = subprocess.run(
        [sys.executable, "-m", "arrears.cli", "demo", "--no-serve", "--accounts", "200", "--out", str(work)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert demo.returncode == 0, demo.stderr[-2000:]
    assert "demo1234" in demo.stdout
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
