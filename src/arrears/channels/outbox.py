"""Outbox dispatch: claim queued messages, pass the gate at send time, render, send once, record the result.

`dispatch` works in three kinds of short transactions, each committed before the next step:

1. **claim** -- rows ``queued`` and due (``next_attempt_at <= now``) become ``sending`` with a fresh claim
   token, ``claimed_at`` and one more ``attempts``. PostgreSQL: ``UPDATE ... WHERE id IN (SELECT ... FOR
   UPDATE SKIP LOCKED LIMIT n)``, so concurrent dispatchers never wait on or take each other's rows. SQLite:
   the same ``UPDATE ... WHERE id IN (SELECT ... LIMIT n)`` is atomic under its single writer. The claimed
   rows are then read back by token.
2. **prepare** -- for each claimed row: the template is resolved and rendered with the case's data; the
   compliance gate is asked again *now* (``compliance.service.check_contact``): the run planned the message
   for a window, but only the moment of sending counts (a message planned for 21:50 and claimed at 22:01
   is blocked by CN-1, with the rule id on the row). The contact record gets exactly one attempt per
   message (``contacts.service.record_attempt``, outcome ``sent`` -- stored as ``blocked`` with the rule
   ids when the gate refuses), and the row keeps its id, so a retry never records a second one.
3. **result** -- after the network call, one small transaction per message: ``sent`` (time, provider id);
   or, by ``retry.decide_retry``, back to ``queued`` with an exponential backoff, or ``dead_letter`` (the
   attempt is corrected to ``failed``). The update is guarded by the claim token.

Why a message is never sent twice for one outbox row (and never lost):

- Only a committed claim lets a dispatcher send, and a claim takes a row only while it is ``queued``;
  row locks (PostgreSQL) or the single writer (SQLite) mean one claim per row at a time.
- The network call happens strictly after the claim (``sending``) and the prepare step are committed.
  A crash *before* the claim commits leaves the row ``queued``: it is sent later, once.
- A crash *after* it (before or during the call, or before the result commits) leaves the row in
  ``sending``. Such a row is re-queued once it is older than the lease (``[dispatch] lease_s``) **only if
  the channel's sender is idempotent by key**: the e-mail ``Message-ID`` and the SMS gateway's client
  reference / idempotency key are derived from the row's unique ``idempotency_key``, so a resend of a
  message that did leave is recognised by the receiving side as the same message and counted once. A
  row whose sender is not idempotent is never re-queued automatically: it stays ``sending`` (reported as
  ``stuck``) for a person to resolve -- at most once rather than maybe twice.
- A dispatcher that outlives its lease (a very slow send) cannot overwrite the row of whoever re-claimed
  it: every result is written ``WHERE claimed_by = <its token>``.
- The contact attempt is written in the same commit that keeps the row ``sending`` with its id, so the
  record shows the message as soon as it may have left, once.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from arrears.channels import service
from arrears.channels import templates as tpl
from arrears.channels.gateways import GatewaySpec
from arrears.channels.retry import RetryAction, RetryPolicy, SendOutcome, decide_retry, default_policy
from arrears.channels.schemas import OutboundMessage, SendResult
from arrears.channels.senders import HttpSmsSender, Sender, SmtpSender
from arrears.clock import as_utc, to_local
from arrears.compliance import service as compliance_service
from arrears.compliance.schemas import Decision, Outcome, Purpose
from arrears.contacts import service as contacts_service
from arrears.enums import Channel
from arrears.errors import ArrearsError, NotFound
from arrears.models import ContactAttempt, OutboxMessage, Portfolio

SessionFactory = Callable[[], Session]

#: Channels the dispatcher sends over the network; letters go out in the daily print batch.
SENT_CHANNELS: tuple[Channel, ...] = (Channel.SMS, Channel.EMAIL)
DEFAULT_COLLECTOR = "in_house"


class SenderResolver(Protocol):
    """Finds the sender of a portfolio's channel (None: this dispatcher cannot send it)."""

    def __call__(self, session: Session, portfolio_id: int, channel: Channel) -> Sender | None:
        """The sender for ``channel`` in ``portfolio_id``."""
        ...


class FixedSenders:
    """The same senders for every portfolio (tests, benches, a single-tenant install)."""

    def __init__(self, senders: Mapping[Channel | str, Sender]) -> None:
        self._senders = {Channel(k): v for k, v in senders.items()}

    @property
    def channels(self) -> tuple[Channel, ...]:
        """The channels these senders cover."""
        return tuple(self._senders)

    def __call__(self, session: Session, portfolio_id: int, channel: Channel) -> Sender | None:
        return self._senders.get(channel)


