"""API clients that authenticate like an integration: a user with a role and an API token.

``api_client(engine)`` is an administrator's client; ``api_client(engine, role="collector")`` a
collector's, ``api_client(engine, role="agency", agency_id=...)`` an agency user's. The user and the token
are committed (the app opens its own sessions); every call creates a fresh user with a unique name. The
client carries ``user_id``, ``username`` and ``token`` attributes.
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from arrears import clock
from arrears.api.app import create_app
from arrears.models import AppUser
from arrears.users import service as users_service


def make_user_token(
    engine: Engine,
    role: str = "admin",
    *,
    username: str | None = None,
    agency_id: int | None = None,
    session: Session | None = None,
) -> tuple[int, str]:
    """A user (no password: tokens only) and a fresh API token for them.

    Committed on its own connection, or only flushed into ``session`` when given (a test that holds a
    transaction open, e.g. a savepoint factory the app's sessions share, commits it itself).
    """
    name = username or f"api-{role}-{uuid.uuid4().hex[:8]}"

    def make(s: Session) -> tuple[int, str]:
        user = AppUser(
            username=name, display_name=name, role=role, locale="en", active=True, agency_id=agency_id
        )
        s.add(user)
        s.flush()
        made = users_service.create_token(s, username=name, name="tests", at=clock.now())
        return user.id, made.token

    if session is not None:
        return make(session)
    with Session(engine) as own:
        out = make(own)
        own.commit()
    return out


def api_client(
    engine: Engine,
    role: str = "admin",
    *,
    username: str | None = None,
    agency_id: int | None = None,
    session: Session | None = None,
    app: FastAPI | None = None,
    **client_kwargs: Any,
) -> TestClient:
    """A TestClient of ``create_app(engine)`` (or ``app``) sending ``Authorization: Bearer <token>`` of a
    new user with ``role``; ``session``: see ``make_user_token``."""
    name = username or f"api-{role}-{uuid.uuid4().hex[:8]}"
    user_id, token = make_user_token(engine, role, username=name, agency_id=agency_id, session=session)
    headers = {"Authorization": f"Bearer {token}", **client_kwargs.pop("headers", {})}
    client = TestClient(app or create_app(engine), headers=headers, **client_kwargs)
    client.user_id = user_id  # type: ignore[attr-defined]
    client.username = name  # type: ignore[attr-defined]
    client.token = token  # type: ignore[attr-defined]
    return client
