"""The compliance gate and limitation dates against the database (RULEBOOK.md, DESIGN "One compliance gate").

`check_contact` answers "may this contact happen now?": in ONE round trip (`_gate_facts_stmt`, a
UNION ALL) it reads what the `Context` needs (portfolio zone and rule pack, the contact points, active
flags, consents, inconvenient times, opt-outs, time-barred accounts) and the case's contact record on the
``(case_id, started_at)`` index, cut to what `rules.history_since` says the decision can see, and asks
the pure `rules.decide`. It stores nothing; recording is `arrears.contacts.service.record_attempt`.

Limitation dates (CN-20..CN-26, US-8) are computed from events gathered set-based from event sources:
due dates (account and instalment schedule), and the contact record (promises, demands delivered with
evidence). Other domains add sources (payments, arrangements, lawsuits) with the `EventSource` signature.
`refresh_limitations` is the daily run's step for a whole portfolio.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import cache, lru_cache
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import (
    JSON,
    LABEL_STYLE_NONE,
    Boolean,
    ColumnElement,
    Date,
    Executable,
    Integer,
    Row,
    String,
    Time,
    bindparam,
    cast,
    delete,
    func,
    literal,
    literal_column,
    null,
    or_,
    select,
    union_all,
)
from sqlalchemy import case as case_
from sqlalchemy.orm import InstrumentedAttribute, Session

from arrears.clock import as_utc
from arrears.clock import now as clock_now
from arrears.compliance.limitation import (
    LimitationEvent,
    LimitationResult,
    limitation_date,
    limitation_frame,
    row_schema,
)
from arrears.compliance.pack import PACK_DIR_ENV, RulePack, load_pack
from arrears.compliance.rules import decide, history_since, lookback
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

if TYPE_CHECKING:  # polars is loaded by the limitation refresh, not by the gate's imports
    import polars as pl

_PHONES = (ContactKind.MOBILE, ContactKind.LANDLINE)
_NO_CONTACT_POINT = ContactPoint(value="", kind=ContactKind.OTHER)
# Channels whose delivered message is the creditor's demand reaching the debtor (CN-25).
DEMAND_CHANNELS = frozenset({Channel.LETTER, Channel.SMS, Channel.EMAIL, Channel.LAWYER_LETTER})


def rule_pack(name: str) -> RulePack:
    """The rule pack of a portfolio, parsed once per name (and operator pack directory)."""
    return _cached_pack(name, os.environ.get(PACK_DIR_ENV, ""))


# Packs the gate has met whose look-back is longer than the built-in packs': the history window covers them.
_PACKS_SEEN: set[str] = set()


@lru_cache(maxsize=32)
def _cached_pack(name: str, _pack_dirs: str) -> RulePack:
    return load_pack(name)


def forget_rule_packs() -> None:
    """Drop the parsed packs, so the next check reads an edited pack file (this process only)."""
    _cached_pack.cache_clear()


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


@dataclass(frozen=True, slots=True)
class _Point:
    """A contact point of the debtor as the gate sees it."""

    point: ContactPoint
    is_valid: bool


@dataclass(frozen=True, slots=True)
class _Facts:
    """What one round trip tells the gate about a case at a moment (see `_gate_facts_stmt`)."""

    info: _CaseInfo
    context: Context
    points: dict[int, _Point]
    history: list[PriorAttempt]
    since: datetime | None  # the history holds every attempt from here on (None: all of them)


_E = TypeVar("_E", ContactKind, OwnerRelation, Product, Channel, Outcome, Direction, Purpose)


# Enum look-ups by value: a dict read is twenty times cheaper than ``Channel(value)``, and the history
# converts thousands of values per check.
def _table(kind: type[_E]) -> dict[str, _E]:
    return {member.value: member for member in kind}


_CHANNELS = _table(Channel)
_OUTCOMES = _table(Outcome)
_DIRECTIONS = _table(Direction)
_PURPOSES = _table(Purpose)
_KINDS = _table(ContactKind)
_RELATIONS = _table(OwnerRelation)
_PRODUCTS = _table(Product)


def _enum(kind: type[_E], value: str | None, default: _E) -> _E:
    if value is None:
        return default
    try:
        return kind(value)
    except ValueError:
        return default


def _contact_point(row: Any) -> ContactPoint:
    """The gate's view of a contact point row (ORM object or result row with the same attribute names)."""
    if row is None:
        return _NO_CONTACT_POINT
    return ContactPoint(
        value=row.value,
        kind=_KINDS.get(row.kind, ContactKind.OTHER),
        owner_relation=_RELATIONS.get(row.owner_relation, OwnerRelation.OTHER),
        owner_name=row.owner_name,
        debt_related=bool(row.debt_related),
        opted_out=bool(row.opted_out),
        time_zones=(row.timezone,) if row.timezone else (),
    )


