"""Alembic environment: runs against the engine handed over by `arrears.db.upgrade`."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Engine

import arrears.models  # noqa: F401  (every table registers on Base.metadata)
from arrears.db import make_engine
from arrears.models import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    engine: Engine | None = config.attributes.get("engine")
    if engine is None:
        engine = make_engine()
    with engine.begin() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("offline migrations are not supported; run `arrears db upgrade`")
run_migrations_online()