class ConfiguredSenders:
    """Each portfolio's senders built from its settings (`service.channel_settings`), once per portfolio."""

    channels = SENT_CHANNELS

    def __init__(self) -> None:
        self._built: dict[int, dict[Channel, Sender]] = {}

    def __call__(self, session: Session, portfolio_id: int, channel: Channel) -> Sender | None:
        if portfolio_id not in self._built:
            settings = service.channel_settings(session, portfolio_id=portfolio_id)
            self._built[portfolio_id] = service.build_senders(settings)
        return self._built[portfolio_id].get(channel)

    def close(self) -> None:
        """Close the HTTP clients the SMS senders hold."""
        for senders in self._built.values():
            for sender in senders.values():
                if isinstance(sender, HttpSmsSender):
                    sender.close()


def latest_attempt(session: Session, attempt_id: int) -> int:
    """The newest version of a contact attempt (a correction points at the version it corrects)."""
    current = attempt_id
    while True:
        newer = session.scalar(
            select(ContactAttempt.id).where(ContactAttempt.corrects_id == current).limit(1)
        )
        if newer is None:
            return current
        current = int(newer)


def _spec_uses_key(spec: GatewaySpec) -> bool:
    texts = [spec.url, *spec.headers.values(), repr(spec.fields)]
    return any("idempotency_key" in text for text in texts)


def is_idempotent(sender: Sender) -> bool:
    """Whether a resend of the same message is recognised downstream by its idempotency key.

    SMTP: the ``Message-ID`` is derived from the key. An HTTP gateway: when its request carries the key
    (client reference, ``Idempotency-Key`` header). Any other sender says so with an ``idempotent``
    attribute; without one it is not idempotent.
    """
    if isinstance(sender, SmtpSender):
        return True
    if isinstance(sender, HttpSmsSender):
        return _spec_uses_key(sender.spec)
    return bool(getattr(sender, "idempotent", False))


@dataclass
class DispatchReport:
    """What one dispatch pass (or a drain of several) did."""

    requeued: int = 0  # stuck in `sending` past the lease, idempotent sender: back to the queue
    stuck: int = 0  # stuck in `sending` past the lease, sender not idempotent: left for a person
    claimed: int = 0
    sent: int = 0
    blocked: int = 0  # the gate refused at send time (rule ids on the row and the contact record)
    retry_scheduled: int = 0
    dead_lettered: int = 0
    deferred: int = 0  # no sender configured for the portfolio's channel: tried again after the lease
    duration_ms: int = 0

    def merge(self, other: DispatchReport) -> DispatchReport:
        """The sum of two reports."""
        return DispatchReport(**{k: v + getattr(other, k) for k, v in asdict(self).items()})

    def to_dict(self) -> dict[str, int]:
        """A JSON-friendly form."""
        return asdict(self)


def lease() -> timedelta:
    """How long a row may stay in ``sending`` before it counts as abandoned (``[dispatch] lease_s``)."""
    return timedelta(seconds=float(service.dispatch_settings()["dispatch"]["lease_s"]))


def default_batch() -> int:
    """Rows one dispatcher claims at a time (``[dispatch] batch``)."""
    return int(service.dispatch_settings()["dispatch"]["batch"])


def _channels_of(senders: SenderResolver | Mapping[Channel | str, Sender]) -> tuple[Channel, ...]:
    return tuple(getattr(senders, "channels", SENT_CHANNELS))


def _write_first(session: Session) -> None:
    """SQLite: take the write lock before reading, so a concurrent dispatcher's commit makes this one wait
    (busy timeout) instead of failing on a stale read snapshot. PostgreSQL needs nothing."""
    if session.get_bind().dialect.name == "sqlite":
        session.execute(
            update(OutboxMessage).where(OutboxMessage.id == -1).values(status=OutboxMessage.status)
        )


