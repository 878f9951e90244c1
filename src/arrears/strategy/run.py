"""The daily run: for one portfolio and one as-of date, decide every account's stage and plan its actions.

The run is an ordered list of phases, one function each, set-based over Polars frames with bulk writes:

begin (once per run) -- `begin_run`
  1. ``lock``              one run per portfolio at a time (a `StrategyRunLock` row); runs only move forward
  then `prepare_portfolio`, each phase through its own domain's service, all skipped in a dry run:
  2. ``release_holds``     holds whose expiry date has come are released (``holds.service``)
  3. ``recall_placements`` placements whose term has ended are recalled (``agencies.service``)
  4. ``accrue``            opening postings of new accounts, then the accrual up to the date (``ledger.service``)
  5. ``commitments``       pending promises and active plans against the ledger's payments
                           (``arrangements.service``); a breached plan marks its case for re-negotiation
  6. ``limitation``        limitation dates and time-barred status (``compliance.service``)
per partition of cases (``case_id % partitions``; in-process or one Celery task each) -- `run_partition`
  7. ``snapshot``    accounts not yet decided for the date (active ones, and a settled one once more while it
                     holds a stage, so it exits), DPD from the earliest unpaid due date, the ledger's cached
                     balance, stored stage, open flags, action history; then one query per input joined in
                     Polars (`with_inputs`): latest promise, plan state, time-barred, days since the last
                     right-party contact. Scores are still read as NULL in `SNAPSHOT_SEAMS`
  8. ``evaluate``    champion / challenger arm, then `evaluate_frame` per strategy
  9. ``plan``        `planned_actions_frame`, contact points chosen, time zones derived
 10. ``gate``        the compliance rules once per group of identical planned contacts (`gate.check_planned`)
 11. ``write``       decisions, strategy state, action history, outbox messages and work items, in bulk
                     (in one process the work items wait for ``allocate``, which writes them with their
                     case's new collector instead of moving them after)
finish (once per run) -- `finish_run`
 12. ``expire``      open work items of earlier dates expire
 13. ``allocate``    each case's lead stage and its collector by queue, written together in one update per
                     changed case (`queue_service.allocate_portfolio`; placed cases are not allocated); the
                     open calls and visits then go to their case's collector
 14. ``record``      the run row's counts and duration; the lock is released

Idempotent per (account, as-of date): the preparation phases change nothing for a date already prepared,
an account already decided for the date is skipped, and the allocation of unchanged inputs changes
nothing, so running the same date twice writes nothing the second time and reports zero changes. Everything a partition writes is in its own transaction; in-process, the
whole run is one transaction (the caller commits), and ``dry_run`` rolls it back after reporting.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from datetime import time as dt_time
from typing import Any

import polars as pl
from sqlalchemy import delete, func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from arrears import bulk as table_bulk
from arrears import clock
from arrears.compliance.pack import RulePack, load_pack
from arrears.errors import Conflict, NotFound, ValidationFailed
from arrears.models import (
    Creditor,
    Portfolio,
    PortfolioStrategy,
    StrategyDecision,
    StrategyRun,
    StrategyRunLock,
)
from arrears.strategy import bulk, dpd, gate
from arrears.strategy.definition import Strategy
from arrears.strategy.evaluate import COUNT_PREFIX, LAST_ON_PREFIX, evaluate_frame, planned_actions_frame
from arrears.strategy.experiment import Experiment, assign_arms_frame
from arrears.strategy.loader import load_strategy
from arrears.strategy.queues import QueueSet, load_queues

Progress = Callable[[str, int, int], None]
"""Called as ``progress(phase, done, total)`` while a run works."""

# Inputs the strategy reads that scoring will provide. Until then each is read as this SQL literal (NULL);
# replacing a literal by a column or a subquery is the whole change.
SNAPSHOT_SEAMS: dict[str, tuple[str, pl.DataType]] = {
    "grade": ("NULL", pl.String()),  # scoring: risk grade
    "score": ("NULL", pl.Int64()),  # scoring: risk score
    "propensity": ("NULL", pl.Float64()),  # scoring: propensity to pay, 0..1
}

# Stored promise status -> the promise state the strategy reads (a partly kept promise is broken).
PROMISE_STATES: dict[str, str] = {
    "pending": "active",
    "kept": "kept",
    "partly_kept": "broken",
    "broken": "broken",
    "superseded": "none",
}
# Stored plan status -> plan state; a case marked for re-negotiation reads "broken" unless a plan is active.
PLAN_STATES: dict[str, str] = {"active": "active", "breached": "broken", "completed": "kept"}
# Contact outcomes that are a conversation with the debtor (right-party contact).
RPC_OUTCOMES = ("right_party", "promise", "refused", "dispute_raised", "callback_requested")

MESSAGE_KINDS = ("sms", "email", "letter")
TASK_KINDS = {"call_task": "call", "visit_task": "visit", "legal_referral": "legal_referral"}

_SNAPSHOT_SCHEMA: dict[str, pl.DataType] = {
    "account_id": pl.Int64(),
    "case_id": pl.Int64(),
    "debtor_id": pl.Int64(),
    "product": pl.String(),
    "currency": pl.String(),
    "balance_minor": pl.Int64(),
    "due_date": pl.Date(),
    "overdue_amount_minor": pl.Int64(),
    "stage": pl.String(),
    "stage_entered_on": pl.Date(),
    "pinned_stage": pl.String(),
    "case_stage": pl.String(),
    "case_assignee": pl.Int64(),
    "debtor_zone": pl.String(),
    "language": pl.String(),
    "debtor_address": pl.String(),
    "renegotiate_since": pl.Date(),
    "has_state": pl.Int64(),  # 1: the account has a strategy state row (written by an earlier run)
    "stored_strategy": pl.String(),  # the state row's strategy (the arm's may differ)
    **{name: dtype for name, (_sql, dtype) in SNAPSHOT_SEAMS.items()},
}


# ---------------------------------------------------------------------------------------------- shapes


@dataclass(frozen=True)
class RunSettings:
    """Everything a run needs to know about its portfolio, resolved once."""

    portfolio_id: int
    portfolio: str
    creditor: str
    currency: str
    timezone: str
    locale: str
    pack: RulePack
    strategy: Strategy
    challenger: Strategy | None
    experiment: Experiment | None
    queue_set: QueueSet

    def strategies(self) -> dict[str, Strategy]:
        """Strategies by name (the champion, and the challenger when an experiment runs)."""
        out = {self.strategy.name: self.strategy}
        if self.challenger is not None:
            out[self.challenger.name] = self.challenger
        return out


@dataclass
class Carried:
    """What a run in one process and one transaction hands from one phase to the next instead of writing
    it and reading it back (`run_portfolio`); a distributed run's workers read what they need.

    ``limitations``: every account's time-barred status as the limitation refresh left it (``account_id``,
    ``time_barred``), when the refresh computed them; ``work_items``: the partitions' work items, written
    once the allocation has given their cases collectors (`write_held_work_items`); ``decided``: what the
    allocation reads of the partitions' decisions (`decided_for_allocation`).
    """

    limitations: pl.DataFrame | None = None
    work_items: list[pl.DataFrame] = field(default_factory=list)
    decided: list[pl.DataFrame] = field(default_factory=list)


@dataclass
class PartitionOutcome:
    """What one partition (or, merged, the whole run) did."""

    accounts_evaluated: int = 0
    accounts_skipped: int = 0
    decisions: int = 0
    outbox: int = 0
    work_items: int = 0
    case_stage_changes: int = 0
    rescheduled: int = 0
    dropped: int = 0
    cancelled: int = 0  # queued messages and open work items of earlier dates that no longer apply
    stage_counts: dict[str, int] = field(default_factory=dict)
    action_counts: dict[str, int] = field(default_factory=dict)
    blocked_by_rule: dict[str, int] = field(default_factory=dict)
    arm_counts: dict[str, int] = field(default_factory=dict)
    errors: list[dict[str, Any]] = field(default_factory=list)
    phase_seconds: dict[str, float] = field(default_factory=dict)

    def merge(self, other: PartitionOutcome) -> PartitionOutcome:
        """The sum of two outcomes."""

        def add(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
            return {k: a.get(k, 0) + b.get(k, 0) for k in sorted(a.keys() | b.keys())}

        return PartitionOutcome(
            accounts_evaluated=self.accounts_evaluated + other.accounts_evaluated,
            accounts_skipped=self.accounts_skipped + other.accounts_skipped,
            decisions=self.decisions + other.decisions,
            outbox=self.outbox + other.outbox,
            work_items=self.work_items + other.work_items,
            case_stage_changes=self.case_stage_changes + other.case_stage_changes,
            rescheduled=self.rescheduled + other.rescheduled,
            dropped=self.dropped + other.dropped,
            cancelled=self.cancelled + other.cancelled,
            stage_counts=add(self.stage_counts, other.stage_counts),
            action_counts=add(self.action_counts, other.action_counts),
            blocked_by_rule=add(self.blocked_by_rule, other.blocked_by_rule),
            arm_counts=add(self.arm_counts, other.arm_counts),
            errors=[*self.errors, *other.errors],
            phase_seconds={
                k: round(self.phase_seconds.get(k, 0.0) + other.phase_seconds.get(k, 0.0), 3)
                for k in self.phase_seconds.keys() | other.phase_seconds.keys()
            },
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly form (Celery results)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PartitionOutcome:
        """The inverse of `to_dict`."""
        return cls(**data)


@dataclass
class RunReport:
    """What a run did (or, dry, would do)."""

    run_id: int | None
    portfolio: str
    as_of: date
    dry_run: bool
    mode: str
    partitions: int
    status: str
    outcome: PartitionOutcome
    allocation_counts: dict[str, int]
    expired_work_items: int
    allocation_changes: int
    duration_ms: int
    prepared_changes: int = 0  # rows the preparation phases changed (holds, placements, ledger, plans ...)

    @property
    def changes(self) -> int:
        """Rows the run added or changed: zero when re-running a date already run."""
        o = self.outcome
        return (
            self.prepared_changes
            + o.decisions
            + o.outbox
            + o.work_items
            + o.case_stage_changes
            + o.cancelled
            + self.expired_work_items
            + self.allocation_changes
        )


# ---------------------------------------------------------------------------------------------- settings


def resolve_settings(session: Session, *, portfolio: str | int) -> RunSettings:
    """Load the portfolio's strategy (and challenger), queue set and rule pack; errors name what is wrong."""
    query = select(Portfolio, Creditor.name).join(Creditor, Creditor.id == Portfolio.creditor_id)
    if isinstance(portfolio, int):
        row = session.execute(query.where(Portfolio.id == portfolio)).first()
    else:
        row = session.execute(query.where(Portfolio.name == portfolio)).first()
    if row is None:
        raise NotFound(
            f"资产包不存在：{portfolio} / portfolio {portfolio!r} does not exist", code="portfolio_not_found"
        )
    p, creditor = row
    config = session.get(PortfolioStrategy, p.id)
    strategy = load_strategy(p.strategy)
    challenger: Strategy | None = None
    experiment: Experiment | None = None
    if config is not None and config.challenger and config.experiment:
        challenger = load_strategy(config.challenger)
        experiment = Experiment(
            name=config.experiment,
            salt=config.salt or config.experiment,
            champion=strategy.name,
            challenger=challenger.name,
            challenger_share_bp=config.challenger_share_bp or 0,
        )
    queue_set = load_queues(config.queue_set if config is not None else "default")
    return RunSettings(
        portfolio_id=p.id,
        portfolio=p.name,
        creditor=creditor,
        currency=p.currency,
        timezone=p.timezone,
        locale=p.locale,
        pack=load_pack(p.rule_pack),
        strategy=strategy,
        challenger=challenger,
        experiment=experiment,
        queue_set=queue_set,
    )


