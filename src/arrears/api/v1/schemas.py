"""JSON shapes of the v1 API."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from arrears.models.base import MAX_ID


class ErrorOut(BaseModel):
    """Every error: a machine code, a message for people (Chinese / English) and optional details."""

    code: str
    message: str
    details: Any = None


# Documented on every authenticated router (errors share the ErrorOut shape).
AUTH_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut, "description": "no credentials, or unknown / expired / revoked ones"},
    403: {"model": ErrorOut, "description": "the role, the case's assignment or placement does not allow it"},
    404: {"model": ErrorOut, "description": "not found"},
    409: {"model": ErrorOut, "description": "conflict with the current state"},
    422: {"model": ErrorOut, "description": "invalid request"},
}


class RevealIn(BaseModel):
    """Which masked field to see in clear, and why (the reason goes to the access log)."""

    field: Literal["national_id", "address", "contact_point", "bank_account"]
    # ids beyond the tables' INTEGER keys are invalid input on every database (not a missing row)
    contact_point_id: int | None = Field(default=None, le=MAX_ID, description="for field=contact_point")
    account_id: int | None = Field(
        default=None,
        le=MAX_ID,
        description="for field=bank_account: the debtor's account whose bank account to show",
    )
    reason: str = Field(
        min_length=3, max_length=500, examples=["debtor asked to confirm identity on the call"]
    )


class RevealOut(BaseModel):
    debtor_id: int
    field: str
    contact_point_id: int | None
    account_id: int | None = None
    value: str | None
    access_log_id: int


class PortfolioOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    creditor: str
    currency: str
    timezone: str
    rule_pack: str
    strategy: str
    locale: str
    accounts: int


class BalanceOut(BaseModel):
    principal_minor: int
    interest_minor: int
    penalty_minor: int
    fees_minor: int
    costs_minor: int
    total_minor: int
    overdue_amount_minor: int
    currency: str


class InstalmentOut(BaseModel):
    seq: int
    due_date: date
    amount_minor: int


class FlagOut(BaseModel):
    kind: str
    reason: str | None
    created_at: datetime
    expires_on: date | None


class AccountOut(BaseModel):
    id: int
    portfolio_id: int
    case_id: int
    debtor_id: int
    external_ref: str
    product: str
    status: str
    currency: str
    original_principal_minor: int | None
    interest_rate_annual_ppm: int | None
    penalty_rate_annual_ppm: int | None
    origination_date: date | None
    due_date: date
    last_due_date: date | None
    days_past_due: int
    is_secured: bool
    bank_account_masked: str | None = Field(
        default=None, description="the repayment card or bank account, last 4 digits only (PI-6)"
    )
    bank_name: str | None = None
    balance: BalanceOut
    instalments: list[InstalmentOut]
    active_flags: list[FlagOut]


class ContactPointOut(BaseModel):
    id: int
    kind: str
    value_masked: str | None
    owner_relation: str
    owner_name: str | None
    debt_related: bool
    verified: bool
    is_valid: bool
    opted_out: bool


class DebtorOut(BaseModel):
    id: int
    kind: str
    name: str
    id_type: str | None
    national_id_masked: str | None
    date_of_birth: date | None
    gender: str | None
    address_masked: str | None
    employer_name: str | None
    declared_monthly_income_minor: int | None
    preferred_language: str | None
    contact_points: list[ContactPointOut]
    account_ids: list[int]


class Health(BaseModel):
    status: str
    database: str
    version: str
