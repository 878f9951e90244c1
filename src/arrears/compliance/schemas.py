"""Plain input and output shapes of the compliance gate (RULEBOOK.md).

Frozen dataclasses with slots: the gate reads thousands of history entries per decision, and attribute
access on these is as cheap as Python gets. Timestamps are aware datetimes (normalised to UTC by the gate).
The service layer builds these from database rows; nothing here touches a database.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time
from enum import StrEnum
from typing import Any

from arrears.enums import Channel, ContactKind, FlagKind, OwnerRelation, Product
from arrears.errors import ValidationFailed


class Direction(StrEnum):
    OUTBOUND = "outbound"
    INBOUND = "inbound"


class Outcome(StrEnum):
    """What happened on a contact attempt (calls, visits and messages)."""

    NOT_CONNECTED = "not_connected"  # not in service, network failure: the call never connected (US-4)
    BUSY = "busy"  # busy signal: never connected (US-4)
    NO_ANSWER = "no_answer"  # rang out: counts (US-4)
    VOICEMAIL = "voicemail"  # counts (US-4)
    RIGHT_PARTY = "right_party"  # right-party contact, a conversation
    THIRD_PARTY = "third_party"  # someone else answered
    WRONG_NUMBER = "wrong_number"
    PROMISE = "promise"  # conversation ending in a promise to pay
    REFUSED = "refused"  # conversation, debtor refused to pay
    DISPUTE_RAISED = "dispute_raised"  # conversation, debtor disputed the debt
    CALLBACK_REQUESTED = "callback_requested"  # conversation, debtor asked to be called back
    SENT = "sent"  # message handed to the gateway / post
    DELIVERED = "delivered"  # message delivered (delivery evidence exists)
    FAILED = "failed"  # message bounced / undeliverable
    BLOCKED = "blocked"  # the gate refused it: never placed, never counts


class Purpose(StrEnum):
    """What the contact is about; the content-dependent rules read this."""

    DEBT_COLLECTION = "debt_collection"  # debt details, demand for payment, negotiation
    MESSAGE_PASSING = "message_passing"  # ask a third party for contact details or to pass a message (CN-4)
    LEGAL_NOTICE = "legal_notice"  # mentions or threatens legal action (CN-22, US-8)
    LEGAL_ACTION = "legal_action"  # escalation: lawyer's letter, suit, arbitration (CN-10, CN-22, US-8)
    VERIFICATION = "verification"  # sending verification of a disputed debt (US-7)
    CEASE_CONFIRMATION = "cease_confirmation"  # confirming that collection ends (US-10)
    SPECIFIC_REMEDY = "specific_remedy"  # notifying a specific remedy the collector will invoke (US-10)


class ConsentScope(StrEnum):
    """What a recorded consent of the debtor lifts."""

    QUIET_HOURS = "quiet_hours"  # contact at otherwise quiet / inconvenient times (CN-1, US-1)
    CALL_CAP = "call_cap"  # more calls a day than the cap (CN-2)
    CALL_FREQUENCY = "call_frequency"  # direct prior consent to calls within 7 days (US-4)


class TemplateKind(StrEnum):
    """Kinds of text the linter knows; each kind has its own required and forbidden content."""

    DEBTOR = "debtor"  # message or script to the debtor
    THIRD_PARTY = "third_party"  # content-restricted: no debt details (CN-4)
    COLLECTION_NOTICE = "collection_notice"  # written collection notice / letter (CN-8)
    LAWYER_LETTER = "lawyer_letter"  # written by a lawyer: may say it is from a lawyer
    NOTE = "note"  # free-text note by an agent: forbidden phrases only


class LimitationEventKind(StrEnum):
    """Events that start, interrupt or suspend a limitation period (CN-20..CN-26, US-8)."""

    DUE = "due"  # a due date; for instalment debts one per instalment (CN-21: the last one counts)
    DEMAND = "demand"  # the creditor's demand; counts when delivered with evidence (CN-25)
    DEDUCTION = "deduction"  # a deduction from the debtor's account (CN-25)
    PROMISE = "promise"  # debtor agrees to pay (CN-26)
    PARTIAL_PAYMENT = "partial_payment"  # partial or instalment payment (CN-26)
    ARRANGEMENT = "arrangement"  # repayment plan agreed (CN-26)
    EXTENSION_REQUEST = "extension_request"  # debtor asks for more time (CN-26)
    WRITTEN_ACKNOWLEDGMENT = "written_acknowledgment"  # debtor acknowledges the debt in writing
    LAWSUIT = "lawsuit"  # CN-24
    ARBITRATION = "arbitration"  # CN-24
    OBSTACLE = "obstacle"  # force majeure etc. from ``on`` to ``end_on`` (CN-23 suspension)


@dataclass(frozen=True, slots=True)
class ContactPoint:
    """A phone number, e-mail or address, and whose it is.

    ``time_zones`` are the candidate zones of this contact point (e.g. from `zones.zones_for_phone`);
    empty means unknown. ``person_key`` identifies the person behind it (US-3 counts per person); by
    default the debtor for ``self`` and the owner (name, else the value) for a third party.
    """

    value: str
    kind: ContactKind = ContactKind.MOBILE
    owner_relation: OwnerRelation = OwnerRelation.SELF
    owner_name: str | None = None
    debt_related: bool = False
    opted_out: bool = False
    volunteered_to_pay: bool = False  # a third party who offered to pay for the debtor (CN-4 exception)
    time_zones: tuple[str, ...] = ()
    person: str | None = None

    @property
    def person_key(self) -> str:
        """The person this contact point reaches (US-3 counts calls per person)."""
        if self.person is not None:
            return self.person
        if self.owner_relation == OwnerRelation.SELF:
            return "self"
        return f"{self.owner_relation.value}:{self.owner_name or self.value}"

    @property
    def is_third_party(self) -> bool:
        """Anyone but the debtor (GLOSSARY: third party)."""
        return self.owner_relation != OwnerRelation.SELF


@dataclass(frozen=True, slots=True)
class PriorAttempt:
    """One recorded contact attempt (from the append-only contact record)."""

    at: datetime
    channel: Channel
    contact_point: ContactPoint
    account_ids: frozenset[int]
    collector_id: str
    outcome: Outcome
    direction: Direction = Direction.OUTBOUND
    purpose: Purpose = Purpose.DEBT_COLLECTION


@dataclass(frozen=True, slots=True)
class Attempt:
    """The contact about to happen, checked by `rules.decide`.

    ``collector_id`` is the debt collector in the legal sense (the institution or the agency placing the
    contact), not the individual agent: US-3 counts calls per collector. ``text`` (optional) is the
    message or script; when given it is linted (CN-5, CN-6, CN-4, US-11, US-13). ``first_contact`` None
    means: derive it from the history (no earlier reached contact with this person). ``facts`` are
    (name, value) pairs the linter accepts in place of a required placeholder.
    """

    at: datetime
    channel: Channel
    contact_point: ContactPoint
    account_ids: frozenset[int]
    collector_id: str
    purpose: Purpose = Purpose.DEBT_COLLECTION
    direction: Direction = Direction.OUTBOUND
    agent_id: str | None = None
    agency_id: str | None = None
    text: str | None = None
    template_kind: TemplateKind | None = None
    locale: str | None = None
    first_contact: bool | None = None
    # Known values the text may carry instead of a placeholder (``institution``, ``debtor_name`` ...):
    # a text naming the creditor satisfies CN-5's "identify the institution".
    facts: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if self.at.tzinfo is None:
            raise ValidationFailed("attempt time has no time zone", code="naive_datetime")
        if not self.account_ids:
            raise ValidationFailed("an attempt concerns at least one account", code="no_accounts")


@dataclass(frozen=True, slots=True)
class ActiveFlag:
    """A flag that stops collection contact (dispute, cease, deceased ...); account None = the whole case."""

    kind: FlagKind
    account_id: int | None = None
    expires_at: datetime | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class Consent:
    """A consent the debtor gave, with its scope and validity.

    ``contact_value`` None = any contact point of the debtor; ``account_ids`` None = every debt.
    """

    scope: ConsentScope
    granted_at: datetime
    expires_at: datetime | None = None
    contact_value: str | None = None
    account_ids: frozenset[int] | None = None

    def covers(self, contact_value: str, account_ids: frozenset[int] | None = None) -> bool:
        """Whether this consent is about this contact point (and, if given, these accounts)."""
        if self.contact_value is not None and self.contact_value != contact_value:
            return False
        return not (
            account_ids is not None and self.account_ids is not None and not (account_ids <= self.account_ids)
        )


@dataclass(frozen=True, slots=True)
class InconvenientWindow:
    """A time the debtor named as inconvenient, in their local time (US-1); may wrap midnight.

    ``weekdays`` uses Python's numbering (Monday 0 .. Sunday 6); empty = every day. For a window that
    wraps midnight the weekday is the one on which it starts.
    """

    start: time
    end: time
    weekdays: frozenset[int] = frozenset()


@dataclass(frozen=True, slots=True)
class AccountState:
    """What the gate needs to know about one account."""

    product: Product = Product.OTHER
    time_barred: bool = False  # CN-22, US-8 (from limitation.limitation_date or the operator)
    above_lawful_cap: bool = False  # CN-10: amount claimed exceeds the lawful cap
    validation_dispute_pending: bool = False  # US-7: written dispute in the validation period, unverified
    initial_communication_at: datetime | None = None  # US-7
    validation_notice_sent_at: datetime | None = None  # US-7


@dataclass(frozen=True, slots=True)
class Context:
    """The debtor's situation at the time of the attempt."""

    debtor_time_zones: tuple[str, ...] = ()
    portfolio_time_zone: str | None = None  # fallback when no zone of the debtor is known
    flags: tuple[ActiveFlag, ...] = ()
    inconvenient_times: tuple[InconvenientWindow, ...] = ()
    opted_out_channels: frozenset[Channel] = frozenset()
    consents: tuple[Consent, ...] = ()
    debtor_numbers_invalid: bool = False  # CN-3: all of the debtor's own numbers are known invalid
    accounts: Mapping[int, AccountState] = field(default_factory=dict)
    holidays: frozenset[date] = frozenset()  # US-5 warning signs
    listed_agency_ids: frozenset[str] | None = None  # CN-7: None = not checked here

    def account(self, account_id: int) -> AccountState:
        """The state of one account (a default, unflagged state when unknown)."""
        return self.accounts.get(account_id, _DEFAULT_ACCOUNT)


