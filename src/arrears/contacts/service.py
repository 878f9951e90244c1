"""The contact record of a case: every attempt, allowed or blocked, append-only and hash-chained.

`record_attempt` passes an outbound attempt through the one compliance gate
(`arrears.compliance.service.check_contact`) and stores it whatever the answer, with the decision: a
blocked attempt is stored with outcome ``blocked`` and its rule ids (RULEBOOK "One gate"). Rows are never
updated: `correct_attempt` appends a new row that references the one it corrects. Appends to a case are
serialised by locking the case row (``SELECT ... FOR UPDATE`` on PostgreSQL; SQLite has one writer).
Services flush and never commit.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from enum import StrEnum
from typing import Any, TypeVar, cast

from sqlalchemy import Table, func, insert, literal, or_, select, text
from sqlalchemy.orm import Session, aliased

from arrears.clock import as_utc
from arrears.compliance import batch as gate_batch
from arrears.compliance import service as compliance_service
from arrears.compliance.rules import decide
from arrears.compliance.schemas import ConsentScope, Decision, Direction, Outcome, Purpose, TemplateKind
from arrears.contacts.chain import (
    CHAINED_FIELDS,
    GENESIS,
    AnchorProblem,
    ChainReport,
    attempt_hash,
    heads_digest,
    verify_rows,
)
from arrears.enums import Channel
from arrears.errors import Conflict, NotFound, ValidationFailed
from arrears.models import (
    Account,
    Case,
    ChainAnchor,
    ChainAnchorHead,
    ChannelOptOut,
    ContactAttempt,
    ContactConsent,
    Debtor,
    InconvenientTime,
)
from arrears.models import ContactPoint as ContactPointRow

_V = TypeVar("_V", bound=StrEnum)

# How far an attempt's start may lie after the moment it is recorded: the clocks of a collector's
# device and of the server differ by a little.
CLOCK_TOLERANCE = timedelta(minutes=5)

# Fields a correction may change; the gate's decision, the time and the channel are facts of the attempt.
CORRECTABLE = frozenset(
    {
        "outcome",
        "ended_at",
        "notes",
        "visit_place",
        "visit_staff",
        "id_shown",
        "recording_ref",
        "delivered_at",
        "evidence_ref",
        "account_ids",
    }
)


@dataclass(frozen=True, slots=True)
class RecordedAttempt:
    """A stored attempt and the gate's decision (None for inbound contacts and corrections)."""

    attempt: ContactAttempt
    decision: Decision | None

    @property
    def blocked(self) -> bool:
        """True when the gate refused the attempt (it is stored, with outcome ``blocked``)."""
        return not self.attempt.allowed


def _lock_case(session: Session, case_id: int) -> None:
    found = session.execute(select(Case.id).where(Case.id == case_id).with_for_update()).scalar_one_or_none()
    if found is None:
        raise NotFound(f"案件不存在：{case_id} / case {case_id} not found", code="case_not_found")


def _append(session: Session, fields: dict[str, Any]) -> ContactAttempt:
    """Append one attempt to its case's chain (the case row must already be locked)."""
    last = session.execute(
        select(ContactAttempt.seq, ContactAttempt.hash)
        .where(ContactAttempt.case_id == fields["case_id"])
        .order_by(ContactAttempt.seq.desc())
        .limit(1)
    ).one_or_none()
    fields["seq"] = (last[0] + 1) if last else 1
    fields["prev_hash"] = last[1] if last else GENESIS
    fields["account_ids"] = sorted(set(fields["account_ids"]))
    for name in ("started_at", "ended_at", "delivered_at"):
        if fields.get(name) is not None:
            fields[name] = as_utc(fields[name])
    fields["hash"] = attempt_hash(fields)
    row = ContactAttempt(**fields)
    session.add(row)
    session.flush()
    return row


