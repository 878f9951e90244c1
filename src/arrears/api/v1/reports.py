"""Portfolio reports over REST (the same `reports.service` the supervisor's dashboard draws): aging by
bucket, roll rates month over month, collections per day, promises due and broken, contacts blocked by
rule. Aggregates only: no debtor is named."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel

from arrears import clock
from arrears.api.deps import SessionDep, require
from arrears.api.v1.schemas import AUTH_ERRORS
from arrears.enums import Role
from arrears.reports import service

# portfolio figures are for the people who run and oversee the collection, not for collectors or agencies
router = APIRouter(
    prefix="/api/v1/reports",
    tags=["reports"],
    dependencies=[require(Role.SUPERVISOR, Role.ADMIN, Role.COMPLIANCE, Role.READ_ONLY)],
    responses=AUTH_ERRORS,
)

PortfolioQ = Annotated[int | None, Query(ge=1, description="one portfolio (default: all)")]
CurrencyQ = Annotated[str, Query(min_length=3, max_length=3, pattern="^[A-Z]{3}$")]


def _today(day: date | None) -> date:
    return day or clock.today()


class BucketOut(BaseModel):
    bucket: str
    accounts: int
    balance_minor: int


class AgingOut(BaseModel):
    as_of: date
    currency: str
    accounts: int
    balance_minor: int
    buckets: list[BucketOut]


@router.get("/aging", response_model=AgingOut)
def aging(
    session: SessionDep,
    as_of: date | None = None,
    portfolio_id: PortfolioQ = None,
    currency: CurrencyQ = "CNY",
) -> AgingOut:
    """Open accounts and their balance by days-past-due bucket on ``as_of`` (default today)."""
    got = service.aging(session, as_of=_today(as_of), portfolio_id=portfolio_id, currency=currency)
    return AgingOut(
        as_of=got.as_of,
        currency=got.currency,
        accounts=got.accounts,
        balance_minor=got.balance_minor,
        buckets=[
            BucketOut(bucket=b.bucket, accounts=b.accounts, balance_minor=b.balance_minor)
            for b in got.buckets
        ],
    )


class RollOut(BaseModel):
    from_bucket: str
    accounts: int
    worse: int
    same: int
    better: int
    roll_bps: int
    cure_bps: int


class MoveOut(BaseModel):
    from_bucket: str
    to_bucket: str
    accounts: int


class RollStepOut(BaseModel):
    from_on: date
    to_on: date
    rolls: list[RollOut]
    moves: list[MoveOut]


@router.get("/rolls", response_model=list[RollStepOut])
def rolls(
    session: SessionDep,
    through: date | None = None,
    months: Annotated[int, Query(ge=1, le=36)] = 6,
    portfolio_id: PortfolioQ = None,
) -> list[RollStepOut]:
    """Bucket to bucket between consecutive month-end runs (``left``: no longer decided)."""
    steps = service.roll_rates(session, through=_today(through), months=months, portfolio_id=portfolio_id)
    return [
        RollStepOut(
            from_on=s.from_on,
            to_on=s.to_on,
            rolls=[
                RollOut(
                    from_bucket=r.from_bucket,
                    accounts=r.accounts,
                    worse=r.worse,
                    same=r.same,
                    better=r.better,
                    roll_bps=r.roll_bps,
                    cure_bps=r.cure_bps,
                )
                for r in s.rolls
            ],
            moves=[MoveOut(from_bucket=a, to_bucket=b, accounts=n) for (a, b), n in sorted(s.moves.items())],
        )
        for s in steps
    ]


class DayOut(BaseModel):
    day: date
    amount_minor: int


class CollectedOut(BaseModel):
    today: date
    currency: str
    today_minor: int
    month_minor: int
    days: list[DayOut]


@router.get("/collected", response_model=CollectedOut)
def collected(
    session: SessionDep,
    today: date | None = None,
    days: Annotated[int, Query(ge=1, le=366)] = 30,
    portfolio_id: PortfolioQ = None,
    currency: CurrencyQ = "CNY",
) -> CollectedOut:
    """Payments received per day (reversals left out), today's and the month's totals."""
    got = service.collected(
        session, today=_today(today), days=days, portfolio_id=portfolio_id, currency=currency
    )
    return CollectedOut(
        today=got.today,
        currency=got.currency,
        today_minor=got.today_minor,
        month_minor=got.month_minor,
        days=[DayOut(day=d, amount_minor=v) for d, v in got.days],
    )


class CountOut(BaseModel):
    count: int
    amount_minor: int


class PromisesOut(BaseModel):
    due_today: CountOut
    due_week: CountOut
    broken_today: CountOut
    broken_month: CountOut


@router.get("/promises", response_model=PromisesOut)
def promises(
    session: SessionDep,
    today: date | None = None,
    portfolio_id: PortfolioQ = None,
    currency: CurrencyQ = "CNY",
) -> PromisesOut:
    """Promises due today and within a week; broken today and this month (amounts still unpaid)."""
    got = service.promises_summary(session, today=_today(today), portfolio_id=portfolio_id, currency=currency)
    return PromisesOut(
        **{
            name: CountOut(count=c.count, amount_minor=c.amount_minor)
            for name, c in (
                ("due_today", got.due_today),
                ("due_week", got.due_week),
                ("broken_today", got.broken_today),
                ("broken_month", got.broken_month),
            )
        }
    )


class BlockedOut(BaseModel):
    rule_id: str
    planned: int
    desk: int
    sending: int
    total: int


@router.get("/blocked", response_model=list[BlockedOut])
def blocked(
    session: SessionDep, day: date | None = None, portfolio_id: PortfolioQ = None
) -> list[BlockedOut]:
    """Contacts blocked on a day (Asia/Shanghai) per rule id: planned by the run, refused at the desk,
    stopped at sending."""
    rows = service.blocked_by_rule(session, day=_today(day), portfolio_id=portfolio_id)
    return [
        BlockedOut(rule_id=r.rule_id, planned=r.planned, desk=r.desk, sending=r.sending, total=r.total)
        for r in rows
    ]