# --- the history ------------------------------------------------------------------------------------

_ATTEMPT = ContactAttempt.__table__.c
_POINT = ContactPointRow.__table__.c


def load_history(
    session: Session, *, case_id: int, until: datetime | None = None, since: datetime | None = None
) -> list[PriorAttempt]:
    """The case's contact record as the gate sees it, with ONE query on ``(case_id, started_at)``.

    Corrected attempts are replaced by their corrections (a correction keeps the corrected attempt's
    ``started_at``); attempts after ``until`` or before ``since`` are left out.
    """
    session.flush()
    rows = session.connection().execute(
        _history_stmt(until is not None, since is not None),
        {"case_id": case_id, "until": until, "since": since},
    )
    return _prior_attempts(rows.all())


@cache
def _history_stmt(bounded: bool, windowed: bool) -> Executable:
    """A case's history joined with its contact points (the gate's own query is in `_gate_facts_stmt`)."""
    a, cp = _ATTEMPT, _POINT
    stmt = (
        select(
            a.id,
            a.started_at,
            a.channel,
            a.direction,
            a.purpose,
            a.collector,
            a.account_ids,
            a.outcome,
            a.corrects_id,
            a.contact_point_id,
            cp.value,
            cp.kind,
            cp.owner_relation,
            cp.owner_name,
            cp.debt_related,
            cp.timezone,
            literal(False).label("opted_out"),
        )
        .select_from(
            ContactAttempt.__table__.outerjoin(ContactPointRow.__table__, cp.id == a.contact_point_id)
        )
        .where(a.case_id == bindparam("case_id"))
    )
    if bounded:
        stmt = stmt.where(a.started_at <= bindparam("until", type_=UTCDateTime()))
    if windowed:
        stmt = stmt.where(a.started_at >= bindparam("since", type_=UTCDateTime()))
    return stmt.order_by(a.started_at)


@cache
def _points_by_id_stmt() -> Executable:
    cp = _POINT
    return select(
        cp.id, cp.value, cp.kind, cp.owner_relation, cp.owner_name, cp.debt_related, cp.timezone, cp.opted_out
    ).where(cp.id.in_(bindparam("ids", expanding=True)))


def _prior_attempts(rows: Sequence[Row[Any]]) -> list[PriorAttempt]:
    """PriorAttempt values from history rows joined with their contact points."""
    points: dict[int | None, ContactPoint] = {None: _NO_CONTACT_POINT}
    superseded = {r.corrects_id for r in rows if r.corrects_id is not None}
    out: list[PriorAttempt] = []
    for r in rows:
        if r.id in superseded:
            continue
        point = points.get(r.contact_point_id)
        if point is None:
            point = points[r.contact_point_id] = _contact_point(r)
        out.append(
            PriorAttempt(
                r.started_at,
                _CHANNELS.get(r.channel, Channel.OTHER),
                point,
                frozenset(r.account_ids or ()),
                r.collector,
                _OUTCOMES.get(r.outcome, Outcome.NOT_CONNECTED),
                _DIRECTIONS.get(r.direction, Direction.OUTBOUND),
                _PURPOSES.get(r.purpose, Purpose.DEBT_COLLECTION),
            )
        )
    return out


# --- the debtor's situation -------------------------------------------------------------------------


def _local_midnight(day: date, zone_name: str) -> datetime:
    return datetime.combine(day, time(0, 0), tzinfo=zone(zone_name)).astimezone(UTC)