def record_attempt(
    session: Session,
    *,
    case_id: int,
    contact_point_id: int | None,
    channel: Channel,
    started_at: datetime,
    outcome: Outcome,
    collector: str,
    direction: Direction = Direction.OUTBOUND,
    account_ids: Iterable[int] = (),
    purpose: Purpose = Purpose.DEBT_COLLECTION,
    agent_id: int | None = None,
    ended_at: datetime | None = None,
    notes: str | None = None,
    text: str | None = None,
    visit_place: str | None = None,
    visit_staff: str | None = None,
    id_shown: bool | None = None,
    recording_ref: str | None = None,
    delivered_at: datetime | None = None,
    evidence_ref: str | None = None,
    template_kind: TemplateKind | None = None,
    locale: str | None = None,
    recorded_at: datetime | None = None,
) -> RecordedAttempt:
    """Record a contact attempt; an outbound one passes the compliance gate at ``started_at`` first.

    A blocked attempt is stored too, with outcome ``blocked``, ``allowed`` false and the blocking rule
    ids; the caller decides how to answer (the API answers 409 with the decision). ``account_ids`` empty
    means every account of the case. ``recorded_at`` (the moment of the request that records it): an
    attempt that would start after it, beyond `CLOCK_TOLERANCE`, is refused; a record says what happened
    (what the gate would say of a later moment is the what-if check's question).
    """
    channel, outcome, direction, purpose = (
        Channel(channel),
        Outcome(outcome),
        Direction(direction),
        Purpose(purpose),
    )
    if outcome == Outcome.BLOCKED:
        raise ValidationFailed(
            "结果 blocked 只能由合规检查给出 / the outcome 'blocked' is set by the compliance gate only",
            code="bad_outcome",
        )
    started_at = as_utc(started_at)
    if recorded_at is not None and started_at > as_utc(recorded_at) + CLOCK_TOLERANCE:
        raise ValidationFailed(
            "开始时间晚于现在：只能记录已发生的联系 / the start time is in the future: only an attempt"
            " that happened can be recorded",
            code="attempt_in_future",
        )
    if ended_at is not None and as_utc(ended_at) < started_at:
        raise ValidationFailed("ended_at is before started_at / 结束时间早于开始时间", code="bad_times")
    _lock_case(session, case_id)
    inputs = compliance_service.gate_inputs(
        session,
        case_id=case_id,
        contact_point_id=contact_point_id,
        channel=channel,
        at=started_at,
        collector=collector,
        account_ids=account_ids,
        purpose=purpose,
        text=text,
        direction=direction,
        agent_id=agent_id,
        template_kind=template_kind,
        locale=locale,
    )
    decision: Decision | None = None
    allowed = True
    if direction == Direction.OUTBOUND:
        decision = decide(inputs.attempt, inputs.history, inputs.context, inputs.pack)
        allowed = decision.allowed
    row = _append(
        session,
        {
            "case_id": case_id,
            "contact_point_id": contact_point_id,
            "channel": channel.value,
            "direction": direction.value,
            "purpose": purpose.value,
            "collector": collector,
            "agent_id": agent_id,
            "account_ids": sorted(inputs.attempt.account_ids),
            "started_at": started_at,
            "ended_at": ended_at if allowed else None,
            "outcome": outcome.value if allowed else Outcome.BLOCKED.value,
            "notes": notes,
            "message_text": text,
            "visit_place": visit_place,
            "visit_staff": visit_staff,
            "id_shown": id_shown,
            "recording_ref": recording_ref if allowed else None,
            "delivered_at": delivered_at if allowed else None,
            "evidence_ref": evidence_ref if allowed else None,
            "allowed": allowed,
            "rule_ids": ",".join(decision.rule_ids) if decision else "",
            "decision": decision.to_dict() if decision else None,
            "corrects_id": None,
        },
    )
    return RecordedAttempt(row, decision)


