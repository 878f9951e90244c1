"""Evaluate a strategy for one account (`evaluate`) or a whole portfolio at once (`evaluate_frame`).

Both give exactly the same stage, matched block, stage entry date and planned actions (a property test
holds them to it). The steps, in order:

1. Exits, then stages, top to bottom; the first ``when`` block that matches wins. No match: no stage.
2. Stage entry: staying in the stored stage keeps its entry date; any other stage is entered on ``as_of``.
   ``days_in_stage`` is ``as_of`` minus the entry date.
3. Each action of the stage is planned when its trigger holds (day in stage, DPD, days to the promise date,
   its own ``when``) and its repeat rule says it is due (see `RepeatKind`).
4. Safety nets that no strategy file can switch off: a flagged account gets no action at all (shared rule
   of every pack: disputes, cease, deceased, bankruptcy, complaint, legal hold stop collection); a
   time-barred account gets no legal action (CN-22, US-8). Files that would rely on them are refused on
   load already; these make the guarantee independent of the file.

History contract: ``last_action_on`` and ``action_counts`` describe actions planned *before* ``as_of``
(counts since the stage was entered). The result is then a pure function of the day's starting state, so
re-running a day yields the same plan and the same idempotency keys (invariant 4). `advance` gives the next
day's history from a snapshot and its evaluation.

Frame columns (`evaluate_frame` input; optional ones are filled with the defaults of `Snapshot`):
``account_id`` Int64, ``dpd`` Int64, ``balance_minor`` Int64, ``product`` String, ``currency`` String,
``grade`` String, ``score`` Int64, ``propensity`` Float64, ``flags`` List(String), ``promise_state`` String,
``promise_date`` Date, ``plan_state`` String, ``time_barred`` Boolean, ``days_since_rpc`` Int64, ``stage``
String (the stored stage), ``stage_entered_on`` Date, ``pinned_stage`` String, and per action key
``last_on:<stage.action>`` Date and ``count:<stage.action>`` Int64.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, time

import polars as pl

from arrears.enums import Channel, FlagKind, Product
from arrears.errors import ValidationFailed
from arrears.strategy.definition import (
    LEGAL_KINDS,
    TASK_KINDS,
    ActionKind,
    ActionSpec,
    Audience,
    CommitmentState,
    Condition,
    RepeatKind,
    Stage,
    Strategy,
    action_key,
)
from arrears.strategy.explain import Reason, describe_condition
from arrears.strategy.priority import PriorityInputs, priority_expr, priority_score

LAST_ON_PREFIX = "last_on:"
COUNT_PREFIX = "count:"


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What the strategy needs to know about one account on the as-of date."""

    account_id: int
    dpd: int  # days past the earliest unpaid due date; negative before it
    balance_minor: int
    product: Product | str = Product.OTHER
    currency: str = "CNY"
    grade: str | None = None
    score: int | None = None
    propensity: float | None = None  # propensity to pay, 0..1, from scoring
    flags: frozenset[FlagKind | str] = frozenset()  # open flags that stop collection
    promise_state: CommitmentState = CommitmentState.NONE
    promise_date: date | None = None
    plan_state: CommitmentState = CommitmentState.NONE
    time_barred: bool = False
    days_since_rpc: int | None = None  # None: never reached in person
    stage: str | None = None  # the stored stage before this evaluation
    stage_entered_on: date | None = None
    pinned_stage: str | None = None  # set by hand by a supervisor (e.g. "legal")
    last_action_on: Mapping[str, date] = field(default_factory=dict)  # by action key, before as_of
    action_counts: Mapping[str, int] = field(default_factory=dict)  # by action key, since stage entry


@dataclass(frozen=True, slots=True)
class PlannedAction:
    """An action to write to the outbox or task list; the gate still checks it when it happens."""

    action_key: str  # "stage.action": repeat rules and history use it
    idempotency_key: str  # account:strategy:action_key:as_of, unique per account, action and day
    stage: str
    name: str
    kind: ActionKind
    channel: Channel | None
    template: str
    window_start: time  # debtor's local time
    window_end: time
    audience: Audience
    needs_approval: bool
    rule_ids: tuple[str, ...]
    priority: int | None  # call and visit tasks only


