"""A server process builds its request handling before the first page, not during it."""

from __future__ import annotations

import gc
from collections.abc import Callable
from typing import Any

import fastapi.routing
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from arrears.api.app import create_app


def test_routes_are_built_at_startup_not_by_the_first_pages(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[str] = []
    populate: Callable[..., Any] = fastapi.routing._populate_api_route_state

    def counting(route: Any, path: str, *args: Any, **kwargs: Any) -> Any:
        built.append(path)
        return populate(route, path, *args, **kwargs)

    monkeypatch.setattr(fastapi.routing, "_populate_api_route_state", counting)
    app = create_app(engine)
    try:
        with TestClient(app) as client:  # runs the startup, as uvicorn does in each worker
            built.clear()
            for path in ("/healthz", "/login", "/queue", "/api/v1/cases/1", "/supervisor", "/admin/imports"):
                client.get(path, follow_redirects=False)
            assert built == []
    finally:
        gc.unfreeze()  # the startup froze what existed; give the test process its collector back