def lock_cases(session: Session, *, case_ids: Iterable[int]) -> set[int]:
    """Lock many case rows for appending (`record_attempt`'s lock for a batch); returns the ids found.

    PostgreSQL locks in id order, so two writers locking overlapping batches cannot deadlock; SQLite has
    one writer.
    """
    found: set[int] = set()
    for group in gate_batch.id_groups(session, case_ids):
        found.update(
            session.scalars(
                select(Case.id)
                .where(gate_batch.id_in(session, Case.id, group))
                .order_by(Case.id)
                .with_for_update()
            )
        )
    return found


#: the table itself: inserting rows through Core skips the ORM's bulk-insert step (same columns, same defaults)
_ATTEMPTS = cast(Table, ContactAttempt.__table__)


def append_attempts(session: Session, *, attempts: Sequence[Mapping[str, Any]]) -> list[int]:
    """Append many attempts (fields as `record_attempt` stores them), chained per case in the given order.

    The cases must be locked (`lock_cases`). The chain's tail of every case is read with one query, each
    case's new rows get the next ``seq`` numbers and hashes in order, and all rows are inserted with one
    statement. Returns the new ids, in the order of ``attempts``.
    """
    if not attempts:
        return []
    tails: dict[int, tuple[int, str]] = {}
    for group in gate_batch.id_groups(session, (int(a["case_id"]) for a in attempts)):
        last = (
            select(ContactAttempt.case_id, func.max(ContactAttempt.seq).label("seq"))
            .where(gate_batch.id_in(session, ContactAttempt.case_id, group))
            .group_by(ContactAttempt.case_id)
            .subquery()
        )
        for case_id, seq, digest in session.execute(
            select(ContactAttempt.case_id, ContactAttempt.seq, ContactAttempt.hash).join(
                last, (last.c.case_id == ContactAttempt.case_id) & (last.c.seq == ContactAttempt.seq)
            )
        ):
            tails[case_id] = (seq, digest)
    rows: list[dict[str, Any]] = []
    for given in attempts:
        fields = dict(given)
        case_id = int(fields["case_id"])
        seq, prev = tails.get(case_id, (0, GENESIS))
        fields["seq"] = seq + 1
        fields["prev_hash"] = prev
        fields["account_ids"] = sorted(set(fields["account_ids"]))
        for name in ("started_at", "ended_at", "delivered_at"):
            if fields.get(name) is not None:
                fields[name] = as_utc(fields[name])
        fields["hash"] = attempt_hash(fields)
        tails[case_id] = (fields["seq"], fields["hash"])
        rows.append(fields)
    if session.get_bind().dialect.name == "postgresql":
        # Ids from the sequence first, then one pipelined executemany of a short statement: an INSERT ...
        # VALUES of hundreds of rows with RETURNING is a long statement the driver parses every time.
        ids = [
            int(i)
            for i in session.scalars(
                text(
                    "SELECT nextval(pg_get_serial_sequence('contact_attempt', 'id')) FROM generate_series(1, :n)"
                ),
                {"n": len(rows)},
            )
        ]
        for row, new_id in zip(rows, ids, strict=True):
            row["id"] = new_id
        session.execute(insert(_ATTEMPTS), rows)
        return ids
    # SQLite: one executemany (RETURNING in parameter order would be one statement per row), then the new
    # ids read back by (case, seq), which the case locks make unique to this call.
    first_new: dict[int, int] = {}
    for row in rows:
        first_new[row["case_id"]] = min(first_new.get(row["case_id"], row["seq"]), row["seq"])
    session.execute(insert(_ATTEMPTS), rows)
    by_key: dict[tuple[int, int], int] = {}
    for group in gate_batch.id_groups(session, first_new):
        for new_id, case_id, seq in session.execute(
            select(ContactAttempt.id, ContactAttempt.case_id, ContactAttempt.seq).where(
                gate_batch.id_in(session, ContactAttempt.case_id, group)
            )
        ):
            if seq >= first_new[case_id]:
                by_key[(case_id, seq)] = int(new_id)
    return [by_key[(int(row["case_id"]), int(row["seq"]))] for row in rows]