def requeue_stale(
    session: Session,
    *,
    now: datetime,
    lease_for: timedelta,
    senders: SenderResolver,
    channels: Iterable[Channel],
    portfolio_id: int | None = None,
) -> tuple[int, int]:
    """Re-queue rows left in ``sending`` longer than the lease whose sender is idempotent by key.

    Returns ``(requeued, stuck)``; stuck rows (sender not idempotent, or none configured) stay as they are.
    """
    cutoff = as_utc(now) - lease_for
    stmt = select(OutboxMessage.id, OutboxMessage.portfolio_id, OutboxMessage.channel).where(
        OutboxMessage.status == "sending",
        OutboxMessage.claimed_at < cutoff,
        OutboxMessage.channel.in_([c.value for c in channels]),
    )
    if portfolio_id is not None:
        stmt = stmt.where(OutboxMessage.portfolio_id == portfolio_id)
    requeue: list[int] = []
    stuck = 0
    for row_id, row_portfolio, channel in session.execute(stmt).all():
        sender = senders(session, row_portfolio, Channel(channel))
        if sender is not None and is_idempotent(sender):
            requeue.append(row_id)
        else:
            stuck += 1
    if requeue:
        session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id.in_(requeue), OutboxMessage.status == "sending")
            .values(
                status="queued",
                claimed_by=None,
                next_attempt_at=as_utc(now),
                last_reason="requeued_after_lease",
                updated_at=as_utc(now),
            )
            .execution_options(synchronize_session=False)
        )
    return len(requeue), stuck


def claim(
    session: Session,
    *,
    token: str,
    now: datetime,
    limit: int,
    channels: Iterable[Channel],
    portfolio_id: int | None = None,
) -> list[OutboxMessage]:
    """Claim up to ``limit`` due queued rows for ``token`` (``sending``); the caller commits at once."""
    now = as_utc(now)
    due = (
        select(OutboxMessage.id)
        .where(
            OutboxMessage.status == "queued",
            or_(OutboxMessage.next_attempt_at.is_(None), OutboxMessage.next_attempt_at <= now),
            OutboxMessage.channel.in_([c.value for c in channels]),
        )
        .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id)
        .limit(limit)
    )
    if portfolio_id is not None:
        due = due.where(OutboxMessage.portfolio_id == portfolio_id)
    if session.get_bind().dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True)
    session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id.in_(due.scalar_subquery()))
        .values(
            status="sending",
            claimed_by=token,
            claimed_at=now,
            attempts=OutboxMessage.attempts + 1,
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    return list(
        session.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.claimed_by == token, OutboxMessage.status == "sending")
            .order_by(OutboxMessage.id)
        )
    )


@dataclass(frozen=True, slots=True)
class _Ready:
    row_id: int
    attempts: int
    idempotency_key: str
    attempt_id: int | None
    message: OutboundMessage
    sender: Sender


def _outbound(row: OutboxMessage, parts: Mapping[str, str], data: service.MessageData) -> OutboundMessage:
    channel = Channel(row.channel)
    if channel is Channel.EMAIL:
        return OutboundMessage(
            idempotency_key=row.idempotency_key,
            channel=channel,
            to=data.to or "",
            text=parts["text"],
            subject=parts.get("subject", "").strip(),
            html=parts.get("html"),
            to_name=data.to_name,
            locale=data.locale,
            opt_out=True,  # US-13: every electronic message carries a simple opt-out
        )
    return OutboundMessage(
        idempotency_key=row.idempotency_key,
        channel=channel,
        to=data.to or "",
        text=parts["body"].strip(),
        to_name=data.to_name,
        locale=data.locale,
        template_code=row.template,
        template_params={k: v for k, v in data.context.items() if v},
    )


def _gate_text(channel: Channel, parts: Mapping[str, str]) -> str:
    if channel is Channel.EMAIL:
        return f"{parts.get('subject', '').strip()}\n{parts['text']}"
    return parts["body"]


def _finish(
    row: OutboxMessage, *, status: str, reason: str | None, now: datetime, rule_ids: Iterable[str] = ()
) -> None:
    row.status = status
    row.last_reason = reason
    row.rule_ids = list(rule_ids)
    row.next_attempt_at = None
    row.updated_at = now


def _blocked_reason(decision: Decision) -> str:
    return "; ".join(f"{r.rule_id}: {r.en}" for r in decision.reasons) or "blocked"


