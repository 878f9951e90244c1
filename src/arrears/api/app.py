"""The FastAPI application: REST API under /api/v1 and, later, the pages."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from sqlalchemy import Engine, text
from sqlalchemy.exc import DataError

from arrears import __version__, web
from arrears.api.v1 import casework, channels, compliance, ledger, read, reports, runs
from arrears.api.v1.schemas import Health
from arrears.errors import ArrearsError


def create_app(engine: Engine | None = None) -> FastAPI:
    from arrears import db

    app = FastAPI(
        title="arrears API",
        version=__version__,
        description="Compliance-first debt collection. Amounts are integer minor units (fen, cents).",
        lifespan=_serving,
    )
    app.state.engine = engine or db.get_engine()

    @app.exception_handler(ArrearsError)
    async def _arrears_error(_request: Request, exc: ArrearsError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return JSONResponse(status_code=exc.status, content=exc.to_dict(), headers=headers)

    @app.exception_handler(OverflowError)
    @app.exception_handler(DataError)
    async def _out_of_range(_request: Request, _exc: Exception) -> JSONResponse:
        # A number beyond what the database column holds (an id of 2**64, say) is invalid input, not a
        # server fault; the request's transaction has been rolled back by then.
        return JSONResponse(
            status_code=422,
            content={
                "code": "value_out_of_range",
                "message": "数值超出范围或内容过长 / a value in the request is out of range or too long",
            },
        )

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(
            status_code=422,
            content={
                "code": "validation_failed",
                "message": "invalid request",
                "details": jsonable(exc.errors()),
            },
        )

    @app.get("/healthz", response_model=Health, tags=["ops"])
    def healthz() -> Health:
        with app.state.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return Health(status="ok", database=app.state.engine.dialect.name, version=__version__)

    app.include_router(read.router)
    app.include_router(compliance.router)
    app.include_router(casework.router)
    app.include_router(ledger.router)
    app.include_router(runs.router)
    app.include_router(channels.router)
    app.include_router(reports.router)
    app.include_router(channels.webhooks)
    web.install(app)  # the collection desk's pages
    return app


@asynccontextmanager
async def _serving(app: FastAPI) -> AsyncIterator[None]:
    """Startup of a server process, before it accepts a request (uvicorn runs it in each worker)."""
    warm_routes(app)
    # What startup built (routes, models, mappers, templates) lives as long as the process: kept out of
    # the garbage collector's scans, a full collection takes a millisecond instead of a tenth of a second
    # in the middle of somebody's page.
    gc.collect()
    gc.freeze()
    yield


def warm_routes(app: FastAPI) -> int:
    """Build every included route's request handling state now; returns how many routes there are.

    FastAPI builds an included router's routes (dependencies, parameter and response fields) on the first
    request that walks past them: about half a second of CPU per worker, paid by the first pages a desk
    asks for. Built here, once per process, before the server accepts a request.
    """
    return sum(1 for _ in iter_route_contexts(app.router.routes))


def jsonable(errors: object) -> object:
    from fastapi.encoders import jsonable_encoder

    return jsonable_encoder(errors)