def correct_attempt(session: Session, *, attempt_id: int, changes: Mapping[str, Any]) -> ContactAttempt:
    """Append a correction of an attempt: a new row with ``changes`` applied, referencing the old one.

    Only the latest version of an attempt can be corrected, only `CORRECTABLE` fields change, and a
    blocked attempt stays blocked (it never happened).
    """
    original = session.get(ContactAttempt, attempt_id)
    if original is None:
        raise NotFound(
            f"催收记录不存在：{attempt_id} / contact attempt {attempt_id} not found", code="attempt_not_found"
        )
    unknown = sorted(set(changes) - CORRECTABLE)
    if unknown:
        raise ValidationFailed(
            f"不能更正这些字段：{unknown} / these fields cannot be corrected: {unknown}",
            code="not_correctable",
        )
    _lock_case(session, original.case_id)
    newer = session.scalar(select(ContactAttempt.id).where(ContactAttempt.corrects_id == attempt_id).limit(1))
    if newer is not None:
        raise Conflict(
            f"记录 {attempt_id} 已被 {newer} 更正，请更正最新版本 / attempt {attempt_id} was already corrected "
            f"by {newer}; correct the latest version",
            code="already_corrected",
        )
    fields = {name: getattr(original, name) for name in CHAINED_FIELDS if name not in ("seq", "prev_hash")}
    fields.update(changes)
    if "outcome" in changes:
        outcome = Outcome(changes["outcome"])
        if (outcome == Outcome.BLOCKED) != (not original.allowed):
            raise ValidationFailed(
                "被合规检查拦截的记录保持 blocked / a blocked attempt stays blocked, and only it",
                code="bad_outcome",
            )
        fields["outcome"] = outcome.value
    if "account_ids" in changes:
        fields["account_ids"] = [int(a) for a in changes["account_ids"]]
    fields["corrects_id"] = original.id
    return _append(session, fields)


def record_delivery(
    session: Session, *, attempt_id: int, delivered_at: datetime, evidence_ref: str
) -> ContactAttempt:
    """CN-25: a message or letter reached the debtor; the evidence is appended as a correction."""
    return correct_attempt(
        session,
        attempt_id=attempt_id,
        changes={"delivered_at": delivered_at, "evidence_ref": evidence_ref, "outcome": Outcome.DELIVERED},
    )


def list_attempts(session: Session, *, case_id: int) -> list[ContactAttempt]:
    """The case's contact record in chain order (corrections included, each after what it corrects)."""
    return list(
        session.scalars(
            select(ContactAttempt).where(ContactAttempt.case_id == case_id).order_by(ContactAttempt.seq)
        )
    )


def verify_chain(
    session: Session,
    *,
    case_id: int | None = None,
    case_ids: Collection[int] | None = None,
    batch: int = 10_000,
) -> ChainReport:
    """Recompute every case's hash chain (or one case's, or some cases') and report the first broken link
    of each."""
    columns = [getattr(ContactAttempt, name) for name in CHAINED_FIELDS]
    stmt = select(ContactAttempt.id, ContactAttempt.hash, *columns).order_by(
        ContactAttempt.case_id, ContactAttempt.seq
    )
    if case_id is not None:
        stmt = stmt.where(ContactAttempt.case_id == case_id)
    if case_ids is not None:
        stmt = stmt.where(ContactAttempt.case_id.in_(sorted(case_ids)))
    result = session.execute(stmt.execution_options(yield_per=batch))
    return verify_rows(row._mapping for row in result)


# --- what the debtor asked for ---------------------------------------------------------------------
# Consents (CN-1, CN-2, US-1, US-4), inconvenient times (US-1) and opt-outs (ALL-2, US-13) are facts the
# gate reads at the moment of each contact. Ending one keeps the row and stamps when it ended, so a check
# of an earlier moment still sees it in force then.


