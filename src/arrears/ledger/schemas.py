"""In/out shapes of the ledger services, shared by the API and the CLI (amounts in minor units)."""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel, Field


class SplitOut(BaseModel):
    """One posting of a payment: where a part of it went and the rule that sent it there."""

    posting_id: int
    account_id: int
    external_ref: str
    component: str | None = Field(
        description="principal, interest, penalty, fees, costs; null = credit balance"
    )
    kind: str = Field(description="payment, credit, or reversal")
    amount_minor: int = Field(description="signed change to what the debtor owes (negative = paid)")
    rule_id: str | None
    effective_date: date


class PaymentOut(BaseModel):
    """A received payment and how it was split (``allocated_minor + credit_minor == amount_minor``)."""

    id: int
    portfolio_id: int
    debtor_id: int
    account_id: int | None
    reference: str
    amount_minor: int
    currency: str
    received_on: date
    source: str
    status: str
    policy: str
    allocated_minor: int
    credit_minor: int
    collector: str | None = None
    reversed_on: date | None = None
    reversal_reason: str | None = None
    splits: list[SplitOut] = Field(default_factory=list)
    reversals: list[SplitOut] = Field(default_factory=list)


class BalanceMismatch(BaseModel):
    """A cached balance on ``account`` that differs from the sum of its postings, or a negative one."""

    account_id: int
    component: str  # a component, or "credit"
    cached_minor: int
    postings_minor: int


class AccrualRun(BaseModel):
    """What one accrual run of a portfolio did."""

    portfolio_id: int
    as_of: date
    accounts: int = 0
    opened_accounts: int = 0  # entered the ledger first (their opening postings)
    accrued_accounts: int = 0
    interest_minor: int = 0
    penalty_minor: int = 0
    postings: int = 0
    capped_accounts: int = 0
    caught_up_accounts: int = 0
    stopped_accounts: int = 0
    already_done_accounts: int = 0