# Every branch of the facts query fills the same typed slots; the first branch carries the result types
# (UTC timestamps, JSON, times of day) so each dialect hands back Python values.
_SLOTS: tuple[tuple[str, Any], ...] = (
    ("i1", Integer()),
    ("i2", Integer()),
    ("s1", String()),
    ("s2", String()),
    ("s3", String()),
    ("s4", String()),
    ("s5", String()),
    ("s6", String()),
    ("b1", Boolean()),
    ("b2", Boolean()),
    ("b3", Boolean()),
    ("d1", Date()),
    ("ts1", UTCDateTime()),
    ("ts2", UTCDateTime()),
    ("ts3", UTCDateTime()),
    ("i3", Integer()),
    ("j1", JSON()),
    ("t1", Time()),
    ("t2", Time()),
)


_SLOT_INDEX = {name: i for i, (name, _kind) in enumerate(_SLOTS, start=1)}  # 0 is ``source``


_NULL: ColumnElement[Any] = literal_column("NULL")  # rendered bare in the unlabelled branches


def _branch(source: str, *, first: bool = False, **values: Any) -> list[Any]:
    """One branch's columns. Only the first branch needs typed NULLs and labels: the database takes the
    other branches' types from it (and a shorter statement is cheaper for the driver to parse)."""
    unknown = set(values) - {name for name, _ in _SLOTS}
    assert not unknown, unknown
    if first:
        return [
            literal_column(f"'{source}'", String()).label("source"),
            *((values[name] if name in values else cast(null(), kind)).label(name) for name, kind in _SLOTS),
        ]
    return [literal_column(f"'{source}'"), *(values.get(name, _NULL) for name, _kind in _SLOTS)]


# The earliest moment the history branch can need: "the whole record".
_EPOCH = datetime(1900, 1, 1, tzinfo=UTC)


