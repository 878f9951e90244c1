"""JSON shapes of the v1 API."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, ConfigDict


class ErrorOut(BaseModel):
    code: str
    message: str


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
