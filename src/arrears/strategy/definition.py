"""The shape of a strategy file: ordered stages with conditions and actions, exits, priority weights.

A strategy is data (TOML), validated on load with pydantic (``extra="forbid"``: a misspelt key is an error,
not a silently ignored setting). Evaluation is first match wins: exits first, then stages in file order; a
stage or exit matches when any of its ``when`` blocks matches, and a block matches when all of its clauses
hold. Actions of the matched stage are planned when their trigger and repeat rule say so.

Guarantees checked here, on load, so a bad file never reaches the daily run:

* a stage that only flagged (held) accounts can enter has no actions (disputes, cease, deceased ...: the
  shared rule of every pack, RULEBOOK "What every pack shares");
* every legal referral requires ``time_barred = false`` in its stage or its own ``when`` (CN-22, US-8);
* names are unique, ranges are ordered, windows start before they end, repeat rules are complete, and pinned
  stages named in conditions exist.
"""

from __future__ import annotations

from datetime import time
from enum import StrEnum
from typing import Annotated, Self

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from arrears.enums import Channel, FlagKind, Product
from arrears.strategy.priority import PriorityWeights

NAME_PATTERN = r"^[a-z][a-z0-9_]*$"
TEMPLATE_PATTERN = r"^[a-z0-9][a-z0-9_.\-]*$"
RULE_ID_PATTERN = r"^[A-Z]{2,3}-\d+$"
STAGE_NAME_MAX = 32  # case.stage is String(32)

Name = Annotated[str, StringConstraints(pattern=NAME_PATTERN, max_length=STAGE_NAME_MAX)]
TemplateName = Annotated[str, StringConstraints(pattern=TEMPLATE_PATTERN, max_length=100)]
RuleId = Annotated[str, StringConstraints(pattern=RULE_ID_PATTERN)]
Label = Annotated[str, StringConstraints(min_length=1, max_length=200)]


class CommitmentState(StrEnum):
    """State of a promise to pay or of a repayment plan, as the daily run sees it."""

    NONE = "none"
    ACTIVE = "active"  # made, its date not yet passed
    KEPT = "kept"
    BROKEN = "broken"  # the date passed unpaid, or an instalment was missed


class ActionKind(StrEnum):
    """What an action produces: a message for the outbox, a task for a person, or an approval request."""

    SMS = "sms"
    EMAIL = "email"
    LETTER = "letter"
    CALL_TASK = "call_task"
    VISIT_TASK = "visit_task"
    LEGAL_REFERRAL = "legal_referral"  # a request for a supervisor's approval, never sent to the debtor


ACTION_CHANNEL: dict[ActionKind, Channel | None] = {
    ActionKind.SMS: Channel.SMS,
    ActionKind.EMAIL: Channel.EMAIL,
    ActionKind.LETTER: Channel.LETTER,
    ActionKind.CALL_TASK: Channel.CALL,
    ActionKind.VISIT_TASK: Channel.VISIT,
    ActionKind.LEGAL_REFERRAL: None,
}
TASK_KINDS = frozenset({ActionKind.CALL_TASK, ActionKind.VISIT_TASK})
LEGAL_KINDS = frozenset({ActionKind.LEGAL_REFERRAL})


class Audience(StrEnum):
    """Who an action addresses. Third-party contact is planned but allowed only by the gate (CN-3, CN-4)."""

    DEBTOR = "debtor"
    THIRD_PARTY = "third_party"


class RepeatKind(StrEnum):
    ONCE = "once"  # once per stay in the stage
    EVERY = "every"  # again when every_days have passed since the last time
    DAILY = "daily"  # at most once a day, up to max_times per stay in the stage


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_range(low: int | None, high: int | None, what: str) -> None:
    if low is not None and high is not None and low > high:
        raise ValueError(f"{what}_min ({low}) is greater than {what}_max ({high})")


