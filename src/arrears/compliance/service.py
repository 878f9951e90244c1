"""The compliance gate and limitation dates against the database (RULEBOOK.md, DESIGN "One compliance gate").

`check_contact` answers "may this contact happen now?": it builds the `Context` from the database
(portfolio zone and rule pack, the contact point, active flags, consents, inconvenient times, channel
opt-outs, time-barred accounts), loads the case's contact record with ONE query on the
``(case_id, started_at)`` index, and asks the pure `rules.decide`. It stores nothing; recording is
`arrears.contacts.service.record_attempt`.

Limitation dates (CN-20..CN-26, US-8) are computed from events gathered set-based from event sources:
due dates (account and instalment schedule), and the contact record (promises, demands delivered with
evidence). Other domains add sources (payments, arrangements, lawsuits) with the `EventSource` signature.
`refresh_limitations` is the daily run's step for a whole portfolio.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import cache, lru_cache
from typing import Any, TypeVar

import polars as pl
from sqlalchemy import (
    JSON,
    ColumnElement,
    Date,
    Executable,
    Integer,
    Row,
    Select,
    String,
    Text,
    Time,
    bindparam,
    cast,
    delete,
    func,
    literal,
    null,
    or_,
    select,
    union_all,
)
from sqlalchemy.orm import InstrumentedAttribute, Session

from arrears.clock import as_utc
from arrears.clock import now as clock_now
from arrears.compliance.limitation import LimitationEvent, LimitationResult, limitation_date
from arrears.compliance.pack import PACK_DIR_ENV, RulePack, load_pack
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
    LimitationEventKind,
    Outcome,
    PriorAttempt,
    Purpose,
    TemplateKind,
)
from arrears.compliance.zones import zone
from arrears.enums import Channel, ContactKind, FlagKind, OwnerRelation, Product
from arrears.errors import NotFound, ValidationFailed
from arrears.models import (
    Account,
    AccountFlag,
    AccountLimitation,
    Arrangement,
    ArrangementAccount,
    Case,
    ChannelOptOut,
    ContactAttempt,
    ContactConsent,
    Creditor,
    Debtor,
    InconvenientTime,
    Instalment,
    LegalCase,
    LegalCaseAccount,
    LegalMilestone,
    Payment,
    Portfolio,
    Posting,
    Promise,
    UTCDateTime,
)
from arrears.models import ContactPoint as ContactPointRow

_PHONE_KINDS = (ContactKind.MOBILE.value, ContactKind.LANDLINE.value)
_NO_CONTACT_POINT = ContactPoint(value="", kind=ContactKind.OTHER)
# Channels whose delivered message is the creditor's demand reaching the debtor (CN-25).
DEMAND_CHANNELS = frozenset({Channel.LETTER, Channel.SMS, Channel.EMAIL, Channel.LAWYER_LETTER})


def rule_pack(name: str) -> RulePack:
    """The rule pack of a portfolio, parsed once per name (and operator pack directory)."""
    return _cached_pack(name, os.environ.get(PACK_DIR_ENV, ""))


@lru_cache(maxsize=32)
def _cached_pack(name: str, _pack_dirs: str) -> RulePack:
    return load_pack(name)


# --- the gate ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GateInputs:
    """Everything `decide` is given for one contact: shown by `arrears compliance explain`."""

    attempt: Attempt
    history: list[PriorAttempt]
    context: Context
    pack: RulePack
    portfolio_time_zone: str


@dataclass(frozen=True, slots=True)
class _CaseInfo:
    case_id: int
    debtor_id: int
    portfolio_id: int
    portfolio_zone: str
    rule_pack: str
    debtor_zone: str | None
    facts: tuple[tuple[str, str], ...]  # what a message may name instead of a placeholder (CN-5, CN-8)


# The gate's statements are built once, with bound parameters, and reused: building a SELECT costs more
# Python time than running it.
@cache
def _case_info_stmt() -> Executable:
    return (
        select(
            Case.id,
            Case.debtor_id,
            Case.portfolio_id,
            Portfolio.timezone,
            Portfolio.rule_pack,
            Debtor.timezone,
            Creditor.name,
            Creditor.phone,
            Debtor.name,
        )
        .join(Portfolio, Portfolio.id == Case.portfolio_id)
        .join(Creditor, Creditor.id == Portfolio.creditor_id)
        .join(Debtor, Debtor.id == Case.debtor_id)
        .where(Case.id == bindparam("case_id"))
    )


def _case_info(session: Session, case_id: int) -> _CaseInfo:
    row = session.execute(_case_info_stmt(), {"case_id": case_id}).one_or_none()
    if row is None:
        raise NotFound(f"案件不存在：{case_id} / case {case_id} not found", code="case_not_found")
    facts = (("institution", row[6]), ("institution_contact", row[7]), ("debtor_name", row[8]))
    return _CaseInfo(row[0], row[1], row[2], row[3], row[4], row[5], tuple((k, v) for k, v in facts if v))


def _contact_point(row: ContactPointRow | None) -> ContactPoint:
    if row is None:
        return _NO_CONTACT_POINT
    return ContactPoint(
        value=row.value,
        kind=_enum(ContactKind, row.kind, ContactKind.OTHER),
        owner_relation=_enum(OwnerRelation, row.owner_relation, OwnerRelation.OTHER),
        owner_name=row.owner_name,
        debt_related=row.debt_related,
        opted_out=row.opted_out,
        time_zones=(row.timezone,) if row.timezone else (),
    )


_E = TypeVar("_E", ContactKind, OwnerRelation, Product, Channel, Outcome, Direction, Purpose)


def _enum(kind: type[_E], value: str | None, default: _E) -> _E:
    if value is None:
        return default
    try:
        return kind(value)
    except ValueError:
        return default


def load_history(session: Session, *, case_id: int, until: datetime | None = None) -> list[PriorAttempt]:
    """The case's contact record as the gate sees it, with ONE query on ``(case_id, started_at)``.

    Corrected attempts are replaced by their corrections; attempts after ``until`` are left out.
    """
    params: dict[str, Any] = {"case_id": case_id}
    if until is not None:
        params["until"] = until
    rows = session.execute(_history_stmt(until is not None), params).all()
    superseded = {r.corrects_id for r in rows if r.corrects_id is not None}
    return _prior_attempts(rows, superseded)


@cache
def _history_stmt(bounded: bool) -> Executable:
    cp = ContactPointRow
    stmt = (
        select(
            ContactAttempt.id,
            ContactAttempt.started_at,
            ContactAttempt.channel,
            ContactAttempt.direction,
            ContactAttempt.purpose,
            ContactAttempt.collector,
            ContactAttempt.account_ids,
            ContactAttempt.outcome,
            ContactAttempt.corrects_id,
            ContactAttempt.contact_point_id,
            cp.value,
            cp.kind,
            cp.owner_relation,
            cp.owner_name,
            cp.debt_related,
            cp.timezone,
        )
        .outerjoin(cp, cp.id == ContactAttempt.contact_point_id)
        .where(ContactAttempt.case_id == bindparam("case_id"))
        .order_by(ContactAttempt.started_at)
    )
    if bounded:
        stmt = stmt.where(ContactAttempt.started_at <= bindparam("until"))
    return stmt


def _prior_attempts(rows: Sequence[Row[Any]], superseded: set[int]) -> list[PriorAttempt]:
    points: dict[int | None, ContactPoint] = {None: _NO_CONTACT_POINT}
    out: list[PriorAttempt] = []
    for r in rows:
        if r.id in superseded:
            continue
        point = points.get(r.contact_point_id)
        if point is None:
            point = ContactPoint(
                value=r.value,
                kind=_enum(ContactKind, r.kind, ContactKind.OTHER),
                owner_relation=_enum(OwnerRelation, r.owner_relation, OwnerRelation.OTHER),
                owner_name=r.owner_name,
                debt_related=bool(r.debt_related),
                time_zones=(r.timezone,) if r.timezone else (),
            )
            points[r.contact_point_id] = point
        out.append(
            PriorAttempt(
                at=r.started_at,
                channel=_enum(Channel, r.channel, Channel.OTHER),
                contact_point=point,
                account_ids=frozenset(r.account_ids or ()),
                collector_id=r.collector,
                outcome=_enum(Outcome, r.outcome, Outcome.NOT_CONNECTED),
                direction=_enum(Direction, r.direction, Direction.OUTBOUND),
                purpose=_enum(Purpose, r.purpose, Purpose.DEBT_COLLECTION),
            )
        )
    return out


def _local_midnight(day: date, zone_name: str) -> datetime:
    return datetime.combine(day, time(0, 0), tzinfo=zone(zone_name)).astimezone(UTC)


def build_context(
    session: Session, *, case_id: int, at: datetime
) -> tuple[Context, dict[int, ContactPointRow]]:
    """The debtor's situation at ``at`` for the gate, and the debtor's contact points by id."""
    info = _case_info(session, case_id)
    return _build_context(session, info, as_utc(at))


@cache
def _points_stmt() -> Select[Any]:
    return select(ContactPointRow).where(ContactPointRow.debtor_id == bindparam("debtor_id"))


@cache
def _accounts_stmt() -> Executable:
    return (
        select(Account.id, Account.product, AccountLimitation.limitation_on, AccountLimitation.account_id)
        .outerjoin(AccountLimitation, AccountLimitation.account_id == Account.id)
        .where(Account.case_id == bindparam("case_id"))
    )


@cache
def _standing_facts() -> Executable:
    """Active flags, consents, inconvenient times and channel opt-outs in ONE round trip (UNION ALL).

    Every branch has the same columns; the first one carries the result types (UTC timestamps, JSON,
    times of day) so each dialect hands back Python values.
    """

    def row(
        source: str,
        ref_id: Any = None,
        label: Any = None,
        note: Any = None,
        day: Any = None,
        starts_at: Any = None,
        ends_at: Any = None,
        ids: Any = None,
        from_time: Any = None,
        to_time: Any = None,
    ) -> list[Any]:
        return [
            literal(source, String()).label("source"),
            (ref_id if ref_id is not None else cast(null(), Integer())).label("ref_id"),
            (label if label is not None else cast(null(), String())).label("label"),
            (note if note is not None else cast(null(), Text())).label("note"),
            (day if day is not None else cast(null(), Date())).label("day"),
            (starts_at if starts_at is not None else cast(null(), UTCDateTime())).label("starts_at"),
            (ends_at if ends_at is not None else cast(null(), UTCDateTime())).label("ends_at"),
            (ids if ids is not None else cast(null(), JSON())).label("ids"),
            (from_time if from_time is not None else cast(null(), Time())).label("from_time"),
            (to_time if to_time is not None else cast(null(), Time())).label("to_time"),
        ]

    flag = select(
        *row(
            "flag",
            ref_id=AccountFlag.account_id,
            label=AccountFlag.kind,
            note=AccountFlag.reason,
            day=AccountFlag.expires_on,
        )
    ).where(AccountFlag.case_id == bindparam("case_id"), AccountFlag.cleared_at.is_(None))
    consent = select(
        *row(
            "consent",
            ref_id=ContactConsent.contact_point_id,
            label=ContactConsent.scope,
            starts_at=ContactConsent.granted_at,
            ends_at=ContactConsent.expires_at,
            ids=ContactConsent.account_ids,
        )
    ).where(ContactConsent.debtor_id == bindparam("debtor_id"), ContactConsent.revoked_at.is_(None))
    window = select(
        *row(
            "window",
            ref_id=InconvenientTime.id,
            label=InconvenientTime.weekdays,
            from_time=InconvenientTime.starts,
            to_time=InconvenientTime.ends,
        )
    ).where(InconvenientTime.debtor_id == bindparam("debtor_id"), InconvenientTime.removed_at.is_(None))
    opt_out = select(
        *row(
            "opt_out",
            ref_id=ChannelOptOut.id,
            label=ChannelOptOut.channel,
            starts_at=ChannelOptOut.opted_out_at,
        )
    ).where(ChannelOptOut.debtor_id == bindparam("debtor_id"), ChannelOptOut.withdrawn_at.is_(None))
    return union_all(flag, consent, window, opt_out)


def _build_context(
    session: Session, info: _CaseInfo, at: datetime
) -> tuple[Context, dict[int, ContactPointRow]]:
    local_day = at.astimezone(zone(info.portfolio_zone)).date()
    points = {p.id: p for p in session.scalars(_points_stmt(), {"debtor_id": info.debtor_id})}
    # CN-3: the debtor is out of contact when every own phone number is known invalid.
    own_phones = [p for p in points.values() if p.owner_relation == "self" and p.kind in _PHONE_KINDS]
    numbers_invalid = bool(own_phones) and not any(p.is_valid for p in own_phones)

    accounts = session.execute(_accounts_stmt(), {"case_id": info.case_id}).all()
    unknown = [a.id for a in accounts if a.account_id is None]
    live: dict[int, LimitationResult] = {}
    if unknown:  # never refreshed: compute now rather than assume the debt is not time-barred
        live = limitations(session, scope=AccountScope(account_ids=tuple(unknown)), as_of=local_day)
    states: dict[int, AccountState] = {}
    for a in accounts:
        if a.account_id is not None:
            barred = a.limitation_on is not None and local_day > a.limitation_on  # CN-22 / US-8
        else:
            barred = live[a.id].time_barred if a.id in live else False
        # CN-10's lawful cap comes from the ledger's caps; until that is wired it is not flagged here.
        states[a.id] = AccountState(product=_enum(Product, a.product, Product.OTHER), time_barred=barred)

    flags: list[ActiveFlag] = []
    consents: list[Consent] = []
    windows: list[InconvenientWindow] = []
    opted_out: set[Channel] = set()
    for r in session.execute(_standing_facts(), {"case_id": info.case_id, "debtor_id": info.debtor_id}):
        if r.source == "flag":
            # A flag is in force through its ``expires_on`` day (portfolio zone). An unknown kind is treated
            # as a legal hold: every flag stops collection contact until a person clears it.
            expires_at = _local_midnight(r.day + timedelta(days=1), info.portfolio_zone) if r.day else None
            if expires_at is not None and expires_at <= at:
                continue
            try:
                flag_kind = FlagKind(r.label)
            except ValueError:
                flag_kind = FlagKind.LEGAL_HOLD
            flags.append(
                ActiveFlag(kind=flag_kind, account_id=r.ref_id, expires_at=expires_at, reason=r.note)
            )
        elif r.source == "consent":
            try:
                scope = ConsentScope(r.label)
            except ValueError:
                continue
            point = points.get(r.ref_id) if r.ref_id is not None else None
            consents.append(
                Consent(
                    scope=scope,
                    granted_at=r.starts_at,
                    expires_at=r.ends_at,
                    contact_value=point.value if point is not None else None,
                    account_ids=frozenset(r.ids) if r.ids is not None else None,
                )
            )
        elif r.source == "window":
            windows.append(
                InconvenientWindow(
                    start=r.from_time,
                    end=r.to_time,
                    weekdays=frozenset(int(d) for d in (r.label or "").split(",") if d.strip()),
                )
            )
        elif r.starts_at <= at:  # channel opt-out
            opted_out.add(_enum(Channel, r.label, Channel.OTHER))
    context = Context(
        debtor_time_zones=(info.debtor_zone,) if info.debtor_zone else (),
        portfolio_time_zone=info.portfolio_zone,
        flags=tuple(flags),
        inconvenient_times=tuple(windows),
        opted_out_channels=frozenset(opted_out),
        consents=tuple(consents),
        debtor_numbers_invalid=numbers_invalid,
        accounts=states,
    )
    return context, points


def gate_inputs(
    session: Session,
    *,
    case_id: int,
    contact_point_id: int | None,
    channel: Channel,
    at: datetime,
    collector: str,
    account_ids: Iterable[int] = (),
    purpose: Purpose = Purpose.DEBT_COLLECTION,
    text: str | None = None,
    direction: Direction = Direction.OUTBOUND,
    agent_id: int | None = None,
    template_kind: TemplateKind | None = None,
    locale: str | None = None,
) -> GateInputs:
    """Build the attempt, history, context and pack `decide` needs (validating ids against the case)."""
    at = as_utc(at)
    info = _case_info(session, case_id)
    context, points = _build_context(session, info, at)
    if contact_point_id is None:
        point = _NO_CONTACT_POINT
    else:
        row = points.get(contact_point_id)
        if row is None:
            raise ValidationFailed(
                f"联系方式 {contact_point_id} 不属于案件 {case_id} 的债务人 / contact point {contact_point_id} "
                f"does not belong to the debtor of case {case_id}",
                code="contact_point_not_in_case",
            )
        point = _contact_point(row)
    case_accounts = set(context.accounts)
    ids = frozenset(account_ids) or frozenset(case_accounts)
    if not ids:
        raise ValidationFailed(
            f"案件 {case_id} 没有账户 / case {case_id} has no accounts", code="no_accounts"
        )
    stray = sorted(ids - case_accounts)
    if stray:
        raise ValidationFailed(
            f"账户 {stray} 不属于案件 {case_id} / accounts {stray} are not in case {case_id}",
            code="account_not_in_case",
        )
    pack = rule_pack(info.rule_pack)
    attempt = Attempt(
        at=at,
        channel=channel,
        contact_point=point,
        account_ids=ids,
        collector_id=collector,
        purpose=purpose,
        direction=direction,
        agent_id=str(agent_id) if agent_id is not None else None,
        text=text,
        template_kind=template_kind,
        locale=locale,
        facts=info.facts,
    )
    history = load_history(session, case_id=case_id, until=at)
    return GateInputs(attempt, history, context, pack, info.portfolio_zone)


def check_contact(
    session: Session,
    *,
    case_id: int,
    contact_point_id: int | None,
    channel: Channel,
    at: datetime,
    collector: str,
    account_ids: Iterable[int] = (),
    purpose: Purpose = Purpose.DEBT_COLLECTION,
    text: str | None = None,
    direction: Direction = Direction.OUTBOUND,
    agent_id: int | None = None,
    template_kind: TemplateKind | None = None,
    locale: str | None = None,
) -> Decision:
    """May this contact happen at ``at``? Allowed, or blocked with rule ids, sentences and the next time.

    ``account_ids`` empty means every account of the case. Stores nothing.
    """
    inputs = gate_inputs(
        session,
        case_id=case_id,
        contact_point_id=contact_point_id,
        channel=channel,
        at=at,
        collector=collector,
        account_ids=account_ids,
        purpose=purpose,
        text=text,
        direction=direction,
        agent_id=agent_id,
        template_kind=template_kind,
        locale=locale,
    )
    return decide(inputs.attempt, inputs.history, inputs.context, inputs.pack)


# --- limitation dates ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AccountScope:
    """Which accounts a set-based step works on: a whole portfolio, or a list of account ids."""

    portfolio_id: int | None = None
    account_ids: tuple[int, ...] | None = None

    def accounts(self, col: InstrumentedAttribute[int]) -> ColumnElement[bool]:
        """A filter on an account-id column."""
        if self.account_ids is not None:
            return col.in_(self.account_ids)
        if self.portfolio_id is None:
            raise ValidationFailed("an account scope needs a portfolio or account ids", code="bad_scope")
        return col.in_(select(Account.id).where(Account.portfolio_id == self.portfolio_id))

    def cases(self, col: InstrumentedAttribute[int]) -> ColumnElement[bool]:
        """A filter on a case-id column: the cases holding the scoped accounts."""
        if self.account_ids is not None:
            return col.in_(select(Account.case_id).where(Account.id.in_(self.account_ids)))
        return col.in_(select(Case.id).where(Case.portfolio_id == self.portfolio_id))


# An event source gives the limitation events of the scoped accounts; ``zone`` turns timestamps into the
# portfolio's local dates. Payments, arrangements and legal cases plug in with this signature.
EventSource = Callable[[Session, AccountScope, str], Mapping[int, list[LimitationEvent]]]


def due_events(session: Session, scope: AccountScope, zone_name: str) -> dict[int, list[LimitationEvent]]:
    """CN-20 / CN-21: due dates; an instalment debt yields its first and last instalment due dates."""
    del zone_name
    schedule = {
        account_id: (first, last, n)
        for account_id, first, last, n in session.execute(
            select(
                Instalment.account_id,
                func.min(Instalment.due_date),
                func.max(Instalment.due_date),
                func.count(),
            )
            .where(scope.accounts(Instalment.account_id))
            .group_by(Instalment.account_id)
        )
    }
    out: dict[int, list[LimitationEvent]] = {}
    for account_id, due_on, last_due_on in session.execute(
        select(Account.id, Account.due_date, Account.last_due_date).where(scope.accounts(Account.id))
    ):
        days = {due_on}
        if last_due_on is not None:
            days.add(last_due_on)
        if account_id in schedule:
            first, last, _n = schedule[account_id]
            days.update((first, last))
        out[account_id] = [
            LimitationEvent(LimitationEventKind.DUE, d, ref=f"account:{account_id}") for d in days
        ]
    return out


def contact_events(session: Session, scope: AccountScope, zone_name: str) -> dict[int, list[LimitationEvent]]:
    """CN-25 / CN-26 from the contact record: promises to pay, and demands delivered with evidence.

    A demand counts as delivered only with both ``delivered_at`` and ``evidence_ref`` (CN-25); a delivered
    message without evidence is still returned, undelivered, so the explanation can say why it did not count.
    Corrected attempts are replaced by their corrections; blocked attempts never happened.
    """
    tz = zone(zone_name)
    rows = session.execute(
        select(
            ContactAttempt.id,
            ContactAttempt.account_ids,
            ContactAttempt.channel,
            ContactAttempt.direction,
            ContactAttempt.outcome,
            ContactAttempt.started_at,
            ContactAttempt.delivered_at,
            ContactAttempt.evidence_ref,
            ContactAttempt.corrects_id,
            ContactAttempt.allowed,
            ContactPointRow.owner_relation,
        )
        .outerjoin(ContactPointRow, ContactPointRow.id == ContactAttempt.contact_point_id)
        .where(
            scope.cases(ContactAttempt.case_id),
            or_(
                ContactAttempt.outcome.in_((Outcome.PROMISE.value, Outcome.DELIVERED.value)),
                ContactAttempt.delivered_at.is_not(None),
                ContactAttempt.corrects_id.is_not(None),
            ),
        )
    ).all()
    superseded = {r.corrects_id for r in rows if r.corrects_id is not None}
    wanted = set(scope.account_ids) if scope.account_ids is not None else None
    out: dict[int, list[LimitationEvent]] = {}
    for r in rows:
        if r.id in superseded or not r.allowed:
            continue
        event: LimitationEvent | None = None
        ref = f"contact_attempt:{r.id}"
        if r.outcome == Outcome.PROMISE.value and r.owner_relation in (None, OwnerRelation.SELF.value):
            event = LimitationEvent(LimitationEventKind.PROMISE, r.started_at.astimezone(tz).date(), ref=ref)
        elif (
            r.direction == Direction.OUTBOUND.value
            and r.channel in DEMAND_CHANNELS
            and (r.delivered_at is not None or r.outcome == Outcome.DELIVERED.value)
        ):
            moment = r.delivered_at or r.started_at
            event = LimitationEvent(
                LimitationEventKind.DEMAND,
                moment.astimezone(tz).date(),
                delivered=r.delivered_at is not None and bool(r.evidence_ref),
                ref=ref,
            )
        if event is None:
            continue
        for account_id in r.account_ids or ():
            if wanted is None or account_id in wanted:
                out.setdefault(account_id, []).append(event)
    return out


def acknowledgment_events(
    session: Session, scope: AccountScope, zone_name: str
) -> dict[int, list[LimitationEvent]]:
    """CN-24 / CN-26 from case work and the ledger: promises, agreed plans, payments, lawsuits filed.

    A promise counts on the day it was made, a plan on the day it was agreed (a plan still awaiting approval
    was proposed by the debtor and counts as a request to pay over time), a payment on the day the money
    arrived unless the payment was reversed, a lawsuit or arbitration on the day it was filed.
    """
    out: dict[int, list[LimitationEvent]] = {}

    def add(account_id: int, kind: LimitationEventKind, on: date, ref: str) -> None:
        out.setdefault(int(account_id), []).append(LimitationEvent(kind, on, ref=ref))

    for pid, account_id, made_on in session.execute(
        select(Promise.id, Promise.account_id, Promise.made_on).where(scope.accounts(Promise.account_id))
    ):
        add(account_id, LimitationEventKind.PROMISE, made_on, f"promise:{pid}")
    for aid, account_id, agreed_on in session.execute(
        select(Arrangement.id, ArrangementAccount.account_id, Arrangement.agreed_on)
        .join(ArrangementAccount, ArrangementAccount.arrangement_id == Arrangement.id)
        .where(scope.accounts(ArrangementAccount.account_id), Arrangement.status != "rejected")
    ):
        add(account_id, LimitationEventKind.ARRANGEMENT, agreed_on, f"arrangement:{aid}")
    # the latest payment per account is the one that matters; earlier ones are superseded by it
    for account_id, paid_on in session.execute(
        select(Posting.account_id, func.max(Posting.effective_date))
        .join(Payment, Payment.id == Posting.payment_id)
        .where(scope.accounts(Posting.account_id), Payment.status == "posted", Posting.kind == "payment")
        .group_by(Posting.account_id)
    ):
        add(account_id, LimitationEventKind.PARTIAL_PAYMENT, paid_on, f"payment:{account_id}:{paid_on}")
    kinds = {"litigation": LimitationEventKind.LAWSUIT, "arbitration": LimitationEventKind.ARBITRATION}
    for lid, kind, account_id, filed_on in session.execute(
        select(LegalCase.id, LegalCase.kind, LegalCaseAccount.account_id, LegalMilestone.occurred_on)
        .join(LegalCaseAccount, LegalCaseAccount.legal_case_id == LegalCase.id)
        .join(LegalMilestone, LegalMilestone.legal_case_id == LegalCase.id)
        .where(
            scope.accounts(LegalCaseAccount.account_id),
            LegalCase.kind.in_(tuple(kinds)),
            LegalMilestone.milestone == "filed",
        )
    ):
        add(account_id, kinds[kind], filed_on, f"legal_case:{lid}")
    return out


DEFAULT_EVENT_SOURCES: tuple[EventSource, ...] = (due_events, contact_events, acknowledgment_events)


def limitation_events(
    session: Session,
    *,
    scope: AccountScope,
    zone_name: str,
    sources: Sequence[EventSource] = DEFAULT_EVENT_SOURCES,
) -> dict[int, list[LimitationEvent]]:
    """Every limitation event of the scoped accounts, from each source (one set-based query or two each)."""
    out: dict[int, list[LimitationEvent]] = {}
    for source in sources:
        for account_id, events in source(session, scope, zone_name).items():
            out.setdefault(account_id, []).extend(events)
    return out


def _portfolio_of(session: Session, scope: AccountScope) -> tuple[str, str]:
    if scope.portfolio_id is not None:
        row = session.execute(
            select(Portfolio.timezone, Portfolio.rule_pack).where(Portfolio.id == scope.portfolio_id)
        ).one_or_none()
    else:
        row = session.execute(
            select(Portfolio.timezone, Portfolio.rule_pack)
            .join(Account, Account.portfolio_id == Portfolio.id)
            .where(scope.accounts(Account.id))
            .limit(1)
        ).one_or_none()
    if row is None:
        raise NotFound("资产包或账户不存在 / portfolio or accounts not found", code="not_found")
    return row[0], row[1]


def limitations(
    session: Session,
    *,
    scope: AccountScope,
    as_of: date,
    sources: Sequence[EventSource] = DEFAULT_EVENT_SOURCES,
) -> dict[int, LimitationResult]:
    """Limitation results of the scoped accounts at ``as_of`` (all in one portfolio), computed live."""
    zone_name, pack_name = _portfolio_of(session, scope)
    pack = rule_pack(pack_name)
    if pack.limitation is None:
        return {}
    events = limitation_events(session, scope=scope, zone_name=zone_name, sources=sources)
    return {account_id: limitation_date(evts, pack, as_of=as_of) for account_id, evts in events.items()}


def account_limitation(session: Session, *, account_id: int, as_of: date) -> LimitationResult:
    """One account's limitation date at ``as_of`` and the event that set it (CN-20..CN-26, US-8)."""
    if session.get(Account, account_id) is None:
        raise NotFound(f"账户不存在：{account_id} / account {account_id} not found", code="account_not_found")
    _zone, pack_name = _portfolio_of(session, AccountScope(account_ids=(account_id,)))
    pack = rule_pack(pack_name)
    if pack.limitation is None:
        raise ValidationFailed(f"rule pack {pack.name} has no limitation rule", code="no_limitation_rule")
    result = limitations(session, scope=AccountScope(account_ids=(account_id,)), as_of=as_of)
    return result[account_id]