@cache
def _gate_facts_stmt(packs: tuple[str, ...]) -> Executable:
    """Everything the gate reads about a case at ``at``, in ONE round trip (UNION ALL): the case, its
    portfolio and creditor, accounts with limitation dates, the debtor's contact points, active flags,
    consents, inconvenient times, channel opt-outs, and the history on the ``(case_id, started_at)`` index.

    The history starts where the case's rule pack lets the timed checks see (``since_<i>`` for
    ``packs[i]``, ``since`` for any other pack), or at the beginning when ``full`` is set or the contact
    point belongs to a third party (CN-3 reads the whole record). Consents,
    inconvenient times and opt-outs count as recorded at ``at``: one revoked, removed or withdrawn after
    ``at`` was still in force then.
    """
    # Short aliases: the statement is long, and the driver re-parses one over 4 KB on every execution.
    k, p, c, d = (
        Case.__table__.alias("k"),
        Portfolio.__table__.alias("p"),
        Creditor.__table__.alias("c"),
        Debtor.__table__.alias("d"),
    )
    case, portfolio, creditor, debtor = k.c, p.c, c.c, d.c
    case_id, at = bindparam("case_id", type_=Integer()), bindparam("at", type_=UTCDateTime())
    debtor_id = select(case.debtor_id).where(case.id == case_id).scalar_subquery()
    head = (
        select(
            *_branch(
                "case",
                first=True,
                i1=case.debtor_id,
                i2=case.portfolio_id,
                s1=portfolio.timezone,
                s2=portfolio.rule_pack,
                s3=debtor.timezone,
                s4=creditor.name,
                s5=creditor.phone,
                s6=debtor.name,
            )
        )
        .select_from(
            k.join(p, portfolio.id == case.portfolio_id)
            .join(c, creditor.id == portfolio.creditor_id)
            .join(d, debtor.id == case.debtor_id)
        )
        .where(case.id == case_id)
    )
    acc_t, lim_t = Account.__table__.alias("ac"), AccountLimitation.__table__.alias("al")
    acc, lim = acc_t.c, lim_t.c
    accounts = (
        select(*_branch("account", i1=acc.id, i2=lim.account_id, s1=acc.product, d1=lim.limitation_on))
        .select_from(acc_t.outerjoin(lim_t, lim.account_id == acc.id))
        .where(acc.case_id == case_id)
    )
    cp = ContactPointRow.__table__.alias("cp").c
    points = select(
        *_branch(
            "point",
            i1=cp.id,
            s1=cp.value,
            s2=cp.kind,
            s3=cp.owner_relation,
            s4=cp.owner_name,
            s5=cp.timezone,
            b1=cp.debt_related,
            b2=cp.opted_out,
            b3=cp.is_valid,
            ts1=cp.opted_out_at,
        )
    ).where(cp.debtor_id == debtor_id)
    fl = AccountFlag.__table__.alias("f").c
    flags = select(
        *_branch("flag", i1=fl.account_id, s1=fl.kind, s2=cast(fl.reason, String()), d1=fl.expires_on)
    ).where(fl.case_id == case_id, fl.cleared_at.is_(None))
    co = ContactConsent.__table__.alias("co").c
    consents = select(
        *_branch(
            "consent",
            i1=co.contact_point_id,
            s1=co.scope,
            ts1=co.granted_at,
            ts2=co.expires_at,
            ts3=co.revoked_at,
            j1=co.account_ids,
        )
    ).where(co.debtor_id == debtor_id, or_(co.revoked_at.is_(None), co.revoked_at > at))
    it = InconvenientTime.__table__.alias("it").c
    windows = select(*_branch("window", i1=it.id, s1=it.weekdays, t1=it.starts, t2=it.ends)).where(
        it.debtor_id == debtor_id, or_(it.removed_at.is_(None), it.removed_at > at)
    )
    oo = ChannelOptOut.__table__.alias("oo").c
    opt_outs = select(*_branch("opt_out", i1=oo.id, s1=oo.channel, ts1=oo.opted_out_at)).where(
        oo.debtor_id == debtor_id, oo.opted_out_at <= at, or_(oo.withdrawn_at.is_(None), oo.withdrawn_at > at)
    )
    a = ContactAttempt.__table__.alias("a").c
    third_party = (
        select(cp.id)
        .where(cp.id == bindparam("contact_point_id", type_=Integer()), cp.owner_relation != "self")
        .exists()
    )
    pack_name = (
        select(portfolio.rule_pack)
        .select_from(k.join(p, portfolio.id == case.portfolio_id))
        .where(case.id == case_id)
        .scalar_subquery()
    )
    since = case_(
        (or_(bindparam("full", type_=Boolean()), third_party), bindparam("epoch", type_=UTCDateTime())),
        *(
            (pack_name == literal(name, String()), bindparam(f"since_{i}", type_=UTCDateTime()))
            for i, name in enumerate(packs)
        ),
        else_=bindparam("since", type_=UTCDateTime()),
    )
    history = select(
        *_branch(
            "attempt",
            i1=a.id,
            i2=a.corrects_id,
            i3=a.contact_point_id,
            s1=a.channel,
            s2=a.direction,
            s3=a.purpose,
            s4=a.collector,
            s5=a.outcome,
            s6=cast(a.account_ids, String()),  # parsed here: cheaper than a JSON decode per row
            ts1=a.started_at,
        )
    ).where(a.case_id == case_id, a.started_at <= at, a.started_at >= since)
    rest = (accounts, points, flags, consents, windows, opt_outs, history)
    return union_all(head, *(branch.set_label_style(LABEL_STYLE_NONE) for branch in rest))


def _windows() -> tuple[tuple[str, ...], tuple[timedelta, ...], timedelta]:
    """The packs the gate knows, how far back each one's timed checks see, and the longest of them."""
    names = tuple(sorted({"cn", "us-regf", *_PACKS_SEEN}))
    spans = tuple(lookback(rule_pack(name)) for name in names)
    return names, spans, max(spans)


