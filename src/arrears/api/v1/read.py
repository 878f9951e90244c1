"""Read-only endpoints for portfolios, accounts and debtors (sensitive fields masked)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from sqlalchemy import func, select

from arrears import clock
from arrears.api.deps import LIST_RESPONSE, CurrentUser, PageDep, SessionDep, current_user, require
from arrears.api.v1.schemas import (
    AUTH_ERRORS,
    AccountOut,
    BalanceOut,
    ContactPointOut,
    DebtorOut,
    ErrorOut,
    FlagOut,
    InstalmentOut,
    PortfolioOut,
    RevealIn,
    RevealOut,
)
from arrears.errors import ValidationFailed
from arrears.models import Account, AccountFlag, ContactPoint, Portfolio
from arrears.users import access, guard
from arrears.users import service as users_service
from arrears.users.masking import mask_address, mask_bank_account, mask_contact_value, mask_national_id

router = APIRouter(
    prefix="/api/v1", tags=["read"], dependencies=[Depends(current_user)], responses=AUTH_ERRORS
)
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": ErrorOut, "description": "not found"}}


@router.get(
    "/portfolios",
    response_model=list[PortfolioOut],
    responses=LIST_RESPONSE,
    dependencies=[require(*access.IN_HOUSE)],
)
def list_portfolios(session: SessionDep, page: PageDep) -> list[PortfolioOut]:
    counts: dict[int, int] = {
        pid: n
        for pid, n in session.execute(
            select(Account.portfolio_id, func.count()).group_by(Account.portfolio_id)
        )
    }
    page.total(session.scalar(select(func.count()).select_from(Portfolio)) or 0)
    rows = session.scalars(select(Portfolio).order_by(Portfolio.id).limit(page.limit).offset(page.offset))
    return [
        PortfolioOut(
            id=p.id,
            name=p.name,
            creditor=p.creditor.name,
            currency=p.currency,
            timezone=p.timezone,
            rule_pack=p.rule_pack,
            strategy=p.strategy,
            locale=p.locale,
            accounts=counts.get(p.id, 0),
        )
        for p in rows
    ]


@router.get("/accounts/{account_id}", response_model=AccountOut, responses=NOT_FOUND)
def get_account(account_id: int, session: SessionDep, request: Request, user: CurrentUser) -> AccountOut:
    account = guard.require_account(session, user=user.user, account_id=account_id)
    portfolio = session.get(Portfolio, account.portfolio_id)
    zone = portfolio.timezone if portfolio else clock.DEFAULT_ZONE
    today = clock.today(zone)
    flags = session.scalars(
        select(AccountFlag).where(AccountFlag.account_id == account.id, AccountFlag.cleared_at.is_(None))
    )
    return AccountOut(
        id=account.id,
        portfolio_id=account.portfolio_id,
        case_id=account.case_id,
        debtor_id=account.debtor_id,
        external_ref=account.external_ref,
        product=account.product,
        status=account.status,
        currency=account.currency,
        original_principal_minor=account.original_principal_minor,
        interest_rate_annual_ppm=account.interest_rate_annual_ppm,
        penalty_rate_annual_ppm=account.penalty_rate_annual_ppm,
        origination_date=account.origination_date,
        due_date=account.due_date,
        last_due_date=account.last_due_date,
        days_past_due=(today - account.due_date).days,
        is_secured=account.is_secured,
        bank_account_masked=mask_bank_account(account.bank_account),
        bank_name=account.bank_name,
        balance=BalanceOut(
            principal_minor=account.principal_minor,
            interest_minor=account.interest_minor,
            penalty_minor=account.penalty_minor,
            fees_minor=account.fees_minor,
            costs_minor=account.costs_minor,
            total_minor=account.balance_minor,
            overdue_amount_minor=account.overdue_amount_minor,
            currency=account.currency,
        ),
        instalments=[
            InstalmentOut(seq=i.seq, due_date=i.due_date, amount_minor=i.amount_minor)
            for i in account.instalments
        ],
        active_flags=[
            FlagOut(kind=f.kind, reason=f.reason, created_at=f.created_at, expires_on=f.expires_on)
            for f in flags
        ],
    )


@router.get("/debtors/{debtor_id}", response_model=DebtorOut, responses=NOT_FOUND)
def get_debtor(debtor_id: int, session: SessionDep, request: Request, user: CurrentUser) -> DebtorOut:
    """The debtor's record, sensitive fields masked; each read is written to the access log (PI-9)."""
    debtor = guard.require_debtor(session, user=user.user, debtor_id=debtor_id)
    users_service.log_access(
        session,
        user_id=user.id,
        debtor_id=debtor.id,
        case_id=None,
        at=clock.now(),
        action="api_view_debtor",
        ip=request.client.host if request.client else None,
    )
    points = session.scalars(
        select(ContactPoint).where(ContactPoint.debtor_id == debtor.id).order_by(ContactPoint.id)
    )
    account_ids = list(
        session.scalars(select(Account.id).where(Account.debtor_id == debtor.id).order_by(Account.id))
    )
    return DebtorOut(
        id=debtor.id,
        kind=debtor.kind,
        name=debtor.name,
        id_type=debtor.id_type,
        national_id_masked=mask_national_id(debtor.national_id),
        date_of_birth=debtor.date_of_birth,
        gender=debtor.gender,
        address_masked=mask_address(debtor.address),
        employer_name=debtor.employer_name,
        declared_monthly_income_minor=debtor.declared_monthly_income_minor,
        preferred_language=debtor.preferred_language,
        contact_points=[
            ContactPointOut(
                id=c.id,
                kind=c.kind,
                value_masked=mask_contact_value(c.kind, c.value),
                owner_relation=c.owner_relation,
                owner_name=c.owner_name,
                debt_related=c.debt_related,
                verified=c.verified,
                is_valid=c.is_valid,
                opted_out=c.opted_out,
            )
            for c in points
        ],
        account_ids=account_ids,
    )


@router.post("/debtors/{debtor_id}/reveal", response_model=RevealOut)
def reveal_field(
    debtor_id: int, body: RevealIn, session: SessionDep, request: Request, user: CurrentUser
) -> RevealOut:
    """A masked field in clear (ID number, address, one contact point's value or one account's bank account),
    for a user who may work one of the debtor's cases (or a supervisor, compliance officer or administrator);
    a bank account only on that account's own case. The reveal is logged in the access log
    with its reason (PI-6)."""
    if body.field == "contact_point" and body.contact_point_id is None:
        raise ValidationFailed(
            "须给出 contact_point_id / give contact_point_id", code="contact_point_required"
        )
    if body.field == "bank_account" and body.account_id is None:
        raise ValidationFailed("须给出 account_id / give account_id", code="account_required")
    shown = guard.reveal(
        session,
        user=user.user,
        debtor_id=debtor_id,
        field=body.field,
        contact_point_id=body.contact_point_id,
        account_id=body.account_id,
        reason=body.reason,
        at=clock.now(),
        ip=request.client.host if request.client else None,
    )
    return RevealOut(
        debtor_id=debtor_id,
        field=body.field,
        contact_point_id=body.contact_point_id,
        account_id=body.account_id if body.field == "bank_account" else None,
        value=shown.value,
        access_log_id=shown.log_id,
    )
