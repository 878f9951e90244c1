"""The contact record and what the compliance gate reads about a debtor.

``contact_attempt`` is append-only: a correction is a new row that references the row it corrects
(``corrects_id``). Each case's attempts form a hash chain (``seq``, ``prev_hash``, ``hash``) so that any
change made behind the application's back is detected by `arrears audit verify`.
"""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Any

from sqlalchemy import JSON, Boolean, Date, ForeignKey, Index, Integer, String, Text, Time, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from arrears.models.base import Base, Timestamped


class ContactAttempt(Timestamped, Base):
    """One call, SMS, e-mail, letter, visit or lawyer's letter, allowed or blocked, with its outcome.

    Immutable once written (``created_at`` / ``updated_at`` are bookkeeping, outside the hash).
    """

    __tablename__ = "contact_attempt"
    __table_args__ = (
        UniqueConstraint("case_id", "seq"),
        # The gate loads a case's history with one query on this index.
        Index("ix_contact_attempt_case_id_started_at", "case_id", "started_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("case.id"))
    seq: Mapped[int] = mapped_column(Integer)  # 1, 2, 3 ... per case: the position in the hash chain
    contact_point_id: Mapped[int | None] = mapped_column(ForeignKey("contact_point.id"))
    channel: Mapped[str] = mapped_column(String(16))
    direction: Mapped[str] = mapped_column(String(8))
    purpose: Mapped[str] = mapped_column(String(24))
    # The debt collector in the legal sense (institution or agency); US-3 counts calls per collector.
    collector: Mapped[str] = mapped_column(String(100))
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"))
    account_ids: Mapped[list[int]] = mapped_column(JSON)  # the accounts discussed, sorted
    started_at: Mapped[datetime] = mapped_column()
    ended_at: Mapped[datetime | None] = mapped_column()
    outcome: Mapped[str] = mapped_column(String(24))
    notes: Mapped[str | None] = mapped_column(Text)
    message_text: Mapped[str | None] = mapped_column(Text)  # the SMS / e-mail / script that was checked
    visit_place: Mapped[str | None] = mapped_column(Text)
    visit_staff: Mapped[str | None] = mapped_column(Text)
    id_shown: Mapped[bool | None] = mapped_column(Boolean)
    recording_ref: Mapped[str | None] = mapped_column(String(400))  # link to a recording or document
    # CN-25: a demand counts when it reached the debtor; these hold the delivery evidence.
    delivered_at: Mapped[datetime | None] = mapped_column()
    evidence_ref: Mapped[str | None] = mapped_column(String(400))
    allowed: Mapped[bool] = mapped_column(Boolean)
    rule_ids: Mapped[str] = mapped_column(String(200), default="")  # blocking rule ids, comma-separated
    decision: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    corrects_id: Mapped[int | None] = mapped_column(ForeignKey("contact_attempt.id"))
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class ContactConsent(Timestamped, Base):
    """A consent the debtor gave (quiet hours, call cap, call frequency), for one contact point or all."""

    __tablename__ = "contact_consent"

    id: Mapped[int] = mapped_column(primary_key=True)
    debtor_id: Mapped[int] = mapped_column(ForeignKey("debtor.id"), index=True)
    contact_point_id: Mapped[int | None] = mapped_column(ForeignKey("contact_point.id"))
    scope: Mapped[str] = mapped_column(String(24))
    account_ids: Mapped[list[int] | None] = mapped_column(JSON)  # None = every debt
    granted_at: Mapped[datetime] = mapped_column()
    expires_at: Mapped[datetime | None] = mapped_column()
    revoked_at: Mapped[datetime | None] = mapped_column()
    source_attempt_id: Mapped[int | None] = mapped_column(ForeignKey("contact_attempt.id"))


class InconvenientTime(Timestamped, Base):
    """A time the debtor named as inconvenient (US-1), local time; may wrap midnight."""

    __tablename__ = "inconvenient_time"

    id: Mapped[int] = mapped_column(primary_key=True)
    debtor_id: Mapped[int] = mapped_column(ForeignKey("debtor.id"), index=True)
    starts: Mapped[time] = mapped_column(Time)
    ends: Mapped[time] = mapped_column(Time)
    weekdays: Mapped[str] = mapped_column(String(16), default="")  # "0,1,2" (Monday 0); empty = every day
    removed_at: Mapped[datetime | None] = mapped_column()


class ChannelOptOut(Timestamped, Base):
    """The debtor opted out of a whole channel (SMS, e-mail ...)."""

    __tablename__ = "channel_opt_out"

    id: Mapped[int] = mapped_column(primary_key=True)
    debtor_id: Mapped[int] = mapped_column(ForeignKey("debtor.id"), index=True)
    channel: Mapped[str] = mapped_column(String(16))
    opted_out_at: Mapped[datetime] = mapped_column()
    withdrawn_at: Mapped[datetime | None] = mapped_column()


class AccountLimitation(Timestamped, Base):
    """The limitation date of one account (CN-20..CN-26, US-8), whether it has passed, and what set it.

    Written set-based per portfolio by the daily run, which rewrites only the rows whose result changed:
    ``as_of`` is the date of the refresh that last changed the row (a debt becomes time-barred on the
    first refresh after its ``limitation_on``). The gate reads ``limitation_on`` to know which accounts
    are time-barred at the moment of a contact.
    """

    __tablename__ = "account_limitation"

    # no foreign keys: the daily run replaces a portfolio's rows in bulk (migration 20261201_run)
    account_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    portfolio_id: Mapped[int] = mapped_column(Integer, index=True)
    as_of: Mapped[date] = mapped_column(Date)
    limitation_on: Mapped[date | None] = mapped_column(Date)
    time_barred: Mapped[bool] = mapped_column(Boolean)
    starts_on: Mapped[date | None] = mapped_column(Date)
    rule_id: Mapped[str] = mapped_column(String(16))
    set_by_kind: Mapped[str | None] = mapped_column(String(32))
    set_by_on: Mapped[date | None] = mapped_column(Date)
    set_by_ref: Mapped[str | None] = mapped_column(String(64))
    waived_by_ref: Mapped[str | None] = mapped_column(String(64))
    explanation_zh: Mapped[str] = mapped_column(Text)
    explanation_en: Mapped[str] = mapped_column(Text)


class ChainAnchor(Timestamped, Base):
    """A periodic anchor of the contact record: every case's chain head at one moment and their digest.

    The digest is meant to be kept outside the database (printed, mailed, written to a ledger an operator
    trusts): a rewritten and re-hashed newest attempt keeps its own chain intact but no longer matches the
    anchored head, and rewritten anchor rows no longer match the digest kept outside.
    """

    __tablename__ = "chain_anchor"

    id: Mapped[int] = mapped_column(primary_key=True)
    anchored_at: Mapped[datetime] = mapped_column()
    cases: Mapped[int] = mapped_column(Integer)
    attempts: Mapped[int] = mapped_column(Integer)
    digest: Mapped[str] = mapped_column(String(64), index=True)


class ChainAnchorHead(Base):
    """One case's chain head (its last ``seq`` and that attempt's ``hash``) in an anchor."""

    __tablename__ = "chain_anchor_head"

    anchor_id: Mapped[int] = mapped_column(ForeignKey("chain_anchor.id"), primary_key=True)
    case_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(Integer)
    hash: Mapped[str] = mapped_column(String(64))