_DEFAULT_ACCOUNT = AccountState()


@dataclass(frozen=True, slots=True)
class Reason:
    """Why a contact is blocked (or a warning): a rule id and a sentence in zh and en."""

    rule_id: str
    code: str
    zh: str
    en: str

    def to_dict(self) -> dict[str, str]:
        return {"rule_id": self.rule_id, "code": self.code, "zh": self.zh, "en": self.en}


@dataclass(frozen=True, slots=True)
class Decision:
    """The gate's answer.

    ``rule_ids`` are the rules that block (empty when allowed); ``checked_rule_ids`` every rule evaluated.
    ``next_allowed_at`` is the earliest aware-UTC time at which the same attempt would be allowed given
    the same history (the attempt's own time when it is allowed), or None when only a person (clearing a
    flag, fixing data) or new facts can allow it.
    """

    allowed: bool
    rule_ids: tuple[str, ...]
    reasons: tuple[Reason, ...]
    warnings: tuple[Reason, ...]
    next_allowed_at: datetime | None
    checked_rule_ids: tuple[str, ...]
    pack: str
    at: datetime

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly form for the audit log and the API."""
        return {
            "allowed": self.allowed,
            "rule_ids": list(self.rule_ids),
            "reasons": [r.to_dict() for r in self.reasons],
            "warnings": [w.to_dict() for w in self.warnings],
            "next_allowed_at": self.next_allowed_at.isoformat() if self.next_allowed_at else None,
            "checked_rule_ids": list(self.checked_rule_ids),
            "pack": self.pack,
            "at": self.at.isoformat(),
        }