# ---------------------------------------------------------------------------------------------- begin

# Memory for each sort and hash of the run's whole-portfolio queries (PostgreSQL), for its transaction
# only: the server's default (4 MB) sends the joins and sorts of a million rows to temporary files.
RUN_WORK_MEM = "64MB"


def sort_memory(session: Session) -> None:
    """Give the run's transaction `RUN_WORK_MEM` per sort and hash (PostgreSQL; reset when it ends)."""
    if bulk.dialect(session) == "postgresql":
        session.execute(text("SELECT set_config('work_mem', :v, true)"), {"v": RUN_WORK_MEM})


def begin_run(
    session: Session,
    settings: RunSettings,
    *,
    as_of: date,
    now: datetime,
    mode: str = "in_process",
    partitions: int = 1,
    requested_by: str | None = None,
    dry_run: bool = False,
    carried: Carried | None = None,
) -> StrategyRun:
    """Phases 1-6: take the portfolio's lock, create the run row, bring the portfolio up to ``as_of``
    (`prepare_portfolio`; skipped when ``dry_run``; ``carried`` receives what the run reads next)."""
    if partitions < 1:
        raise ValidationFailed("partitions must be at least 1", code="bad_partitions")
    sort_memory(session)
    # the portfolio's latest decision: read backwards along the decisions' key, first match
    later = session.scalar(
        select(StrategyDecision.as_of_date)
        .where(StrategyDecision.portfolio_id == settings.portfolio_id)
        .order_by(StrategyDecision.as_of_date.desc())
        .limit(1)
    )
    if later is not None and later > as_of:
        raise Conflict(
            f"资产包 {settings.portfolio} 已运行到 {later}，不能回到 {as_of} / portfolio {settings.portfolio} "
            f"has been run up to {later}; runs move forward, {as_of} is earlier",
            code="run_date_passed",
        )
    held = session.get(StrategyRunLock, settings.portfolio_id)
    if held is not None:
        raise Conflict(
            f"资产包 {settings.portfolio} 正在运行（批次 {held.run_id}） / a run of {settings.portfolio} is in "
            f"progress (run {held.run_id} since {held.acquired_at:%Y-%m-%d %H:%M} UTC)",
            code="run_in_progress",
        )
    run = StrategyRun(
        portfolio_id=settings.portfolio_id,
        as_of_date=as_of,
        status="running",
        mode=mode,
        partitions=partitions,
        strategy=settings.strategy.name,
        strategy_version=settings.strategy.version,
        experiment=settings.experiment.name if settings.experiment else None,
        challenger=settings.challenger.name if settings.challenger else None,
        challenger_share_bp=settings.experiment.challenger_share_bp if settings.experiment else None,
        started_at=now,
        requested_by=requested_by,
        stage_counts={},
        action_counts={},
        blocked_by_rule={},
        arm_counts={},
        allocation_counts={},
        phases=[],
        errors=[],
    )
    session.add(run)
    session.flush()
    try:
        with session.begin_nested():
            session.add(StrategyRunLock(portfolio_id=settings.portfolio_id, run_id=run.id, acquired_at=now))
    except IntegrityError as exc:
        raise Conflict(
            f"资产包 {settings.portfolio} 正在运行 / a run of {settings.portfolio} is in progress",
            code="run_in_progress",
        ) from exc
    phases: list[dict[str, Any]] = [{"name": "lock", "status": "done"}]
    phases.extend(
        prepare_portfolio(session, settings, as_of=as_of, now=now, dry_run=dry_run, carried=carried)
    )
    run.phases = phases
    session.flush()
    return run


# The phases that bring the portfolio up to the as-of date before it is evaluated, in order. Each writes
# (another domain's service does the work), each is idempotent for a date, and a dry run skips them all.
PREPARE_PHASES = ("release_holds", "recall_placements", "accrue", "commitments", "limitation")


def prepare_portfolio(
    session: Session,
    settings: RunSettings,
    *,
    as_of: date,
    now: datetime,
    dry_run: bool = False,
    carried: Carried | None = None,
) -> list[dict[str, Any]]:
    """Phases 2-6: expired holds released, expired placements recalled, the ledger opened and accrued to
    ``as_of``, promises and plans evaluated against the ledger's payments, limitation dates refreshed.

    Returns one entry per phase for the run row: ``name``, ``status`` (``done`` / ``skipped``),
    ``seconds``, ``counts`` (what the phase saw) and ``changes`` (rows it changed: zero when the date was
    already run). A dry run skips every one of them (they write), so it previews against the state the
    last real run left. ``carried`` receives the limitation statuses the refresh computed.
    """
    steps: dict[str, Callable[[], dict[str, int]]] = {
        "release_holds": lambda: _release_holds(session, settings, as_of=as_of, now=now),
        "recall_placements": lambda: _recall_placements(session, settings, as_of=as_of),
        "accrue": lambda: _accrue(session, settings, as_of=as_of),
        "commitments": lambda: _refresh_commitments(session, settings, as_of=as_of, now=now),
        "limitation": lambda: _refresh_limitation(session, settings, as_of=as_of, carried=carried),
    }
    out: list[dict[str, Any]] = []
    analyse_stale(session, INPUT_TABLES)
    for name in PREPARE_PHASES:
        if dry_run:
            out.append({"name": name, "status": "skipped", "detail": "dry run / 试运行"})
            continue
        started = time.perf_counter()
        counts = steps[name]()
        changes = counts.pop("changes")
        out.append(
            {
                "name": name,
                "status": "done",
                "seconds": round(time.perf_counter() - started, 3),
                "counts": counts,
                "changes": changes,
            }
        )
    session.flush()
    return out


def _release_holds(session: Session, settings: RunSettings, *, as_of: date, now: datetime) -> dict[str, int]:
    from arrears.holds.service import release_expired_holds

    released = release_expired_holds(session, as_of=as_of, at=now, portfolio_id=settings.portfolio_id)
    return {"released": len(released), "changes": len(released)}


def _recall_placements(session: Session, settings: RunSettings, *, as_of: date) -> dict[str, int]:
    from arrears.agencies.service import recall_expired_placements

    recalled = recall_expired_placements(session, as_of=as_of, portfolio_id=settings.portfolio_id)
    return {"recalled": len(recalled), "changes": len(recalled)}


def _accrue(session: Session, settings: RunSettings, *, as_of: date) -> dict[str, int]:
    from arrears.ledger.service import accrue_portfolio

    # the accrual opens the accounts not yet in the ledger (their opening postings) before it accrues
    accrual = accrue_portfolio(session, portfolio_id=settings.portfolio_id, as_of=as_of)
    opened = accrual.opened_accounts
    return {
        "opened": opened,
        "accounts": accrual.accounts,
        "accrued_accounts": accrual.accrued_accounts,
        "postings": accrual.postings,
        "interest_minor": accrual.interest_minor,
        "penalty_minor": accrual.penalty_minor,
        "capped_accounts": accrual.capped_accounts,
        "changes": opened + accrual.postings,
    }


def _refresh_commitments(
    session: Session, settings: RunSettings, *, as_of: date, now: datetime
) -> dict[str, int]:
    """Promises first, then plans, both against the ledger's payments through ``as_of`` (read once); then
    the waivers of kept settlements are posted, which closes their accounts."""
    from arrears.arrangements.service import (
        PromiseStatus,
        post_kept_settlements,
        refresh_arrangements,
        refresh_promises,
    )
    from arrears.ledger.service import received_by_account

    payments = received_by_account(session, portfolio_id=settings.portfolio_id, through=as_of)
    promised = refresh_promises(session, portfolio_id=settings.portfolio_id, as_of=as_of, payments=payments)
    plans = refresh_arrangements(session, portfolio_id=settings.portfolio_id, as_of=as_of, payments=payments)
    # a kept settlement closes its accounts: its waiver is posted once (stamped on the waiver rows)
    kept = post_kept_settlements(session, portfolio_id=settings.portfolio_id, now=now)
    settled = sum(n for status, n in promised.by_status.items() if status != PromiseStatus.PENDING)
    return {
        "promises_evaluated": promised.evaluated,
        "promises_kept": promised.by_status.get("kept", 0),
        "promises_broken": promised.by_status.get("broken", 0) + promised.by_status.get("partly_kept", 0),
        "plans_evaluated": plans.evaluated,
        "plans_breached": len(plans.breached),
        "plans_completed": len(plans.completed),
        "settlements_posted": len(kept),
        "waiver_postings": sum(k.postings for k in kept),
        # only pending promises and active plans are evaluated: any other outcome is a change of state
        "changes": settled + len(plans.breached) + len(plans.completed) + sum(k.postings for k in kept),
    }


