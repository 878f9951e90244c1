"""Request-scoped database session: the request is the edge that commits.

The dependency is function-scoped, so the commit happens before the response is sent: a client that acts
on a response (follows a redirect, reads back what it posted) always sees the committed work.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
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


SessionDep = Annotated[Session, Depends(get_session, scope="function")]
