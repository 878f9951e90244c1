"""The real-time gate for many contacts at once: the inputs of `rules.decide` for a whole batch in a few
queries, the same inputs `service.gate_inputs` builds for one contact.

The outbox asks the gate at the moment of sending for every message it claimed (RULEBOOK "One gate").
Asking `service.check_contact` once per message costs about ten statements each; `gate_inputs_many`
loads the same facts for every case of the batch with one query per kind -- cases, contact points,
accounts, standing facts (flags, consents, inconvenient times, channel opt-outs) and the contact record --
and builds, per contact, the same `GateInputs` (attempt, history, context, pack). The decision stays the
pure `rules.decide`; nothing here decides.

The context is assembled here the same way `service._build_context` assembles it for one case; the
integration test ``test_gate_batch_matches_single_check`` compares both on debtors with flags, consents,
inconvenient times, opt-outs, time-barred debts, invalid numbers and a contact record, so the two cannot
drift apart silently.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from itertools import zip_longest
from typing import Any

from sqlalchemy import (
    ARRAY,
    JSON,
    BigInteger,
    ColumnElement,
    Date,
    Integer,
    Row,
    String,
    Text,
    Time,
    any_,
    bindparam,
    cast,
    literal,
    null,
    select,
    union_all,
)
from sqlalchemy.orm import Session

from arrears.clock import as_utc
from arrears.compliance import service
from arrears.compliance.limitation import LimitationResult
from arrears.compliance.pack import RulePack
from arrears.compliance.schemas import (
    AccountState,
    ActiveFlag,
    Attempt,
    Consent,
    ConsentScope,
    ContactPoint,
    Context,
    Direction,
    InconvenientWindow,
    Outcome,
    PriorAttempt,
    Purpose,
    TemplateKind,
)
from arrears.compliance.zones import zone
from arrears.enums import Channel, FlagKind, Product
from arrears.errors import ArrearsError, NotFound, ValidationFailed
from arrears.models import (
    Account,
    AccountFlag,
    AccountLimitation,
    Case,
    ChannelOptOut,
    ContactAttempt,
    ContactConsent,
    Creditor,
    Debtor,
    InconvenientTime,
    Portfolio,
    UTCDateTime,
)
from arrears.models import ContactPoint as ContactPointRow

_PHONE_KINDS = ("mobile", "landline")
_CHUNK = 500  # ids per IN list: well under every driver's parameter limit


@dataclass(frozen=True, slots=True)
class ContactRequest:
    """One contact to check; ``key`` is the caller's handle (an outbox row id)."""

    key: Hashable
    case_id: int
    contact_point_id: int | None
    channel: Channel
    collector: str
    account_ids: tuple[int, ...] = ()
    purpose: Purpose = Purpose.DEBT_COLLECTION
    text: str | None = None
    template_kind: TemplateKind | None = None
    locale: str | None = None
    direction: Direction = Direction.OUTBOUND


@dataclass
class BatchInputs:
    """Gate inputs per request key, or the error that makes the request impossible to check.

    ``history`` is kept per case so a caller recording attempts of the batch in order can append them
    (`remember`): the second message of a case in one batch sees the first, as it would one at a time.
    """

    inputs: dict[Hashable, service.GateInputs] = field(default_factory=dict)
    case_of: dict[Hashable, int] = field(default_factory=dict)
    errors: dict[Hashable, ArrearsError] = field(default_factory=dict)
    history: dict[int, list[PriorAttempt]] = field(default_factory=dict)

    def for_key(self, key: Hashable) -> service.GateInputs:
        """The inputs of one request, with its case's history as it stands now (see `remember`)."""
        base = self.inputs[key]
        history = self.history.get(self.case_of[key], [])
        return service.GateInputs(base.attempt, history, base.context, base.pack, base.portfolio_time_zone)

    def remember(self, case_id: int, attempt: PriorAttempt) -> None:
        """Add an attempt just recorded for ``case_id`` to the history later requests of the case see."""
        self.history.setdefault(case_id, []).append(attempt)


def id_groups(session: Session, ids: Iterable[int | None]) -> list[list[int]]:
    """Ids in groups for `id_in`: all at once on PostgreSQL (one array parameter), 500 at a time on SQLite."""
    values = sorted({i for i in ids if i is not None})
    if not values:
        return []
    if session.get_bind().dialect.name == "postgresql":
        return [values]
    return [values[i : i + _CHUNK] for i in range(0, len(values), _CHUNK)]


