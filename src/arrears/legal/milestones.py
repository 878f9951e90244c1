"""Legal cases: their kinds, the order of milestones each kind goes through, and whether accounts may be
referred to legal action at all (CN-22 / US-8 time-barred, disputes and other stopping flags, CN-10 amounts
above the lawful cap).

Data (orders, rule ids, messages) lives in ``milestones.toml``.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from importlib import resources
from typing import Any

from arrears.enums import FlagKind
from arrears.errors import Conflict, ValidationFailed
from arrears.money import format_minor


class LegalCaseKind(StrEnum):
    """What kind of legal step a legal case is."""

    LAWYER_LETTER = "lawyer_letter"
    LITIGATION = "litigation"
    ARBITRATION = "arbitration"
    ENFORCEMENT = "enforcement"
    ASSET_PRESERVATION = "asset_preservation"


class Milestone(StrEnum):
    """A milestone of a legal case (litigation ends in a judgment, arbitration in an award)."""

    PREPARED = "prepared"
    FILED = "filed"
    SERVED = "served"
    MEDIATION = "mediation"
    JUDGMENT = "judgment"
    AWARD = "award"
    ENFORCEMENT = "enforcement"
    CLOSED = "closed"


@cache
def _data() -> dict[str, Any]:
    text = resources.files("arrears.legal").joinpath("milestones.toml").read_text(encoding="utf-8")
    return tomllib.loads(text)


def _label(key: str, locale: str) -> str:
    return str(_data()["labels"][locale].get(key, key))


_LABELLED = frozenset({"flag", "kind", "current", "target"})


def _render(code: str, locale: str, values: dict[str, str | Callable[[str], str]]) -> str:
    shown: dict[str, str] = {}
    for key, value in values.items():
        if callable(value):
            shown[key] = value(locale)
        else:
            shown[key] = _label(value, locale) if key in _LABELLED else value
    return str(_data()["messages"][code][locale].format(**shown))


def _message(code: str, **values: str | Callable[[str], str]) -> tuple[str, str]:
    """A message in zh_CN and en; a callable value is rendered per locale (amounts)."""
    return _render(code, "zh_CN", values), _render(code, "en", values)


def _amount(minor: int, currency: str) -> Callable[[str], str]:
    return lambda locale: format_minor(minor, currency, locale)


def sequence(kind: LegalCaseKind) -> tuple[Milestone, ...]:
    """The milestones of a kind of case, in order."""
    return tuple(Milestone(m) for m in _data()["kinds"][kind.value]["sequence"])


def _optional(kind: LegalCaseKind) -> frozenset[Milestone]:
    return frozenset(Milestone(m) for m in _data()["kinds"][kind.value]["optional"])


def allowed_next(kind: LegalCaseKind, current: Milestone | None) -> tuple[Milestone, ...]:
    """The milestones a case of ``kind`` at ``current`` (``None``: not started) may move to.

    Forward to the next milestone or past optional ones, or to ``closed`` at any time; nothing after
    ``closed``.
    """
    order = sequence(kind)
    if current is None:
        return (order[0],)
    if current not in order:
        raise ValidationFailed(f"{current} is not a milestone of {kind}", code="bad_milestone")
    if current is Milestone.CLOSED:
        return ()
    optional = _optional(kind)
    reachable: list[Milestone] = []
    for target in order[order.index(current) + 1 :]:
        reachable.append(target)
        if target not in optional:
            break
    if Milestone.CLOSED not in reachable:
        reachable.append(Milestone.CLOSED)
    return tuple(reachable)


def can_transition(kind: LegalCaseKind, current: Milestone | None, target: Milestone) -> bool:
    """Whether a case of ``kind`` may move from ``current`` to ``target``."""
    return target in allowed_next(kind, current)


def require_transition(kind: LegalCaseKind, current: Milestone | None, target: Milestone) -> None:
    """Raise `Conflict` (message in zh_CN and en) unless the move is allowed."""
    if not can_transition(kind, current, target):
        zh, en = _message(
            "transition", kind=kind.value, current=current.value if current else "start", target=target.value
        )
        raise Conflict(en, code="milestone_not_allowed", details={"message_zh": zh, "message_en": en})


# --- referral: may these accounts go to legal action at all? ------------------------------------------


@dataclass(frozen=True, slots=True)
class AccountLegalState:
    """What the referral check needs to know about one account.

    ``time_barred`` comes from the limitation module; ``charges_minor`` is the interest, penalty interest
    and fees claimed; ``lawful_cap_minor`` the most of them the law allows (CN-30, from the ledger), or
    ``None`` where no cap applies.
    """

    account_ref: str
    currency: str
    time_barred: bool = False
    flags: frozenset[FlagKind] = frozenset()
    charges_minor: int = 0
    lawful_cap_minor: int | None = None


@dataclass(frozen=True, slots=True)
class ReferralReason:
    """Why one account may not be referred, with the rule ids and a message in both languages."""

    account_ref: str | None
    code: str
    rule_ids: tuple[str, ...]
    message_zh: str
    message_en: str


@dataclass(frozen=True, slots=True)
class ReferralDecision:
    """``ok``, or ``refused`` with every reason found (a case is referred whole or not at all)."""

    reasons: tuple[ReferralReason, ...]

    @property
    def ok(self) -> bool:
        """True when nothing stands in the way."""
        return not self.reasons

    @property
    def status(self) -> str:
        """``ok`` or ``refused``."""
        return "ok" if self.ok else "refused"

    @property
    def rule_ids(self) -> tuple[str, ...]:
        """Every rule id cited, once, in order of first mention."""
        return tuple(dict.fromkeys(rule for reason in self.reasons for rule in reason.rule_ids))


def can_refer(accounts: Iterable[AccountLegalState], *, rule_pack: str = "cn") -> ReferralDecision:
    """Whether accounts may be referred to legal action (lawyer's letter, suit, arbitration, enforcement).

    Refused for a time-barred account (CN-22 / US-8: no legal action and no threat of it, which a lawyer's
    letter would be), for an account flagged disputed, bankrupt or deceased (per the pack's list), and for
    an account whose charges exceed the lawful cap (CN-10, CN-30).
    """
    packs = _data()["referral"]
    if rule_pack not in packs:
        raise ValidationFailed(f"unknown rule pack {rule_pack!r}", code="unknown_rule_pack")
    pack = packs[rule_pack]
    reasons: list[ReferralReason] = []
    states = list(accounts)
    if not states:
        zh, en = _message("no_accounts")
        reasons.append(ReferralReason(None, "no_accounts", (), zh, en))
    for state in states:
        ref = state.account_ref
        if state.time_barred:
            zh, en = _message("time_barred", account=ref)
            reasons.append(ReferralReason(ref, "time_barred", tuple(pack["time_barred"]), zh, en))
        for flag in sorted(state.flags):
            if flag.value in pack["refusing_flags"]:
                zh, en = _message("flag", account=ref, flag=flag.value)
                rules = tuple(pack["flag_rules"].get(flag.value, ()))
                reasons.append(ReferralReason(ref, f"flag_{flag.value}", rules, zh, en))
        if state.lawful_cap_minor is not None and state.charges_minor > state.lawful_cap_minor:
            charges, cap = state.charges_minor, state.lawful_cap_minor
            zh, en = _message(
                "above_lawful_cap",
                account=ref,
                actual=_amount(charges, state.currency),
                limit=_amount(cap, state.currency),
            )
            reasons.append(ReferralReason(ref, "above_lawful_cap", tuple(pack["above_lawful_cap"]), zh, en))
    return ReferralDecision(tuple(reasons))
