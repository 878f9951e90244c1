"""Accounts (one debt each), their instalment schedules, cases and flags."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Boolean, Date, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.ext.hybrid import hybrid_property
from sqlalchemy.orm import Mapped, mapped_column, relationship

from arrears.models.base import Base, Timestamped

# The account import writes cases, accounts and instalments a million at a time: on PostgreSQL a database
# foreign key costs a trigger call per written row (the largest part of the import's time when it had them).
# The import writes these references only to rows it created or read in the same transaction, and
# `portfolios.service.verify_references` checks them; the relationships below name their joins instead.


class Case(Timestamped, Base):
    """The collection file of one debtor within one portfolio."""

    __tablename__ = "case"
    __table_args__ = (UniqueConstraint("portfolio_id", "debtor_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    portfolio_id: Mapped[int] = mapped_column(Integer)  # portfolio.id (no database FK, see above)
    debtor_id: Mapped[int] = mapped_column(Integer, index=True)  # debtor.id
    # Not indexed: the daily run rewrites stage and collector together, and without an index on either the
    # update stays on the row's page (PostgreSQL keeps half of each page free for it, fillfactor 50).
    # app_user.id, without a database foreign key: a portfolio's first allocation gives every case its
    # collector in one update, and the key's check was a trigger call per case (migration
    # 20261214_case_assignee_unchecked). The allocation and a supervisor's reassignment give cases only to
    # users with an active collector profile, and users are deactivated, never deleted.
    assignee_id: Mapped[int | None] = mapped_column(Integer)
    # Since when the case has been with ``assignee_id``: the day of the allocation that gave it to them
    # (None without a collector, or for a collector set without an allocation event). Queue rotation
    # counts from it; written with ``assignee_id`` by the allocation and by a supervisor's reassignment.
    assigned_on: Mapped[date | None] = mapped_column(Date)
    stage: Mapped[str | None] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default="open")
    # A plan on the case was breached on this day and nobody has re-negotiated yet (the daily run reads it).
    needs_renegotiation_since: Mapped[date | None] = mapped_column(Date)

    accounts: Mapped[list[Account]] = relationship(
        back_populates="case", primaryjoin="Case.id == foreign(Account.case_id)"
    )


class Account(Timestamped, Base):
    """One debt: a card account, a loan, an invoice. Balances are cached by component."""

    __tablename__ = "account"
    __table_args__ = (
        UniqueConstraint("portfolio_id", "external_ref"),
        Index("ix_account_case_id", "case_id"),
        Index("ix_account_debtor_id", "debtor_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # portfolio.id, case.id, debtor.id: no database FKs (see `Case`)
    portfolio_id: Mapped[int] = mapped_column(Integer)
    case_id: Mapped[int] = mapped_column(Integer)
    debtor_id: Mapped[int] = mapped_column(Integer)
    external_ref: Mapped[str] = mapped_column(String(100))
    product: Mapped[str] = mapped_column(String(24))
    currency: Mapped[str] = mapped_column(String(3))
    original_principal_minor: Mapped[int | None] = mapped_column(BigInteger)
    # Annual rates in parts per million (24% a year = 240000): exact integers, no floats.
    interest_rate_annual_ppm: Mapped[int | None] = mapped_column(Integer)
    penalty_rate_annual_ppm: Mapped[int | None] = mapped_column(Integer)
    origination_date: Mapped[date | None] = mapped_column(Date)
    # Earliest unpaid due date: days past due count from here.
    due_date: Mapped[date] = mapped_column(Date)
    # Due date of the last instalment (CN-21 limitation start for instalment debts).
    last_due_date: Mapped[date | None] = mapped_column(Date)
    instalment_count: Mapped[int | None] = mapped_column(Integer)
    instalment_amount_minor: Mapped[int | None] = mapped_column(BigInteger)
    first_instalment_date: Mapped[date | None] = mapped_column(Date)
    principal_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    interest_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    penalty_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    fees_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    costs_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    overdue_amount_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    is_secured: Mapped[bool] = mapped_column(Boolean, default=False)
    # The card or bank account the debt is repaid from (digits only) and its bank; sensitive (PI-6):
    # every view shows `users.masking.mask_bank_account` unless a logged reveal asks for it in clear.
    bank_account: Mapped[str | None] = mapped_column(String(32))
    bank_name: Mapped[str | None] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(16), default="active")
    validation_notice_sent_on: Mapped[date | None] = mapped_column(Date)  # US-7
    # Ledger state (arrears.ledger): opening postings made on, credit balance, accrual bookkeeping.
    ledger_opened_on: Mapped[date | None] = mapped_column(Date)
    credit_minor: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    # Last day accrued. Empty: the account follows its portfolio's ``ledger_accrued_through`` (from its
    # opening day on; before any accrual, the opening day), so a run writes only the accounts whose balances
    # or accrual state change. Filled where the account's day differs from the portfolio's.
    # Read it through `arrears.ledger.service.accrued_through`.
    accrued_through_date: Mapped[date | None] = mapped_column(Date)
    interest_carry_sub: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    penalty_carry_sub: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    charged_minor: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    accrual_stop_date: Mapped[date | None] = mapped_column(Date)
    accrual_stop_reason: Mapped[str | None] = mapped_column(String(32))

    case: Mapped[Case] = relationship(
        back_populates="accounts", primaryjoin="foreign(Account.case_id) == Case.id"
    )
    instalments: Mapped[list[Instalment]] = relationship(
        back_populates="account",
        order_by="Instalment.seq",
        primaryjoin="Account.id == foreign(Instalment.account_id)",
    )

    @hybrid_property
    def balance_minor(self) -> int:
        """The balance (every component), on a loaded row or as a SQL expression (``Account.balance_minor``)."""
        return (
            self.principal_minor
            + self.interest_minor
            + self.penalty_minor
            + self.fees_minor
            + self.costs_minor
        )


class Instalment(Timestamped, Base):
    """One instalment of an instalment product's contractual schedule."""

    __tablename__ = "instalment"
    __table_args__ = (UniqueConstraint("account_id", "seq"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(Integer)  # account.id (no database FK, see `Case`)
    seq: Mapped[int] = mapped_column(Integer)
    due_date: Mapped[date] = mapped_column(Date)
    amount_minor: Mapped[int] = mapped_column(BigInteger)

    account: Mapped[Account] = relationship(
        back_populates="instalments", primaryjoin="foreign(Instalment.account_id) == Account.id"
    )


class AccountFlag(Timestamped, Base):
    """A dispute, cease request, deceased, bankruptcy, complaint or legal hold on an account.

    Collection contact stops on a flagged account until an authorised user clears the flag with a reason.
    """

    __tablename__ = "account_flag"
    __table_args__ = (Index("ix_account_flag_account_id_kind", "account_id", "kind"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id"))
    case_id: Mapped[int] = mapped_column(ForeignKey("case.id"), index=True)
    kind: Mapped[str] = mapped_column(String(24))
    reason_code: Mapped[str | None] = mapped_column(String(32))
    reason: Mapped[str | None] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(32), default="import")
    expires_on: Mapped[date | None] = mapped_column(Date)
    cleared_at: Mapped[datetime | None] = mapped_column()
    cleared_by_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"))
    clear_reason: Mapped[str | None] = mapped_column(Text)