@dataclass(frozen=True, slots=True)
class Evaluation:
    """The decision for one account on one date, with its reasons (PI-7)."""

    account_id: int
    as_of: date
    strategy: str
    strategy_version: int
    stage: str | None
    exit: str | None
    matched_block: int | None  # index of the matching when block of the stage or exit
    stage_entered_on: date | None
    days_in_stage: int | None
    priority: int
    priority_inputs: PriorityInputs
    reasons: tuple[Reason, ...]
    actions: tuple[PlannedAction, ...]
    suppressed: tuple[Reason, ...] = ()  # actions a safety net removed, with the rule

    @property
    def action_keys(self) -> tuple[str, ...]:
        """Keys of the planned actions, in strategy order."""
        return tuple(a.action_key for a in self.actions)


# ---------------------------------------------------------------------------------------------- scalar


def _between(value: int | None, low: int | None, high: int | None) -> bool:
    if value is None:
        return False
    return (low is None or value >= low) and (high is None or value <= high)


def _flag_values(snapshot: Snapshot) -> set[str]:
    return {str(f) for f in snapshot.flags}


def condition_holds(cond: Condition, snapshot: Snapshot) -> bool:
    """Whether every clause of a ``when`` block holds for the snapshot."""
    if (cond.dpd_min is not None or cond.dpd_max is not None) and not _between(
        snapshot.dpd, cond.dpd_min, cond.dpd_max
    ):
        return False
    if (cond.balance_min_minor is not None or cond.balance_max_minor is not None) and not _between(
        snapshot.balance_minor, cond.balance_min_minor, cond.balance_max_minor
    ):
        return False
    if cond.products is not None and str(snapshot.product) not in {p.value for p in cond.products}:
        return False
    if cond.grades is not None and snapshot.grade not in cond.grades:
        return False
    if (cond.score_min is not None or cond.score_max is not None) and not _between(
        snapshot.score, cond.score_min, cond.score_max
    ):
        return False
    flags = _flag_values(snapshot)
    if cond.flagged is not None and bool(flags) is not cond.flagged:
        return False
    if cond.flags_any is not None and not flags & {f.value for f in cond.flags_any}:
        return False
    if cond.promise_states is not None and snapshot.promise_state not in cond.promise_states:
        return False
    if cond.plan_states is not None and snapshot.plan_state not in cond.plan_states:
        return False
    if cond.time_barred is not None and snapshot.time_barred is not cond.time_barred:
        return False
    if cond.days_since_rpc_min is not None or cond.days_since_rpc_max is not None:
        if snapshot.days_since_rpc is None:
            if cond.days_since_rpc_max is not None:  # never reached: fails an upper bound only
                return False
        elif not _between(snapshot.days_since_rpc, cond.days_since_rpc_min, cond.days_since_rpc_max):
            return False
    if cond.pinned is not None and (snapshot.pinned_stage is not None) is not cond.pinned:
        return False
    return not (cond.pinned_stages is not None and snapshot.pinned_stage not in cond.pinned_stages)


def _bounds_hold(value: int | None, low: int | None, high: int | None) -> bool:
    return (low is None and high is None) or _between(value, low, high)


def _trigger_holds(
    action: ActionSpec, snapshot: Snapshot, days_in_stage: int, days_to_promise: int | None
) -> bool:
    return (
        _bounds_hold(days_in_stage, action.day_in_stage_min, action.day_in_stage_max)
        and _bounds_hold(snapshot.dpd, action.dpd_min, action.dpd_max)
        and _bounds_hold(days_to_promise, action.days_to_promise_min, action.days_to_promise_max)
        and (action.when is None or condition_holds(action.when, snapshot))
    )