def _gate_facts(
    session: Session,
    case_id: int,
    at: datetime,
    *,
    contact_point_id: int | None = None,
    full_history: bool = False,
    window: timedelta | None = None,
) -> _Facts:
    session.flush()  # the gate reads through the connection: pending ORM changes must be in the database
    names, spans, longest = _windows()
    params: dict[str, Any] = {
        "case_id": case_id,
        "at": at,
        "contact_point_id": contact_point_id,
        "full": full_history,
        "epoch": _EPOCH,
        "since": at - (window if window is not None else longest),
    }
    for i, span in enumerate(spans):
        params[f"since_{i}"] = at - (window if window is not None else span)
    rows = session.connection().execute(_gate_facts_stmt(names), params).all()
    head = next((r for r in rows if r.source == "case"), None)
    if head is None:
        raise NotFound(f"案件不存在：{case_id} / case {case_id} not found", code="case_not_found")
    named = (("institution", head.s4), ("institution_contact", head.s5), ("debtor_name", head.s6))
    info = _CaseInfo(
        case_id, head.i1, head.i2, head.s1, head.s2, head.s3, tuple((k, v) for k, v in named if v)
    )
    local_day = at.astimezone(zone(info.portfolio_zone)).date()
    points: dict[int, _Point] = {}
    states: dict[int, AccountState] = {}
    unknown: list[int] = []
    flags: list[ActiveFlag] = []
    consent_rows: list[Row[Any]] = []
    attempt_rows: list[Row[Any]] = []
    windows: list[InconvenientWindow] = []
    opted_out: set[Channel] = set()
    for r in rows:
        source = r.source
        if source == "attempt":
            attempt_rows.append(r)
        elif source == "point":
            # ALL-2: an opt-out of this contact point counts from the moment it was recorded.
            out = bool(r.b2) and (r.ts1 is None or r.ts1 <= at)
            point = ContactPoint(
                value=r.s1,
                kind=_KINDS.get(r.s2, ContactKind.OTHER),
                owner_relation=_RELATIONS.get(r.s3, OwnerRelation.OTHER),
                owner_name=r.s4,
                debt_related=bool(r.b1),
                opted_out=out,
                time_zones=(r.s5,) if r.s5 else (),
            )
            points[r.i1] = _Point(point, bool(r.b3))
        elif source == "account":
            product = _PRODUCTS.get(r.s1, Product.OTHER)
            if r.i2 is None:  # never refreshed: computed below rather than assumed not time-barred
                unknown.append(r.i1)
                states[r.i1] = AccountState(product=product)
            else:
                barred = r.d1 is not None and local_day > r.d1  # CN-22 / US-8
                # CN-10's lawful cap comes from the ledger's caps; until that is wired it is not flagged here.
                states[r.i1] = AccountState(product=product, time_barred=barred)
        elif source == "flag":
            # A flag is in force through its ``expires_on`` day (portfolio zone). An unknown kind is treated
            # as a legal hold: every flag stops collection contact until a person clears it.
            expires_at = _local_midnight(r.d1 + timedelta(days=1), info.portfolio_zone) if r.d1 else None
            if expires_at is not None and expires_at <= at:
                continue
            try:
                flag_kind = FlagKind(r.s1)
            except ValueError:
                flag_kind = FlagKind.LEGAL_HOLD
            flags.append(ActiveFlag(kind=flag_kind, account_id=r.i1, expires_at=expires_at, reason=r.s2))
        elif source == "consent":
            consent_rows.append(r)
        elif source == "window":
            windows.append(
                InconvenientWindow(
                    start=r.t1,
                    end=r.t2,
                    weekdays=frozenset(int(d) for d in (r.s1 or "").split(",") if d.strip()),
                )
            )
        elif source == "opt_out":
            opted_out.add(_CHANNELS.get(r.s1, Channel.OTHER))
    consents: list[Consent] = []
    for r in consent_rows:
        try:
            scope = ConsentScope(r.s1)
        except ValueError:
            continue
        ends = r.ts2
        if r.ts3 is not None and (ends is None or r.ts3 < ends):  # revoked after ``at``: in force until then
            ends = r.ts3
        owner = points.get(r.i1) if r.i1 is not None else None
        consents.append(
            Consent(
                scope=scope,
                granted_at=r.ts1,
                expires_at=ends,
                contact_value=owner.point.value if owner is not None else None,
                account_ids=frozenset(r.j1) if r.j1 is not None else None,
            )
        )
    if unknown:
        live = limitations(session, scope=AccountScope(account_ids=tuple(unknown)), as_of=local_day)
        for account_id in unknown:
            if account_id in live and live[account_id].time_barred:
                states[account_id] = AccountState(product=states[account_id].product, time_barred=True)
    # CN-3: the debtor is out of contact when every own phone number is known invalid.
    own_phones = [
        p for p in points.values() if p.point.owner_relation == OwnerRelation.SELF and p.point.kind in _PHONES
    ]
    context = Context(
        debtor_time_zones=(info.debtor_zone,) if info.debtor_zone else (),
        portfolio_time_zone=info.portfolio_zone,
        flags=tuple(flags),
        inconvenient_times=tuple(windows),
        opted_out_channels=frozenset(opted_out),
        consents=tuple(consents),
        debtor_numbers_invalid=bool(own_phones) and not any(p.is_valid for p in own_phones),
        accounts=states,
    )
    asked = points.get(contact_point_id) if contact_point_id is not None else None
    whole = full_history or (asked is not None and asked.point.is_third_party)
    history = _attempts_from_facts(attempt_rows, points, session)
    since = params[f"since_{names.index(info.rule_pack)}"] if info.rule_pack in names else params["since"]
    return _Facts(info, context, points, history, None if whole else since)


