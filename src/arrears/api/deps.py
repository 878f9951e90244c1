"""Request-scoped database session: the request is the edge that commits."""

from __future__ import annotations

from collections.abc import Iterator

from fastapi import Request
from sqlalchemy.orm import Session

from arrears.db import session_factory


def get_session(request: Request) -> Iterator[Session]:
    factory = session_factory(request.app.state.engine)
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
