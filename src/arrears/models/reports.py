"""Indexes the reports read by (no tables of their own): payments by day, contact attempts by time,
pending promises by date (decisions by date across portfolios use the decision table's
``(as_of_date, portfolio_id)`` index). Declared here against the owning tables so
the reports' needs stay in one place."""

from __future__ import annotations

from sqlalchemy import Index

from arrears.models.casework import Promise
from arrears.models.contact import ContactAttempt
from arrears.models.ledger import Payment

REPORT_INDEXES = (
    Index("ix_payment_received_on", Payment.received_on),
    Index("ix_contact_attempt_started_at", ContactAttempt.started_at),
    Index("ix_promise_status_promised_on", Promise.status, Promise.promised_on),
)