def _repeat_due(action: ActionSpec, key: str, snapshot: Snapshot, entered_on: date, as_of: date) -> bool:
    last = snapshot.last_action_on.get(key)
    in_this_stay = last is not None and last >= entered_on
    if action.repeat is RepeatKind.ONCE:
        return not in_this_stay
    assert last is not None or not in_this_stay
    if action.repeat is RepeatKind.EVERY:
        assert action.every_days is not None
        return not in_this_stay or (last is not None and (as_of - last).days >= action.every_days)
    assert action.max_times is not None
    count = snapshot.action_counts.get(key, 0) if in_this_stay else 0
    not_today = not in_this_stay or (last is not None and last < as_of)
    return not_today and count < action.max_times


def _priority_inputs(snapshot: Snapshot, as_of: date) -> PriorityInputs:
    return PriorityInputs(
        balance_minor=snapshot.balance_minor,
        dpd=snapshot.dpd,
        promise_due_today=snapshot.promise_state is CommitmentState.ACTIVE and snapshot.promise_date == as_of,
        propensity=snapshot.propensity,
    )


def idempotency_key(account_id: int, strategy: str, key: str, as_of: date) -> str:
    """The outbox idempotency key of one planned action: ``account:strategy:stage.action:YYYY-MM-DD``."""
    return f"{account_id}:{strategy}:{key}:{as_of.isoformat()}"


def _check_currency(strategy: Strategy, currency: str) -> None:
    if strategy.currency is not None and currency != strategy.currency:
        raise ValidationFailed(
            f"strategy {strategy.name!r} states balances in {strategy.currency}, "
            f"the account is in {currency}",
            code="currency_mismatch",
        )


_HELD = Reason(
    "held",
    "账户有停催标记（异议、停催、死亡、破产、投诉或法律冻结），不安排任何催收动作",
    "the account is flagged (dispute, cease, deceased, bankruptcy, complaint or legal hold): no action",
)
_BARRED = Reason(
    "CN-22",
    "已超过诉讼时效，不安排法律行动（CN-22 / US-8）",
    "time-barred: no legal action (CN-22 / US-8)",
)


def first_match(snapshot: Snapshot, strategy: Strategy) -> tuple[str | None, str | None, int | None]:
    """``(stage, exit, block index)`` of the first exit or stage whose ``when`` block holds."""
    for exit_rule in strategy.exits:
        for index, block in enumerate(exit_rule.when):
            if condition_holds(block, snapshot):
                return None, exit_rule.name, index
    for stage in strategy.stages:
        for index, block in enumerate(stage.when):
            if condition_holds(block, snapshot):
                return stage.name, None, index
    return None, None, None


_NO_STAGE = Reason("no_stage", "不满足任何阶段的条件", "no stage's conditions hold")


def evaluate(snapshot: Snapshot, strategy: Strategy, as_of: date) -> Evaluation:
    """Decide one account's stage and planned actions on ``as_of``, with the reasons in words."""
    _check_currency(strategy, snapshot.currency)
    inputs = _priority_inputs(snapshot, as_of)
    priority = priority_score(inputs, strategy.priority)
    stage_name, exit_name, index = first_match(snapshot, strategy)
    entered_on: date | None = None
    days_in_stage: int | None = None
    actions: tuple[PlannedAction, ...] = ()
    suppressed: tuple[Reason, ...] = ()
    if exit_name is not None and index is not None:
        rule = next(e for e in strategy.exits if e.name == exit_name)
        head = Reason(f"exit:{rule.name}", f"退出策略：{rule.label_zh}", f"exit: {rule.label_en}")
        reasons = (head, *describe_condition(rule.when[index], strategy.currency))
    elif stage_name is not None and index is not None:
        stage = strategy.stage(stage_name)
        stays = snapshot.stage == stage_name and snapshot.stage_entered_on is not None
        entered_on = snapshot.stage_entered_on if stays and snapshot.stage_entered_on else as_of
        days_in_stage = (as_of - entered_on).days
        actions, suppressed = _plan(stage, snapshot, strategy, entered_on, as_of, priority)
        verb_zh, verb_en = ("仍处于", "stays in") if stays else ("进入", "enters")
        head = Reason(
            f"stage:{stage_name}",
            f"{verb_zh}阶段「{stage.label_zh}」（第 {days_in_stage} 天）",
            f"{verb_en} stage '{stage.label_en}' (day {days_in_stage})",
        )
        reasons = (head, *describe_condition(stage.when[index], strategy.currency))
    else:
        reasons = (_NO_STAGE,)
    return Evaluation(
        account_id=snapshot.account_id,
        as_of=as_of,
        strategy=strategy.name,
        strategy_version=strategy.version,
        stage=stage_name,
        exit=exit_name,
        matched_block=index,
        stage_entered_on=entered_on,
        days_in_stage=days_in_stage,
        priority=priority,
        priority_inputs=inputs,
        reasons=reasons,
        actions=actions,
        suppressed=suppressed,
    )