def _refresh_limitation(
    session: Session, settings: RunSettings, *, as_of: date, carried: Carried | None = None
) -> dict[str, int]:
    """CN-20..CN-26 / US-8: the portfolio's limitation dates and time-barred status at ``as_of``.

    Only rows that differ are written. A date a run already completed, with a row for every account, is
    left as that run refreshed it (invariant 4: the second run of a date changes nothing). ``carried``
    receives every account's status when they were computed.
    """
    from arrears.compliance.service import refresh_limitations

    pid = int(settings.portfolio_id)
    done = session.scalar(
        select(func.count())
        .select_from(StrategyRun)
        .where(
            StrategyRun.portfolio_id == pid,
            StrategyRun.as_of_date == as_of,
            StrategyRun.status == "succeeded",
        )
    )
    if done:
        row = session.execute(
            text(
                "SELECT (SELECT count(*) FROM account WHERE portfolio_id = :pid),"
                " (SELECT count(*) FROM account_limitation WHERE portfolio_id = :pid),"
                " (SELECT count(*) FROM account_limitation WHERE portfolio_id = :pid AND time_barred = :yes)"
            ),
            {"pid": pid, "yes": True},
        ).one()
        accounts, rows, barred = (int(v or 0) for v in row)
        if rows >= accounts:
            return {"accounts": rows, "time_barred": barred, "changes": 0}
    result = refresh_limitations(session, portfolio_id=pid, as_of=as_of)
    if carried is not None:
        carried.limitations = result.statuses
    return {
        "accounts": result.accounts,
        "time_barred": result.time_barred,
        "newly_time_barred": len(result.newly_time_barred),
        "changes": result.changed,
    }


# ---------------------------------------------------------------------------------------------- partition


@contextmanager
def _phase(outcome: PartitionOutcome, name: str, progress: Progress | None) -> Iterator[None]:
    started = time.perf_counter()
    if progress:
        progress(name, 0, 1)
    yield
    outcome.phase_seconds[name] = round(
        outcome.phase_seconds.get(name, 0.0) + time.perf_counter() - started, 3
    )
    if progress:
        progress(name, 1, 1)


def _partition_clause(partition: int, partitions: int, column: str = "a.case_id") -> str:
    return f" AND {column} % {int(partitions)} = {int(partition)}" if partitions > 1 else ""


def _decided_any(session: Session, settings: RunSettings, as_of: date) -> bool:
    """Whether any account of the portfolio has a decision for ``as_of`` (one probe of an index)."""
    return (
        session.scalar(
            select(StrategyDecision.account_id)
            .where(
                StrategyDecision.as_of_date == as_of, StrategyDecision.portfolio_id == settings.portfolio_id
            )
            .limit(1)
        )
        is not None
    )


