"""Strategies over the database: assign a strategy (and a challenger) to a portfolio, read runs, explain a
decision (PI-7). The daily run itself is `arrears.strategy.run`; queues and allocation are `queue_service`.

Services take keyword-only arguments, flush and never commit.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from arrears.errors import NotFound, ValidationFailed
from arrears.models import (
    Account,
    OutboxMessage,
    Portfolio,
    PortfolioStrategy,
    StrategyDecision,
    StrategyRun,
    WorkItem,
)
from arrears.strategy import run as daily
from arrears.strategy.definition import Strategy
from arrears.strategy.evaluate import COUNT_PREFIX, LAST_ON_PREFIX, Snapshot, evaluate
from arrears.strategy.experiment import BASIS_POINTS
from arrears.strategy.explain import Reason, describe_condition
from arrears.strategy.loader import load_strategy
from arrears.strategy.queues import check_queue_stages, load_queues


def assign_strategy(
    session: Session,
    *,
    portfolio: str,
    strategy: str,
    challenger: str | None = None,
    challenger_share_bp: int | None = None,
    experiment: str | None = None,
    salt: str | None = None,
    queue_set: str | None = None,
    assigned_by: str | None = None,
) -> Portfolio:
    """Give a portfolio its strategy (the champion), optionally a challenger with a stable split, and a
    queue set. Every file is loaded and validated first, so a bad name never reaches the daily run.
    """
    p = session.scalar(select(Portfolio).where(Portfolio.name == portfolio))
    if p is None:
        raise NotFound(
            f"资产包不存在：{portfolio} / portfolio {portfolio!r} does not exist", code="portfolio_not_found"
        )
    champion = load_strategy(strategy)
    config = session.get(PortfolioStrategy, p.id)
    if config is None:
        config = PortfolioStrategy(portfolio_id=p.id)
        session.add(config)
    if queue_set is not None or config.queue_set is None:
        config.queue_set = queue_set or "default"
    check_queue_stages(load_queues(config.queue_set), champion)
    if challenger is not None:
        other = load_strategy(challenger)
        if other.name == champion.name:
            raise ValidationFailed("champion and challenger must differ", code="same_strategy")
        share = challenger_share_bp if challenger_share_bp is not None else 1_000
        if not 0 <= share <= BASIS_POINTS:
            raise ValidationFailed(
                f"challenger share must be 0..{BASIS_POINTS} basis points", code="bad_share"
            )
        config.challenger = other.name
        config.challenger_share_bp = share
        config.experiment = experiment or f"{champion.name}_vs_{other.name}"
        config.salt = salt or f"{p.id}:{config.experiment}"
    else:
        config.challenger = None
        config.challenger_share_bp = None
        config.experiment = None
        config.salt = None
    config.assigned_by = assigned_by
    p.strategy = champion.name
    session.flush()
    return p


def get_run(session: Session, *, run_id: int) -> StrategyRun:
    """One run row."""
    run = session.get(StrategyRun, run_id)
    if run is None:
        raise NotFound(f"运行记录不存在：{run_id} / no run {run_id}", code="run_not_found")
    return run


def list_runs(session: Session, *, portfolio_id: int | None = None, limit: int = 50) -> list[StrategyRun]:
    """The latest runs, newest first."""
    query = select(StrategyRun).order_by(StrategyRun.id.desc()).limit(limit)
    if portfolio_id is not None:
        query = query.where(StrategyRun.portfolio_id == portfolio_id)
    return list(session.scalars(query))


# ---------------------------------------------------------------------------------------------- explain


class ReasonOut(BaseModel):
    code: str
    zh: str
    en: str


class ActionOut(BaseModel):
    action_key: str
    kind: str
    channel: str | None
    template: str
    status: str  # outbox or work item status, or the preview's gate outcome
    planned_for: datetime | None
    window_end: datetime | None
    rule_ids: list[str]
    reason: str | None


class Explanation(BaseModel):
    """Why an account has its stage and actions on a date (PI-7)."""

    account_id: int
    as_of: date
    source: str  # "recorded" (a run decided it) or "preview" (what a run would decide now)
    strategy: str
    strategy_version: int
    arm: str | None
    stage: str | None
    stage_label_zh: str | None
    stage_label_en: str | None
    exit: str | None
    previous_stage: str | None
    stage_entered_on: date | None
    days_in_stage: int | None
    dpd: int
    balance_minor: int
    priority: int
    flags: list[str]
    reasons: list[ReasonOut]
    actions: list[ActionOut]
    suppressed: list[ReasonOut]


def _reasons(items: tuple[Reason, ...] | list[Reason]) -> list[ReasonOut]:
    return [ReasonOut(code=r.code, zh=r.zh, en=r.en) for r in items]


def _condition_reasons(
    strategy: Strategy, stage: str | None, exit_name: str | None, block: int | None
) -> list[ReasonOut]:
    if block is None:
        return [ReasonOut(code="no_stage", zh="不满足任何阶段的条件", en="no stage's conditions hold")]
    if exit_name is not None:
        rule = next((e for e in strategy.exits if e.name == exit_name), None)
        if rule is None or block >= len(rule.when):
            return []
        head = Reason(f"exit:{rule.name}", f"退出策略：{rule.label_zh}", f"exit: {rule.label_en}")
        return _reasons((head, *describe_condition(rule.when[block], strategy.currency)))
    try:
        found = strategy.stage(stage or "")
    except KeyError:
        return []
    if block >= len(found.when):
        return []
    head = Reason(f"stage:{found.name}", f"阶段「{found.label_zh}」", f"stage '{found.label_en}'")
    return _reasons((head, *describe_condition(found.when[block], strategy.currency)))


def _action_spec(strategy: Strategy, key: str) -> tuple[str, str | None, str]:
    stage_name, _, action_name = key.partition(".")
    try:
        stage = strategy.stage(stage_name)
    except KeyError:
        return ("unknown", None, "")
    for action in stage.actions:
        if action.name == action_name:
            channel = action.channel.value if action.channel is not None else None
            return (action.kind.value, channel, action.template)
    return ("unknown", None, "")


def _stage_labels(strategy: Strategy, stage: str | None) -> tuple[str | None, str | None]:
    if stage is None:
        return None, None
    try:
        found = strategy.stage(stage)
    except KeyError:
        return None, None
    return found.label_zh, found.label_en


def explain_account(session: Session, *, account_id: int, as_of: date) -> Explanation:
    """The decision of ``account_id`` on ``as_of`` in words: recorded when a run decided it, else a preview
    of what the run would decide (nothing is written either way).
    """
    account = session.get(Account, account_id)
    if account is None:
        raise NotFound(f"账户不存在：{account_id} / account {account_id} not found", code="account_not_found")
    decision = session.scalar(
        select(StrategyDecision).where(
            StrategyDecision.as_of_date == as_of,
            StrategyDecision.portfolio_id == account.portfolio_id,
            StrategyDecision.account_id == account_id,
        )
    )
    if decision is not None:
        return _recorded(session, decision)
    return _preview(session, account, as_of)


def _recorded(session: Session, decision: StrategyDecision) -> Explanation:
    strategy = load_strategy(decision.strategy)
    keys = list(decision.actions or [])
    messages = {
        m.action_key: m
        for m in session.scalars(
            select(OutboxMessage).where(
                OutboxMessage.account_id == decision.account_id,
                OutboxMessage.as_of_date == decision.as_of_date,
            )
        )
    }
    items = {
        w.action_key: w
        for w in session.scalars(
            select(WorkItem).where(
                WorkItem.account_id == decision.account_id, WorkItem.as_of_date == decision.as_of_date
            )
        )
    }
    actions: list[ActionOut] = []
    for key in keys:
        kind, channel, template = _action_spec(strategy, key)
        message, item = messages.get(key), items.get(key)
        if message is not None:
            actions.append(
                ActionOut(
                    action_key=key,
                    kind=kind,
                    channel=channel,
                    template=message.template,
                    status=message.status,
                    planned_for=message.planned_for,
                    window_end=message.window_end,
                    rule_ids=list(message.rule_ids or []),
                    reason=message.last_reason,
                )
            )
        elif item is not None:
            actions.append(
                ActionOut(
                    action_key=key,
                    kind=kind,
                    channel=channel,
                    template=item.template,
                    status=item.status,
                    planned_for=item.window_start_at,
                    window_end=item.window_end_at,
                    rule_ids=list(item.rule_ids or []),
                    reason=item.last_reason,
                )
            )
        else:
            actions.append(
                ActionOut(
                    action_key=key,
                    kind=kind,
                    channel=channel,
                    template=template,
                    status="planned",
                    planned_for=None,
                    window_end=None,
                    rule_ids=[],
                    reason=None,
                )
            )
    flags = [f for f in (decision.flags or "").split(",") if f]
    suppressed = (
        [
            ReasonOut(
                code="held",
                zh="账户有停催标记（" + "、".join(flags) + "），不安排任何催收动作",
                en="the account is flagged (" + ", ".join(flags) + "): no action",
            )
        ]
        if flags
        else []
    )
    zh, en = _stage_labels(strategy, decision.stage)
    return Explanation(
        account_id=decision.account_id,
        as_of=decision.as_of_date,
        source="recorded",
        strategy=decision.strategy,
        strategy_version=decision.strategy_version,
        arm=decision.arm,
        stage=decision.stage,
        stage_label_zh=zh,
        stage_label_en=en,
        exit=decision.exit,
        previous_stage=decision.previous_stage,
        stage_entered_on=decision.stage_entered_on,
        days_in_stage=decision.days_in_stage,
        dpd=decision.dpd,
        balance_minor=decision.balance_minor,
        priority=decision.priority,
        flags=flags,
        reasons=_condition_reasons(strategy, decision.stage, decision.exit, decision.matched_block),
        actions=actions,
        suppressed=suppressed,
    )


def _snapshot_of(row: dict[str, Any]) -> Snapshot:
    from arrears.strategy.definition import CommitmentState

    last = {k.removeprefix(LAST_ON_PREFIX): v for k, v in row.items() if k.startswith(LAST_ON_PREFIX) and v}
    counts = {k.removeprefix(COUNT_PREFIX): v for k, v in row.items() if k.startswith(COUNT_PREFIX) and v}
    return Snapshot(
        account_id=row["account_id"],
        dpd=row["dpd"],
        balance_minor=row["balance_minor"],
        product=row["product"],
        currency=row["currency"],
        grade=row["grade"],
        score=row["score"],
        propensity=row["propensity"],
        flags=frozenset(row["flags"] or ()),
        promise_state=CommitmentState(row["promise_state"] or "none"),
        promise_date=row["promise_date"],
        plan_state=CommitmentState(row["plan_state"] or "none"),
        time_barred=bool(row["time_barred"]),
        days_since_rpc=row["days_since_rpc"],
        stage=row["stage"],
        stage_entered_on=row["stage_entered_on"],
        pinned_stage=row["pinned_stage"],
        last_action_on=last,
        action_counts=counts,
    )


def _preview(session: Session, account: Account, as_of: date) -> Explanation:
    settings = daily.resolve_settings(session, portfolio=account.portfolio_id)
    snapshot, _history = daily.load_snapshot(
        session, settings, as_of=as_of, account_id=account.id, include_decided=True
    )
    if snapshot.height == 0:
        raise NotFound(
            f"账户 {account.id} 不在运行范围内（状态 {account.status}） / account {account.id} is not run "
            f"(status {account.status})",
            code="account_not_run",
        )
    outcome = daily.PartitionOutcome()
    decisions, planned = daily.evaluate_snapshot(settings, snapshot, as_of=as_of, outcome=outcome)
    if decisions.height == 0:
        raise ValidationFailed(str(outcome.errors), code="cannot_evaluate")
    row = decisions.row(0, named=True)
    strategy = settings.strategies()[row["strategy"]]
    evaluation = evaluate(_snapshot_of(snapshot.row(0, named=True)), strategy, as_of)
    if planned.height:
        contacts = daily.load_contact_points(
            session, settings, partition=0, partitions=1, account_id=account.id
        )
        planned = daily.gate_planned(settings, daily.attach_contacts(planned, contacts), as_of=as_of)
    actions = [
        ActionOut(
            action_key=p["action_key"],
            kind=p["kind"],
            channel=p["channel"],
            template=p["template"],
            status=p["gate"],
            planned_for=p["planned_for"],
            window_end=p["window_end_at"],
            rule_ids=list(p["gate_rule_ids"] or []),
            reason=p["gate_reason"],
        )
        for p in planned.iter_rows(named=True)
    ]
    zh, en = _stage_labels(strategy, row["stage"])
    return Explanation(
        account_id=account.id,
        as_of=as_of,
        source="preview",
        strategy=strategy.name,
        strategy_version=strategy.version,
        arm=row["arm"],
        stage=row["stage"],
        stage_label_zh=zh,
        stage_label_en=en,
        exit=row["exit"],
        previous_stage=row["previous_stage"],
        stage_entered_on=row["stage_entered_on"],
        days_in_stage=row["days_in_stage"],
        dpd=row["dpd"],
        balance_minor=row["balance_minor"],
        priority=row["priority"],
        flags=list(row["flags"] or []),
        reasons=_reasons(evaluation.reasons),
        actions=actions,
        suppressed=_reasons(evaluation.suppressed),
    )