def _plan(
    stage: Stage, snapshot: Snapshot, strategy: Strategy, entered_on: date, as_of: date, priority: int
) -> tuple[tuple[PlannedAction, ...], tuple[Reason, ...]]:
    """The stage's due actions, and those a safety net removed."""
    days_in_stage = (as_of - entered_on).days
    days_to_promise = (snapshot.promise_date - as_of).days if snapshot.promise_date is not None else None
    flagged = bool(_flag_values(snapshot))
    planned: list[PlannedAction] = []
    suppressed: list[Reason] = []
    for action in stage.actions:
        key = action_key(stage.name, action.name)
        if not _trigger_holds(action, snapshot, days_in_stage, days_to_promise):
            continue
        if not _repeat_due(action, key, snapshot, entered_on, as_of):
            continue
        if flagged:  # held: collection stops on flagged accounts (every pack)
            suppressed.append(Reason(f"held:{key}", _HELD.zh, _HELD.en))
            continue
        if snapshot.time_barred and action.kind in LEGAL_KINDS:  # CN-22, US-8
            suppressed.append(Reason(f"CN-22:{key}", _BARRED.zh, _BARRED.en))
            continue
        planned.append(
            PlannedAction(
                action_key=key,
                idempotency_key=idempotency_key(snapshot.account_id, strategy.name, key, as_of),
                stage=stage.name,
                name=action.name,
                kind=action.kind,
                channel=action.channel,
                template=action.template,
                window_start=action.window_start,
                window_end=action.window_end,
                audience=action.audience,
                needs_approval=action.kind in LEGAL_KINDS,
                rule_ids=action.rule_ids,
                priority=priority if action.kind in TASK_KINDS else None,
            )
        )
    return tuple(planned), tuple(suppressed)


def advance(snapshot: Snapshot, evaluation: Evaluation) -> Snapshot:
    """The history after the day's plan is recorded: stage, entry date, last action dates and counts.

    The caller still updates what the world changes (DPD, balance, promises, flags) for the next day.
    """
    changed = evaluation.stage != snapshot.stage
    counts = {} if changed else dict(snapshot.action_counts)
    last = dict(snapshot.last_action_on)
    for key in evaluation.action_keys:
        counts[key] = counts.get(key, 0) + 1
        last[key] = evaluation.as_of
    return replace(
        snapshot,
        stage=evaluation.stage,
        stage_entered_on=evaluation.stage_entered_on,
        last_action_on=last,
        action_counts=counts,
    )


# ---------------------------------------------------------------------------------------------- frame