def _prepare(
    session: Session,
    row: OutboxMessage,
    *,
    now: datetime,
    senders: SenderResolver,
    collector: str,
    report: DispatchReport,
    zones: dict[int, str],
) -> _Ready | None:
    """Render and gate one claimed row; return what to send, or None when the row is settled here."""
    channel = Channel(row.channel)
    sender = senders(session, row.portfolio_id, channel)
    if sender is None:
        row.status = "queued"
        row.claimed_by = None
        row.next_attempt_at = now + lease()
        row.last_reason = f"no_sender:{channel.value}"
        report.deferred += 1
        return None
    if row.portfolio_id not in zones:
        portfolio = session.get(Portfolio, row.portfolio_id)
        zones[row.portfolio_id] = portfolio.timezone if portfolio else "Asia/Shanghai"
    as_of = to_local(now, zones[row.portfolio_id]).date()
    try:
        if row.contact_point_id is None:
            raise NotFound("no contact point", code="no_contact_point")
        resolved = service.resolve_template(
            session, portfolio_id=row.portfolio_id, code=row.template, channel=channel, locale=row.locale
        )
        data = service.message_context(
            session,
            case_id=row.case_id,
            as_of=as_of,
            locale=resolved.template.locale,
            account_id=row.account_id,
            contact_point_id=row.contact_point_id,
        )
        parts = tpl.render_parts(resolved.template, data.context)
    except ArrearsError as exc:
        # Nothing can be sent without a template, data or an address: a person must fix it.
        _finish(row, status="dead_letter", reason=f"{exc.code}: {exc.message}", now=now)
        report.dead_lettered += 1
        return None
    row.template_id = resolved.template_id
    text = _gate_text(channel, parts)
    kind = service.lint_kind(resolved.template.kind, channel)
    purpose = (
        Purpose.MESSAGE_PASSING
        if resolved.template.kind is tpl.TemplateKind.THIRD_PARTY
        else Purpose.DEBT_COLLECTION
    )
    # The one gate, at the moment of sending (RULEBOOK "One gate"; CN-1 / US-1 quiet hours and the rest).
    # The first time, `record_attempt` asks it and stores the attempt with the decision in one step (it is
    # the gate of `check_contact` plus the record); a retry asks `check_contact` again, and records nothing
    # new: the message keeps its one attempt.
    if row.contact_attempt_id is None:
        recorded = contacts_service.record_attempt(
            session,
            case_id=row.case_id,
            contact_point_id=row.contact_point_id,
            channel=channel,
            started_at=now,
            outcome=Outcome.SENT,
            collector=collector,
            account_ids=[row.account_id],
            purpose=purpose,
            text=text,
            template_kind=kind,
            locale=data.locale,
        )
        row.contact_attempt_id = recorded.attempt.id
        assert recorded.decision is not None  # outbound: always gated
        decision = recorded.decision
    else:
        decision = compliance_service.check_contact(
            session,
            case_id=row.case_id,
            contact_point_id=row.contact_point_id,
            channel=channel,
            at=now,
            collector=collector,
            account_ids=[row.account_id],
            purpose=purpose,
            text=text,
            template_kind=kind,
            locale=data.locale,
        )
        if not decision.allowed:
            # Allowed at the first try, refused at a retry: the recorded attempt never went out.
            contacts_service.correct_attempt(
                session,
                attempt_id=latest_attempt(session, row.contact_attempt_id),
                changes={
                    "outcome": Outcome.FAILED,
                    "notes": f"blocked at retry: {', '.join(decision.rule_ids)}",
                },
            )
    if not decision.allowed:
        _finish(row, status="blocked", reason=_blocked_reason(decision), now=now, rule_ids=decision.rule_ids)
        report.blocked += 1
        return None
    message = _outbound(row, parts, data)
    return _Ready(row.id, row.attempts, row.idempotency_key, row.contact_attempt_id, message, sender)


def _send(ready: _Ready) -> SendResult:
    try:
        return ready.sender.send(ready.message)
    except ArrearsError as exc:  # a message the sender refuses to build (bad number, wrong channel)
        return SendResult(SendOutcome.FAILED, reason=f"{exc.code}: {exc.message}")
    except Exception as exc:  # a sender must not stop the batch; an unknown error may pass
        return SendResult(SendOutcome.RETRYABLE, reason=f"error:{type(exc).__name__}")


def _record_result(
    session: Session,
    ready: _Ready,
    result: SendResult,
    *,
    token: str,
    now: datetime,
    policy: RetryPolicy,
    report: DispatchReport,
) -> None:
    mine = (
        OutboxMessage.id == ready.row_id,
        OutboxMessage.claimed_by == token,
        OutboxMessage.status == "sending",
    )
    if result.status is SendOutcome.SENT:
        session.execute(
            update(OutboxMessage)
            .where(*mine)
            .values(
                status="sent",
                sent_at=now,
                provider_message_id=result.provider_message_id,
                last_reason=None,
                next_attempt_at=None,
                updated_at=now,
            )
            .execution_options(synchronize_session=False)
        )
        report.sent += 1
        return
    decision = decide_retry(
        policy, outcome=result.status, attempts_made=ready.attempts, failed_at=now, seed=ready.idempotency_key
    )
    reason = result.reason or result.status.value
    if decision.action is RetryAction.RETRY:
        values: dict[str, Any] = {
            "status": "queued",
            "claimed_by": None,
            "next_attempt_at": decision.retry_at,
            "last_reason": reason,
            "updated_at": now,
        }
        report.retry_scheduled += 1
    else:
        values = {
            "status": "dead_letter",
            "next_attempt_at": None,
            "last_reason": f"{decision.reason}: {reason}",
            "updated_at": now,
        }
        report.dead_lettered += 1
    changed = session.execute(
        update(OutboxMessage).where(*mine).values(**values).execution_options(synchronize_session=False)
    )
    if decision.action is RetryAction.DEAD_LETTER and ready.attempt_id is not None and changed.rowcount:  # type: ignore[attr-defined]
        contacts_service.correct_attempt(
            session,
            attempt_id=latest_attempt(session, ready.attempt_id),
            changes={"outcome": Outcome.FAILED, "notes": f"not sent: {reason}"},
        )


