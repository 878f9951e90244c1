"""The daily run's tables: runs and their lock, per-account decisions and strategy state, the outbox,
work items, collectors' queue profiles, allocation history and a portfolio's strategy settings.
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
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from arrears import clock
from arrears.models.base import Base, Timestamped, UTCDateTime

# Tables that grow by a row per account and day use 64-bit keys; SQLite's rowid alias needs INTEGER.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class StrategyRun(Timestamped, Base):
    """One daily run of a portfolio for one as-of date: what it did, how long it took, what went wrong."""

    __tablename__ = "strategy_run"
    __table_args__ = (Index("ix_strategy_run_portfolio_id_as_of_date", "portfolio_id", "as_of_date"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    portfolio_id: Mapped[int] = mapped_column(ForeignKey("portfolio.id"))
    as_of_date: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(16), default="running")  # running, succeeded, failed
    mode: Mapped[str] = mapped_column(String(16), default="in_process")  # in_process, distributed
    partitions: Mapped[int] = mapped_column(Integer, default=1)
    strategy: Mapped[str] = mapped_column(String(64))
    strategy_version: Mapped[int] = mapped_column(Integer)
    experiment: Mapped[str | None] = mapped_column(String(64))
    challenger: Mapped[str | None] = mapped_column(String(64))
    challenger_share_bp: Mapped[int | None] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column()
    finished_at: Mapped[datetime | None] = mapped_column()
    duration_ms: Mapped[int | None] = mapped_column(Integer)
    accounts_evaluated: Mapped[int] = mapped_column(Integer, default=0)
    accounts_skipped: Mapped[int] = mapped_column(Integer, default=0)  # decided already for this date
    changes: Mapped[int] = mapped_column(Integer, default=0)
    outbox_written: Mapped[int] = mapped_column(Integer, default=0)
    work_items_written: Mapped[int] = mapped_column(Integer, default=0)
    rescheduled: Mapped[int] = mapped_column(Integer, default=0)
    dropped: Mapped[int] = mapped_column(Integer, default=0)
    stage_counts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    action_counts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    blocked_by_rule: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    arm_counts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    allocation_counts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    phases: Mapped[list[Any]] = mapped_column(JSON, default=list)
    errors: Mapped[list[Any]] = mapped_column(JSON, default=list)
    requested_by: Mapped[str | None] = mapped_column(String(64))


class StrategyRunLock(Base):
    """Present while a run of the portfolio is in progress: one run per portfolio at a time."""

    __tablename__ = "strategy_run_lock"

    portfolio_id: Mapped[int] = mapped_column(
        ForeignKey("portfolio.id"), primary_key=True, autoincrement=False
    )
    run_id: Mapped[int] = mapped_column(ForeignKey("strategy_run.id"))
    acquired_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=clock.now)


class PortfolioStrategy(Timestamped, Base):
    """A portfolio's queue set and champion / challenger settings (the champion is ``portfolio.strategy``)."""

    __tablename__ = "portfolio_strategy"

    portfolio_id: Mapped[int] = mapped_column(
        ForeignKey("portfolio.id"), primary_key=True, autoincrement=False
    )
    queue_set: Mapped[str] = mapped_column(String(64), default="default")
    experiment: Mapped[str | None] = mapped_column(String(64))
    challenger: Mapped[str | None] = mapped_column(String(64))
    challenger_share_bp: Mapped[int | None] = mapped_column(Integer)
    salt: Mapped[str | None] = mapped_column(String(200))
    assigned_by: Mapped[str | None] = mapped_column(String(64))


class AccountStrategyState(Base):
    """An account's place in its strategy after the last run: strategy, stage, since when; ``changed_on``
    and ``run_id`` tell the run that last moved it (a run writes only the rows whose place changed; what
    was decided each day is in ``strategy_decision``)."""

    __tablename__ = "account_strategy_state"
    __table_args__ = (Index("ix_account_strategy_state_portfolio_id", "portfolio_id"),)

    # no foreign keys: written in bulk by the daily run from rows it read (migration 20261201_run)
    account_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    portfolio_id: Mapped[int] = mapped_column(Integer)
    strategy: Mapped[str | None] = mapped_column(String(64))
    stage: Mapped[str | None] = mapped_column(String(32))
    stage_entered_on: Mapped[date | None] = mapped_column(Date)
    pinned_stage: Mapped[str | None] = mapped_column(String(32))  # set by hand by a supervisor
    changed_on: Mapped[date] = mapped_column(Date)
    run_id: Mapped[int | None] = mapped_column(Integer)


class AccountActionState(Base):
    """When an action was last planned for an account and how often (the strategy's repeat rules)."""

    __tablename__ = "account_action_state"

    account_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)  # no FK: bulk
    action_key: Mapped[str] = mapped_column(String(80), primary_key=True)
    # the account's, so a run reads its portfolio's rows without the account table (never changes)
    portfolio_id: Mapped[int] = mapped_column(Integer, index=True)
    last_on: Mapped[date] = mapped_column(Date)
    times: Mapped[int] = mapped_column(Integer)