_DEFAULTS: dict[str, tuple[pl.DataType, object]] = {
    "product": (pl.String(), Product.OTHER.value),
    "currency": (pl.String(), None),
    "grade": (pl.String(), None),
    "score": (pl.Int64(), None),
    "propensity": (pl.Float64(), None),
    "flags": (pl.List(pl.String()), None),
    "promise_state": (pl.String(), CommitmentState.NONE.value),
    "promise_date": (pl.Date(), None),
    "plan_state": (pl.String(), CommitmentState.NONE.value),
    "time_barred": (pl.Boolean(), False),
    "days_since_rpc": (pl.Int64(), None),
    "stage": (pl.String(), None),
    "stage_entered_on": (pl.Date(), None),
    "pinned_stage": (pl.String(), None),
}
REQUIRED_COLUMNS = ("account_id", "dpd", "balance_minor")


def _prepare(lf: pl.LazyFrame, columns: Iterable[str], strategy: Strategy) -> pl.LazyFrame:
    present = set(columns)
    missing = [c for c in REQUIRED_COLUMNS if c not in present]
    if missing:
        raise ValidationFailed(f"strategy frame lacks columns: {', '.join(missing)}", code="missing_columns")
    fills: list[pl.Expr] = []
    for name, (dtype, default) in _DEFAULTS.items():
        if name in present:
            expr = pl.col(name).cast(dtype)
            fills.append(expr.fill_null(default) if default is not None else expr)
        else:
            fills.append(pl.lit(default, dtype).alias(name))
    for key in strategy.action_keys():
        for prefix, dtype in ((LAST_ON_PREFIX, pl.Date()), (COUNT_PREFIX, pl.Int64())):
            column = prefix + key
            fills.append(
                pl.col(column).cast(dtype) if column in present else pl.lit(None, dtype).alias(column)
            )
    return lf.with_columns(fills)


_FLAGGED = (pl.col("flags").list.len().fill_null(0) > 0).alias("_flagged")


def _range_expr(column: pl.Expr, low: int | None, high: int | None) -> list[pl.Expr]:
    parts: list[pl.Expr] = []
    if low is not None:
        parts.append(column >= low)
    if high is not None:
        parts.append(column <= high)
    return parts


def _all(parts: list[pl.Expr]) -> pl.Expr:
    if not parts:
        return pl.lit(True)
    out = parts[0].fill_null(False)
    for part in parts[1:]:
        out = out & part.fill_null(False)
    return out


def condition_expr(cond: Condition) -> pl.Expr:
    """Polars: whether every clause of a ``when`` block holds (same semantics as `condition_holds`)."""
    parts: list[pl.Expr] = []
    parts += _range_expr(pl.col("dpd"), cond.dpd_min, cond.dpd_max)
    parts += _range_expr(pl.col("balance_minor"), cond.balance_min_minor, cond.balance_max_minor)
    if cond.products is not None:
        parts.append(pl.col("product").is_in([p.value for p in cond.products]))
    if cond.grades is not None:
        parts.append(pl.col("grade").is_in(list(cond.grades)))
    parts += _range_expr(pl.col("score"), cond.score_min, cond.score_max)
    flagged = pl.col("flags").list.len().fill_null(0) > 0
    if cond.flagged is not None:
        parts.append(flagged if cond.flagged else ~flagged)
    if cond.flags_any is not None:
        any_flag = pl.lit(False)
        for flag in cond.flags_any:
            any_flag = any_flag | pl.col("flags").list.contains(flag.value).fill_null(False)
        parts.append(any_flag)
    if cond.promise_states is not None:
        parts.append(pl.col("promise_state").is_in([s.value for s in cond.promise_states]))
    if cond.plan_states is not None:
        parts.append(pl.col("plan_state").is_in([s.value for s in cond.plan_states]))
    if cond.time_barred is not None:
        parts.append(pl.col("time_barred") == cond.time_barred)
    rpc = pl.col("days_since_rpc")
    if cond.days_since_rpc_min is not None:
        parts.append(rpc.is_null() | (rpc >= cond.days_since_rpc_min))
    if cond.days_since_rpc_max is not None:
        parts.append(rpc.is_not_null() & (rpc <= cond.days_since_rpc_max))
    if cond.pinned_stages is not None:
        parts.append(pl.col("pinned_stage").is_in(list(cond.pinned_stages)))
    if cond.pinned is not None:
        is_pinned = pl.col("pinned_stage").is_not_null()
        parts.append(is_pinned if cond.pinned else ~is_pinned)
    return _all(parts)