def id_in(session: Session, column: Any, ids: Sequence[int]) -> ColumnElement[bool]:
    """``column IN ids``; on PostgreSQL ``column = ANY(:ids)`` with one array parameter, so the statement
    stays short (the driver parses and caches a short statement once, a long IN list every time)."""
    if session.get_bind().dialect.name == "postgresql":
        return column == any_(bindparam(None, list(ids), type_=ARRAY(BigInteger())))  # type: ignore[no-any-return]
    # one expanding parameter, not one bound literal coerced per id
    return column.in_(bindparam(None, list(ids), type_=column.type, expanding=True))  # type: ignore[no-any-return]


def _rows(session: Session, stmt_for: Any, ids: Iterable[int]) -> list[Any]:
    out: list[Any] = []
    for group in id_groups(session, ids):
        out.extend(session.execute(stmt_for(group)).all())
    return out


@dataclass(frozen=True, slots=True)
class _Info:
    case_id: int
    debtor_id: int
    portfolio_id: int
    portfolio_zone: str
    rule_pack: str
    debtor_zone: str | None
    facts: tuple[tuple[str, str], ...]


def _case_infos(session: Session, case_ids: Iterable[int]) -> dict[int, _Info]:
    def stmt(group: list[int]) -> Any:
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
            .where(id_in(session, Case.id, group))
        )

    infos: dict[int, _Info] = {}
    for row in _rows(session, stmt, case_ids):
        facts = (("institution", row[6]), ("institution_contact", row[7]), ("debtor_name", row[8]))
        infos[row[0]] = _Info(
            row[0], row[1], row[2], row[3], row[4], row[5], tuple((k, v) for k, v in facts if v)
        )
    return infos