def _account_ids(text: str | None) -> frozenset[int]:
    """``[1, 2]`` (the JSON list of an attempt's accounts, as text) as a set of ints."""
    if not text:
        return frozenset()
    inner = text.strip()[1:-1]
    return frozenset(int(part) for part in inner.split(",") if part.strip())


def _attempts_from_facts(
    rows: Sequence[Row[Any]], known: Mapping[int, _Point], session: Session
) -> list[PriorAttempt]:
    points: dict[int | None, ContactPoint] = {None: _NO_CONTACT_POINT}
    for point_id, p in known.items():
        points[point_id] = p.point
    # Positional access: a tuple index is several times cheaper than a named attribute of a Row.
    (i_id, i_corrects, i_point, i_channel, i_direction, i_purpose, i_collector, i_outcome, i_at, i_ids) = (
        _SLOT_INDEX[name] for name in ("i1", "i2", "i3", "s1", "s2", "s3", "s4", "s5", "ts1", "s6")
    )
    missing = {r[i_point] for r in rows} - points.keys()
    if missing:  # an attempt to someone else's contact point: bulk-loaded data
        for r in session.connection().execute(_points_by_id_stmt(), {"ids": sorted(missing)}):
            points[r.id] = _contact_point(r)
    superseded = {r[i_corrects] for r in rows if r[i_corrects] is not None}
    channels, outcomes, directions, purposes = _CHANNELS, _OUTCOMES, _DIRECTIONS, _PURPOSES
    out: list[PriorAttempt] = []
    append = out.append
    for r in rows:
        if superseded and r[i_id] in superseded:
            continue
        append(
            PriorAttempt(
                r[i_at],
                channels.get(r[i_channel], Channel.OTHER),
                points.get(r[i_point], _NO_CONTACT_POINT),
                _account_ids(r[i_ids]),
                r[i_collector],
                outcomes.get(r[i_outcome], Outcome.NOT_CONNECTED),
                directions.get(r[i_direction], Direction.OUTBOUND),
                purposes.get(r[i_purpose], Purpose.DEBT_COLLECTION),
            )
        )
    return out


def build_context(session: Session, *, case_id: int, at: datetime) -> Context:
    """The debtor's situation at ``at`` as the gate sees it (one round trip)."""
    return _gate_facts(session, case_id, as_utc(at), window=timedelta(0)).context


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
    full_history: bool = False,
) -> GateInputs:
    """Build the attempt, history, context and pack `decide` needs (validating ids against the case).

    ONE round trip (`_gate_facts_stmt`): the facts of the case and its history on the
    ``(case_id, started_at)`` index, cut to the window the timed checks can see (`rules.history_since`);
    ``full_history`` loads all of it, for explanations that try other contact points.
    """
    at = as_utc(at)
    full_history = full_history or text is not None
    facts = _gate_facts(session, case_id, at, contact_point_id=contact_point_id, full_history=full_history)
    return _inputs_from_facts(
        session,
        facts,
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
        full_history=full_history,
    )


