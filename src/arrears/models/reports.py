"""Indexes the reports read by (no tables of their own): payments by day, contact attempts by time,
decisions by date across portfolios, pending promises by date. Declared here against the owning tables so
the reports' needs stay in one place."""

from __future__ import annotations

from sqlalchemy import Index

from arrears.models.casework import Promise
from arrears.models.contact import ContactAttempt
from arrears.models.ledger import Payment
from arrears.models.strategy import StrategyDecision

REPORT_INDEXES = (
    Index("ix_payment_received_on", Payment.received_on),
    Index("ix_contact_attempt_started_at", ContactAttempt.started_at),
    Index("ix_strategy_decision_as_of_date", StrategyDecision.as_of_date),
    Index("ix_promise_status_promised_on", Promise.status, Promise.promised_on),
)
