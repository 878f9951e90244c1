"""Ledger endpoints: payments in (idempotent), reversals, statements, the accrual run and the balance check."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Query, Response
from pydantic import BaseModel, Field

from arrears import clock
from arrears.api.deps import (
    LIST_RESPONSE,
    CurrentUser,
    PageDep,
    SessionDep,
    credited_to,
    current_user,
    require,
    require_manager,
)
from arrears.api.v1.schemas import AUTH_ERRORS, ErrorOut
from arrears.errors import NotFound, ValidationFailed
from arrears.ledger import service, statement
from arrears.ledger.schemas import AccrualRun, BalanceMismatch, PaymentOut
from arrears.models import Payment, Portfolio
from arrears.users import access, guard

router = APIRouter(
    prefix="/api/v1", tags=["ledger"], dependencies=[Depends(current_user)], responses=AUTH_ERRORS
)
ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorOut, "description": "not found"},
    409: {"model": ErrorOut, "description": "conflict"},
    422: {"model": ErrorOut, "description": "invalid"},
}


class PaymentIn(BaseModel):
    """A received payment. Name the payer by account (id or reference) or by debtor id."""

    portfolio_id: int
    amount_minor: int = Field(gt=0, description="integer minor units (fen)")
    received_on: date
    reference: str = Field(min_length=1, max_length=100, description="bank transaction or receipt number")
    account_id: int | None = None
    account_ref: str | None = Field(default=None, max_length=100, description="the account's 借据号")
    debtor_id: int | None = None
    designation: list[int] | None = Field(
        default=None, description="account ids the debtor pays first (CN-27)"
    )
    collector: str | None = Field(
        default=None,
        max_length=64,
        description="username the payment is credited to; default the caller, others only for supervisors",
    )


class ReversalIn(BaseModel):
    reason: str = Field(min_length=1, max_length=200, examples=["bounced"])
    reversed_on: date | None = Field(default=None, description="default: today in the portfolio's time zone")


@router.post("/payments", response_model=PaymentOut, status_code=201, responses=ERRORS)
def post_payment(
    body: PaymentIn,
    session: SessionDep,
    user: CurrentUser,
    idempotency_key: Annotated[str, Header(alias="Idempotency-Key", min_length=1, max_length=200)],
) -> PaymentOut:
    """Post a payment once per ``Idempotency-Key``: a retry returns the stored result, changing nothing."""
    account_id = body.account_id
    if body.account_ref is not None:
        account = service.find_account(session, portfolio_id=body.portfolio_id, external_ref=body.account_ref)
        if account_id is not None and account_id != account.id:
            raise ValidationFailed(
                "account_id and account_ref name different accounts", code="account_mismatch"
            )
        account_id = account.id
    # The payer's case must be one the caller may work (a portfolio-wide posting without a named account
    # or debtor is for supervisors and administrators).
    if account_id is not None:
        guard.require_account(session, user=user.user, account_id=account_id, work=True)
    elif body.debtor_id is not None:
        guard.require_debtor(session, user=user.user, debtor_id=body.debtor_id, work=True)
    else:
        guard.require_role(user.user, access.MANAGE)
    return service.post_payment(
        session,
        portfolio_id=body.portfolio_id,
        amount_minor=body.amount_minor,
        received_on=body.received_on,
        reference=body.reference,
        account_id=account_id,
        debtor_id=body.debtor_id,
        designation=body.designation,
        idempotency_key=idempotency_key,
        request_sha256=service.request_fingerprint(body.model_dump(mode="json")),
        source="api",
        collector=credited_to(user, body.collector),
        now=clock.now(),
    )


@router.get("/payments/{payment_id}", response_model=PaymentOut, responses=ERRORS)
def get_payment(payment_id: int, session: SessionDep, user: CurrentUser) -> PaymentOut:
    """A payment and how it was split, with its reversal if any."""
    _require_payment(session, user, payment_id)
    return service.payment_view(session, payment_id=payment_id)


@router.post(
    "/payments/{payment_id}/reverse",
    response_model=PaymentOut,
    responses=ERRORS,
    dependencies=[require_manager()],
)
def reverse_payment(payment_id: int, body: ReversalIn, session: SessionDep) -> PaymentOut:
    """Reverse a payment (bounced, posted in error); every balance it touched is restored."""
    payment = session.get(Payment, payment_id)
    if payment is None:
        raise NotFound(f"payment {payment_id} not found", code="payment_not_found")
    reversed_on = body.reversed_on
    if reversed_on is None:
        portfolio = session.get(Portfolio, payment.portfolio_id)
        reversed_on = clock.today(portfolio.timezone if portfolio else clock.DEFAULT_ZONE)
    return service.reverse_payment(
        session, payment_id=payment_id, reversed_on=reversed_on, reason=body.reason, now=clock.now()
    )


@router.get(
    "/accounts/{account_id}/statement",
    response_model=statement.Statement,
    responses={
        **ERRORS,
        200: {"content": {"text/csv": {}, "application/pdf": {}}, "description": "JSON, CSV or PDF"},
    },
)
def get_statement(
    account_id: int,
    session: SessionDep,
    user: CurrentUser,
    as_of: Annotated[date, Query(description="postings effective on or before this date")],
    from_date: Annotated[date | None, Query(alias="from")] = None,
    format: Annotated[Literal["json", "csv", "pdf"], Query()] = "json",
    locale: Annotated[Literal["zh_CN", "en"], Query()] = "zh_CN",
) -> Any:
    """Opening balance, every posting and the closing balance by component, at any date."""
    guard.require_account(session, user=user.user, account_id=account_id)
    st = statement.statement(session, account_id=account_id, as_of=as_of, from_date=from_date)
    name = f"statement-{st.external_ref}-{as_of.isoformat()}"
    if format == "csv":
        return Response(
            statement.statement_csv(st, locale=locale).encode("utf-8-sig"),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
        )
    if format == "pdf":
        return Response(
            statement.statement_pdf(st, locale=locale),
            media_type="application/pdf",
            headers={"Content-Disposition": f'attachment; filename="{name}.pdf"'},
        )
    return st


@router.post(
    "/portfolios/{portfolio_id}/accrue",
    response_model=AccrualRun,
    responses=ERRORS,
    dependencies=[require_manager()],
)
def accrue(
    portfolio_id: int,
    session: SessionDep,
    as_of: Annotated[date, Query(description="the day to accrue up to")],
) -> AccrualRun:
    """Run the daily accrual of a portfolio up to ``as_of`` (a second run for the same day adds nothing)."""
    return service.accrue_portfolio(session, portfolio_id=portfolio_id, as_of=as_of)


@router.get(
    "/portfolios/{portfolio_id}/ledger/verify",
    response_model=list[BalanceMismatch],
    responses={**ERRORS, **LIST_RESPONSE},
    dependencies=[require(*access.READ_ALL)],
)
def verify(portfolio_id: int, session: SessionDep, page: PageDep) -> list[BalanceMismatch]:
    """Cached balances that differ from the sum of postings (an empty list: the ledger reconciles)."""
    return page.of(service.verify_balances(session, portfolio_id=portfolio_id))


def _require_payment(session: SessionDep, user: CurrentUser, payment_id: int) -> None:
    """A payment is readable by whoever may read its account's case (or its debtor's, when unapplied)."""
    payment = session.get(Payment, payment_id)
    if payment is None:
        raise NotFound(f"payment {payment_id} not found", code="payment_not_found")
    if payment.account_id is not None:
        guard.require_account(session, user=user.user, account_id=payment.account_id)
    else:
        guard.require_debtor(session, user=user.user, debtor_id=payment.debtor_id)