class StrategyDecision(Base):
    """One account's decision on one as-of date: stage, matched condition, planned actions (PI-7)."""

    __tablename__ = "strategy_decision"
    # The key is the only index (migration 20261213_decision_key): one decision per account and date (an
    # account belongs to one portfolio), led by the date so a day's decisions are appended at the right
    # edge in account order; it serves a date's decisions of one portfolio (the allocation) or of all (the
    # reports) and one account's decision on a date (explain, with the account's portfolio).
    as_of_date: Mapped[date] = mapped_column(Date, primary_key=True)
    portfolio_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(Integer)
    case_id: Mapped[int] = mapped_column(Integer)
    strategy: Mapped[str] = mapped_column(String(64))
    strategy_version: Mapped[int] = mapped_column(Integer)
    arm: Mapped[str | None] = mapped_column(String(16))  # champion / challenger, when an experiment runs
    challenger_share_bp: Mapped[int | None] = mapped_column(Integer)
    previous_stage: Mapped[str | None] = mapped_column(String(32))
    stage: Mapped[str | None] = mapped_column(String(32))
    exit: Mapped[str | None] = mapped_column(String(32))
    matched_block: Mapped[int | None] = mapped_column(Integer)
    stage_entered_on: Mapped[date | None] = mapped_column(Date)
    days_in_stage: Mapped[int | None] = mapped_column(Integer)
    dpd: Mapped[int] = mapped_column(Integer)
    balance_minor: Mapped[int] = mapped_column(BigInteger)
    priority: Mapped[int] = mapped_column(BigInteger)
    flags: Mapped[str | None] = mapped_column(String(200))  # open flags, comma-separated
    actions: Mapped[list[str]] = mapped_column(JSON)  # planned action keys, strategy order
    created_at: Mapped[datetime] = mapped_column(
        UTCDateTime(), default=clock.now, server_default=func.current_timestamp()
    )