def _inputs_from_facts(
    session: Session,
    facts: _Facts,
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
    full_history: bool = False,
) -> GateInputs:
    info, context = facts.info, facts.context
    if contact_point_id is None:
        point = _NO_CONTACT_POINT
    else:
        found = facts.points.get(contact_point_id)
        if found is None:
            raise ValidationFailed(
                f"联系方式 {contact_point_id} 不属于案件 {case_id} 的债务人 / contact point {contact_point_id} "
                f"does not belong to the debtor of case {case_id}",
                code="contact_point_not_in_case",
            )
        point = found.point
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
    history = facts.history
    needed = None if full_history else history_since(attempt, pack)
    if facts.since is not None and (needed is None or needed < facts.since):
        # A pack that looks further back than any pack met so far: read the history again, once.
        _PACKS_SEEN.add(info.rule_pack)
        history = load_history(session, case_id=case_id, until=at, since=needed)
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

    ``account_ids`` empty means every account of the case. Stores nothing. One round trip to the
    database (the case's facts and its history) and the pure `rules.decide`.
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


def check_contacts(
    session: Session,
    *,
    case_id: int,
    contact_point_ids: Sequence[int],
    channel: Channel,
    at: datetime,
    collector: str,
) -> dict[int, Decision]:
    """`check_contact` for several of the case's contact points at once (the case page's call panel).

    The same decisions as one `check_contact` per point, from one round trip for the case's facts. The
    facts are read as for the last point: when that is a third party's, the whole record comes with them
    (CN-3 reads all of it; the other points' checks give the same answer on it, `rules.history_since`);
    a third party's point earlier in the list costs a second round trip. Callers list own numbers first.
    """
    at = as_utc(at)
    facts = _gate_facts(
        session, case_id, at, contact_point_id=contact_point_ids[-1] if contact_point_ids else None
    )
    whole: _Facts | None = facts if facts.since is None else None
    out: dict[int, Decision] = {}
    for point_id in contact_point_ids:
        used = facts
        found = facts.points.get(point_id)
        if found is not None and found.point.is_third_party:
            if whole is None:
                whole = _gate_facts(session, case_id, at, contact_point_id=point_id)
            used = whole
        inputs = _inputs_from_facts(
            session,
            used,
            case_id=case_id,
            contact_point_id=point_id,
            channel=channel,
            at=at,
            collector=collector,
        )
        out[point_id] = decide(inputs.attempt, inputs.history, inputs.context, inputs.pack)
    return out


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


@dataclass(frozen=True, slots=True)
class LimitationRefresh:
    """What `refresh_limitations` did for a portfolio; ``changed`` counts the rows written or removed."""

    portfolio_id: int
    as_of: date
    accounts: int
    time_barred: int
    newly_time_barred: tuple[int, ...]
    changed: int = 0
    # every account's ``account_id`` and ``time_barred`` as now stored (the daily run reads no more)
    statuses: pl.DataFrame | None = field(default=None, compare=False, repr=False)


# What makes a stored row current: the date, whether it has passed, and what set it (the explanation is
# worded from these, so it follows them).
_COMPARED = (
    "limitation_on",
    "time_barred",
    "starts_on",
    "rule_id",
    "set_by_kind",
    "set_by_on",
    "set_by_ref",
    "waived_by_ref",
)


def due_frame(session: Session, *, portfolio_id: int) -> pl.DataFrame:
    """Every account's due dates in one query (`due_events` for a whole portfolio, as a frame):
    ``account_id`` and ``due_dates`` (the due date, the last due date, the first and last instalment)."""
    import polars as pl

    from arrears.strategy import bulk

    pid = int(portfolio_id)
    frame = bulk.read_frame(
        session,
        "SELECT a.id AS account_id, a.due_date, a.last_due_date, i.first_due, i.last_due FROM account a"
        " LEFT JOIN (SELECT account_id, MIN(due_date) AS first_due, MAX(due_date) AS last_due FROM instalment"
        f" WHERE account_id IN (SELECT id FROM account WHERE portfolio_id = {pid}) GROUP BY account_id) i"
        f" ON i.account_id = a.id WHERE a.portfolio_id = {pid}",
        {
            "account_id": pl.Int64(),
            "due_date": pl.Date(),
            "last_due_date": pl.Date(),
            "first_due": pl.Date(),
            "last_due": pl.Date(),
        },
    )
    return frame.select(
        "account_id", pl.concat_list("due_date", "last_due_date", "first_due", "last_due").alias("due_dates")
    )


def _stored_limitations(session: Session, portfolio_id: int) -> pl.DataFrame:

    from arrears.strategy import bulk

    schema = {k: row_schema()[k] for k in ("account_id", *_COMPARED)}
    return bulk.read_frame(
        session,
        f"SELECT {', '.join(schema)} FROM account_limitation WHERE portfolio_id = {int(portfolio_id)}",
        schema,
    )


def refresh_limitations(
    session: Session,
    *,
    portfolio_id: int,
    as_of: date,
    sources: Sequence[EventSource] = DEFAULT_EVENT_SOURCES,
) -> LimitationRefresh:
    """Recompute every account's limitation date of a portfolio; flag time-barred accounts.

    Set-based: the due dates in one query and `limitation_frame` over them, the other event sources as
    they are. Only rows that differ from the stored ones are written (stamped ``as_of``), and rows of
    accounts that no longer have a result are removed, so running it twice for the same ``as_of`` writes
    nothing the second time. Flushes, never commits.
    """
    import polars as pl

    from arrears.strategy import bulk

    scope = AccountScope(portfolio_id=portfolio_id)
    zone_name, pack_name = _portfolio_of(session, scope)
    pack = rule_pack(pack_name)
    stored = _stored_limitations(session, portfolio_id)
    if pack.limitation is None:
        fresh = pl.DataFrame(schema=row_schema())
    else:
        rest = [source for source in sources if source is not due_events]
        dues = (
            due_frame(session, portfolio_id=portfolio_id)
            if len(rest) < len(sources)
            else pl.DataFrame(schema={"account_id": pl.Int64(), "due_dates": pl.List(pl.Date())})
        )
        others = limitation_events(session, scope=scope, zone_name=zone_name, sources=rest)
        fresh = limitation_frame(dues, others, pack, as_of=as_of)
    before = stored.filter(pl.col("time_barred"))["account_id"]
    known = fresh.join(stored, on="account_id", how="left", suffix="_stored")
    same = pl.lit(True)
    for column in _COMPARED:
        same = same & pl.col(column).eq_missing(pl.col(f"{column}_stored"))
    is_new = pl.col("rule_id_stored").is_null()
    changed = known.filter(~same).with_columns(is_new.alias("_new")).select(*row_schema(), "_new")
    gone = stored.join(fresh, on="account_id", how="anti")["account_id"].to_list()
    for start in range(0, len(gone), 1000):
        session.execute(
            delete(AccountLimitation).where(AccountLimitation.account_id.in_(gone[start : start + 1000]))
        )
    if changed.height:
        # one COPY (PostgreSQL) / executemany (SQLite) instead of an ORM write per row
        now = clock_now()
        rows = changed.with_columns(
            pl.lit(portfolio_id, pl.Int64()).alias("portfolio_id"),
            pl.lit(as_of).alias("as_of"),
            pl.lit(now, pl.Datetime("us", "UTC")).alias("created_at"),
            pl.lit(now, pl.Datetime("us", "UTC")).alias("updated_at"),
        )
        from arrears import bulk as table_bulk

        new = rows.filter(pl.col("_new")).drop("_new")
        # a portfolio's first refresh fills the table: its index is built once after the load
        with table_bulk.indexes_deferred(
            session, ["account_limitation"], rows=new.height, constant={"portfolio_id"}
        ):
            bulk.insert_frame(session, "account_limitation", new)
        bulk.insert_frame(
            session,
            "account_limitation",
            rows.filter(~pl.col("_new")).drop("_new", "created_at"),
            conflict=("account_id",),
            update=tuple(c for c in rows.columns if c not in ("account_id", "created_at", "_new")),
        )
    session.flush()
    barred = fresh.filter(pl.col("time_barred"))["account_id"]
    return LimitationRefresh(
        portfolio_id=portfolio_id,
        as_of=as_of,
        accounts=fresh.height,
        time_barred=barred.len(),
        newly_time_barred=tuple(sorted(barred.filter(~barred.is_in(before.implode())).to_list())),
        changed=changed.height + len(gone),
        statuses=fresh.select("account_id", "time_barred"),
    )
