"""Shared pieces of the browser tests: where Chromium is, where screenshots go, signing in."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("ARREARS_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
FROZEN_NOW = "2026-03-02T10:00:00+08:00"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def missing(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def sign_in(page: object, base: str, username: str, password: str = "demo1234") -> None:
    """Sign a browser page in through the sign-in form."""
    from playwright.sync_api import Page

    assert isinstance(page, Page)
    page.goto(f"{base}/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