def _debtor(session: Session, debtor_id: int) -> Debtor:
    debtor = session.get(Debtor, debtor_id)
    if debtor is None:
        raise NotFound(f"债务人不存在：{debtor_id} / debtor {debtor_id} not found", code="debtor_not_found")
    return debtor


def _point_of(session: Session, debtor_id: int, contact_point_id: int) -> ContactPointRow:
    point = session.get(ContactPointRow, contact_point_id)
    if point is None or point.debtor_id != debtor_id:
        raise ValidationFailed(
            f"联系方式 {contact_point_id} 不属于债务人 {debtor_id} / contact point {contact_point_id} does not "
            f"belong to debtor {debtor_id}",
            code="contact_point_not_of_debtor",
        )
    return point


def _accounts_of(session: Session, debtor_id: int, account_ids: Iterable[int]) -> list[int]:
    ids = sorted(set(account_ids))
    if not ids:
        raise ValidationFailed(
            "account_ids 为空：省略即表示全部债务 / account_ids is empty: leave it out to mean every debt",
            code="no_accounts",
        )
    own = set(session.scalars(select(Account.id).where(Account.debtor_id == debtor_id, Account.id.in_(ids))))
    stray = [a for a in ids if a not in own]
    if stray:
        raise ValidationFailed(
            f"账户 {stray} 不属于债务人 {debtor_id} / accounts {stray} are not debts of debtor {debtor_id}",
            code="account_not_of_debtor",
        )
    return ids


def add_consent(
    session: Session,
    *,
    debtor_id: int,
    scope: ConsentScope | str,
    granted_at: datetime,
    contact_point_id: int | None = None,
    account_ids: Iterable[int] | None = None,
    expires_at: datetime | None = None,
    source_attempt_id: int | None = None,
) -> ContactConsent:
    """Record a consent of the debtor (CN-1 / CN-2 / US-1 / US-4), for one contact point or all, some
    debts or all, until ``expires_at`` (or until revoked)."""
    _debtor(session, debtor_id)
    scope = _parse_enum(ConsentScope, scope, "scope")  # a bad value from a door gets a clear message
    granted_at = as_utc(granted_at)
    if expires_at is not None and as_utc(expires_at) <= granted_at:
        raise ValidationFailed(
            "expires_at 必须晚于 granted_at / expires_at must be after granted_at", code="bad_consent_period"
        )
    if contact_point_id is not None:
        _point_of(session, debtor_id, contact_point_id)
    ids = _accounts_of(session, debtor_id, account_ids) if account_ids is not None else None
    row = ContactConsent(
        debtor_id=debtor_id,
        contact_point_id=contact_point_id,
        scope=scope.value,
        account_ids=ids,
        granted_at=granted_at,
        expires_at=as_utc(expires_at) if expires_at else None,
        source_attempt_id=source_attempt_id,
    )
    session.add(row)
    session.flush()
    return row


def list_consents(session: Session, *, debtor_id: int, include_ended: bool = False) -> list[ContactConsent]:
    """The debtor's consents, oldest first; revoked ones only with ``include_ended``."""
    _debtor(session, debtor_id)
    stmt = select(ContactConsent).where(ContactConsent.debtor_id == debtor_id)
    if not include_ended:
        stmt = stmt.where(ContactConsent.revoked_at.is_(None))
    return list(session.scalars(stmt.order_by(ContactConsent.granted_at, ContactConsent.id)))


def revoke_consent(session: Session, *, debtor_id: int, consent_id: int, at: datetime) -> ContactConsent:
    """The debtor withdrew a consent at ``at``; the row stays, with ``revoked_at``."""
    row = session.get(ContactConsent, consent_id)
    if row is None or row.debtor_id != debtor_id:
        raise NotFound(
            f"债务人 {debtor_id} 没有同意记录 {consent_id} / debtor {debtor_id} has no consent {consent_id}",
            code="consent_not_found",
        )
    if row.revoked_at is not None:
        raise Conflict(
            f"同意 {consent_id} 已于 {row.revoked_at.isoformat()} 撤回 / consent {consent_id} was already "
            f"revoked at {row.revoked_at.isoformat()}",
            code="already_revoked",
        )
    row.revoked_at = as_utc(at)
    session.flush()
    return row


