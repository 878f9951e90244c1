"""Rule packs: the numbers and word lists of RULEBOOK.md as data files.

A pack is a TOML file. The built-in packs (``cn``, the default, and ``us-regf``) ship in
``arrears/compliance/packs/``. An operator adds or adjusts a pack without code: copy a file into a directory
named by ``ARREARS_RULE_PACK_DIR`` (several directories separated by ``os.pathsep``; they are searched
before the built-in packs, so a copy named ``cn.toml`` there replaces the shipped one), or pass a path.

Every section is one rule kind of the gate and carries the RULEBOOK id it enforces; a missing section means
the pack does not have that rule. Unknown keys and malformed values are refused with the file and the key.
"""

from __future__ import annotations

import os
import re
import tomllib
from datetime import time
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PositiveInt,
    PrivateAttr,
    StringConstraints,
    ValidationError,
    field_validator,
)

from arrears.clock import zone_info
from arrears.compliance.schemas import ConsentScope, LimitationEventKind, Outcome, Purpose, TemplateKind
from arrears.enums import Channel, FlagKind, OwnerRelation, Product
from arrears.errors import ArrearsError, ConfigurationError, NotFound

PACK_DIR_ENV = "ARREARS_RULE_PACK_DIR"
# where an operator's packs live when ARREARS_RULE_PACK_DIR is not set (relative to the working directory)
DEFAULT_OPERATOR_DIR = Path("arrears-config/rule-packs")
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")

RuleId = Annotated[str, StringConstraints(pattern=r"^[A-Z]{2,5}-[0-9]{1,3}$")]
Weekday = Annotated[int, Field(ge=0, le=6)]
NonNegInt = Annotated[int, Field(ge=0)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_patterns(patterns: tuple[str, ...]) -> tuple[str, ...]:
    for pattern in patterns:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"invalid regular expression {pattern!r}: {exc}") from exc
    return patterns


class QuietHours(_Strict):
    """CN-1 / US-1: contact only inside [allowed_from, allowed_until) (or ...] when inclusive), local time."""

    id: RuleId
    allowed_from: time
    allowed_until: time
    until_inclusive: bool = False
    channels: frozenset[Channel]
    consent_lifts: bool = True
    honour_stated_inconvenient_times: bool = True
    inconvenient_rule_id: RuleId | None = None  # id cited for debtor-named times (defaults to id)


class DailyCallCap(_Strict):
    """CN-2: at most ``max_attempts`` call attempts per local day to one contact point."""

    id: RuleId
    max_attempts: PositiveInt
    channels: frozenset[Channel] = frozenset({Channel.CALL})
    consent_lifts: bool = True


class ThirdPartyGate(_Strict):
    """CN-3: third parties only when the debtor is out of contact."""

    id: RuleId
    consecutive_failed_attempts: PositiveInt
    channels: frozenset[Channel]
    failed_outcomes: frozenset[Outcome]
    reached_outcomes: frozenset[Outcome]
    exempt_relations: frozenset[OwnerRelation] = frozenset()


class ThirdPartyContent(_Strict):
    """CN-4: an unrelated third party only hears message-passing content."""

    id: RuleId
    allowed_purposes: frozenset[Purpose]
    volunteer_exempt: bool = True


class AgencyList(_Strict):
    """CN-7: cases go only to listed, active agencies."""

    id: RuleId


class CardholderOnly(_Strict):
    """CN-8: for these products collect only from these relations."""

    id: RuleId
    products: frozenset[Product]
    relations: frozenset[OwnerRelation]
    collecting_purposes: frozenset[Purpose]


class ChannelPurposeBlock(_Strict):
    """CN-10 (lawful cap) and CN-22 / US-8 (time-barred): channels and purposes refused on such accounts."""

    id: RuleId
    blocked_channels: frozenset[Channel]
    blocked_purposes: frozenset[Purpose]


class CallFrequency(_Strict):
    """US-2..US-4: the 7-in-7 presumption, per person x debt x collector."""

    id: RuleId  # US-2
    per_rule_id: RuleId  # US-3
    exclusion_rule_id: RuleId  # US-4
    max_calls: PositiveInt
    window_days: PositiveInt
    conversation_window_days: PositiveInt
    consent_days: PositiveInt
    channels: frozenset[Channel] = frozenset({Channel.CALL})
    not_counted_outcomes: frozenset[Outcome]
    conversation_outcomes: frozenset[Outcome]


class WarningSigns(_Strict):
    """US-5: patterns that are warned about even within the limits."""

    id: RuleId
    unanswered_gap_minutes: PositiveInt
    unanswered_outcomes: frozenset[Outcome]
    calls_per_number_per_day: PositiveInt
    weekend_days: frozenset[Weekday] = frozenset({6})
    warn_on_holidays: bool = True