def load_snapshot(
    session: Session,
    settings: RunSettings,
    *,
    as_of: date,
    partition: int = 0,
    partitions: int = 1,
    account_id: int | None = None,
    include_decided: bool = False,
    limitations: pl.DataFrame | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Phase 4: the accounts to decide on ``as_of``, one row each, as `evaluate_frame` wants them.

    Adds ``dpd`` (from the imported due date and the ledger's payments, `with_ledger_dpd`), ``flags``
    (open flags: not cleared, not expired on the date) and the ``last_on:`` / ``count:`` history columns
    of every action key. Returns
    the frame and the stored action history (long: ``account_id``, ``action_key``, ``last_on``, ``times``).
    ``limitations``: the portfolio's time-barred statuses when the caller holds them (`Carried`), else read.
    """
    seams = ", ".join(f"{sql} AS {name}" for name, (sql, _dtype) in SNAPSHOT_SEAMS.items())
    # active accounts, and a settled account once more while it still holds a stage (it exits: paid)
    where = (
        f"a.portfolio_id = {int(settings.portfolio_id)}"
        " AND (a.status = 'active' OR (a.status = 'settled' AND s.stage IS NOT NULL))"
    )
    where += _partition_clause(partition, partitions)
    if account_id is not None:
        where += f" AND a.id = {int(account_id)}"
    if not include_decided and _decided_any(session, settings, as_of):
        # an account decided for the date has its decision (one per account and date: the table's key);
        # looked up only when the date has decisions (the first run of a date has none)
        where += (
            " AND NOT EXISTS (SELECT 1 FROM strategy_decision sd"
            f" WHERE sd.as_of_date = '{as_of.isoformat()}' AND sd.portfolio_id = a.portfolio_id"
            " AND sd.account_id = a.id)"
        )
    sql = (
        "SELECT a.id AS account_id, a.case_id, a.debtor_id, a.product, a.currency,"
        # the ledger's cached balances (kept with the postings in the same transaction)
        " a.principal_minor + a.interest_minor + a.penalty_minor + a.fees_minor + a.costs_minor AS balance_minor,"
        " a.due_date, a.overdue_amount_minor, s.stage, s.stage_entered_on, s.pinned_stage, c.stage AS case_stage, c.assignee_id AS case_assignee,"
        " d.timezone AS debtor_zone, d.preferred_language AS language, d.address AS debtor_address,"
        " c.needs_renegotiation_since AS renegotiate_since,"
        f" CASE WHEN s.account_id IS NULL THEN 0 ELSE 1 END AS has_state, s.strategy AS stored_strategy, {seams}"
        ' FROM account a JOIN "case" c ON c.id = a.case_id JOIN debtor d ON d.id = a.debtor_id'
        " LEFT JOIN account_strategy_state s ON s.account_id = a.id"
        f" WHERE {where} ORDER BY a.id"
    )
    frame = bulk.read_frame(session, sql, _SNAPSHOT_SCHEMA)
    if frame.height == 0:
        # nothing left to decide (the date was run): the other inputs are not read
        empty = with_inputs(
            frame,
            promises=pl.DataFrame(schema=_PROMISE_SCHEMA),
            plans=pl.DataFrame(schema=_PLAN_SCHEMA),
            limitations=pl.DataFrame(schema=_LIMITATION_SCHEMA),
            contacts=pl.DataFrame(schema=_RPC_SCHEMA),
            as_of=as_of,
        ).with_columns(
            pl.lit(None, pl.Int64()).alias("dpd"),
            pl.lit(None, pl.Date()).alias("dpd_due_date"),
            pl.lit(None, pl.List(pl.String())).alias("flags"),
        )
        return empty, _EMPTY_HISTORY
    scope = f"a.portfolio_id = {int(settings.portfolio_id)}" + _partition_clause(partition, partitions)
    if account_id is not None:
        scope += f" AND a.id = {int(account_id)}"
    frame = with_inputs(
        frame,
        promises=load_promises(session, scope),
        plans=load_plans(session, scope),
        limitations=load_limitations(session, scope) if limitations is None else limitations,
        contacts=load_last_rpc(session, scope, as_of=as_of, zone=settings.timezone),
        as_of=as_of,
    )
    frame = with_ledger_dpd(session, settings, frame, scope=scope, as_of=as_of)
    flags = bulk.read_frame(
        session,
        "SELECT f.account_id, f.kind FROM account_flag f JOIN account a ON a.id = f.account_id"
        f" WHERE {scope} AND f.cleared_at IS NULL"
        f" AND (f.expires_on IS NULL OR f.expires_on > '{as_of.isoformat()}')",
        {"account_id": pl.Int64(), "kind": pl.String()},
    )
    per_account = flags.group_by("account_id").agg(pl.col("kind").unique().sort().alias("flags"))
    frame = frame.join(per_account, on="account_id", how="left", maintain_order="left")
    # the whole portfolio's rows by their own column; a partition's or one account's through the account
    history_from = (
        f"account_action_state h WHERE h.portfolio_id = {int(settings.portfolio_id)}"
        if partitions == 1 and account_id is None
        else f"account_action_state h JOIN account a ON a.id = h.account_id WHERE {scope}"
    )
    history = bulk.read_frame(
        session, f"SELECT h.account_id, h.action_key, h.last_on, h.times FROM {history_from}", _HISTORY_SCHEMA
    )
    return _with_history(frame, history), history


def with_ledger_dpd(
    session: Session, settings: RunSettings, frame: pl.DataFrame, *, scope: str, as_of: date
) -> pl.DataFrame:
    """``dpd`` and ``dpd_due_date`` from the imported due date and the ledger's payments (`dpd.dpd_frame`).

    Only the schedules of instalment accounts that received money since the import are read; any other
    account keeps ``as_of - due_date``.
    """
    from arrears.ledger.service import received_by_account

    received = (
        received_by_account(session, portfolio_id=settings.portfolio_id, through=as_of)
        .group_by("account_id")
        .agg(pl.col("amount_minor").sum().alias("received_minor"))
    )
    payers = (
        frame.filter(pl.col("product").is_in(list(dpd.INSTALMENT_PRODUCTS)))
        .join(received.filter(pl.col("received_minor") > 0), on="account_id", how="semi")["account_id"]
        .to_list()
    )
    instalments = pl.DataFrame(schema=dpd.INSTALMENTS_SCHEMA)
    if payers:
        which = " AND a.id IN (" + ", ".join(str(int(i)) for i in payers) + ")" if len(payers) <= 2000 else ""
        products = ", ".join(f"'{p}'" for p in dpd.INSTALMENT_PRODUCTS)
        instalments = bulk.read_frame(
            session,
            "SELECT i.account_id, i.seq, i.due_date, i.amount_minor FROM instalment i"
            f" JOIN account a ON a.id = i.account_id WHERE {scope} AND a.product IN ({products})"
            f" AND i.due_date >= a.due_date{which}",
            dpd.INSTALMENTS_SCHEMA,
        )
    days = dpd.dpd_frame(frame.select(list(dpd.ACCOUNTS_SCHEMA)), instalments, received, as_of=as_of)
    return frame.with_columns(days["dpd"], days["dpd_due_date"])


_PROMISE_SCHEMA: dict[str, pl.DataType] = {
    "account_id": pl.Int64(),
    "promise_status": pl.String(),
    "promise_date": pl.Date(),
}
_PLAN_SCHEMA: dict[str, pl.DataType] = {"account_id": pl.Int64(), "plan_status": pl.String()}
_LIMITATION_SCHEMA: dict[str, pl.DataType] = {"account_id": pl.Int64(), "time_barred": pl.Boolean()}
_RPC_SCHEMA: dict[str, pl.DataType] = {"case_id": pl.Int64(), "rpc_on": pl.Date()}


def load_promises(session: Session, scope: str) -> pl.DataFrame:
    """The latest promise of each account in ``scope`` (SQL over ``account a``): status and date."""
    return bulk.read_frame(
        session,
        "SELECT p.account_id, p.status AS promise_status, p.promised_on AS promise_date FROM promise p"
        " WHERE p.id IN (SELECT MAX(p2.id) FROM promise p2 JOIN account a ON a.id = p2.account_id"
        f" WHERE {scope} GROUP BY p2.account_id)",
        _PROMISE_SCHEMA,
    )


def load_plans(session: Session, scope: str) -> pl.DataFrame:
    """The latest plan in force, breached or completed covering each account in ``scope``: its status."""
    plans = bulk.read_frame(
        session,
        "SELECT aa.account_id, ar.id AS plan_id, ar.status AS plan_status FROM arrangement_account aa"
        " JOIN arrangement ar ON ar.id = aa.arrangement_id JOIN account a ON a.id = aa.account_id"
        f" WHERE {scope} AND ar.status IN ({', '.join(repr(k) for k in PLAN_STATES)})",
        {"account_id": pl.Int64(), "plan_id": pl.Int64(), "plan_status": pl.String()},
    )
    return (
        plans.sort("account_id", "plan_id")
        .unique("account_id", keep="last", maintain_order=True)
        .select("account_id", "plan_status")
    )


def load_limitations(session: Session, scope: str) -> pl.DataFrame:
    """Time-barred status of each account in ``scope`` as the limitation refresh stored it (CN-22, US-8)."""
    return bulk.read_frame(
        session,
        "SELECT al.account_id, al.time_barred FROM account_limitation al JOIN account a ON a.id = al.account_id"
        f" WHERE {scope}",
        _LIMITATION_SCHEMA,
    )


def load_last_rpc(session: Session, scope: str, *, as_of: date, zone: str) -> pl.DataFrame:
    """Each case's last right-party contact up to the end of ``as_of`` (local day in ``zone``), as the
    local date it happened: allowed attempts whose outcome is a conversation with the debtor, corrected
    attempts replaced by their corrections."""
    end = datetime.combine(as_of + timedelta(days=1), dt_time(0), tzinfo=clock.zone_info(zone))
    end_utc = clock.as_utc(end).strftime("%Y-%m-%d %H:%M:%S")
    if bulk.dialect(session) == "postgresql":
        last = "to_char(MAX(ca.started_at) AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS')"
        cutoff = f"'{end_utc}+00'"
    else:
        last = "substr(MAX(ca.started_at), 1, 19)"
        cutoff = f"'{end_utc}'"
    outcomes = ", ".join(repr(o) for o in RPC_OUTCOMES)
    rows = bulk.read_frame(
        session,
        f"SELECT ca.case_id, {last} AS last_at FROM contact_attempt ca"
        f" WHERE ca.case_id IN (SELECT a.case_id FROM account a WHERE {scope})"
        f" AND ca.outcome IN ({outcomes}) AND ca.allowed = TRUE AND ca.started_at < {cutoff}"
        " AND NOT EXISTS (SELECT 1 FROM contact_attempt x WHERE x.corrects_id = ca.id)"
        " GROUP BY ca.case_id",
        {"case_id": pl.Int64(), "last_at": pl.String()},
    )
    return rows.select(
        "case_id",
        pl.col("last_at")
        .str.to_datetime("%Y-%m-%d %H:%M:%S", time_zone="UTC")
        .dt.convert_time_zone(zone)
        .dt.date()
        .alias("rpc_on"),
    )


def with_inputs(
    frame: pl.DataFrame,
    *,
    promises: pl.DataFrame,
    plans: pl.DataFrame,
    limitations: pl.DataFrame,
    contacts: pl.DataFrame,
    as_of: date,
) -> pl.DataFrame:
    """The snapshot's commitment, limitation and contact inputs (pure): ``promise_state`` /
    ``promise_date`` from the latest promise, ``plan_state`` (an active plan; else broken when the case
    waits for re-negotiation or its plan was breached; kept when completed), ``time_barred`` and
    ``days_since_rpc`` (null: never reached)."""
    renegotiate = pl.col("renegotiate_since").is_not_null()
    plan = pl.col("plan_status").replace_strict(PLAN_STATES, default="none")
    return (
        frame.join(promises, on="account_id", how="left", maintain_order="left")
        .join(plans, on="account_id", how="left", maintain_order="left")
        .join(limitations, on="account_id", how="left", maintain_order="left")
        .join(contacts, on="case_id", how="left", maintain_order="left")
        .with_columns(
            pl.col("promise_status")
            .replace_strict(PROMISE_STATES, default="none")
            .fill_null("none")
            .alias("promise_state"),
            pl.when(plan == "active")
            .then(pl.lit("active"))
            .when(renegotiate)
            .then(pl.lit("broken"))
            .otherwise(plan.fill_null("none"))
            .alias("plan_state"),
            pl.col("time_barred").fill_null(False),
            (pl.lit(as_of) - pl.col("rpc_on")).dt.total_days().cast(pl.Int64).alias("days_since_rpc"),
        )
        .drop("promise_status", "plan_status", "rpc_on", "renegotiate_since")
    )


_HISTORY_SCHEMA: dict[str, pl.DataType] = {
    "account_id": pl.Int64(),
    "action_key": pl.String(),
    "last_on": pl.Date(),
    "times": pl.Int64(),
}
_EMPTY_HISTORY = pl.DataFrame(schema=_HISTORY_SCHEMA)


def _with_history(frame: pl.DataFrame, history: pl.DataFrame) -> pl.DataFrame:
    if history.height == 0:
        return frame
    keys = history["action_key"].unique().sort().to_list()
    last = history.pivot(on="action_key", index="account_id", values="last_on")
    times = history.pivot(on="action_key", index="account_id", values="times")
    last = last.rename({k: LAST_ON_PREFIX + k for k in keys if k in last.columns})
    times = times.rename({k: COUNT_PREFIX + k for k in keys if k in times.columns})
    return frame.join(last, on="account_id", how="left", maintain_order="left").join(
        times, on="account_id", how="left", maintain_order="left"
    )


def evaluate_snapshot(
    settings: RunSettings, snapshot: pl.DataFrame, *, as_of: date, outcome: PartitionOutcome
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Phases 5-6 (pure): each account's arm and decision, and one row per planned action.

    Accounts whose currency differs from their strategy's are left out and reported in ``outcome.errors``.
    Returns ``(decisions, planned)``.
    """
    if settings.experiment is not None and snapshot.height:
        arms = assign_arms_frame(snapshot["account_id"], settings.experiment).select(
            "account_id", "arm", "strategy", "challenger_share_bp"
        )
        snapshot = snapshot.join(arms, on="account_id", how="left", maintain_order="left")
    else:
        snapshot = snapshot.with_columns(
            pl.lit(None, pl.String()).alias("arm"),
            pl.lit(settings.strategy.name).alias("strategy"),
            pl.lit(None, pl.Int64()).alias("challenger_share_bp"),
        )
    decisions: list[pl.DataFrame] = []
    planned: list[pl.DataFrame] = []
    for name, strategy in settings.strategies().items():
        part = snapshot.filter(pl.col("strategy") == name)
        if strategy.currency is not None:
            wrong = part.filter(pl.col("currency") != strategy.currency)
            if wrong.height:
                outcome.errors.append(
                    {
                        "code": "currency_mismatch",
                        "message": f"strategy {name} is in {strategy.currency}",
                        "accounts": wrong.height,
                        "sample": wrong["account_id"].head(10).to_list(),
                    }
                )
                part = part.filter(pl.col("currency") == strategy.currency)
        if part.height == 0:
            continue
        result = evaluate_frame(part, strategy, as_of)
        attributes = part.select(
            "account_id",
            "case_id",
            "debtor_id",
            "product",
            "dpd",
            "balance_minor",
            "flags",
            "arm",
            "strategy",
            "challenger_share_bp",
            "time_barred",
            "language",
            "debtor_zone",
            "debtor_address",
            "case_stage",
            "case_assignee",
            "pinned_stage",
            "has_state",
            "stored_strategy",
            pl.col("stage_entered_on").alias("stored_entered_on"),
        )
        decided = result.join(attributes, on="account_id", how="left", maintain_order="left").with_columns(
            pl.lit(strategy.version).alias("strategy_version")
        )
        decisions.append(decided)
        actions = planned_actions_frame(result, strategy, as_of)
        planned.append(
            actions.join(attributes.drop("flags"), on="account_id", how="left", maintain_order="left")
        )
    decided_all = pl.concat(decisions, how="diagonal_relaxed") if decisions else pl.DataFrame()
    planned_all = pl.concat(planned, how="diagonal_relaxed") if planned else pl.DataFrame()
    return decided_all, planned_all


_CP_SCHEMA: dict[str, pl.DataType] = {
    "contact_point_id": pl.Int64(),
    "debtor_id": pl.Int64(),
    "contact_kind": pl.String(),
    "value": pl.String(),
    "owner_relation": pl.String(),
    "debt_related": pl.Boolean(),
    "verified": pl.Boolean(),
    "is_valid": pl.Boolean(),
    "opted_out": pl.Boolean(),
    "cp_zone": pl.String(),
}

# Which contact points an action can use: (channel, audience) -> (kinds in order of preference, owner).
_NEEDS: dict[tuple[str, str], tuple[tuple[str, ...], str]] = {
    ("sms", "debtor"): (("mobile",), "self"),
    ("sms", "third_party"): (("mobile",), "third"),
    ("email", "debtor"): (("email",), "self"),
    ("email", "third_party"): (("email",), "third"),
    ("call", "debtor"): (("mobile", "landline"), "self"),
    ("call", "third_party"): (("mobile", "landline"), "third"),
    ("letter", "debtor"): (("address",), "self"),
    ("visit", "debtor"): (("address",), "self"),
}


# The debtors with a planned contact are named in the contact point query while they are at most this
# share of the partition's; more, and the partition's are read and narrowed in Polars (a list that long
# costs the server more than the rows it saves).
_NAMED_SHARE = 0.25
_SQLITE_NAMED = 20_000  # SQLite's statements are at most a million bytes long


def load_contact_points(
    session: Session,
    settings: RunSettings,
    *,
    partition: int,
    partitions: int,
    account_id: int | None = None,
    debtor_ids: pl.Series | None = None,
    debtors_in_scope: int | None = None,
) -> pl.DataFrame:
    """Every valid contact point of the partition's debtors (only of ``debtor_ids``, when given: the
    debtors with a planned action, which are all `attach_contacts` looks up; after the first run of a
    portfolio they are a small share of the ``debtors_in_scope``)."""
    scope = f"a.portfolio_id = {int(settings.portfolio_id)}" + _partition_clause(partition, partitions)
    if account_id is not None:
        scope += f" AND a.id = {int(account_id)}"
    wanted = None if debtor_ids is None else debtor_ids.drop_nulls().unique().sort()
    named = ""
    if wanted is not None:
        if wanted.len() == 0:
            return pl.DataFrame(schema=_CP_SCHEMA)
        share = wanted.len() <= _NAMED_SHARE * debtors_in_scope if debtors_in_scope is not None else True
        postgres = bulk.dialect(session) == "postgresql"
        if share and (postgres or wanted.len() <= _SQLITE_NAMED):
            ids = ",".join(str(int(i)) for i in wanted)
            # PostgreSQL: one array constant, however long
            named = f" AND cp.debtor_id = ANY('{{{ids}}}')" if postgres else f" AND cp.debtor_id IN ({ids})"
    contacts = bulk.read_frame(
        session,
        "SELECT cp.id AS contact_point_id, cp.debtor_id, cp.kind AS contact_kind, cp.value, cp.owner_relation,"
        " cp.debt_related, cp.verified, cp.is_valid, cp.opted_out, cp.timezone AS cp_zone"
        f" FROM contact_point cp WHERE cp.is_valid = TRUE{named} AND cp.debtor_id IN"
        f" (SELECT a.debtor_id FROM account a WHERE {scope})",
        _CP_SCHEMA,
    )
    if wanted is not None and not named:
        contacts = contacts.filter(pl.col("debtor_id").is_in(wanted.implode()))
    return contacts


def attach_contacts(planned: pl.DataFrame, contacts: pl.DataFrame) -> pl.DataFrame:
    """Phase 6 (pure): pick each planned contact's contact point and derive the gate's group attributes.

    Preference: not opted out, verified, kind order of `_NEEDS`, lowest id. A letter or visit without an
    address contact point goes to the debtor's address on file. A debtor whose own phone numbers are all
    invalid (or who has none) is out of contact (CN-3).
    """
    if planned.height == 0:
        return planned
    tagged: list[pl.DataFrame] = []
    for (channel, audience), (kinds, owner) in _NEEDS.items():
        owner_ok = (
            (pl.col("owner_relation") == "self") if owner == "self" else (pl.col("owner_relation") != "self")
        )
        rank = pl.col("contact_kind").replace_strict({k: i for i, k in enumerate(kinds)}, default=None)
        # each need on its own: sorted by debtor then preference, a debtor's best point is the first row of
        # its run (no string keys to sort by, no hashing)
        ranked = (
            contacts.filter(pl.col("contact_kind").is_in(list(kinds)) & owner_ok)
            .with_columns(rank.cast(pl.Int64).alias("_kind_rank"))
            .sort(
                ["debtor_id", "opted_out", "verified", "_kind_rank", "contact_point_id"],
                descending=[False, False, True, False, False],
            )
        )
        first = (pl.col("debtor_id") != pl.col("debtor_id").shift()).fill_null(True)
        tagged.append(
            ranked.filter(first).with_columns(
                pl.lit(channel).alias("channel"), pl.lit(audience).alias("audience")
            )
        )
    candidates = pl.concat(tagged) if tagged else contacts.clear()
    best = candidates.drop("_kind_rank", "is_valid", "verified")
    own_phone = contacts.filter(
        (pl.col("owner_relation") == "self") & pl.col("contact_kind").is_in(["mobile", "landline"])
    )
    reachable = own_phone.select("debtor_id").unique().with_columns(pl.lit(False).alias("numbers_invalid"))
    out = (
        planned.join(best, on=["debtor_id", "channel", "audience"], how="left", maintain_order="left")
        .join(reachable, on="debtor_id", how="left", maintain_order="left")
        .with_columns(pl.col("numbers_invalid").fill_null(True))
    )
    postal = pl.col("channel").is_in(["letter", "visit"]) & (pl.col("audience") == "debtor")
    on_file = postal & pl.col("contact_point_id").is_null() & pl.col("debtor_address").is_not_null()
    out = out.with_columns(
        pl.when(on_file).then(pl.lit("address")).otherwise(pl.col("contact_kind")).alias("contact_kind"),
        pl.when(on_file).then(pl.lit("self")).otherwise(pl.col("owner_relation")).alias("owner_relation"),
        (pl.col("contact_point_id").is_not_null() | on_file).alias("has_contact"),
        pl.col("debt_related").fill_null(False),
        pl.col("opted_out").fill_null(False),
    )
    phones = out.select(
        pl.when(pl.col("contact_kind").is_in(["mobile", "landline"])).then(pl.col("value")).otherwise(None)
    ).to_series()
    derived = gate.phone_zones(phones)
    out = out.with_columns(
        derived.alias("_phone_zones"),
        pl.coalesce(pl.col("cp_zone"), derived).alias("_point_zone"),
    )
    zones = pl.concat_list(
        pl.col("debtor_zone").fill_null("").str.split("|"),
        pl.col("_point_zone").fill_null("").str.split("|"),
    )
    # the few distinct (debtor zone, contact point zone) pairs are merged once each, not once per row
    keys = ["debtor_zone", "_point_zone"]
    merged = (
        out.select(keys)
        .unique()
        .with_columns(
            zones.list.eval(pl.element().filter(pl.element().is_not_null() & (pl.element() != "")))
            .list.unique()
            .list.sort()
            .list.join("|")
            .alias("zones")
        )
    )
    return out.join(merged, on=keys, how="left", nulls_equal=True, maintain_order="left").drop(
        "_phone_zones", "_point_zone"
    )


def gate_planned(settings: RunSettings, planned: pl.DataFrame, *, as_of: date) -> pl.DataFrame:
    """Phase 7: the compliance rules over every planned contact, once per group (see `gate`)."""
    if planned.height == 0:
        return planned
    return gate.check_planned(
        planned,
        pack=settings.pack,
        as_of=as_of,
        portfolio_zone=settings.timezone,
        collector_id=settings.creditor,
    )


def write_partition(
    session: Session,
    settings: RunSettings,
    *,
    run_id: int,
    as_of: date,
    now: datetime,
    decisions: pl.DataFrame,
    planned: pl.DataFrame,
    history: pl.DataFrame,
    outcome: PartitionOutcome,
    held: list[pl.DataFrame] | None = None,
) -> None:
    """Phase 8: decisions, strategy state, action history, outbox and work items, in bulk (the case's
    stage is written with its collector by the allocation, one update per changed case).

    ``held``: the work items are added to this list instead of written; the caller writes them once the
    allocation has given their cases collectors (`write_held_work_items`)."""
    if decisions.height == 0:
        return
    rows = decisions.select(
        pl.lit(run_id, pl.Int64()).alias("run_id"),
        pl.lit(settings.portfolio_id, pl.Int64()).alias("portfolio_id"),
        "case_id",
        "account_id",
        pl.lit(as_of).alias("as_of_date"),
        "strategy",
        pl.col("strategy_version").cast(pl.Int64),
        "arm",
        pl.when(pl.col("arm").is_not_null()).then(pl.col("challenger_share_bp")).alias("challenger_share_bp"),
        "previous_stage",
        "stage",
        "exit",
        pl.col("matched_block").cast(pl.Int64),
        "stage_entered_on",
        "days_in_stage",
        "dpd",
        "balance_minor",
        "priority",
        pl.col("flags").list.join(",").alias("flags"),
        _json_list("actions").alias("actions"),
        pl.lit(now, pl.Datetime("us", "UTC")).alias("created_at"),
    )
    _append(session, "strategy_decision", rows)
    outcome.decisions += rows.height
    state = decisions.select(
        "account_id",
        pl.lit(settings.portfolio_id, pl.Int64()).alias("portfolio_id"),
        "strategy",
        "stage",
        "stage_entered_on",
        "pinned_stage",
        pl.lit(as_of).alias("changed_on"),
        pl.lit(run_id, pl.Int64()).alias("run_id"),
    )
    # rows of accounts (and actions) seen for the first time are copied in; of the others only those whose
    # strategy, stage or entry date moved are written (most accounts stay where they were from day to day)
    stored = (decisions["has_state"] == 1).fill_null(False)
    _append(session, "account_strategy_state", state.filter(~stored))
    # a stored row keeps its pinned stage (a supervisor sets it)
    bulk.update_frame(
        session,
        "account_strategy_state",
        state.filter(stored & state_moved(decisions)).drop("pinned_stage"),
        key="account_id",
    )
    if planned.height:
        entered = decisions.select("account_id", pl.col("stage_entered_on").alias("_entered"))
        due = planned.select("account_id", "action_key").join(entered, on="account_id", how="left")
        after = next_history(due, history, as_of).with_columns(
            pl.lit(settings.portfolio_id, pl.Int64()).alias("portfolio_id")
        )
        keys = ["account_id", "action_key"]
        _append(session, "account_action_state", after.join(history, on=keys, how="anti"))
        bulk.insert_frame(
            session,
            "account_action_state",
            after.join(history.select(keys), on=keys, how="semi"),
            conflict=("account_id", "action_key"),
            update=("last_on", "times"),
        )
    cancel_superseded(session, settings, as_of=as_of, now=now, decisions=decisions, outcome=outcome)
    if planned.height == 0:
        return
    _write_outbox(session, settings, run_id=run_id, as_of=as_of, now=now, planned=planned, outcome=outcome)
    _write_work_items(
        session, settings, run_id=run_id, as_of=as_of, now=now, planned=planned, outcome=outcome, held=held
    )


def state_moved(decisions: pl.DataFrame) -> pl.Series:
    """Whether each decision moves its account's stored strategy state: another strategy, stage or stage
    entry date than the stored row's (pure; an account without a stored row counts as moved)."""
    same = (
        pl.col("strategy").eq_missing(pl.col("stored_strategy"))
        & pl.col("stage").eq_missing(pl.col("previous_stage"))
        & pl.col("stage_entered_on").eq_missing(pl.col("stored_entered_on"))
        & (pl.col("has_state") == 1).fill_null(False)
    )
    return decisions.select((~same).alias("moved"))["moved"]


def _append(session: Session, table: str, rows: pl.DataFrame) -> None:
    """Append the run's new rows to ``table``. The first run of a portfolio fills nearly empty tables with
    a row per account or per planned action: then the table's secondary indexes are built once after the
    load instead of row by row (`arrears.bulk.indexes_deferred`; unique constraints are rebuilt as
    constraints, so a duplicate still fails the run). A later day's load into a table as large keeps them.
    """
    if rows.height < table_bulk.DEFER_INDEXES_MIN_ROWS or _estimated_rows(session, table) >= rows.height:
        # as large as the load by its statistics: its rows need not be counted, its indexes stay
        bulk.insert_frame(session, table, rows)
        return
    with table_bulk.indexes_deferred(session, [table], rows=rows.height):
        bulk.insert_frame(session, table, rows)


def _estimated_rows(session: Session, table: str) -> float:
    """The table's row count as PostgreSQL's statistics last saw it (-1: never counted, or SQLite)."""
    if bulk.dialect(session) != "postgresql":
        return -1.0
    held = session.execute(
        text("SELECT c.reltuples FROM pg_class c WHERE c.oid = to_regclass(:t)"), {"t": f'"{table}"'}
    ).scalar()
    return float(held) if held is not None else -1.0


_PENDING_SCHEMA: dict[str, pl.DataType] = {
    "id": pl.Int64(),
    "account_id": pl.Int64(),
    "action_key": pl.String(),
}


def superseded(pending: pl.DataFrame, decisions: pl.DataFrame) -> pl.DataFrame:
    """Pending rows (``id``, ``account_id``, ``action_key``) that today's decisions make obsolete (pure).

    A queued message or open work item planned on an earlier date no longer applies when its account is
    now on hold (an open flag), has left the strategy (an exit such as ``paid``), is in no stage (cured:
    nothing overdue), or is in another stage than the one that planned it (``stage.action``): a promise
    made, a plan agreed, a payment that moved it back. Returns ``id`` and ``last_reason`` (zh / en).
    """
    today = decisions.select(
        "account_id",
        pl.col("stage").alias("_stage"),
        pl.col("exit").alias("_exit"),
        pl.col("flags").list.join(",").alias("_flags"),
    )
    joined = pending.join(today, on="account_id", how="inner")
    planned_in = pl.col("action_key").str.split(".").list.first()
    held = pl.col("_flags").fill_null("") != ""
    reason = (
        pl.when(held)
        .then(
            pl.format(
                "不再适用：账户有停催标记（{}） / no longer applies: the account is on hold ({})",
                "_flags",
                "_flags",
            )
        )
        .when(pl.col("_exit").is_not_null())
        .then(
            pl.format(
                "不再适用：账户已退出策略（{}） / no longer applies: the account left the strategy ({})",
                "_exit",
                "_exit",
            )
        )
        .when(pl.col("_stage").is_null())
        .then(
            pl.lit(
                "不再适用：账户已无逾期，不在任何催收阶段 / no longer applies: the account is in no collection stage"
            )
        )
        .when(pl.col("_stage") != planned_in)
        .then(
            pl.format(
                "不再适用：账户已进入阶段 {} / no longer applies: the account moved to stage {}",
                "_stage",
                "_stage",
            )
        )
    )
    return joined.select("id", reason.alias("last_reason")).filter(pl.col("last_reason").is_not_null())


def cancel_superseded(
    session: Session,
    settings: RunSettings,
    *,
    as_of: date,
    now: datetime,
    decisions: pl.DataFrame,
    outcome: PartitionOutcome,
) -> None:
    """Cancel the queued messages and open work items of earlier dates that today's decisions make
    obsolete (`superseded`), with the reason; the senders and the work queue skip cancelled rows."""
    if decisions.height == 0:
        return
    scope = f"portfolio_id = {int(settings.portfolio_id)} AND as_of_date < '{as_of.isoformat()}'"
    stamp = pl.lit(now, pl.Datetime("us", "UTC"))
    for table, status in (("outbox_message", "queued"), ("work_item", "open")):
        pending = bulk.read_frame(
            session,
            f"SELECT id, account_id, action_key FROM {table} WHERE {scope} AND status = '{status}'",
            _PENDING_SCHEMA,
        )
        if pending.height == 0:
            continue
        gone = superseded(pending, decisions).select(
            "id", pl.lit("cancelled").alias("status"), "last_reason", stamp.alias("updated_at")
        )
        bulk.update_frame(session, table, gone, key="id")
        outcome.cancelled += gone.height


def next_history(due: pl.DataFrame, history: pl.DataFrame, as_of: date) -> pl.DataFrame:
    """New ``last_on`` / ``times`` of each planned (account, action) after ``as_of`` (pure).

    ``due`` has ``account_id``, ``action_key`` and ``_entered`` (the stage entry date after evaluation);
    ``history`` the stored rows. A count restarts when the stage was re-entered since the action was last
    planned (the same rule as `evaluate.advance`).
    """
    joined = due.join(history, on=["account_id", "action_key"], how="left")
    in_stay = (pl.col("last_on") >= pl.col("_entered")).fill_null(False)
    return joined.select(
        "account_id",
        "action_key",
        pl.lit(as_of).alias("last_on"),
        (pl.when(in_stay).then(pl.col("times")).otherwise(0) + 1).cast(pl.Int64).alias("times"),
    )


def _locale(settings: RunSettings) -> pl.Expr:
    return (
        pl.when(pl.col("language").is_in(["zh_CN", "en"]))
        .then(pl.col("language"))
        .otherwise(pl.lit(settings.locale))
    )


def _count_gate(planned: pl.DataFrame, outcome: PartitionOutcome) -> None:
    contacts = planned.filter(pl.col("gate").is_in(["allowed", "rescheduled", "blocked"]))
    outcome.rescheduled += contacts.filter(pl.col("gate") == "rescheduled").height
    outcome.dropped += contacts.filter(pl.col("gate") == "blocked").height
    flagged = (
        contacts.filter(pl.col("gate") != "allowed")
        .select(pl.col("gate_rule_ids").alias("rule"))
        .explode("rule")
    )
    for rule, n in flagged.drop_nulls().group_by("rule").len().iter_rows():
        outcome.blocked_by_rule[rule] = outcome.blocked_by_rule.get(rule, 0) + n
    no_contact = contacts.filter(
        (pl.col("gate") == "blocked") & pl.col("gate_reason").str.starts_with(gate.NO_CONTACT)
    ).height
    if no_contact:
        outcome.blocked_by_rule[gate.NO_CONTACT] = (
            outcome.blocked_by_rule.get(gate.NO_CONTACT, 0) + no_contact
        )


def _json_list(column: str) -> pl.Expr:
    """A list of plain identifiers (action keys, rule ids: no quotes or backslashes) as a JSON array."""
    quoted = pl.col(column).list.eval(pl.lit('"') + pl.element() + pl.lit('"')).list.join(",")
    return pl.concat_str([pl.lit("["), quoted, pl.lit("]")]).fill_null("[]")


def _write_outbox(
    session: Session,
    settings: RunSettings,
    *,
    run_id: int,
    as_of: date,
    now: datetime,
    planned: pl.DataFrame,
    outcome: PartitionOutcome,
) -> None:
    messages = planned.filter(pl.col("kind").is_in(list(MESSAGE_KINDS)))
    if messages.height == 0:
        return
    queued = pl.col("gate") != "blocked"
    stamp = pl.lit(now, pl.Datetime("us", "UTC"))
    rows = messages.select(
        pl.lit(settings.portfolio_id, pl.Int64()).alias("portfolio_id"),
        "case_id",
        "account_id",
        "contact_point_id",
        pl.lit(run_id, pl.Int64()).alias("run_id"),
        pl.lit(as_of).alias("as_of_date"),
        "action_key",
        "channel",
        "template",
        _locale(settings).alias("locale"),
        "idempotency_key",
        "planned_for",
        pl.col("window_end_at").alias("window_end"),
        pl.when(queued).then(pl.lit("queued")).otherwise(pl.lit("blocked")).alias("status"),
        pl.lit(0, pl.Int64()).alias("attempts"),
        pl.when(queued).then(pl.col("planned_for")).alias("next_attempt_at"),
        pl.col("gate_reason").alias("last_reason"),
        _json_list("gate_rule_ids").alias("rule_ids"),
        stamp.alias("created_at"),
        stamp.alias("updated_at"),
    )
    _append(session, "outbox_message", rows)  # decided accounts are skipped: no duplicates
    outcome.outbox += rows.height


#: Task kinds a collector does once per case however many of its accounts call for them.
PER_CASE_TASKS = ("call_task", "visit_task")


_PER_CASE_KEYS = ["case_id", "kind", "audience", "contact_point_id"]


def _called_today(session: Session, settings: RunSettings, as_of: date) -> pl.DataFrame:
    """The open calls and visits an earlier run wrote for ``as_of``, by the keys of `one_call_per_case`."""
    return bulk.read_frame(
        session,
        "SELECT case_id, CASE kind WHEN 'call' THEN 'call_task' ELSE 'visit_task' END AS kind, audience,"
        " contact_point_id FROM work_item"
        # literals: the open items' partial index on (portfolio, date) serves it
        f" WHERE portfolio_id = {int(settings.portfolio_id)} AND status = 'open'"
        f" AND as_of_date = '{as_of.isoformat()}' AND kind IN ('call', 'visit')",
        {"case_id": pl.Int64(), "kind": pl.String(), "audience": pl.String(), "contact_point_id": pl.Int64()},
    )


def one_call_per_case(tasks: pl.DataFrame) -> pl.DataFrame:
    """One call (or visit) per case, person and contact point on a day, however many accounts plan it (pure).

    A debtor with several overdue accounts in the portfolio is called once about all of them: the
    collector's case page shows every account, and a second call the same day would only spend the call
    cap (CN-2) and the debtor's patience. The task kept is the one that may go ahead (not blocked by the
    gate), then the highest priority, then the lowest account id; it carries the highest priority of the
    ones it stands for. Legal referrals stay one per account: each debt is referred on its own. The order
    of the rows is kept. (Across runs of one date, `_write_work_items` leaves out a call a case already
    has open for the day.)
    """
    keys = _PER_CASE_KEYS
    # on a narrow frame of the calls and visits only: the planned rows are wide and a million or more
    calls = tasks.select(
        pl.int_range(pl.len(), dtype=pl.UInt32).alias("_row"), *keys, "gate", "priority", "account_id"
    ).filter(pl.col("kind").is_in(PER_CASE_TASKS))
    if calls.height == calls.select(keys).n_unique():
        return tasks
    kept = (
        calls.sort(
            [(pl.col("gate") == "blocked").fill_null(False), pl.col("priority").fill_null(0), "account_id"],
            descending=[False, True, False],
        )
        .group_by(keys, maintain_order=True)
        .agg(pl.col("_row").first(), pl.col("priority").fill_null(0).max().alias("_top"))
    )
    dropped = calls.join(kept.select("_row"), on="_row", how="anti")["_row"]
    priority = tasks["priority"].cast(pl.Int64).scatter(kept["_row"], kept["_top"])
    return tasks.with_columns(priority.cast(tasks.schema["priority"])).filter(
        ~pl.int_range(pl.len(), dtype=pl.UInt32).is_in(dropped.implode())
    )


_WORK_ITEM_INPUTS = [
    *_PER_CASE_KEYS,
    "account_id",
    "gate",
    "priority",
    "stage",
    "dpd",
    "action_key",
    "template",
    "case_assignee",
    "planned_for",
    "window_end_at",
    "idempotency_key",
    "gate_rule_ids",
    "gate_reason",
]


def _write_work_items(
    session: Session,
    settings: RunSettings,
    *,
    run_id: int,
    as_of: date,
    now: datetime,
    planned: pl.DataFrame,
    outcome: PartitionOutcome,
    held: list[pl.DataFrame] | None = None,
) -> None:
    # the columns a work item is made of, first: the planned frame is wide, and filtering it whole copies
    # every column of a million rows or more
    planned = planned.select(_WORK_ITEM_INPUTS)
    tasks = one_call_per_case(planned.filter(pl.col("kind").is_in(list(TASK_KINDS))))
    if tasks.height and tasks["kind"].is_in(PER_CASE_TASKS).any():
        # a later run of the same date (accounts imported since) adds no second call to a case
        tasks = tasks.join(
            _called_today(session, settings, as_of), on=_PER_CASE_KEYS, how="anti", nulls_equal=True
        )
    if tasks.height == 0:
        return
    pairs = tasks.select("stage", "dpd").unique()
    queues = pairs.with_columns(
        pl.Series(
            "queue",
            [
                (q.name if (q := settings.queue_set.queue_for(s, int(d))) is not None else None)
                for s, d in pairs.iter_rows()
            ],
            dtype=pl.String(),
        )
    )
    tasks = tasks.join(queues, on=["stage", "dpd"], how="left", maintain_order="left")
    stamp = pl.lit(now, pl.Datetime("us", "UTC"))
    status = pl.when(pl.col("gate") == "blocked").then(pl.lit("blocked")).otherwise(pl.lit("open"))
    rows = tasks.select(
        pl.lit(settings.portfolio_id, pl.Int64()).alias("portfolio_id"),
        "case_id",
        "account_id",
        "contact_point_id",
        pl.lit(run_id, pl.Int64()).alias("run_id"),
        pl.lit(as_of).alias("as_of_date"),
        pl.col("kind").replace_strict(TASK_KINDS).alias("kind"),
        "action_key",
        "template",
        "audience",
        pl.col("priority").fill_null(0),
        "queue",
        # the case's collector so far; allocation moves the few items whose case changes hands
        pl.when(pl.col("kind").is_in(["call_task", "visit_task"]))
        .then(pl.col("case_assignee"))
        .alias("collector_id"),
        status.alias("status"),
        pl.col("planned_for").alias("window_start_at"),
        "window_end_at",
        "idempotency_key",
        _json_list("gate_rule_ids").alias("rule_ids"),
        pl.col("gate_reason").alias("last_reason"),
        stamp.alias("created_at"),
        stamp.alias("updated_at"),
    )
    if held is not None:
        held.append(rows)
    else:
        _append(session, "work_item", by_lifecycle(rows))
    outcome.work_items += rows.height


def by_lifecycle(rows: pl.DataFrame) -> pl.DataFrame:
    """Work item rows in the order they are written: open calls and visits, other open items, the rest.

    Pure. The next run expires the open calls and visits together and reads the open items for
    cancellation; written side by side, each group fills its own pages of the table, which those updates
    and reads then touch alone instead of nearly every page (the blocked items are never changed).
    Within a group the planned order stays.
    """
    worked = pl.col("kind").is_in(["call", "visit"])
    rank = pl.when(pl.col("status") != "open").then(2).when(worked).then(0).otherwise(1)
    return rows.sort(rank, maintain_order=True)


def write_held_work_items(
    session: Session, held: list[pl.DataFrame], collectors: pl.DataFrame | None
) -> None:
    """Write the work items a single-process run held back until the allocation (see `finish_run`).

    ``collectors``: ``case_id`` and ``assignee_id`` of the cases the allocation decided; their open calls
    and visits go to that collector (none for a case left unallocated), as `queue_service.sync_work_items`
    would move them, so no item is written and then moved. Other items keep the collector their case had.
    """
    if not held:
        return
    rows = pl.concat(held, how="vertical_relaxed") if len(held) > 1 else held[0]
    if collectors is not None and rows.height:
        decided = collectors.select(
            "case_id",
            pl.col("assignee_id").cast(rows.schema["collector_id"]).alias("_to"),
            pl.lit(True).alias("_in"),
        )
        worked = (
            pl.col("kind").is_in(["call", "visit"])
            & (pl.col("status") == "open")
            & pl.col("_in").fill_null(False)
        )
        rows = (
            rows.join(decided, on="case_id", how="left", maintain_order="left")
            .with_columns(
                pl.when(worked).then(pl.col("_to")).otherwise(pl.col("collector_id")).alias("collector_id")
            )
            .drop("_to", "_in")
        )
    _append(session, "work_item", by_lifecycle(rows))


def _count_decisions(decisions: pl.DataFrame, outcome: PartitionOutcome) -> None:
    label = (
        pl.when(pl.col("stage").is_not_null())
        .then(pl.col("stage"))
        .when(pl.col("exit").is_not_null())
        .then(pl.lit("exit:") + pl.col("exit"))
        .otherwise(pl.lit("(none)"))
    )
    for name, n in decisions.select(label.alias("label")).group_by("label").len().iter_rows():
        outcome.stage_counts[name] = outcome.stage_counts.get(name, 0) + n
    for key, n in (
        decisions.select(pl.col("actions").alias("key"))
        .explode("key")
        .drop_nulls()
        .group_by("key")
        .len()
        .iter_rows()
    ):
        outcome.action_counts[key] = outcome.action_counts.get(key, 0) + n
    if "arm" in decisions.columns:
        for arm, n in decisions.select("arm").drop_nulls().group_by("arm").len().iter_rows():
            outcome.arm_counts[arm] = outcome.arm_counts.get(arm, 0) + n


def run_partition(
    session: Session,
    settings: RunSettings,
    *,
    run_id: int,
    as_of: date,
    now: datetime,
    partition: int = 0,
    partitions: int = 1,
    progress: Progress | None = None,
    carried: Carried | None = None,
) -> PartitionOutcome:
    """Phases 4-8 for one partition of the portfolio's cases; flushes, never commits.

    ``carried``: the limitation statuses are taken from it rather than read, and the partition's work items
    and what the allocation reads of its decisions are added to it instead of written or read back.
    """
    sort_memory(session)
    outcome = PartitionOutcome()
    with _phase(outcome, "snapshot", progress):
        snapshot, history = load_snapshot(
            session,
            settings,
            as_of=as_of,
            partition=partition,
            partitions=partitions,
            limitations=carried.limitations if carried is not None else None,
        )
        outcome.accounts_skipped = _count_decided(session, settings, as_of, partition, partitions)
    outcome.accounts_evaluated = snapshot.height
    if snapshot.height == 0:
        return outcome
    with _phase(outcome, "evaluate", progress):
        decisions, planned = evaluate_snapshot(settings, snapshot, as_of=as_of, outcome=outcome)
        if decisions.height:
            _count_decisions(decisions, outcome)
            if carried is not None:
                carried.decided.append(decided_for_allocation(decisions))
    with _phase(outcome, "plan", progress):
        if planned.height:
            contacts = load_contact_points(
                session,
                settings,
                partition=partition,
                partitions=partitions,
                debtor_ids=planned["debtor_id"],
                debtors_in_scope=snapshot["debtor_id"].n_unique(),
            )
            planned = attach_contacts(planned, contacts)
    with _phase(outcome, "gate", progress):
        planned = gate_planned(settings, planned, as_of=as_of)
        if planned.height:
            _count_gate(planned, outcome)
    with _phase(outcome, "write", progress):
        write_partition(
            session,
            settings,
            run_id=run_id,
            as_of=as_of,
            now=now,
            decisions=decisions,
            planned=planned,
            history=history,
            outcome=outcome,
            held=carried.work_items if carried is not None else None,
        )
        session.flush()
    return outcome


def decided_for_allocation(decisions: pl.DataFrame) -> pl.DataFrame:
    """What the allocation reads of the decisions (`queue_service.DECIDED_SCHEMA`), as it would read the
    stored rows back: ``held`` is 1 for an account with open flags (pure)."""
    from arrears.strategy.queue_service import DECIDED_SCHEMA

    held = (pl.col("flags").list.len() > 0).fill_null(False).cast(pl.Int64)
    return decisions.select(
        *(pl.col(c).cast(DECIDED_SCHEMA[c]) for c in DECIDED_SCHEMA if c != "held"), held.alias("held")
    )


def _count_decided(
    session: Session, settings: RunSettings, as_of: date, partition: int, partitions: int
) -> int:
    sql = (
        "SELECT count(*) FROM strategy_decision sd"
        f" WHERE sd.portfolio_id = {int(settings.portfolio_id)} AND sd.as_of_date = '{as_of.isoformat()}'"
        + _partition_clause(partition, partitions, "sd.case_id")
    )
    return int(session.execute(text(sql)).scalar() or 0)


# ---------------------------------------------------------------------------------------------- finish


def stage_order(settings: RunSettings) -> dict[str, int]:
    """Position of each stage in the run's strategies: a case's lead stage breaks DPD ties by it."""
    order: dict[str, int] = {}
    for strategy in settings.strategies().values():
        for index, stage in enumerate(strategy.stages):
            order.setdefault(stage.name, index)
    return order


# What the run reads portfolio-wide (its statistics are refreshed first when stale: `analyse_stale`).
INPUT_TABLES = (
    "account",
    "case",
    "debtor",
    "contact_point",
    "account_flag",
    "instalment",
    "account_strategy_state",
    "account_action_state",
    "account_limitation",
    "promise",
)


def analyse_stale(session: Session, tables: tuple[str, ...]) -> list[str]:
    """PostgreSQL plans the run's whole-portfolio joins from table statistics. Right after a bulk import
    or a bulk write they are stale (a table filled in this transaction still looks empty, and the planner
    then probes an index once per row of a million), so the tables whose rows changed by more than a
    tenth since they were last analysed are analysed now. Returns the tables analysed."""
    if bulk.dialect(session) != "postgresql":
        return []
    names = ", ".join(f"'{t}'" for t in tables)
    stale = session.execute(
        text(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid"
            f" WHERE n.nspname = current_schema() AND c.relname IN ({names})"
            " AND (c.reltuples < 0 OR COALESCE(s.n_mod_since_analyze, 0) > 0.1 * GREATEST(c.reltuples, 1000)"
            "  OR COALESCE(s.n_live_tup, 0) > 2 * GREATEST(c.reltuples, 500))"
        )
    ).scalars()
    analysed = sorted(stale)
    for table in analysed:
        session.connection().exec_driver_sql(f'ANALYZE "{table}"')
    return analysed


def refresh_statistics(
    session: Session, outcome: PartitionOutcome, *, decisions_read: bool = True
) -> list[str]:
    """The allocation reads back what the partitions wrote, and the counters `analyse_stale` reads only
    move when a transaction ends (a table filled in this one still looks empty). The decisions are
    analysed when the allocation reads them (``decisions_read``; not when the run hands them over): the
    date they are read by is new to the statistics, which would count it as one row. The work items are
    analysed when the partitions added a tenth of what the table held; the other tables the allocation
    reads (cases, allocation events) were not written since the run began, so only their committed
    changes are looked at (`analyse_stale`). Returns the tables analysed."""
    if bulk.dialect(session) != "postgresql":
        return []
    analysed: list[str] = []
    if outcome.decisions and decisions_read:
        analysed.append("strategy_decision")
    if outcome.work_items:
        held = session.execute(
            text("SELECT c.reltuples FROM pg_class c WHERE c.oid = to_regclass('work_item')")
        ).scalar()
        if held is None or held < 0 or outcome.work_items > 0.1 * max(float(held), 1000.0):
            analysed.append("work_item")
    for table in analysed:
        session.connection().exec_driver_sql(f'ANALYZE "{table}"')
    return analysed + analyse_stale(session, ("case", "allocation_event"))


def expire_work_items(session: Session, settings: RunSettings, *, as_of: date, now: datetime) -> int:
    """Phase 12: open calls and visits planned for earlier dates expire (today's plan replaces them)."""
    from sqlalchemy import literal_column, update

    from arrears.models import WorkItem

    result = session.execute(
        update(WorkItem)
        .where(
            WorkItem.portfolio_id == settings.portfolio_id,
            # a literal: a prepared statement's generic plan can then use the open items' index
            WorkItem.status == literal_column("'open'"),
            WorkItem.as_of_date < as_of,
            # a legal referral waits for its approval; it is cancelled when it no longer applies
            WorkItem.kind.in_(("call", "visit")),
        )
        .values(status="expired", updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def finish_run(
    session: Session,
    settings: RunSettings,
    run: StrategyRun,
    outcome: PartitionOutcome,
    *,
    now: datetime,
    started: float,
    progress: Progress | None = None,
    carried: Carried | None = None,
) -> RunReport:
    """Phases 9-11: expire stale work items, allocate cases, record the run and release the lock.

    ``carried`` (a run in one process): its work items are written as soon as the allocation has given
    their cases collectors, before the open items of other days are moved to them; its decisions are the
    allocation's when they are all of the date's (no account was decided by an earlier run of it), else
    the allocation reads them.
    """
    from arrears.strategy import queue_service

    sort_memory(session)
    held = carried.work_items if carried is not None else None
    decided = carried.decided if carried is not None else None
    as_of = run.as_of_date
    phases = list(run.phases)
    for name, seconds in sorted(outcome.phase_seconds.items(), key=lambda kv: _PHASE_ORDER.index(kv[0])):
        entry: dict[str, Any] = {"name": name, "status": "done", "seconds": seconds}
        if name == "write":
            entry["counts"] = {"cancelled": outcome.cancelled}
        phases.append(entry)
    # Nothing decided and the date already allocated by a run that succeeded: the allocation of the same
    # inputs would change nothing, so it is not recomputed (a run that failed before allocating is not
    # such a run, and its successor allocates).
    done_by = (
        session.scalar(
            select(func.max(StrategyRun.id)).where(
                StrategyRun.portfolio_id == settings.portfolio_id,
                StrategyRun.as_of_date == as_of,
                StrategyRun.status == "succeeded",
                StrategyRun.id != run.id,
            )
        )
        if outcome.decisions == 0
        else None
    )
    t = time.perf_counter()
    if progress:
        progress("expire", 0, 1)
    # the decisions the allocation is handed: every one of the date's, when this run made them all
    handed = pl.concat(decided, how="vertical_relaxed") if decided and outcome.accounts_skipped == 0 else None
    if done_by is None:
        refresh_statistics(session, outcome, decisions_read=handed is None)
    expired = expire_work_items(session, settings, as_of=as_of, now=now)
    phases.append({"name": "expire", "status": "done", "seconds": round(time.perf_counter() - t, 3)})
    if progress:
        progress("expire", 1, 1)
        progress("allocate", 0, 1)
    t = time.perf_counter()
    if done_by is None:
        allocation = queue_service.allocate_portfolio(
            session,
            portfolio_id=settings.portfolio_id,
            as_of=as_of,
            now=now,
            run_id=run.id,
            queue_set=settings.queue_set,
            order=stage_order(settings),
            before_sync=(lambda collectors: write_held_work_items(session, held, collectors))
            if held
            else None,
            decided=handed,
        )
        outcome.case_stage_changes += allocation.stage_changes
        allocation_counts, allocation_changes = allocation.counts, allocation.changes
        phases.append({"name": "allocate", "status": "done", "seconds": round(time.perf_counter() - t, 3)})
    else:
        previous = session.get(StrategyRun, done_by)
        allocation_counts = dict(previous.allocation_counts) if previous is not None else {}
        allocation_changes = 0
        phases.append(
            {
                "name": "allocate",
                "status": "skipped",
                "detail": f"已由批次 {done_by} 分案 / already allocated for the date by run {done_by}",
            }
        )
        if held:  # nothing moves: the items keep their case's collector
            write_held_work_items(session, held, None)
    if progress:
        progress("allocate", 1, 1)
    duration_ms = int((time.perf_counter() - started) * 1000)
    report = RunReport(
        run_id=run.id,
        portfolio=settings.portfolio,
        as_of=as_of,
        dry_run=False,
        mode=run.mode,
        partitions=run.partitions,
        status="succeeded",
        outcome=outcome,
        allocation_counts=allocation_counts,
        expired_work_items=expired,
        allocation_changes=allocation_changes,
        duration_ms=duration_ms,
        prepared_changes=sum(int(p.get("changes", 0)) for p in run.phases),
    )
    phases.append({"name": "record", "status": "done"})
    run.status = "succeeded"
    run.finished_at = now
    run.duration_ms = duration_ms
    run.accounts_evaluated = outcome.accounts_evaluated
    run.accounts_skipped = outcome.accounts_skipped
    run.changes = report.changes
    run.outbox_written = outcome.outbox
    run.work_items_written = outcome.work_items
    run.rescheduled = outcome.rescheduled
    run.dropped = outcome.dropped
    run.stage_counts = dict(sorted(outcome.stage_counts.items()))
    run.action_counts = dict(sorted(outcome.action_counts.items()))
    run.blocked_by_rule = dict(sorted(outcome.blocked_by_rule.items()))
    run.arm_counts = dict(sorted(outcome.arm_counts.items()))
    run.allocation_counts = dict(sorted(allocation_counts.items()))
    run.phases = phases
    run.errors = outcome.errors
    session.execute(delete(StrategyRunLock).where(StrategyRunLock.portfolio_id == settings.portfolio_id))
    session.flush()
    return report


_PHASE_ORDER = ["snapshot", "evaluate", "plan", "gate", "write"]


def fail_run(session: Session, *, run_id: int, error: str, now: datetime) -> None:
    """Mark a run failed with its error and release its lock (the distributed path's error handler)."""
    run = session.get(StrategyRun, run_id)
    if run is None:
        return
    run.status = "failed"
    run.finished_at = now
    run.errors = [*run.errors, {"code": "run_failed", "message": error[:2000]}]
    session.execute(
        delete(StrategyRunLock).where(
            StrategyRunLock.portfolio_id == run.portfolio_id, StrategyRunLock.run_id == run_id
        )
    )
    session.flush()


# ---------------------------------------------------------------------------------------------- in-process


def run_portfolio(
    session: Session,
    *,
    portfolio: str | int,
    as_of: date,
    now: datetime,
    dry_run: bool = False,
    partitions: int = 1,
    requested_by: str | None = None,
    progress: Progress | None = None,
) -> RunReport:
    """The whole run in this process and this transaction; flushes, never commits.

    ``dry_run`` does all the work inside a savepoint and rolls it back: the report says what would happen
    and nothing is written (no run row either).
    """
    started = time.perf_counter()
    settings = resolve_settings(session, portfolio=portfolio)
    savepoint = session.begin_nested()
    try:
        # one transaction: the phases hand on what they computed (`Carried`), and the work items wait
        # for the allocation, which gives their cases collectors
        carried = Carried()
        run = begin_run(
            session,
            settings,
            as_of=as_of,
            now=now,
            partitions=partitions,
            requested_by=requested_by,
            dry_run=dry_run,
            carried=carried,
        )
        outcome = PartitionOutcome()
        for k in range(partitions):
            outcome = outcome.merge(
                run_partition(
                    session,
                    settings,
                    run_id=run.id,
                    as_of=as_of,
                    now=now,
                    partition=k,
                    partitions=partitions,
                    progress=progress,
                    carried=carried,
                )
            )
        report = finish_run(
            session,
            settings,
            run,
            outcome,
            now=now,
            started=started,
            progress=progress,
            carried=carried,
        )
    except BaseException:
        if savepoint.is_active:
            savepoint.rollback()
        raise
    if dry_run:
        savepoint.rollback()
        report.run_id = None
        report.dry_run = True
        report.status = "dry_run"
    else:
        savepoint.commit()
    return report