def add_inconvenient_time(
    session: Session, *, debtor_id: int, starts: time, ends: time, weekdays: Iterable[int] = ()
) -> InconvenientTime:
    """Record a time the debtor named as inconvenient (US-1; CN-1 packs honour it too), in the debtor's
    local time; ``starts`` after ``ends`` wraps midnight, equal means the whole day; weekdays 0 (Monday)
    .. 6 (Sunday), none = every day."""
    _debtor(session, debtor_id)
    days = sorted(set(weekdays))
    if any(d < 0 or d > 6 for d in days):
        raise ValidationFailed(
            "星期取值 0（周一）到 6（周日） / weekdays are 0 (Monday) .. 6 (Sunday)", code="bad_weekday"
        )
    row = InconvenientTime(debtor_id=debtor_id, starts=starts, ends=ends, weekdays=",".join(map(str, days)))
    session.add(row)
    session.flush()
    return row


def list_inconvenient_times(
    session: Session, *, debtor_id: int, include_ended: bool = False
) -> list[InconvenientTime]:
    """The times the debtor named as inconvenient; removed ones only with ``include_ended``."""
    _debtor(session, debtor_id)
    stmt = select(InconvenientTime).where(InconvenientTime.debtor_id == debtor_id)
    if not include_ended:
        stmt = stmt.where(InconvenientTime.removed_at.is_(None))
    return list(session.scalars(stmt.order_by(InconvenientTime.id)))


def remove_inconvenient_time(
    session: Session, *, debtor_id: int, window_id: int, at: datetime
) -> InconvenientTime:
    """The debtor no longer names this time as inconvenient, from ``at`` on."""
    row = session.get(InconvenientTime, window_id)
    if row is None or row.debtor_id != debtor_id:
        raise NotFound(
            f"债务人 {debtor_id} 没有不便联系时段 {window_id} / debtor {debtor_id} has no inconvenient time "
            f"{window_id}",
            code="inconvenient_time_not_found",
        )
    if row.removed_at is not None:
        raise Conflict(
            f"不便联系时段 {window_id} 已删除 / inconvenient time {window_id} was already removed",
            code="already_removed",
        )
    row.removed_at = as_utc(at)
    session.flush()
    return row


def opt_out_channel(
    session: Session, *, debtor_id: int, channel: Channel | str, at: datetime
) -> ChannelOptOut:
    """Record that the debtor opted out of a whole channel (US-13; shared guarantee ALL-2)."""
    _debtor(session, debtor_id)
    channel = _parse_enum(Channel, channel, "channel")  # a bad value from a door gets a clear message
    existing = session.scalar(
        select(ChannelOptOut).where(
            ChannelOptOut.debtor_id == debtor_id,
            ChannelOptOut.channel == channel.value,
            ChannelOptOut.withdrawn_at.is_(None),
        )
    )
    if existing is not None:
        raise Conflict(
            f"债务人 {debtor_id} 已退订渠道 {channel.value}（记录 {existing.id}） / debtor {debtor_id} already "
            f"opted out of {channel.value} (opt-out {existing.id})",
            code="already_opted_out",
        )
    row = ChannelOptOut(debtor_id=debtor_id, channel=channel.value, opted_out_at=as_utc(at))
    session.add(row)
    session.flush()
    return row


def list_opt_outs(session: Session, *, debtor_id: int, include_ended: bool = False) -> list[ChannelOptOut]:
    """The debtor's channel opt-outs; withdrawn ones only with ``include_ended``."""
    _debtor(session, debtor_id)
    stmt = select(ChannelOptOut).where(ChannelOptOut.debtor_id == debtor_id)
    if not include_ended:
        stmt = stmt.where(ChannelOptOut.withdrawn_at.is_(None))
    return list(session.scalars(stmt.order_by(ChannelOptOut.opted_out_at, ChannelOptOut.id)))