def _repeat_expr(action: ActionSpec, key: str, as_of: date) -> pl.Expr:
    last = pl.col(LAST_ON_PREFIX + key)
    in_this_stay = (last.is_not_null() & (last >= pl.col("stage_entered_on_new"))).fill_null(False)
    if action.repeat is RepeatKind.ONCE:
        return ~in_this_stay
    if action.repeat is RepeatKind.EVERY:
        assert action.every_days is not None
        elapsed = (pl.lit(as_of) - last).dt.total_days()
        return ~in_this_stay | (elapsed >= action.every_days).fill_null(False)
    assert action.max_times is not None
    count = pl.when(in_this_stay).then(pl.col(COUNT_PREFIX + key).fill_null(0)).otherwise(0)
    not_today = ~in_this_stay | (last < pl.lit(as_of)).fill_null(False)
    return not_today & (count < action.max_times)


def _action_expr(stage: str, action: ActionSpec, as_of: date) -> pl.Expr:
    key = action_key(stage, action.name)
    days_to_promise = (pl.col("promise_date") - pl.lit(as_of)).dt.total_days()
    parts = [pl.col("stage_new") == stage]
    parts += _range_expr(pl.col("days_in_stage"), action.day_in_stage_min, action.day_in_stage_max)
    parts += _range_expr(pl.col("dpd"), action.dpd_min, action.dpd_max)
    parts += _range_expr(days_to_promise, action.days_to_promise_min, action.days_to_promise_max)
    if action.when is not None:
        parts.append(condition_expr(action.when))
    parts.append(_repeat_expr(action, key, as_of))
    parts.append(~pl.col("_flagged"))  # held: no action at all
    if action.kind in LEGAL_KINDS:
        parts.append(~pl.col("time_barred"))  # CN-22, US-8
    return _all(parts).alias(f"_due:{key}")