def dispatch(
    session_factory: SessionFactory,
    *,
    now: datetime,
    senders: SenderResolver | Mapping[Channel | str, Sender],
    portfolio_id: int | None = None,
    limit: int | None = None,
    lease_for: timedelta | None = None,
    policy: RetryPolicy | None = None,
    collector: str = DEFAULT_COLLECTOR,
) -> DispatchReport:
    """One pass: re-queue abandoned rows, claim up to ``limit`` due rows, gate, send and record them.

    ``now`` is the time of the pass (claims, the gate, results, backoff). ``senders`` is a mapping of
    channel to sender (the same for every portfolio) or a `SenderResolver`. Commits (this is an edge).
    """
    started = time.perf_counter()
    now = as_utc(now)
    resolver: SenderResolver = FixedSenders(senders) if isinstance(senders, Mapping) else senders
    channels = _channels_of(resolver)
    retry_policy = policy or default_policy()
    report = DispatchReport()
    token = uuid.uuid4().hex
    with session_factory() as session, session.begin():
        _write_first(session)
        report.requeued, report.stuck = requeue_stale(
            session,
            now=now,
            lease_for=lease_for if lease_for is not None else lease(),
            senders=resolver,
            channels=channels,
            portfolio_id=portfolio_id,
        )
    with session_factory() as session, session.begin():
        rows = claim(
            session,
            token=token,
            now=now,
            limit=limit or default_batch(),
            channels=channels,
            portfolio_id=portfolio_id,
        )
        report.claimed = len(rows)
    if not rows:
        report.duration_ms = int((time.perf_counter() - started) * 1000)
        return report
    ready: list[_Ready] = []
    zones: dict[int, str] = {}
    with session_factory() as session, session.begin():
        _write_first(session)
        for row in session.scalars(
            select(OutboxMessage).where(OutboxMessage.claimed_by == token).order_by(OutboxMessage.id)
        ):
            try:
                with session.begin_nested():
                    prepared = _prepare(
                        session,
                        row,
                        now=now,
                        senders=resolver,
                        collector=collector,
                        report=report,
                        zones=zones,
                    )
            except ArrearsError as exc:  # e.g. the contact point no longer belongs to the case's debtor
                _finish(row, status="dead_letter", reason=f"{exc.code}: {exc.message}", now=now)
                report.dead_lettered += 1
                continue
            if prepared is not None:
                ready.append(prepared)
    # Every row in `ready` is committed as `sending`, with its contact attempt: now, and only now, send.
    for item in ready:
        result = _send(item)
        with session_factory() as session, session.begin():
            _record_result(session, item, result, token=token, now=now, policy=retry_policy, report=report)
    report.duration_ms = int((time.perf_counter() - started) * 1000)
    return report


def drain(
    session_factory: SessionFactory,
    *,
    now: Callable[[], datetime] | datetime,
    senders: SenderResolver | Mapping[Channel | str, Sender],
    portfolio_id: int | None = None,
    limit: int | None = None,
    lease_for: timedelta | None = None,
    policy: RetryPolicy | None = None,
    max_passes: int | None = None,
    on_pass: Callable[[DispatchReport], None] | None = None,
) -> DispatchReport:
    """Dispatch passes until nothing due is left (or ``max_passes``); ``now`` may be a clock function."""
    total = DispatchReport()
    passes = 0
    while max_passes is None or passes < max_passes:
        moment = now() if callable(now) else now
        report = dispatch(
            session_factory,
            now=moment,
            senders=senders,
            portfolio_id=portfolio_id,
            limit=limit,
            lease_for=lease_for,
            policy=policy,
        )
        total = total.merge(report)
        passes += 1
        if on_pass is not None:
            on_pass(report)
        if report.claimed == 0:
            break
    return total