def withdraw_opt_out(session: Session, *, debtor_id: int, opt_out_id: int, at: datetime) -> ChannelOptOut:
    """The debtor asked to hear on this channel again, from ``at`` on."""
    row = session.get(ChannelOptOut, opt_out_id)
    if row is None or row.debtor_id != debtor_id:
        raise NotFound(
            f"债务人 {debtor_id} 没有退订记录 {opt_out_id} / debtor {debtor_id} has no opt-out {opt_out_id}",
            code="opt_out_not_found",
        )
    if row.withdrawn_at is not None:
        raise Conflict(
            f"退订 {opt_out_id} 已撤回 / opt-out {opt_out_id} was already withdrawn", code="already_withdrawn"
        )
    at = as_utc(at)
    if at < row.opted_out_at:
        raise ValidationFailed(
            "撤回时间早于退订时间 / the withdrawal is before the opt-out", code="bad_withdrawal_time"
        )
    row.withdrawn_at = at
    session.flush()
    return row


def set_contact_point_opt_out(
    session: Session, *, debtor_id: int, contact_point_id: int, opted_out: bool, at: datetime
) -> ContactPointRow:
    """The debtor opted this one contact point out (from ``at`` on), or back in (ALL-2)."""
    _debtor(session, debtor_id)
    point = _point_of(session, debtor_id, contact_point_id)
    point.opted_out = opted_out
    point.opted_out_at = as_utc(at) if opted_out else None
    session.flush()
    return point


def _parse_enum(kind: type[_V], value: Any, field: str) -> _V:
    try:
        return kind(value)
    except ValueError:
        allowed = ", ".join(m.value for m in kind)
        raise ValidationFailed(
            f"{field} 取值无效：{value!r}（可选 {allowed}） / {field} {value!r} is not one of {allowed}",
            code=f"bad_{field}",
        ) from None


# --- anchors: chain heads kept outside the database --------------------------------------------------