def evaluate_frame(df: pl.DataFrame | pl.LazyFrame, strategy: Strategy, as_of: date) -> pl.DataFrame:
    """Evaluate a whole portfolio at once; row for row the same decisions as `evaluate`.

    Returns one row per input row: ``account_id``, ``previous_stage``, ``stage``, ``exit``,
    ``matched_block`` (Int32), ``stage_entered_on``, ``days_in_stage``, ``priority`` (Int64) and
    ``actions`` (List(String) of action keys in strategy order). `planned_actions_frame` turns the
    actions into one row per planned action.
    """
    lf = df.lazy()
    columns = lf.collect_schema().names()
    prepared = _prepare(lf, columns, strategy)
    if strategy.currency is not None and "currency" in columns:
        others = (
            prepared.filter(pl.col("currency").is_not_null() & (pl.col("currency") != strategy.currency))
            .select(pl.col("currency").first())
            .collect()
        )
        found = others.item()
        if found is not None:
            _check_currency(strategy, str(found))

    targets: list[tuple[str | None, str | None, int]] = []  # (stage, exit, block)
    branches: list[pl.Expr] = []
    for exit_rule in strategy.exits:
        for index, block in enumerate(exit_rule.when):
            targets.append((None, exit_rule.name, index))
            branches.append(condition_expr(block))
    for stage in strategy.stages:
        for index, block in enumerate(stage.when):
            targets.append((stage.name, None, index))
            branches.append(condition_expr(block))
    picked: pl.Expr = pl.lit(None, pl.Int32())
    for position in reversed(range(len(branches))):  # first match wins
        picked = pl.when(branches[position]).then(pl.lit(position, pl.Int32())).otherwise(picked)
    pick = picked.alias("_pick")

    stage_new = pl.col("_pick").replace_strict(
        {i: t[0] for i, t in enumerate(targets)}, default=None, return_dtype=pl.String()
    )
    exit_name = pl.col("_pick").replace_strict(
        {i: t[1] for i, t in enumerate(targets)}, default=None, return_dtype=pl.String()
    )
    block_index = pl.col("_pick").replace_strict(
        {i: t[2] for i, t in enumerate(targets)}, default=None, return_dtype=pl.Int32()
    )
    stays = (pl.col("stage_new") == pl.col("stage")).fill_null(False) & pl.col(
        "stage_entered_on"
    ).is_not_null()
    entered = (
        pl.when(pl.col("stage_new").is_null())
        .then(pl.lit(None, pl.Date()))
        .when(stays)
        .then(pl.col("stage_entered_on"))
        .otherwise(pl.lit(as_of))
    )
    keys = strategy.action_keys()
    due = [_action_expr(stage.name, action, as_of) for stage in strategy.stages for action in stage.actions]
    masks = _mask_exprs(due)
    evaluated = (
        prepared.with_columns(pick, _FLAGGED)
        .with_columns(
            stage_new.alias("stage_new"),
            exit_name.alias("exit"),
            block_index.alias("matched_block"),
        )
        .with_columns(entered.alias("stage_entered_on_new"))
        .with_columns((pl.lit(as_of) - pl.col("stage_entered_on_new")).dt.total_days().alias("days_in_stage"))
        .select(
            pl.col("account_id"),
            pl.col("stage").alias("previous_stage"),
            pl.col("stage_new").alias("stage"),
            pl.col("exit"),
            pl.col("matched_block"),
            pl.col("stage_entered_on_new").alias("stage_entered_on"),
            pl.col("days_in_stage"),
            priority_expr(strategy.priority, as_of).alias("priority"),
            *masks,
        )
        .collect()
    )
    # Few distinct action sets exist in a portfolio, so lists are built once per distinct bit mask and
    # joined back: much faster than building a list per row.
    mask_names = [m.meta.output_name() for m in masks]
    distinct = evaluated.select(mask_names).unique()
    lists = [
        [keys[word * _MASK_BITS + bit] for word, name in enumerate(mask_names) for bit in _bits(row[name])]
        for row in distinct.iter_rows(named=True)
    ]
    lookup = distinct.with_columns(pl.Series("actions", lists, dtype=pl.List(pl.String())))
    return evaluated.join(lookup, on=mask_names, how="left", maintain_order="left", nulls_equal=True).drop(
        mask_names
    )


_MASK_BITS = 63  # bits per Int64 mask word (the sign bit stays unused)


def _mask_exprs(due: list[pl.Expr]) -> list[pl.Expr]:
    """Planned actions as bit masks, one Int64 word per 63 actions, in strategy order."""
    words: list[pl.Expr] = []
    for start in range(0, max(len(due), 1), _MASK_BITS):
        chunk = due[start : start + _MASK_BITS]
        terms = [
            pl.when(expr).then(pl.lit(1 << bit, pl.Int64())).otherwise(0) for bit, expr in enumerate(chunk)
        ]
        word = pl.sum_horizontal(terms) if terms else pl.lit(0, pl.Int64())
        words.append(word.cast(pl.Int64()).alias(f"_mask{start // _MASK_BITS}"))
    return words


def _bits(mask: int) -> list[int]:
    return [bit for bit in range(_MASK_BITS) if mask >> bit & 1]