class Validation(_Strict):
    """US-7: validation notice and validation period."""

    id: RuleId
    notice_within_days: PositiveInt
    period_days: PositiveInt
    assumed_receipt_business_days: PositiveInt
    allowed_purposes: frozenset[Purpose]


class Flags(_Strict):
    """Shared guarantee: flagged accounts get no collection contact until a person clears the flag."""

    id: RuleId
    kinds: frozenset[FlagKind]
    rule_ids: dict[FlagKind, RuleId] = {}
    allowed_purposes: dict[FlagKind, frozenset[Purpose]] = {}


class OptOut(_Strict):
    """Shared guarantee: a channel or contact point the debtor opted out of is not used."""

    id: RuleId


class Limitation(_Strict):
    """CN-20..CN-26 / US-8: the limitation period and what interrupts or suspends it."""

    id: RuleId  # the base period (CN-20)
    period_years: PositiveInt
    absolute_years: PositiveInt | None = None  # CN-20 20-year cap
    absolute_rule_id: RuleId | None = None
    instalment_rule_id: RuleId | None = None  # CN-21
    interruption_rule_id: RuleId | None = None  # CN-24
    demand_rule_id: RuleId | None = None  # CN-25
    acknowledgment_rule_id: RuleId | None = None  # CN-26
    time_barred_rule_id: RuleId | None = None  # CN-22 / US-8
    suspension_rule_id: RuleId | None = None  # CN-23
    suspension_window_months: PositiveInt | None = None
    suspension_tail_months: PositiveInt | None = None
    interrupting_events: frozenset[LimitationEventKind]
    acknowledgment_events: frozenset[LimitationEventKind] = frozenset()
    demand_events: frozenset[LimitationEventKind] = frozenset()
    require_delivery_evidence: bool = True


class RetentionRule(_Strict):
    """CN-8, CN-33, PI-10, US-9: how long a kind of record is kept."""

    id: RuleId
    record: str
    years: PositiveInt
    counted_from: str


class ForbiddenPhrases(_Strict):
    """CN-5 / CN-6: phrases a text may not contain (zh, en, regular expressions)."""

    id: RuleId
    category: str
    zh: tuple[str, ...] = ()
    en: tuple[str, ...] = ()
    patterns: tuple[str, ...] = ()
    except_kinds: frozenset[TemplateKind] = frozenset()

    _valid = field_validator("patterns")(_check_patterns)


class RequiredContent(_Strict):
    """CN-5, CN-8, US-11, US-13: an element a text of some kinds must contain."""

    id: RuleId
    element: str
    kinds: frozenset[TemplateKind]
    when: Literal["always", "first_contact", "electronic"] = "always"
    electronic_channels: frozenset[Channel] = frozenset({Channel.SMS, Channel.EMAIL})
    placeholders: tuple[str, ...] = ()
    facts: tuple[str, ...] = ()  # names of caller-supplied facts whose value satisfies the element
    # When a real case's facts are given (a rendered text), one of ``facts`` must be known: a placeholder
    # or a heading in the text is not enough if the value it stands for is missing (CN-8 contact details).
    fact_required: bool = False
    zh: tuple[str, ...] = ()
    en: tuple[str, ...] = ()
    patterns: tuple[str, ...] = ()

    _valid = field_validator("patterns")(_check_patterns)


class DisclosureList(_Strict):
    """CN-4 (third-party texts) and CN-22 / US-8 (time-barred): what such texts may not mention."""

    id: RuleId
    category: str
    placeholders: tuple[str, ...] = ()
    zh: tuple[str, ...] = ()
    en: tuple[str, ...] = ()
    patterns: tuple[str, ...] = ()

    _valid = field_validator("patterns")(_check_patterns)


class Lint(_Strict):
    forbidden: tuple[ForbiddenPhrases, ...] = ()
    required: tuple[RequiredContent, ...] = ()
    third_party: DisclosureList | None = None
    legal_threat: DisclosureList | None = None


