"""Shared fixtures: databases on SQLite and PostgreSQL, migrated once per session.

PostgreSQL comes from ARREARS_TEST_POSTGRES_URL (default: the local server's `test` database). Each test
session creates its own database and drops it at the end. Under CI=true an unreachable PostgreSQL fails the
run instead of skipping.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from hypothesis import settings
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from arrears import db

# Property tests check what holds, not how fast: a shared or loaded machine must not fail them on time.
settings.register_profile("arrears", deadline=None)
settings.load_profile("arrears")

PG_URL = os.environ.get("ARREARS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def _pg_admin_url() -> str:
    url = (
        PG_URL.replace("postgresql://", "postgresql+psycopg://", 1)
        if PG_URL.startswith("postgresql://")
        else PG_URL
    )
    return url


@pytest.fixture(scope="session")
def pg_engine() -> Iterator[Engine]:
    admin = create_engine(_pg_admin_url(), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:
        admin.dispose()
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL unreachable at {PG_URL}: {exc}")
        pytest.skip(f"PostgreSQL unreachable at {PG_URL}")
    name = f"arrears_test_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(_pg_admin_url()).set(database=name)
    engine = db.make_engine(url.render_as_string(hide_password=False))
    db.upgrade(engine)
    try:
        yield engine
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def sqlite_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    path = tmp_path_factory.mktemp("db") / "arrears-test.db"
    engine = db.make_engine(f"sqlite:///{path}")
    db.upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest) -> Engine:
    if request.param == "sqlite":
        return request.getfixturevalue("sqlite_engine")  # type: ignore[no-any-return]
    return request.getfixturevalue("pg_engine")  # type: ignore[no-any-return]


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    """A session inside a transaction that is rolled back after the test.

    Services flush and use savepoints; nothing a test does survives it.
    """
    connection = engine.connect()
    outer = connection.begin()
    s = Session(bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False)
    try:
        yield s
    finally:
        s.close()
        if outer.is_active:
            outer.rollback()
        connection.close()