class OutboxMessage(Timestamped, Base):
    """An automated message planned by the run, written with the decision; channel senders claim it."""

    __tablename__ = "outbox_message"
    __table_args__ = (
        Index("ix_outbox_message_status_next_attempt_at", "status", "next_attempt_at"),
        Index("ix_outbox_message_account_id", "account_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    portfolio_id: Mapped[int] = mapped_column(ForeignKey("portfolio.id"))
    case_id: Mapped[int] = mapped_column(Integer)
    account_id: Mapped[int] = mapped_column(Integer)
    contact_point_id: Mapped[int | None] = mapped_column(Integer)
    run_id: Mapped[int | None] = mapped_column(Integer)
    as_of_date: Mapped[date] = mapped_column(Date)
    action_key: Mapped[str] = mapped_column(String(80))
    channel: Mapped[str] = mapped_column(String(16))
    template: Mapped[str] = mapped_column(String(100))
    locale: Mapped[str] = mapped_column(String(16))
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    planned_for: Mapped[datetime | None] = mapped_column()
    window_end: Mapped[datetime | None] = mapped_column()
    status: Mapped[str] = mapped_column(String(16))  # queued, sent, failed, blocked, dead_letter
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column()
    last_reason: Mapped[str | None] = mapped_column(Text)
    rule_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    # Dispatch (arrears.channels.outbox): who claimed the row and when, what was sent, and its evidence.
    claimed_by: Mapped[str | None] = mapped_column(String(64), index=True)
    claimed_at: Mapped[datetime | None] = mapped_column()
    sent_at: Mapped[datetime | None] = mapped_column()
    provider_message_id: Mapped[str | None] = mapped_column(String(200), index=True)
    template_id: Mapped[int | None] = mapped_column(Integer)
    contact_attempt_id: Mapped[int | None] = mapped_column(Integer)
    delivery_status: Mapped[str | None] = mapped_column(String(16))
    delivered_at: Mapped[datetime | None] = mapped_column()


WORK_ITEM_OPEN = "status = 'open'"
# Expired items (most of the table before long) are in neither the collector index nor the idempotency
# key's: an item expires only when a later date's run replaces it, and runs move forward, so no run
# plans its key again (migration 20261208_expired_items).
WORK_ITEM_LIVE = "status <> 'expired'"
WORK_ITEM_COLLECTED = f"collector_id IS NOT NULL AND {WORK_ITEM_LIVE}"


class WorkItem(Timestamped, Base):
    """A call or visit for a collector (or a legal referral awaiting approval), with its permitted window."""

    __tablename__ = "work_item"
    # Partial where the rows they are read by are a share of the table (migration 20261206_run5): a
    # collector's items (legal referrals and unallocated items have no collector), and a portfolio's open
    # items (the run's expiry, cancellations and collector sync; blocked and finished items are most rows).
    __table_args__ = (
        Index(
            "ix_work_item_collector_id_status",
            "collector_id",
            "status",
            postgresql_where=text(WORK_ITEM_COLLECTED),
            sqlite_where=text(WORK_ITEM_COLLECTED),
        ),
        Index("ix_work_item_case_id", "case_id"),
        Index(
            "uq_work_item_idempotency_key",
            "idempotency_key",
            unique=True,
            postgresql_where=text(WORK_ITEM_LIVE),
            sqlite_where=text(WORK_ITEM_LIVE),
        ),
        # by kind (migration 20261211_open_items_by_kind): the expiry reads the calls and visits of
        # earlier dates without the legal referrals that wait for approval
        Index(
            "ix_work_item_open",
            "portfolio_id",
            "kind",
            "as_of_date",
            postgresql_where=text(WORK_ITEM_OPEN),
            sqlite_where=text(WORK_ITEM_OPEN),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    portfolio_id: Mapped[int] = mapped_column(Integer)  # no foreign keys: written in bulk by the daily run
    case_id: Mapped[int] = mapped_column(Integer)
    account_id: Mapped[int] = mapped_column(Integer)
    contact_point_id: Mapped[int | None] = mapped_column(Integer)
    run_id: Mapped[int | None] = mapped_column(Integer)
    as_of_date: Mapped[date] = mapped_column(Date)
    kind: Mapped[str] = mapped_column(String(24))  # call, visit, legal_referral
    action_key: Mapped[str] = mapped_column(String(80))
    template: Mapped[str] = mapped_column(String(100))
    audience: Mapped[str] = mapped_column(String(16))
    priority: Mapped[int] = mapped_column(BigInteger, default=0)
    queue: Mapped[str | None] = mapped_column(String(32))
    collector_id: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))  # open, claimed, done, blocked, expired
    window_start_at: Mapped[datetime | None] = mapped_column()
    window_end_at: Mapped[datetime | None] = mapped_column()
    idempotency_key: Mapped[str] = mapped_column(String(200))
    claimed_at: Mapped[datetime | None] = mapped_column()
    completed_at: Mapped[datetime | None] = mapped_column()
    outcome: Mapped[str | None] = mapped_column(String(32))
    note: Mapped[str | None] = mapped_column(Text)
    rule_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    last_reason: Mapped[str | None] = mapped_column(Text)


# A collector's work queue (``queue_service.queue_conditions``) in its display order: the page reads its
# first rows from this index instead of sorting every open item of the collector. Only assigned open and
# claimed items are in it (the run's unassigned items and the finished ones are most of the table).
WORK_QUEUE_PREDICATE = "collector_id IS NOT NULL AND status IN ('open', 'claimed')"
Index(
    "ix_work_item_queue",
    WorkItem.collector_id,
    WorkItem.priority.desc(),
    WorkItem.window_start_at,
    WorkItem.id,
    postgresql_where=text(WORK_QUEUE_PREDICATE),
    sqlite_where=text(WORK_QUEUE_PREDICATE),
)


class CollectorProfile(Timestamped, Base):
    """Which queues a collector works, their case cap and the case attributes they cover (empty = any)."""

    __tablename__ = "collector_profile"

    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id"), primary_key=True, autoincrement=False)
    queues: Mapped[list[str]] = mapped_column(JSON, default=list)
    cap: Mapped[int] = mapped_column(Integer, default=200)
    products: Mapped[list[str]] = mapped_column(JSON, default=list)
    regions: Mapped[list[str]] = mapped_column(JSON, default=list)
    languages: Mapped[list[str]] = mapped_column(JSON, default=list)
    creditors: Mapped[list[str]] = mapped_column(JSON, default=list)
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class AllocationEvent(Base):
    """One change of a case's collector: who moved it (the run or a supervisor), from, to and why."""

    __tablename__ = "allocation_event"
    __table_args__ = (Index("ix_allocation_event_case_id", "case_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    portfolio_id: Mapped[int] = mapped_column(Integer)  # no foreign key: written in bulk by the daily run
    case_id: Mapped[int] = mapped_column(Integer)
    run_id: Mapped[int | None] = mapped_column(Integer)
    from_collector_id: Mapped[int | None] = mapped_column(Integer)
    to_collector_id: Mapped[int | None] = mapped_column(Integer)
    queue: Mapped[str | None] = mapped_column(String(32))
    outcome: Mapped[str] = mapped_column(String(24))  # allocate's outcome, or "manual"
    reason: Mapped[str | None] = mapped_column(Text)
    actor: Mapped[str | None] = mapped_column(String(64))  # username; None = the daily run
    effective_on: Mapped[date] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(
        UTCDateTime(), default=clock.now, server_default=func.current_timestamp()
    )
