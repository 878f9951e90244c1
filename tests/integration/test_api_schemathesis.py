"""The API against its own OpenAPI document (schemathesis): generated requests, valid and invalid, with an
administrator's token on a seeded database, must never produce a server error and must answer in the
documented shapes. SQLite always (a fresh file, so small generated ids hit real rows); PostgreSQL when
reachable (a fresh database, for the same reason).
"""

from __future__ import annotations

import os
import random
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

schemathesis = pytest.importorskip("schemathesis", reason="schemathesis is in the test extras")
from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from arrears import clock, db, demo  # noqa: E402
from arrears.api.app import create_app  # noqa: E402
from arrears.portfolios import service as portfolios  # noqa: E402
from arrears.users import service as users  # noqa: E402

AS_OF = date(2026, 3, 2)
CHECKS = (not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance)
EXAMPLES = int(os.environ.get("ARREARS_SCHEMATHESIS_EXAMPLES", "25"))
PG_URL = os.environ.get("ARREARS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def _seed(engine: Engine, tmp: Path) -> str:
    """A small demo portfolio (queues filled, a few cases placed with an agency); an admin's token."""
    db.upgrade(engine)
    with db.session_scope(engine) as s:
        demo.ensure_demo_portfolio(s)
    path = demo.write_demo_file(
        tmp / "demo.csv", accounts=30, seed=random.Random(7).randrange(10**6), as_of=AS_OF
    )
    with db.session_scope(engine) as s:
        portfolios.import_accounts(s, path=path, portfolio_name=demo.DEMO_PORTFOLIO, as_of=AS_OF)
    with db.session_scope(engine) as s:
        demo.set_demo_passwords(s)
        demo.prepare_desk(s, as_of=AS_OF, now=clock.now())
        demo.place_demo_cases(s, as_of=AS_OF)
        return users.create_token(s, username="admin", name="schemathesis", at=clock.now()).token


def _pg_fresh() -> Iterator[Engine]:
    url = PG_URL.replace("postgresql://", "postgresql+psycopg://", 1)
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception:
        admin.dispose()
        if os.environ.get("CI") == "true":
            raise
        pytest.skip(f"PostgreSQL unreachable at {PG_URL}")
    name = f"arrears_fuzz_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine = db.make_engine(make_url(url).set(database=name).render_as_string(hide_password=False))
    try:
        yield engine
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def seeded(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("fuzz")
    if request.param == "sqlite":
        engine = db.make_engine(f"sqlite:///{tmp / 'fuzz.db'}")
        token = _seed(engine, tmp)
        yield {"engine": engine, "token": token}
        engine.dispose()
        return
    for engine in _pg_fresh():
        token = _seed(engine, tmp)
        yield {"engine": engine, "token": token}


@pytest.mark.slow
def test_the_api_never_answers_with_a_server_error_and_keeps_to_its_document(seeded: dict[str, Any]) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(seeded["engine"]))
    headers = {"Authorization": f"Bearer {seeded['token']}"}
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 55

    for operation in operations:

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
            phases=[Phase.explicit, Phase.generate],  # report the first failing example, unshrunk
        )
        @given(case=operation.as_strategy())
        def run(case: Any) -> None:
            response = case.call(headers=headers)
            case.validate_response(response, checks=CHECKS)

        started = time.perf_counter()
        try:
            run()
        except Exception as exc:  # one report for every operation that fails, not only the first
            failures.append(f"{operation.label}: {str(exc)[:1500]}")
            print(failures[-1], file=sys.stderr, flush=True)
        print(f"{operation.label}: {time.perf_counter() - started:.1f}s", file=sys.stderr, flush=True)
    assert not failures, "\n\n".join(failures)
