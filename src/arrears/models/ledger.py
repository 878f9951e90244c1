"""The ledger's tables: postings (append-only), received payments and per-portfolio ledger settings.

Balances are derived from `Posting` rows; the balance columns on ``account`` are a cache that
`arrears.ledger.service.verify_balances` checks against them.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Date, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from arrears.models.base import Base, Timestamped

# 64-bit keys on PostgreSQL; SQLite only auto-numbers an INTEGER PRIMARY KEY.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class LedgerSetting(Timestamped, Base):
    """How a portfolio's ledger computes: day count, rounding, allocation order, accrual bases.

    A portfolio without a row uses the defaults (ACT/365, half up, ``cn-default``, fixed rates, interest on
    the principal, penalty interest on the overdue principal).
    """

    __tablename__ = "ledger_setting"

    portfolio_id: Mapped[int] = mapped_column(ForeignKey("portfolio.id"), primary_key=True)
    day_count: Mapped[str] = mapped_column(String(8), default="ACT/365")
    rounding: Mapped[str] = mapped_column(String(16), default="half_up")
    allocation_policy: Mapped[str] = mapped_column(String(64), default="cn-default")
    rate_basis: Mapped[str] = mapped_column(String(16), default="fixed")
    interest_base: Mapped[str] = mapped_column(String(24), default="principal")
    penalty_base: Mapped[str] = mapped_column(String(24), default="overdue_principal")


class Payment(Timestamped, Base):
    """Money received for a debtor: by hand (receipt), through the API or in a bank file.

    ``reference`` is the bank's transaction number or the collector's receipt number, unique within the
    portfolio (a duplicate is refused). ``idempotency_key`` makes an API retry post once.
    """

    __tablename__ = "payment"
    __table_args__ = (
        UniqueConstraint("portfolio_id", "reference"),
        Index("ix_payment_debtor_id", "debtor_id"),
        # partial: file and manual payments leave it empty and add nothing to the index
        Index(
            "uq_payment_idempotency_key",
            "idempotency_key",
            unique=True,
            postgresql_where=text("idempotency_key IS NOT NULL"),
            sqlite_where=text("idempotency_key IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    # References without database foreign keys: payments and postings are written a million at a time,
    # and a per-row key check costs several times the insert itself. The service resolves every reference
    # before writing, in the same transaction.
    portfolio_id: Mapped[int] = mapped_column(Integer)
    debtor_id: Mapped[int] = mapped_column(Integer)
    # The account the payer named (借据号), if any: the debtor's designation under CN-27.
    account_id: Mapped[int | None] = mapped_column(Integer)
    reference: Mapped[str] = mapped_column(String(100))
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    request_sha256: Mapped[str | None] = mapped_column(String(64))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    received_on: Mapped[date] = mapped_column(Date)
    source: Mapped[str] = mapped_column(String(16))  # manual, api, file
    status: Mapped[str] = mapped_column(String(16), default="posted")  # posted, reversed
    policy: Mapped[str] = mapped_column(String(64))
    designation: Mapped[str | None] = mapped_column(String(400))  # account ids, comma separated
    allocated_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    credit_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    collector: Mapped[str | None] = mapped_column(String(64))
    import_batch_id: Mapped[int | None] = mapped_column(Integer)
    reversed_on: Mapped[date | None] = mapped_column(Date)
    reversed_at: Mapped[datetime | None] = mapped_column()
    reversal_reason: Mapped[str | None] = mapped_column(Text)


class Posting(Timestamped, Base):
    """One ledger line (see `arrears.ledger.postings` for the sign convention and the invariants).

    ``component`` NULL is the account's credit balance. Never updated or deleted: a reversal is a new row
    naming the undone one (unique, so nothing is reversed twice).
    """

    __tablename__ = "posting"
    __table_args__ = (
        Index("ix_posting_account_id_effective_date", "account_id", "effective_date"),
        # Partial: only reversals fill it. No index on payment_id: a payment's postings are found through
        # its debtor's accounts (the index above), which keeps a million-row payment file cheaper to write.
        Index(
            "uq_posting_reverses_posting_id",
            "reverses_posting_id",
            unique=True,
            postgresql_where=text("reverses_posting_id IS NOT NULL"),
            sqlite_where=text("reverses_posting_id IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    # No database foreign keys (see `Payment`): the service writes postings only for accounts and payments
    # it has just read, and `verify_balances` reconciles them. ``portfolio_id`` is the shard key.
    portfolio_id: Mapped[int] = mapped_column(Integer)
    account_id: Mapped[int] = mapped_column(Integer)
    component: Mapped[str | None] = mapped_column(String(16))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(16))
    effective_date: Mapped[date] = mapped_column(Date)
    payment_id: Mapped[int | None] = mapped_column(BigInteger)
    # Unique: nothing is reversed twice. The target's existence and mirror amount are checked by the
    # service (`postings.check_ledger`) before the reversal is written.
    reverses_posting_id: Mapped[int | None] = mapped_column(BigInteger)
    rule_id: Mapped[str | None] = mapped_column(String(80))