def action_table(strategy: Strategy) -> pl.DataFrame:
    """One row per action of the strategy: key, stage, name, kind, channel, template, window, audience ..."""
    rows = [
        {
            "action_key": action_key(stage.name, action.name),
            "action_stage": stage.name,
            "name": action.name,
            "kind": action.kind.value,
            "channel": action.channel.value if action.channel is not None else None,
            "template": action.template,
            "window_start": action.window_start,
            "window_end": action.window_end,
            "audience": action.audience.value,
            "needs_approval": action.kind in LEGAL_KINDS,
            "is_task": action.kind in TASK_KINDS,
            "rule_ids": list(action.rule_ids),
        }
        for stage in strategy.stages
        for action in stage.actions
    ]
    schema = {
        "action_key": pl.String(),
        "action_stage": pl.String(),
        "name": pl.String(),
        "kind": pl.String(),
        "channel": pl.String(),
        "template": pl.String(),
        "window_start": pl.Time(),
        "window_end": pl.Time(),
        "audience": pl.String(),
        "needs_approval": pl.Boolean(),
        "is_task": pl.Boolean(),
        "rule_ids": pl.List(pl.String()),
    }
    return pl.DataFrame(rows, schema=schema)


def planned_actions_frame(result: pl.DataFrame, strategy: Strategy, as_of: date) -> pl.DataFrame:
    """One row per planned action of an `evaluate_frame` result, with its attributes and idempotency key.

    Columns: ``account_id``, ``stage``, ``action_key``, ``name``, ``kind``, ``channel``, ``template``,
    ``window_start``, ``window_end``, ``audience``, ``needs_approval``, ``rule_ids``, ``priority`` (tasks
    only, else null) and ``idempotency_key`` (same text as `idempotency_key`).
    """
    long = (
        result.select("account_id", "stage", "priority", pl.col("actions").alias("action_key"))
        .explode("action_key")
        .drop_nulls("action_key")
        .join(action_table(strategy), on="action_key", how="left", maintain_order="left")
    )
    return long.select(
        "account_id",
        "stage",
        "action_key",
        "name",
        "kind",
        "channel",
        "template",
        "window_start",
        "window_end",
        "audience",
        "needs_approval",
        "rule_ids",
        pl.when(pl.col("is_task")).then(pl.col("priority")).otherwise(None).alias("priority"),
        pl.concat_str(
            [
                pl.col("account_id").cast(pl.String()),
                pl.lit(f":{strategy.name}:"),
                pl.col("action_key"),
                pl.lit(f":{as_of.isoformat()}"),
            ]
        ).alias("idempotency_key"),
    )


def snapshots_frame(snapshots: Iterable[Snapshot], strategy: Strategy) -> pl.DataFrame:
    """Build an `evaluate_frame` input from snapshots (tests, small batches, replays)."""
    items = list(snapshots)
    keys = strategy.action_keys()
    data: dict[str, list[object]] = {
        "account_id": [s.account_id for s in items],
        "dpd": [s.dpd for s in items],
        "balance_minor": [s.balance_minor for s in items],
        "product": [str(s.product) for s in items],
        "currency": [s.currency for s in items],
        "grade": [s.grade for s in items],
        "score": [s.score for s in items],
        "propensity": [s.propensity for s in items],
        "flags": [sorted(str(f) for f in s.flags) for s in items],
        "promise_state": [s.promise_state.value for s in items],
        "promise_date": [s.promise_date for s in items],
        "plan_state": [s.plan_state.value for s in items],
        "time_barred": [s.time_barred for s in items],
        "days_since_rpc": [s.days_since_rpc for s in items],
        "stage": [s.stage for s in items],
        "stage_entered_on": [s.stage_entered_on for s in items],
        "pinned_stage": [s.pinned_stage for s in items],
    }
    schema: dict[str, pl.DataType] = {
        "account_id": pl.Int64(),
        "dpd": pl.Int64(),
        "balance_minor": pl.Int64(),
        **{name: dtype for name, (dtype, _default) in _DEFAULTS.items()},
    }
    for key in keys:
        data[LAST_ON_PREFIX + key] = [s.last_action_on.get(key) for s in items]
        data[COUNT_PREFIX + key] = [s.action_counts.get(key) for s in items]
        schema[LAST_ON_PREFIX + key] = pl.Date()
        schema[COUNT_PREFIX + key] = pl.Int64()
    return pl.DataFrame(data, schema=schema)
