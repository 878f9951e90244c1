"""Case work: disputes and holds, promises, arrangements, legal cases, agencies and placements.

Holds themselves are `AccountFlag` rows (models/account.py); every change to one is logged in `hold_event`,
which is append-only.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from arrears import clock
from arrears.models.base import Base, Timestamped, UTCDateTime


class Document(Timestamped, Base):
    """A stored file (dispute evidence, a lawyer's letter, a court paper): where it is and its SHA-256."""

    __tablename__ = "document"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int | None] = mapped_column(ForeignKey("case.id"), index=True)
    account_id: Mapped[int | None] = mapped_column(ForeignKey("account.id"))
    dispute_id: Mapped[int | None] = mapped_column(ForeignKey("dispute.id"), index=True)
    legal_case_id: Mapped[int | None] = mapped_column(ForeignKey("legal_case.id"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    filename: Mapped[str] = mapped_column(String(255))
    media_type: Mapped[str] = mapped_column(String(100), default="application/octet-stream")
    sha256: Mapped[str] = mapped_column(String(64))
    path: Mapped[str] = mapped_column(Text)  # relative to the document directory
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    uploaded_by_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"))


class Dispute(Timestamped, Base):
    """The debtor contests a debt (异议). Its hold is the `flag` row; status open, upheld or rejected."""

    __tablename__ = "dispute"

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id"), index=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("case.id"), index=True)
    flag_id: Mapped[int] = mapped_column(ForeignKey("account_flag.id"))
    reason_code: Mapped[str] = mapped_column(String(32))
    description: Mapped[str | None] = mapped_column(Text)
    received_on: Mapped[date] = mapped_column(Date)
    written: Mapped[bool] = mapped_column(Boolean, default=False)
    # US-7: a written dispute within the validation period holds collection until verification is sent.
    within_validation_period: Mapped[bool] = mapped_column(Boolean, default=False)
    verification_sent_on: Mapped[date | None] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(16), default="open")
    resolution: Mapped[str | None] = mapped_column(Text)
    resolved_at: Mapped[datetime | None] = mapped_column()
    resolved_by_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"))
    recorded_by_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"))


class HoldEvent(Base):
    """One change to a hold (placed, cleared, released at expiry, dispute resolved ...). Append-only."""

    __tablename__ = "hold_event"

    id: Mapped[int] = mapped_column(primary_key=True)
    flag_id: Mapped[int] = mapped_column(ForeignKey("account_flag.id"), index=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id"))
    case_id: Mapped[int] = mapped_column(ForeignKey("case.id"), index=True)
    event: Mapped[str] = mapped_column(String(24))
    occurred_at: Mapped[datetime] = mapped_column()
    user_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"))
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(
        UTCDateTime(), default=clock.now, server_default=func.current_timestamp()
    )


class Promise(Timestamped, Base):
    """A promise to pay (承诺还款): an amount by a date. Also a debtor acknowledgment (CN-26)."""

    __tablename__ = "promise"
    __table_args__ = (Index("ix_promise_account_id_status", "account_id", "status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id"))
    case_id: Mapped[int] = mapped_column(ForeignKey("case.id"), index=True)
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    promised_on: Mapped[date] = mapped_column(Date)
    made_on: Mapped[date] = mapped_column(Date)
    channel: Mapped[str] = mapped_column(String(16))
    taken_by_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    paid_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    deadline_on: Mapped[date] = mapped_column(Date)
    kept_on: Mapped[date | None] = mapped_column(Date)
    broken_on: Mapped[date | None] = mapped_column(Date)
    evaluated_on: Mapped[date | None] = mapped_column(Date)


class Arrangement(Timestamped, Base):
    """An agreed repayment plan (还款方案) over one or more accounts of a case."""

    __tablename__ = "arrangement"
    __table_args__ = (Index("ix_arrangement_portfolio_id_status", "portfolio_id", "status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    portfolio_id: Mapped[int] = mapped_column(ForeignKey("portfolio.id"))
    case_id: Mapped[int] = mapped_column(ForeignKey("case.id"), index=True)
    kind: Mapped[str] = mapped_column(String(24))
    status: Mapped[str] = mapped_column(String(24), default="proposed")
    currency: Mapped[str] = mapped_column(String(3))
    quoted_on: Mapped[date] = mapped_column(Date)
    agreed_on: Mapped[date] = mapped_column(Date)
    request: Mapped[dict[str, Any]] = mapped_column(JSON)
    policy_name: Mapped[str] = mapped_column(String(64))
    policy_version: Mapped[int] = mapped_column(Integer)
    balance_minor: Mapped[int] = mapped_column(BigInteger)
    waived_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    payable_minor: Mapped[int] = mapped_column(BigInteger)
    remaining_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    discount_bps: Mapped[int] = mapped_column(Integer, default=0)
    within_policy: Mapped[bool] = mapped_column(Boolean, default=True)
    requires_approval: Mapped[bool] = mapped_column(Boolean, default=False)
    approval_reasons: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    accrual_paused: Mapped[bool] = mapped_column(Boolean, default=False)
    asset_description: Mapped[str | None] = mapped_column(Text)
    asset_value_minor: Mapped[int | None] = mapped_column(BigInteger)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"))
    paid_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    breach_on: Mapped[date | None] = mapped_column(Date)
    breached_seq: Mapped[int | None] = mapped_column(Integer)
    completed_on: Mapped[date | None] = mapped_column(Date)
    evaluated_on: Mapped[date | None] = mapped_column(Date)

    instalments: Mapped[list[ArrangementInstalment]] = relationship(
        order_by="ArrangementInstalment.seq", cascade="all, delete-orphan"
    )
    waivers: Mapped[list[ArrangementWaiver]] = relationship(cascade="all, delete-orphan")
    accounts: Mapped[list[ArrangementAccount]] = relationship(cascade="all, delete-orphan")


class ArrangementAccount(Base):
    """Which accounts a plan covers."""

    __tablename__ = "arrangement_account"
    __table_args__ = (UniqueConstraint("arrangement_id", "account_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    arrangement_id: Mapped[int] = mapped_column(ForeignKey("arrangement.id"))
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id"), index=True)


class ArrangementInstalment(Base):
    """One line of a plan's schedule and where it stands on the last evaluation."""

    __tablename__ = "arrangement_instalment"
    __table_args__ = (UniqueConstraint("arrangement_id", "seq"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    arrangement_id: Mapped[int] = mapped_column(ForeignKey("arrangement.id"))
    seq: Mapped[int] = mapped_column(Integer)
    due_on: Mapped[date] = mapped_column(Date)
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(16), default="regular")
    status: Mapped[str] = mapped_column(String(16), default="pending")
    paid_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    paid_on: Mapped[date | None] = mapped_column(Date)


class ArrangementWaiver(Base):
    """What a plan waives, per account and component; the ledger posts it once the plan is kept."""

    __tablename__ = "arrangement_waiver"
    __table_args__ = (UniqueConstraint("arrangement_id", "account_id", "component"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    arrangement_id: Mapped[int] = mapped_column(ForeignKey("arrangement.id"))
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id"))
    component: Mapped[str] = mapped_column(String(16))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    posted_at: Mapped[datetime | None] = mapped_column()
    # What the ledger waived when the settlement was kept (payments may have moved it between components).
    posted_minor: Mapped[int | None] = mapped_column(BigInteger)


class Approval(Base):
    """A supervisor's decision on something that needs one (an arrangement, a legal referral)."""

    __tablename__ = "approval"
    __table_args__ = (Index("ix_approval_subject_kind_subject_id", "subject_kind", "subject_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    subject_kind: Mapped[str] = mapped_column(String(24))
    subject_id: Mapped[int] = mapped_column(Integer)
    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id"))
    decided_at: Mapped[datetime] = mapped_column()
    decision: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text)


class LegalCase(Timestamped, Base):
    """A legal step (lawyer's letter, suit, arbitration, enforcement, preservation) over some accounts."""

    __tablename__ = "legal_case"

    id: Mapped[int] = mapped_column(primary_key=True)
    portfolio_id: Mapped[int] = mapped_column(ForeignKey("portfolio.id"), index=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("case.id"), index=True)
    kind: Mapped[str] = mapped_column(String(24))
    status: Mapped[str] = mapped_column(String(24), default="pending_approval")
    body: Mapped[str | None] = mapped_column(String(200))  # court, arbitration commission
    case_number: Mapped[str | None] = mapped_column(String(100))
    milestone: Mapped[str | None] = mapped_column(String(24))
    law_firm_name: Mapped[str] = mapped_column(String(200))
    law_firm_address: Mapped[str | None] = mapped_column(Text)
    law_firm_phone: Mapped[str | None] = mapped_column(String(64))
    lawyer_name: Mapped[str | None] = mapped_column(String(100))
    referred_on: Mapped[date] = mapped_column(Date)
    referred_by_id: Mapped[int] = mapped_column(ForeignKey("app_user.id"))
    approved_by_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"))
    approved_at: Mapped[datetime | None] = mapped_column()

    accounts: Mapped[list[LegalCaseAccount]] = relationship(cascade="all, delete-orphan")
    milestones: Mapped[list[LegalMilestone]] = relationship(
        order_by="LegalMilestone.id", cascade="all, delete-orphan"
    )
    costs: Mapped[list[LegalCost]] = relationship(order_by="LegalCost.id", cascade="all, delete-orphan")


class LegalCaseAccount(Base):
    """Which accounts a legal case is about."""

    __tablename__ = "legal_case_account"
    __table_args__ = (UniqueConstraint("legal_case_id", "account_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    legal_case_id: Mapped[int] = mapped_column(ForeignKey("legal_case.id"))
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id"), index=True)


class LegalMilestone(Base):
    """A milestone a legal case reached, on a date, with the document that proves it."""

    __tablename__ = "legal_milestone"

    id: Mapped[int] = mapped_column(primary_key=True)
    legal_case_id: Mapped[int] = mapped_column(ForeignKey("legal_case.id"), index=True)
    milestone: Mapped[str] = mapped_column(String(24))
    occurred_on: Mapped[date] = mapped_column(Date)
    document_id: Mapped[int | None] = mapped_column(ForeignKey("document.id"))
    note: Mapped[str | None] = mapped_column(Text)
    recorded_by_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"))
    created_at: Mapped[datetime] = mapped_column(
        UTCDateTime(), default=clock.now, server_default=func.current_timestamp()
    )


class LegalCost(Base):
    """A cost of enforcing the claim (court fee, lawyer's fee), posted to the ledger as ``costs`` when it
    is recorded (``posting_id``); a correction reverses that posting (``reversed_on``) and, for a new
    amount, records a new cost."""

    __tablename__ = "legal_cost"

    id: Mapped[int] = mapped_column(primary_key=True)
    legal_case_id: Mapped[int] = mapped_column(ForeignKey("legal_case.id"), index=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id"))
    description: Mapped[str] = mapped_column(String(200))
    costs_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    incurred_on: Mapped[date] = mapped_column(Date)
    posted: Mapped[bool] = mapped_column(Boolean, default=False)
    posting_id: Mapped[int | None] = mapped_column(BigInteger)
    reversed_on: Mapped[date | None] = mapped_column(Date)
    reversal_reason: Mapped[str | None] = mapped_column(Text)
    recorded_by_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"))


class EvidenceBundle(Base):
    """One evidence bundle generated for a case: who, when, for which date, and the ZIP's SHA-256.

    Append-only: the record of what evidence left the system. The ZIP itself is a stored `Document`.
    """

    __tablename__ = "evidence_bundle"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("case.id"), index=True)
    legal_case_id: Mapped[int | None] = mapped_column(ForeignKey("legal_case.id"))
    document_id: Mapped[int] = mapped_column(ForeignKey("document.id"))
    as_of: Mapped[date] = mapped_column(Date)
    generated_at: Mapped[datetime] = mapped_column()
    generated_by_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"))
    generator_version: Mapped[str] = mapped_column(String(32))
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    file_count: Mapped[int] = mapped_column(Integer)
    chain_ok: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(
        UTCDateTime(), default=clock.now, server_default=func.current_timestamp()
    )


class Agency(Timestamped, Base):
    """An outside collection agency (委外机构). CN-7: only listed, active agencies get cases."""

    __tablename__ = "agency"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    listed: Mapped[bool] = mapped_column(Boolean, default=False)  # on the published partner list
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    commission_bps: Mapped[int] = mapped_column(Integer, default=0)
    contact: Mapped[str | None] = mapped_column(Text)
    # Networks (CIDR) the agency's users may sign in and use tokens from; empty = anywhere.
    login_ip_allowlist: Mapped[list[str]] = mapped_column(JSON, default=list)


class Placement(Timestamped, Base):
    """A case placed with an agency (委案) for a term, until it expires or is recalled (撤案)."""

    __tablename__ = "placement"
    __table_args__ = (Index("ix_placement_agency_id_recalled_on", "agency_id", "recalled_on"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("case.id"), index=True)
    agency_id: Mapped[int] = mapped_column(ForeignKey("agency.id"))
    placed_on: Mapped[date] = mapped_column(Date)
    expires_on: Mapped[date] = mapped_column(Date)
    placed_by_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"))
    recalled_on: Mapped[date | None] = mapped_column(Date)
    recalled_by_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"))
    recall_reason: Mapped[str | None] = mapped_column(Text)