@dataclass(frozen=True, slots=True)
class Anchor:
    """An anchor as recorded: its id, when, how much it covers and the digest to keep outside."""

    anchor_id: int
    anchored_at: datetime
    cases: int
    attempts: int
    digest: str

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape printed by ``arrears audit anchor`` and read back by ``audit verify --anchor``."""
        return {
            "anchor_id": self.anchor_id,
            "anchored_at": self.anchored_at.isoformat(),
            "cases": self.cases,
            "attempts": self.attempts,
            "digest": self.digest,
        }


def _heads(session: Session, anchor_id: int) -> Iterable[tuple[int, int, str]]:
    rows = session.execute(
        select(ChainAnchorHead.case_id, ChainAnchorHead.seq, ChainAnchorHead.hash)
        .where(ChainAnchorHead.anchor_id == anchor_id)
        .order_by(ChainAnchorHead.case_id)
        .execution_options(yield_per=10_000)
    )
    return ((int(c), int(q), str(h)) for c, q, h in rows)


def anchor_chains(session: Session, *, at: datetime) -> Anchor:
    """Record every case's chain head now (one set-based INSERT ... SELECT) and their digest.

    Flushes, never commits. Keep the printed digest outside the database: `verify_anchor` with it detects
    a newest attempt rewritten and re-hashed after the anchor, which the chain alone cannot.
    """
    row = ChainAnchor(anchored_at=as_utc(at), cases=0, attempts=0, digest="")
    session.add(row)
    session.flush()
    last = (
        select(ContactAttempt.case_id, func.max(ContactAttempt.seq).label("seq"))
        .group_by(ContactAttempt.case_id)
        .subquery()
    )
    session.execute(
        insert(ChainAnchorHead).from_select(
            ["anchor_id", "case_id", "seq", "hash"],
            select(literal(row.id), ContactAttempt.case_id, ContactAttempt.seq, ContactAttempt.hash).join(
                last, (last.c.case_id == ContactAttempt.case_id) & (last.c.seq == ContactAttempt.seq)
            ),
        )
    )
    cases, attempts = session.execute(
        select(func.count(), func.coalesce(func.sum(ChainAnchorHead.seq), 0)).where(
            ChainAnchorHead.anchor_id == row.id
        )
    ).one()
    row.cases, row.attempts = int(cases), int(attempts)
    row.digest = heads_digest(_heads(session, row.id))
    session.flush()
    return Anchor(row.id, row.anchored_at, row.cases, row.attempts, row.digest)


def verify_anchor(session: Session, *, digest: str, anchor_id: int | None = None) -> list[AnchorProblem]:
    """Check the record against an anchor whose digest was kept outside; empty when everything holds.

    The anchor rows must still give ``digest`` (else they were changed), and every anchored head must
    still be in the record with the same hash (else the attempt was rewritten, or deleted). Together with
    `verify_chain`, which checks every link after the heads, nothing before the anchor can change unseen.
    """
    digest = digest.strip().lower()
    stmt = select(ChainAnchor)
    stmt = (
        stmt.where(ChainAnchor.id == anchor_id)
        if anchor_id is not None
        else stmt.where(ChainAnchor.digest == digest)
    )
    anchor = session.scalars(stmt.order_by(ChainAnchor.id.desc()).limit(1)).first()
    if anchor is None:
        return [
            AnchorProblem(
                None,
                None,
                None,
                "anchor_not_found",
                f"数据库中没有摘要为 {digest[:12]}… 的锚点：锚点记录被改动或删除，或来自另一个数据库。",
                f"no anchor with digest {digest[:12]}… in the database: the anchor rows were changed or "
                "removed, or it comes from another database.",
            )
        ]
    if heads_digest(_heads(session, anchor.id)) != digest:
        return [
            AnchorProblem(
                None,
                None,
                None,
                "anchor_changed",
                f"锚点 {anchor.id} 的链头与外部保存的摘要不符：锚点记录在写入后被改动。",
                f"anchor {anchor.id}: its chain heads do not give the digest kept outside: the anchor rows "
                "were changed after they were written.",
            )
        ]
    head = aliased(ChainAnchorHead)
    rows = session.execute(
        select(head.case_id, head.seq, ContactAttempt.id, ContactAttempt.hash)
        .outerjoin(
            ContactAttempt, (ContactAttempt.case_id == head.case_id) & (ContactAttempt.seq == head.seq)
        )
        .where(
            head.anchor_id == anchor.id, or_(ContactAttempt.id.is_(None), ContactAttempt.hash != head.hash)
        )
        .order_by(head.case_id)
    ).all()
    problems: list[AnchorProblem] = []
    for case_id, seq, attempt_id, _hash in rows:
        if attempt_id is None:
            problems.append(
                AnchorProblem(
                    case_id,
                    seq,
                    None,
                    "head_missing",
                    f"案件 {case_id} 的第 {seq} 条记录在锚点 {anchor.id} 中存在，现已不在：记录被删除。",
                    f"case {case_id}: attempt #{seq}, anchored in anchor {anchor.id}, is gone: it was deleted.",
                )
            )
        else:
            problems.append(
                AnchorProblem(
                    case_id,
                    seq,
                    attempt_id,
                    "head_rewritten",
                    f"案件 {case_id} 第 {seq} 条记录（id {attempt_id}）的哈希与锚点 {anchor.id} 不符："
                    "记录在锚定后被改写并重新计算了哈希。",
                    f"case {case_id}: attempt #{seq} (id {attempt_id}) no longer has the hash anchored in "
                    f"anchor {anchor.id}: it was rewritten and re-hashed after the anchor.",
                )
            )
    return problems