def _fact_columns(
    source: str,
    owner: Any,
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
    def col(value: Any, kind: Any, name: str) -> Any:
        return (value if value is not None else cast(null(), kind)).label(name)

    return [
        literal(source, String()).label("source"),
        owner.label("owner"),
        col(ref_id, Integer(), "ref_id"),
        col(label, String(), "label"),
        col(note, Text(), "note"),
        col(day, Date(), "day"),
        col(starts_at, UTCDateTime(), "starts_at"),
        col(ends_at, UTCDateTime(), "ends_at"),
        col(ids, JSON(), "ids"),
        col(from_time, Time(), "from_time"),
        col(to_time, Time(), "to_time"),
    ]


def _standing_facts(session: Session, case_ids: list[int], debtor_ids: list[int]) -> Any:
    """`service._standing_facts` for many cases: each row names its case (flags) or debtor (the rest)."""
    flag = select(
        *_fact_columns(
            "flag",
            AccountFlag.case_id,
            ref_id=AccountFlag.account_id,
            label=AccountFlag.kind,
            note=AccountFlag.reason,
            day=AccountFlag.expires_on,
        )
    ).where(id_in(session, AccountFlag.case_id, case_ids), AccountFlag.cleared_at.is_(None))
    consent = select(
        *_fact_columns(
            "consent",
            ContactConsent.debtor_id,
            ref_id=ContactConsent.contact_point_id,
            label=ContactConsent.scope,
            starts_at=ContactConsent.granted_at,
            ends_at=ContactConsent.expires_at,
            ids=ContactConsent.account_ids,
        )
    ).where(id_in(session, ContactConsent.debtor_id, debtor_ids), ContactConsent.revoked_at.is_(None))
    window = select(
        *_fact_columns(
            "window",
            InconvenientTime.debtor_id,
            ref_id=InconvenientTime.id,
            label=InconvenientTime.weekdays,
            from_time=InconvenientTime.starts,
            to_time=InconvenientTime.ends,
        )
    ).where(id_in(session, InconvenientTime.debtor_id, debtor_ids), InconvenientTime.removed_at.is_(None))
    opt_out = select(
        *_fact_columns(
            "opt_out",
            ChannelOptOut.debtor_id,
            ref_id=ChannelOptOut.id,
            label=ChannelOptOut.channel,
            starts_at=ChannelOptOut.opted_out_at,
        )
    ).where(id_in(session, ChannelOptOut.debtor_id, debtor_ids), ChannelOptOut.withdrawn_at.is_(None))
    return union_all(flag, consent, window, opt_out)


def _history_stmt(session: Session, group: list[int], until: datetime) -> Any:
    cp = ContactPointRow
    return (
        select(
            ContactAttempt.id,
            ContactAttempt.case_id,
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
            literal(False).label("opted_out"),  # as the one-contact gate reads history
        )
        .outerjoin(cp, cp.id == ContactAttempt.contact_point_id)
        .where(id_in(session, ContactAttempt.case_id, group), ContactAttempt.started_at <= until)
        .order_by(ContactAttempt.case_id, ContactAttempt.started_at)
    )


def load_histories(
    session: Session, *, case_ids: Iterable[int], until: datetime
) -> dict[int, list[PriorAttempt]]:
    """The contact record of every case as the gate sees it (`service.load_history` for many cases)."""
    until = as_utc(until)
    by_case: dict[int, list[Row[Any]]] = defaultdict(list)
    for group in id_groups(session, case_ids):
        for row in session.execute(_history_stmt(session, group, until)):
            by_case[row.case_id].append(row)
    out: dict[int, list[PriorAttempt]] = {}
    for case_id in set(case_ids):
        out[case_id] = service._prior_attempts(by_case.get(case_id, []))
    return out


def _local_midnight(day: date, zone_name: str) -> datetime:
    return service._local_midnight(day, zone_name)


def _contexts(
    session: Session, infos: dict[int, _Info], at: datetime
) -> tuple[dict[int, Context], dict[int, dict[int, Any]]]:
    """Each case's `Context` at ``at`` and its debtor's contact points (see `service._build_context`)."""
    debtor_ids = {i.debtor_id for i in infos.values()}
    points_by_debtor: dict[int, dict[int, Any]] = defaultdict(dict)
    for group in id_groups(session, debtor_ids):
        # plain rows (read-only; they answer the attributes `service._contact_point` reads)
        for point in session.execute(
            select(ContactPointRow.__table__).where(id_in(session, ContactPointRow.debtor_id, group))
        ):
            points_by_debtor[point.debtor_id][point.id] = point

    accounts_by_case: dict[int, list[Row[Any]]] = defaultdict(list)

    def accounts_stmt(group: list[int]) -> Any:
        return (
            select(
                Account.id,
                Account.case_id,
                Account.product,
                AccountLimitation.limitation_on,
                AccountLimitation.account_id,
            )
            .outerjoin(AccountLimitation, AccountLimitation.account_id == Account.id)
            .where(id_in(session, Account.case_id, group))
        )

    for row in _rows(session, accounts_stmt, infos):
        accounts_by_case[row.case_id].append(row)

    # Accounts never refreshed: computed now, per portfolio and local day, rather than assumed not barred.
    unknown: dict[tuple[int, date], list[int]] = defaultdict(list)
    for case_id, rows in accounts_by_case.items():
        info = infos[case_id]
        day = at.astimezone(zone(info.portfolio_zone)).date()
        unknown[(info.portfolio_id, day)].extend(r.id for r in rows if r.account_id is None)
    live: dict[int, LimitationResult] = {}
    for (_, day), account_ids in unknown.items():
        if account_ids:
            live.update(
                service.limitations(
                    session, scope=service.AccountScope(account_ids=tuple(sorted(account_ids))), as_of=day
                )
            )

    facts_by_owner: dict[tuple[str, int], list[Row[Any]]] = defaultdict(list)
    empty: list[int] = []
    groups = zip_longest(id_groups(session, infos), id_groups(session, debtor_ids), fillvalue=empty)
    for case_group, debtor_group in groups:
        for row in session.execute(_standing_facts(session, case_group, debtor_group)):
            facts_by_owner[("case" if row.source == "flag" else "debtor", row.owner)].append(row)

    contexts: dict[int, Context] = {}
    for case_id, info in infos.items():
        points = points_by_debtor.get(info.debtor_id, {})
        contexts[case_id] = _assemble(
            info,
            at,
            points,
            accounts_by_case.get(case_id, []),
            live,
            [*facts_by_owner.get(("case", case_id), []), *facts_by_owner.get(("debtor", info.debtor_id), [])],
        )
    return contexts, points_by_debtor


def _assemble(
    info: _Info,
    at: datetime,
    points: dict[int, Any],
    accounts: Sequence[Row[Any]],
    live: dict[int, LimitationResult],
    facts: Sequence[Row[Any]],
) -> Context:
    local_day = at.astimezone(zone(info.portfolio_zone)).date()
    # CN-3: the debtor is out of contact when every own phone number is known invalid.
    own_phones = [p for p in points.values() if p.owner_relation == "self" and p.kind in _PHONE_KINDS]
    numbers_invalid = bool(own_phones) and not any(p.is_valid for p in own_phones)
    states: dict[int, AccountState] = {}
    for a in accounts:
        if a.account_id is not None:
            barred = a.limitation_on is not None and local_day > a.limitation_on  # CN-22 / US-8
        else:
            barred = live[a.id].time_barred if a.id in live else False
        states[a.id] = AccountState(
            product=service._enum(Product, a.product, Product.OTHER), time_barred=barred
        )
    flags: list[ActiveFlag] = []
    consents: list[Consent] = []
    windows: list[InconvenientWindow] = []
    opted_out: set[Channel] = set()
    for r in facts:
        if r.source == "flag":
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
            opted_out.add(service._enum(Channel, r.label, Channel.OTHER))
    return Context(
        debtor_time_zones=(info.debtor_zone,) if info.debtor_zone else (),
        portfolio_time_zone=info.portfolio_zone,
        flags=tuple(flags),
        inconvenient_times=tuple(windows),
        opted_out_channels=frozenset(opted_out),
        consents=tuple(consents),
        debtor_numbers_invalid=numbers_invalid,
        accounts=states,
    )


def gate_inputs_many(session: Session, *, requests: Sequence[ContactRequest], at: datetime) -> BatchInputs:
    """`service.gate_inputs` for every request at ``at``, in a few queries for the whole batch.

    A request that cannot be checked (unknown case, a contact point or account outside the case) gets
    its `ArrearsError` in ``errors`` with the message `service.gate_inputs` would raise.
    """
    at = as_utc(at)
    out = BatchInputs()
    if not requests:
        return out
    infos = _case_infos(session, {r.case_id for r in requests})
    contexts, points_by_debtor = _contexts(session, infos, at)
    out.history = load_histories(session, case_ids=infos, until=at)
    packs: dict[str, RulePack] = {}
    for request in requests:
        info = infos.get(request.case_id)
        if info is None:
            out.errors[request.key] = NotFound(
                f"案件不存在：{request.case_id} / case {request.case_id} not found", code="case_not_found"
            )
            continue
        context = contexts[request.case_id]
        try:
            point = _point(request, points_by_debtor.get(info.debtor_id, {}))
            ids = _account_ids(request, context)
        except ArrearsError as exc:
            out.errors[request.key] = exc
            continue
        attempt = Attempt(
            at=at,
            channel=request.channel,
            contact_point=point,
            account_ids=ids,
            collector_id=request.collector,
            purpose=request.purpose,
            direction=request.direction,
            text=request.text,
            template_kind=request.template_kind,
            locale=request.locale,
            facts=info.facts,
        )
        pack = packs.get(info.rule_pack) or packs.setdefault(
            info.rule_pack, service.rule_pack(info.rule_pack)
        )
        out.inputs[request.key] = service.GateInputs(
            attempt, out.history[request.case_id], context, pack, info.portfolio_zone
        )
        out.case_of[request.key] = request.case_id
    return out


def _point(request: ContactRequest, points: dict[int, Any]) -> ContactPoint:
    if request.contact_point_id is None:
        return service._NO_CONTACT_POINT
    row = points.get(request.contact_point_id)
    if row is None:
        raise ValidationFailed(
            f"联系方式 {request.contact_point_id} 不属于案件 {request.case_id} 的债务人 / contact point "
            f"{request.contact_point_id} does not belong to the debtor of case {request.case_id}",
            code="contact_point_not_in_case",
        )
    return service._contact_point(row)


def _account_ids(request: ContactRequest, context: Context) -> frozenset[int]:
    case_accounts = set(context.accounts)
    ids = frozenset(request.account_ids) or frozenset(case_accounts)
    if not ids:
        raise ValidationFailed(
            f"案件 {request.case_id} 没有账户 / case {request.case_id} has no accounts", code="no_accounts"
        )
    stray = sorted(ids - case_accounts)
    if stray:
        raise ValidationFailed(
            f"账户 {stray} 不属于案件 {request.case_id} / accounts {stray} are not in case {request.case_id}",
            code="account_not_in_case",
        )
    return ids


def prior_attempt(attempt: Attempt, *, outcome: Outcome) -> PriorAttempt:
    """The attempt as the contact record will show it to the next check (what `load_history` would read)."""
    point = replace(attempt.contact_point, opted_out=False, volunteered_to_pay=False, person=None)
    return PriorAttempt(
        at=attempt.at,
        channel=attempt.channel,
        contact_point=point,
        account_ids=attempt.account_ids,
        collector_id=attempt.collector_id,
        outcome=outcome,
        direction=attempt.direction,
        purpose=attempt.purpose,
    )