_LIMITATION_SCHEMA: dict[str, pl.DataType] = {
    "account_id": pl.Int64(),
    "portfolio_id": pl.Int64(),
    "as_of": pl.Date(),
    "limitation_on": pl.Date(),
    "time_barred": pl.Boolean(),
    "starts_on": pl.Date(),
    "rule_id": pl.String(),
    "set_by_kind": pl.String(),
    "set_by_on": pl.Date(),
    "set_by_ref": pl.String(),
    "waived_by_ref": pl.String(),
    "explanation_zh": pl.String(),
    "explanation_en": pl.String(),
}


@dataclass(frozen=True, slots=True)
class LimitationRefresh:
    """What `refresh_limitations` did for a portfolio."""

    portfolio_id: int
    as_of: date
    accounts: int
    time_barred: int
    newly_time_barred: tuple[int, ...]


def refresh_limitations(
    session: Session,
    *,
    portfolio_id: int,
    as_of: date,
    sources: Sequence[EventSource] = DEFAULT_EVENT_SOURCES,
) -> LimitationRefresh:
    """Recompute and store every account's limitation date of a portfolio; flag time-barred accounts.

    Set-based: a few queries for the whole portfolio, then one bulk replace of ``account_limitation``.
    Running it twice for the same ``as_of`` leaves the same rows. Flushes, never commits.
    """
    scope = AccountScope(portfolio_id=portfolio_id)
    results = limitations(session, scope=scope, as_of=as_of, sources=sources)
    before = set(
        session.scalars(
            select(AccountLimitation.account_id).where(
                AccountLimitation.portfolio_id == portfolio_id, AccountLimitation.time_barred.is_(True)
            )
        )
    )
    session.execute(delete(AccountLimitation).where(AccountLimitation.portfolio_id == portfolio_id))
    rows = [
        {
            "account_id": account_id,
            "portfolio_id": portfolio_id,
            "as_of": as_of,
            "limitation_on": r.limitation_on,
            "time_barred": r.time_barred,
            "starts_on": r.starts_on,
            "rule_id": r.rule_id,
            "set_by_kind": r.set_by.kind.value if r.set_by else None,
            "set_by_on": r.set_by.on if r.set_by else None,
            "set_by_ref": r.set_by.ref if r.set_by else None,
            "waived_by_ref": r.waived_by.ref if r.waived_by else None,
            "explanation_zh": r.explanation.zh,
            "explanation_en": r.explanation.en,
        }
        for account_id, r in sorted(results.items())
    ]
    if rows:
        # one COPY (PostgreSQL) / executemany (SQLite) instead of an ORM insert per row: the daily run
        # refreshes every account of a portfolio each day
        from arrears.strategy import bulk

        now = clock_now()
        frame = pl.DataFrame(rows, schema=_LIMITATION_SCHEMA, orient="row").with_columns(
            pl.lit(now, pl.Datetime("us", "UTC")).alias("created_at"),
            pl.lit(now, pl.Datetime("us", "UTC")).alias("updated_at"),
        )
        bulk.insert_frame(session, "account_limitation", frame)
    session.flush()
    barred = sorted(a for a, r in results.items() if r.time_barred)
    return LimitationRefresh(
        portfolio_id=portfolio_id,
        as_of=as_of,
        accounts=len(rows),
        time_barred=len(barred),
        newly_time_barred=tuple(a for a in barred if a not in before),
    )
