"""What-if checks: an attempt, its history, the debtor's context and a rule pack as JSON; a decision out.

Used by ``POST /api/v1/compliance/check`` and ``arrears compliance check FILE.json``. Nothing is read from
or written to the database: a compliance officer can try "what if" against any pack, including a pack
changed on the fly (``{"base": "cn", "overrides": {"daily_call_cap": {"max_attempts": 4}}}``).
"""

from __future__ import annotations

import tomllib
from datetime import date, time
from pathlib import Path
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from arrears.compliance.pack import RulePack, load_pack, parse_pack
from arrears.compliance.rules import decide
from arrears.compliance.schemas import (
    AccountState,
    ActiveFlag,
    Attempt,
    Consent,
    ConsentScope,
    ContactPoint,
    Context,
    Decision,
    Direction,
    InconvenientWindow,
    Outcome,
    PriorAttempt,
    Purpose,
    TemplateKind,
)
from arrears.enums import Channel, ContactKind, FlagKind, OwnerRelation, Product
from arrears.errors import ConfigurationError, ValidationFailed


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ContactPointIn(_In):
    """A contact point; ``time_zones`` empty = derived from the phone number or the context."""

    value: str
    kind: ContactKind = ContactKind.MOBILE
    owner_relation: OwnerRelation = OwnerRelation.SELF
    owner_name: str | None = None
    debt_related: bool = False
    opted_out: bool = False
    volunteered_to_pay: bool = False
    time_zones: list[str] = []
    person: str | None = None

    def to_core(self) -> ContactPoint:
        return ContactPoint(
            value=self.value,
            kind=self.kind,
            owner_relation=self.owner_relation,
            owner_name=self.owner_name,
            debt_related=self.debt_related,
            opted_out=self.opted_out,
            volunteered_to_pay=self.volunteered_to_pay,
            time_zones=tuple(self.time_zones),
            person=self.person,
        )


class AttemptIn(_In):
    """The contact about to happen."""

    at: AwareDatetime
    channel: Channel
    contact_point: ContactPointIn
    account_ids: list[int] = Field(min_length=1)
    collector: str = "in_house"
    purpose: Purpose = Purpose.DEBT_COLLECTION
    direction: Direction = Direction.OUTBOUND
    agency_id: str | None = None
    text: str | None = None
    template_kind: TemplateKind | None = None
    locale: str | None = None
    first_contact: bool | None = None
    facts: dict[str, str] = {}  # e.g. {"institution": "某银行"}: a text naming it satisfies CN-5


class PriorAttemptIn(_In):
    """One attempt of the history; ``contact_point`` omitted = the attempt's contact point."""

    at: AwareDatetime
    channel: Channel = Channel.CALL
    contact_point: ContactPointIn | None = None
    account_ids: list[int] | None = None  # None = the attempt's accounts
    collector: str | None = None  # None = the attempt's collector
    outcome: Outcome
    direction: Direction = Direction.OUTBOUND
    purpose: Purpose = Purpose.DEBT_COLLECTION


class FlagIn(_In):
    kind: FlagKind
    account_id: int | None = None
    expires_at: AwareDatetime | None = None
    reason: str | None = None


class ConsentIn(_In):
    scope: ConsentScope
    granted_at: AwareDatetime
    expires_at: AwareDatetime | None = None
    contact_value: str | None = None
    account_ids: list[int] | None = None


class InconvenientIn(_In):
    start: time
    end: time
    weekdays: list[int] = []


class AccountStateIn(_In):
    product: Product = Product.OTHER
    time_barred: bool = False
    above_lawful_cap: bool = False
    validation_dispute_pending: bool = False
    initial_communication_at: AwareDatetime | None = None
    validation_notice_sent_at: AwareDatetime | None = None


class ContextIn(_In):
    """The debtor's situation; every field optional."""

    debtor_time_zones: list[str] = []
    portfolio_time_zone: str | None = None
    flags: list[FlagIn] = []
    inconvenient_times: list[InconvenientIn] = []
    opted_out_channels: list[Channel] = []
    consents: list[ConsentIn] = []
    debtor_numbers_invalid: bool = False
    accounts: dict[int, AccountStateIn] = {}
    holidays: list[date] = []
    listed_agency_ids: list[str] | None = None