class Condition(StrictModel):
    """One ``when`` block: every clause given must hold (an empty block always holds).

    Ranges are inclusive. DPD is negative before the due date (-3 = due in three days). Balances are
    integer minor units of the strategy's currency. ``days_since_rpc`` is absent when the debtor has never
    been reached: such an account satisfies a ``_min`` bound and fails a ``_max`` bound. An account without
    a grade or score fails any grade or score clause.
    """

    label_zh: Label | None = None
    label_en: Label | None = None
    dpd_min: int | None = None
    dpd_max: int | None = None
    balance_min_minor: int | None = None
    balance_max_minor: int | None = None
    products: tuple[Product, ...] | None = Field(default=None, min_length=1)
    grades: tuple[Annotated[str, StringConstraints(min_length=1)], ...] | None = Field(
        default=None, min_length=1
    )
    score_min: int | None = None
    score_max: int | None = None
    flagged: bool | None = None
    flags_any: tuple[FlagKind, ...] | None = Field(default=None, min_length=1)
    promise_states: tuple[CommitmentState, ...] | None = Field(default=None, min_length=1)
    plan_states: tuple[CommitmentState, ...] | None = Field(default=None, min_length=1)
    time_barred: bool | None = None
    days_since_rpc_min: int | None = Field(default=None, ge=0)
    days_since_rpc_max: int | None = Field(default=None, ge=0)
    pinned_stages: tuple[Name, ...] | None = Field(default=None, min_length=1)
    pinned: bool | None = None  # whether a supervisor set any stage by hand

    @model_validator(mode="after")
    def _ranges(self) -> Self:
        _check_range(self.dpd_min, self.dpd_max, "dpd")
        _check_range(self.balance_min_minor, self.balance_max_minor, "balance")
        _check_range(self.score_min, self.score_max, "score")
        _check_range(self.days_since_rpc_min, self.days_since_rpc_max, "days_since_rpc")
        if self.flagged is False and self.flags_any is not None:
            raise ValueError("flags_any cannot be combined with flagged = false")
        if self.pinned is False and self.pinned_stages is not None:
            raise ValueError("pinned_stages cannot be combined with pinned = false")
        return self

    def requires_flag(self) -> bool:
        """True when only a flagged account can satisfy this block."""
        return self.flagged is True or self.flags_any is not None


class ActionSpec(StrictModel):
    """One action of a stage: what to produce, when in the stage, how often, in which local time window.

    Trigger bounds are inclusive and all optional: ``day_in_stage`` (0 = the day the stage was entered),
    ``dpd``, ``days_to_promise`` (promise date minus as-of date; fails when there is no promise date), and
    an extra ``when`` block over the same clauses as a stage condition.
    """

    name: Name
    kind: ActionKind
    template: TemplateName
    window_start: time
    window_end: time
    repeat: RepeatKind
    every_days: int | None = Field(default=None, ge=1)
    max_times: int | None = Field(default=None, ge=1)
    audience: Audience = Audience.DEBTOR
    rule_ids: tuple[RuleId, ...] = ()
    label_zh: Label | None = None
    label_en: Label | None = None
    day_in_stage_min: int | None = Field(default=None, ge=0)
    day_in_stage_max: int | None = Field(default=None, ge=0)
    dpd_min: int | None = None
    dpd_max: int | None = None
    days_to_promise_min: int | None = None
    days_to_promise_max: int | None = None
    when: Condition | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.window_start >= self.window_end:
            raise ValueError(
                f"window_start ({self.window_start:%H:%M}) must be before "
                f"window_end ({self.window_end:%H:%M})"
            )
        if self.window_start.tzinfo is not None or self.window_end.tzinfo is not None:
            raise ValueError("windows are local times of the debtor; give them without a zone offset")
        if self.repeat is RepeatKind.EVERY and self.every_days is None:
            raise ValueError("repeat = 'every' needs every_days")
        if self.repeat is RepeatKind.DAILY and self.max_times is None:
            raise ValueError("repeat = 'daily' needs max_times")
        if self.repeat is not RepeatKind.EVERY and self.every_days is not None:
            raise ValueError(f"every_days only applies to repeat = 'every', not {self.repeat.value!r}")
        if self.repeat is not RepeatKind.DAILY and self.max_times is not None:
            raise ValueError(f"max_times only applies to repeat = 'daily', not {self.repeat.value!r}")
        if self.kind is ActionKind.LEGAL_REFERRAL and self.audience is not Audience.DEBTOR:
            raise ValueError("a legal referral has no third-party audience")
        _check_range(self.day_in_stage_min, self.day_in_stage_max, "day_in_stage")
        _check_range(self.dpd_min, self.dpd_max, "dpd")
        _check_range(self.days_to_promise_min, self.days_to_promise_max, "days_to_promise")
        return self

    @property
    def channel(self) -> Channel | None:
        """The contact channel the gate checks; None for a legal referral (an internal approval)."""
        return ACTION_CHANNEL[self.kind]