class RulePack(_Strict):
    """One rule pack (see the module docstring)."""

    name: Annotated[str, StringConstraints(pattern=_NAME_RE.pattern)]
    title_zh: str
    title_en: str
    version: str
    default_time_zone: str
    default_locale: str = "zh_CN"
    consent_scopes: frozenset[ConsentScope] = frozenset(ConsentScope)
    flags: Flags
    opt_out: OptOut
    quiet_hours: QuietHours | None = None
    daily_call_cap: DailyCallCap | None = None
    third_party_gate: ThirdPartyGate | None = None
    third_party_content: ThirdPartyContent | None = None
    agency_list: AgencyList | None = None
    cardholder_only: CardholderOnly | None = None
    lawful_cap: ChannelPurposeBlock | None = None
    time_barred: ChannelPurposeBlock | None = None
    call_frequency: CallFrequency | None = None
    warning_signs: WarningSigns | None = None
    validation: Validation | None = None
    limitation: Limitation | None = None
    retention: tuple[RetentionRule, ...] = ()
    lint: Lint = Lint()

    _source: str | None = PrivateAttr(default=None)

    @field_validator("default_time_zone")
    @classmethod
    def _zone_exists(cls, value: str) -> str:
        try:
            zone_info(value)
        except ArrearsError as exc:
            raise ValueError(exc.message) from exc
        return value

    @property
    def source(self) -> str | None:
        """Where the pack was loaded from (a file path), for messages and the audit log."""
        return self._source

    def cached(self, key: str) -> dict[str, Any]:
        """A per-pack scratch dict for derived data (compiled phrase lists), built once per loaded pack.

        Kept outside the model (keyed by identity, holding the pack so the id cannot be reused), because
        pydantic's private-attribute access is slow for the gate's hot path.
        """
        entry = _DERIVED.get(id(self))
        if entry is None or entry[0] is not self:
            entry = (self, {})
            _DERIVED[id(self)] = entry
        return entry[1].setdefault(key, {})


_DERIVED: dict[int, tuple[RulePack, dict[str, dict[str, Any]]]] = {}


def builtin_dir() -> Path:
    """The packs that ship with arrears."""
    return Path(str(resources.files("arrears.compliance").joinpath("packs")))


def _search_dirs() -> list[Path]:
    env = os.environ.get(PACK_DIR_ENV, "")
    dirs = [Path(part) for part in env.split(os.pathsep) if part] or [DEFAULT_OPERATOR_DIR]
    return [*dirs, builtin_dir()]


def list_packs() -> list[str]:
    """Names of every pack available: operator directories (``ARREARS_RULE_PACK_DIR``) and built-in."""
    names: set[str] = set()
    for directory in _search_dirs():
        if directory.is_dir():
            names.update(p.stem for p in directory.glob("*.toml") if _NAME_RE.match(p.stem))
    return sorted(names)


def _format_error(err: Any) -> str:
    loc = ".".join(str(part) for part in err["loc"]) or "(top level)"
    if err["type"] == "extra_forbidden":
        return f"{loc}: unknown key"
    if err["type"] == "missing":
        return f"{loc}: required key is missing"
    value = err.get("input")
    shown = "" if isinstance(value, dict | list) else f" (got {value!r})"
    return f"{loc}: {err['msg']}{shown}"


def parse_pack(data: dict[str, Any], *, source: str) -> RulePack:
    """Validate a parsed pack document; errors name the source file and the key."""
    try:
        pack = RulePack.model_validate(data)
    except ValidationError as exc:
        lines = "; ".join(_format_error(err) for err in exc.errors())
        raise ConfigurationError(
            f"rule pack {source}: {lines}", code="invalid_rule_pack", details={"source": source}
        ) from exc
    pack._source = source
    return pack


def load_pack(name_or_path: str | os.PathLike[str]) -> RulePack:
    """Load a rule pack by name (operator directories first, then built-in) or from a ``.toml`` path.

    Raises `NotFound` for an unknown name and `ConfigurationError` (naming the file and key) for a file
    that is not valid TOML or does not match the pack schema.
    """
    text = os.fspath(name_or_path)
    if isinstance(name_or_path, os.PathLike) or text.endswith(".toml") or os.sep in text or "/" in text:
        path = Path(text)
        if not path.is_file():
            raise NotFound(f"rule pack file {text} does not exist", code="rule_pack_not_found")
        expected = None
    else:
        if not _NAME_RE.match(text):
            raise NotFound(f"no rule pack named {text!r}", code="rule_pack_not_found")
        candidates = [d / f"{text}.toml" for d in _search_dirs()]
        found = next((p for p in candidates if p.is_file()), None)
        if found is None:
            raise NotFound(
                f"no rule pack named {text!r} (available: {', '.join(list_packs())})",
                code="rule_pack_not_found",
            )
        path, expected = found, text
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(
            f"rule pack {path}: not valid TOML: {exc}", code="invalid_rule_pack"
        ) from exc
    pack = parse_pack(data, source=str(path))
    if expected is not None and pack.name != expected:
        raise ConfigurationError(
            f"rule pack {path}: name: the file declares {pack.name!r} but is named {expected!r}",
            code="invalid_rule_pack",
        )
    return pack
