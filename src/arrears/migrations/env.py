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
    with engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:
            # Batch migrations re-create a table; with foreign keys on, dropping the old table would fail
            # for the rows that reference it (the setting cannot change inside a transaction).
            # outside any transaction (where SQLite ignores it): straight on the driver's connection
            connection.connection.driver_connection.execute("PRAGMA foreign_keys=OFF")  # type: ignore[union-attr]
        try:
            with connection.begin():
                context.configure(
                    connection=connection,
                    target_metadata=target_metadata,
                    render_as_batch=sqlite,
                    compare_type=True,
                )
                context.run_migrations()
                if sqlite:
                    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                    if broken:
                        raise RuntimeError(f"migration left broken references: {broken[:5]}")
        finally:
            if sqlite:
                connection.connection.driver_connection.execute("PRAGMA foreign_keys=ON")  # type: ignore[union-attr]


if context.is_offline_mode():
    raise SystemExit("offline migrations are not supported; run `arrears db upgrade`")
run_migrations_online()