class Stage(StrictModel):
    """A step of the strategy: entered when any ``when`` block matches (and no earlier exit or stage did)."""

    name: Name
    label_zh: Label
    label_en: Label
    when: tuple[Condition, ...] = Field(min_length=1)
    actions: tuple[ActionSpec, ...] = ()

    @model_validator(mode="after")
    def _actions(self) -> Self:
        names = [a.name for a in self.actions]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"action names repeat in stage {self.name!r}: {', '.join(duplicates)}")
        if self.actions and all(block.requires_flag() for block in self.when):
            raise ValueError(
                f"stage {self.name!r} only holds flagged accounts, whose collection is stopped; "
                "it cannot have actions"
            )
        stage_not_barred = all(block.time_barred is False for block in self.when)
        for action in self.actions:
            if action.kind in LEGAL_KINDS and not (
                stage_not_barred or (action.when is not None and action.when.time_barred is False)
            ):
                raise ValueError(
                    f"legal action {action.name!r} must require time_barred = false (CN-22, US-8): "
                    "in every when block of the stage or in the action's own when"
                )
        return self


class Exit(StrictModel):
    """A condition under which an account leaves the strategy (no stage, no actions), e.g. paid in full."""

    name: Name
    label_zh: Label
    label_en: Label
    when: tuple[Condition, ...] = Field(min_length=1)


class Strategy(StrictModel):
    """A whole strategy file."""

    name: Name
    version: int = Field(ge=1)
    label_zh: Label
    label_en: Label
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")] | None = None
    priority: PriorityWeights
    exits: tuple[Exit, ...] = ()
    stages: tuple[Stage, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _names(self) -> Self:
        names = [s.name for s in self.stages] + [e.name for e in self.exits]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"stage and exit names must be unique: {', '.join(duplicates)} repeat")
        stage_names = {s.name for s in self.stages}
        for block in self._all_blocks():
            for pinned in block.pinned_stages or ():
                if pinned not in stage_names:
                    raise ValueError(f"pinned_stages names {pinned!r}, which is not a stage of this strategy")
        return self

    def _all_blocks(self) -> list[Condition]:
        blocks: list[Condition] = []
        for exit_rule in self.exits:
            blocks.extend(exit_rule.when)
        for stage in self.stages:
            blocks.extend(stage.when)
        for stage in self.stages:
            blocks.extend(a.when for a in stage.actions if a.when is not None)
        return blocks

    def stage(self, name: str) -> Stage:
        """The stage of that name (KeyError when there is none)."""
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise KeyError(name)

    def action_keys(self) -> list[str]:
        """Every action's key, ``stage.action``, in file order."""
        return [action_key(stage.name, action.name) for stage in self.stages for action in stage.actions]


def action_key(stage: str, action: str) -> str:
    """The stable key of an action, used for repeat rules and in idempotency keys: ``stage.action``."""
    return f"{stage}.{action}"