class PackSpec(_In):
    """A pack by name, changed by ``overrides`` (merged into the pack's TOML document, table by table)."""

    base: str = "cn"
    overrides: dict[str, Any] = {}


class CheckRequest(_In):
    """The body of a what-if check."""

    pack: str | PackSpec = "cn"
    attempt: AttemptIn
    history: list[PriorAttemptIn] = []
    context: ContextIn = ContextIn()


def _merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def resolve_pack(spec: str | PackSpec) -> RulePack:
    """The pack a request names, with its overrides applied (validated like a pack file)."""
    if isinstance(spec, str):
        return load_pack(spec)
    base = load_pack(spec.base)
    if not spec.overrides:
        return base
    if base.source is None:
        raise ValidationFailed(f"rule pack {spec.base} has no source file", code="invalid_rule_pack")
    document = tomllib.loads(Path(base.source).read_text(encoding="utf-8"))
    try:
        return parse_pack(_merge(document, spec.overrides), source=f"{spec.base} + overrides")
    except ConfigurationError as exc:  # the caller's overrides are wrong, not the installation
        raise ValidationFailed(exc.message, code="invalid_pack_overrides") from None


def to_core(request: CheckRequest) -> tuple[Attempt, list[PriorAttempt], Context]:
    """The pure gate's inputs from a request."""
    a = request.attempt
    point = a.contact_point.to_core()
    accounts = frozenset(a.account_ids)
    attempt = Attempt(
        at=a.at,
        channel=a.channel,
        contact_point=point,
        account_ids=accounts,
        collector_id=a.collector,
        purpose=a.purpose,
        direction=a.direction,
        agency_id=a.agency_id,
        text=a.text,
        template_kind=a.template_kind,
        locale=a.locale,
        first_contact=a.first_contact,
        facts=tuple(sorted(a.facts.items())),
    )
    history = []
    for h in request.history:
        hp = point if h.contact_point is None else h.contact_point.to_core()
        history.append(
            PriorAttempt(
                at=h.at,
                channel=h.channel,
                contact_point=hp,
                account_ids=frozenset(h.account_ids) if h.account_ids is not None else accounts,
                collector_id=h.collector if h.collector is not None else a.collector,
                outcome=h.outcome,
                direction=h.direction,
                purpose=h.purpose,
            )
        )
    c = request.context
    context = Context(
        debtor_time_zones=tuple(c.debtor_time_zones),
        portfolio_time_zone=c.portfolio_time_zone,
        flags=tuple(ActiveFlag(f.kind, f.account_id, f.expires_at, f.reason) for f in c.flags),
        inconvenient_times=tuple(
            InconvenientWindow(w.start, w.end, frozenset(w.weekdays)) for w in c.inconvenient_times
        ),
        opted_out_channels=frozenset(c.opted_out_channels),
        consents=tuple(
            Consent(
                scope=k.scope,
                granted_at=k.granted_at,
                expires_at=k.expires_at,
                contact_value=k.contact_value,
                account_ids=frozenset(k.account_ids) if k.account_ids is not None else None,
            )
            for k in c.consents
        ),
        debtor_numbers_invalid=c.debtor_numbers_invalid,
        accounts={
            account_id: AccountState(
                product=s.product,
                time_barred=s.time_barred,
                above_lawful_cap=s.above_lawful_cap,
                validation_dispute_pending=s.validation_dispute_pending,
                initial_communication_at=s.initial_communication_at,
                validation_notice_sent_at=s.validation_notice_sent_at,
            )
            for account_id, s in c.accounts.items()
        },
        holidays=frozenset(c.holidays),
        listed_agency_ids=frozenset(c.listed_agency_ids) if c.listed_agency_ids is not None else None,
    )
    return attempt, history, context


def run_check(request: CheckRequest) -> Decision:
    """Decide a what-if request; stores nothing."""
    pack = resolve_pack(request.pack)
    attempt, history, context = to_core(request)
    return decide(attempt, history, context, pack)


def decision_json(decision: Decision) -> dict[str, Any]:
    """The decision as JSON (shared by the API, the CLI and the stored attempt)."""
    return decision.to_dict()
