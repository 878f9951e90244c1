"""Outbox dispatch: claim queued messages, pass the gate at send time, render, send once, record the result.

`dispatch` works on a batch of rows (``[dispatch] batch``) in three kinds of short transactions, each
committed before the next step:

1. **claim** -- rows ``queued`` and due (``next_attempt_at <= now``) become ``sending`` with a fresh claim
   token, ``claimed_at`` and one more ``attempts``. PostgreSQL: ``UPDATE ... WHERE id IN (SELECT ... FOR
   UPDATE SKIP LOCKED LIMIT n)``, so concurrent dispatchers never wait on or take each other's rows. SQLite:
   the same ``UPDATE ... WHERE id IN (SELECT ... LIMIT n)`` is atomic under its single writer. The claimed
   rows are read back by token once, in the prepare transaction.
2. **prepare**, for the whole batch at once -- templates resolved once per code, channel and locale; the
   cases' data loaded with one query per table (`service.message_contexts`) and every message rendered; the
   cases locked (`contacts.service.lock_cases`, in id order); the compliance gate asked again *now* with the
   inputs of every message loaded with one query per kind (`compliance.batch.gate_inputs_many`: the same
   inputs `check_contact` builds for one) and the pure `rules.decide` per message, in order, each seeing the
   attempts decided before it in the batch. The run planned the message for a window, but only the moment
   of sending counts (a message planned for 21:50 and claimed at 22:01 is blocked by CN-1, with the rule id
   on the row). The contact record gets exactly one attempt per message (outcome ``sent``, or ``blocked``
   with the rule ids), appended for the batch with one insert, the hash chain computed per case in order
   (`contacts.service.append_attempts`); the row keeps the attempt's id, so a retry never records a second.
   The rows' template and attempt ids are written with one statement for the batch (`_write_links`).
3. **send and result** -- the messages go out several at once through a `SendPool` (``[dispatch]
   concurrency`` threads; kept SMTP connections, keep-alive HTTP), and results are written in groups of
   ``[dispatch] record_every`` while the rest is still sending: ``sent`` (time, provider id) for a group in
   one statement; or, by ``retry.decide_retry``, back to ``queued`` with an exponential backoff, or
   ``dead_letter`` (the attempt is corrected to ``failed``). Every update is guarded by the claim token.

`drain` repeats passes until nothing is due; with ``overlap`` (the CLI and the Celery task) the next batch
is claimed and prepared while the previous one is still sending. It looks for abandoned rows on its first
pass and then every ``REQUEUE_EVERY_S`` seconds, not on every pass. About 0.15 SQL statements per message.

Several dispatchers: on PostgreSQL they share nothing but row locks (``SKIP LOCKED`` claims, case locks
taken in id order), so they run side by side. On SQLite the prepare and result transactions take the
database's single write lock in turn: a second dispatcher is safe but does not add speed.

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
- Sending several at once and recording results in groups widens only the window of "sent, result not yet
  recorded" to the messages in flight plus one unrecorded group: after a crash exactly those are re-sent,
  under the same key (the crash test checks that no other key arrives twice).
"""

from __future__ import annotations

import sys
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import Table, bindparam, or_, select, text, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from arrears.channels import service
from arrears.channels import templates as tpl
from arrears.channels.gateways import GatewaySpec
from arrears.channels.retry import RetryAction, RetryPolicy, SendOutcome, decide_retry, default_policy
from arrears.channels.schemas import OutboundMessage, SendResult
from arrears.channels.senders import HttpSmsSender, Sender, SendPool, SmtpSender
from arrears.clock import as_utc, to_local
from arrears.compliance import batch as gate_batch
from arrears.compliance import service as compliance_service
from arrears.compliance.rules import decide
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
        """Close the SMTP connections and HTTP clients the senders hold."""
        for senders in self._built.values():
            for sender in senders.values():
                if isinstance(sender, HttpSmsSender | SmtpSender):
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
        # a statement that writes (and matches no row) takes the lock; plain SQL, no ORM bulk update
        session.execute(text("UPDATE outbox_message SET status = status WHERE id = -1"))


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
            # re-checked in the update: a row someone re-claimed meanwhile has a fresh `claimed_at`
            .where(
                OutboxMessage.id.in_(requeue),
                OutboxMessage.status == "sending",
                OutboxMessage.claimed_at < cutoff,
            )
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
    _claim_update(session, token=token, now=now, limit=limit, channels=channels, portfolio_id=portfolio_id)
    return list(
        session.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.claimed_by == token, OutboxMessage.status == "sending")
            .order_by(OutboxMessage.id)
        )
    )


def _claim_update(
    session: Session,
    *,
    token: str,
    now: datetime,
    limit: int,
    channels: Iterable[Channel],
    portfolio_id: int | None,
) -> int:
    """The claim's one statement; returns how many rows it took (read back by token later)."""
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
    table = OutboxMessage.__table__
    assert isinstance(table, Table)
    result = session.execute(  # the table, not the entity: no ORM bulk-update step for a plain UPDATE
        update(table)
        .where(table.c.id.in_(due.scalar_subquery()))
        .values(
            status="sending",
            claimed_by=token,
            claimed_at=now,
            attempts=table.c.attempts + 1,
            updated_at=now,
        )
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class _Ready:
    row_id: int
    attempts: int
    idempotency_key: str
    attempt_id: int | None
    message: OutboundMessage
    sender: Sender


@dataclass(slots=True)
class _Draft:
    """A claimed row on its way through the prepare step."""

    row: OutboxMessage
    channel: Channel
    sender: Sender
    as_of: date
    resolved: service.ResolvedTemplate | None = None
    data: service.MessageData | None = None
    parts: dict[str, str] | None = None


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


def _dead(row: OutboxMessage, exc: ArrearsError, *, now: datetime, report: DispatchReport) -> None:
    # Nothing can be sent without a template, data or an address: a person must fix it.
    _finish(row, status="dead_letter", reason=f"{exc.code}: {exc.message}", now=now)
    report.dead_lettered += 1


def _blocked_reason(decision: Decision) -> str:
    return "; ".join(f"{r.rule_id}: {r.en}" for r in decision.reasons) or "blocked"


def _purpose(kind: tpl.TemplateKind) -> Purpose:
    return Purpose.MESSAGE_PASSING if kind is tpl.TemplateKind.THIRD_PARTY else Purpose.DEBT_COLLECTION


def _render(
    session: Session, drafts: list[_Draft], *, dead: list[tuple[OutboxMessage, ArrearsError]]
) -> list[_Draft]:
    """Resolve each draft's template (once per code, channel and locale) and render it with its case's data,
    loaded for the whole batch at once; drafts that cannot be rendered go to ``dead`` (dead-lettered by
    the caller, in the write transaction: this step only reads)."""
    templates: dict[tuple[int, str, Channel, str], service.ResolvedTemplate | ArrearsError] = {}
    for draft in drafts:
        row = draft.row
        key = (row.portfolio_id, row.template, draft.channel, row.locale)
        if key not in templates:
            try:
                templates[key] = service.resolve_template(
                    session,
                    portfolio_id=row.portfolio_id,
                    code=row.template,
                    channel=draft.channel,
                    locale=row.locale,
                )
            except ArrearsError as exc:
                templates[key] = exc
    live: list[_Draft] = []
    for draft in drafts:
        row = draft.row
        found = templates[(row.portfolio_id, row.template, draft.channel, row.locale)]
        if row.contact_point_id is None:
            dead.append((row, NotFound("no contact point", code="no_contact_point")))
        elif isinstance(found, ArrearsError):
            dead.append((row, found))
        else:
            draft.resolved = found
            live.append(draft)
    contexts = service.message_contexts(
        session,
        requests=[
            service.MessageRequest(
                key=d.row.id,
                case_id=d.row.case_id,
                as_of=d.as_of,
                locale=d.resolved.template.locale if d.resolved else None,
                account_id=d.row.account_id,
                contact_point_id=d.row.contact_point_id,
            )
            for d in live
        ],
    )
    rendered: list[_Draft] = []
    for draft in live:
        data = contexts[draft.row.id]
        assert draft.resolved is not None
        try:
            if isinstance(data, ArrearsError):
                raise data
            draft.parts = tpl.render_parts(draft.resolved.template, data.context)
        except ArrearsError as exc:
            dead.append((draft.row, exc))
            continue
        draft.data = data
        # written with the attempt links in one statement (`_prepare_batch`), not by the unit of work
        set_committed_value(draft.row, "template_id", draft.resolved.template_id)
        rendered.append(draft)
    return rendered


def _attempt_fields(
    inputs: compliance_service.GateInputs, decision: Decision, case_id: int
) -> dict[str, Any]:
    """The contact attempt of a message as `contacts.service.record_attempt` stores it (outcome ``sent``,
    or ``blocked`` with the rule ids)."""
    attempt = inputs.attempt
    return {
        "case_id": case_id,
        "contact_point_id": None,  # set by the caller
        "channel": attempt.channel.value,
        "direction": attempt.direction.value,
        "purpose": attempt.purpose.value,
        "collector": attempt.collector_id,
        "agent_id": None,
        "account_ids": sorted(attempt.account_ids),
        "started_at": attempt.at,
        "ended_at": None,
        "outcome": Outcome.SENT.value if decision.allowed else Outcome.BLOCKED.value,
        "notes": None,
        "message_text": attempt.text,
        "visit_place": None,
        "visit_staff": None,
        "id_shown": None,
        "recording_ref": None,
        "delivered_at": None,
        "evidence_ref": None,
        "allowed": decision.allowed,
        "rule_ids": ",".join(decision.rule_ids),
        "decision": decision.to_dict(),
        "corrects_id": None,
    }


@dataclass(slots=True)
class _Rendered:
    """The read half of a prepare step: what rendered, and what is to be settled in the write half."""

    drafts: list[_Draft]
    no_sender: list[OutboxMessage]
    dead: list[tuple[OutboxMessage, ArrearsError]]


def _render_batch(
    session: Session, rows: list[OutboxMessage], *, now: datetime, senders: SenderResolver
) -> _Rendered:
    """Resolve the senders and render the claimed rows, reading only: the rows' own changes (deferred,
    dead letters) are made by `_settle`, in the write transaction that follows."""
    zones = dict(
        session.execute(
            select(Portfolio.id, Portfolio.timezone).where(Portfolio.id.in_({r.portfolio_id for r in rows}))
        ).all()
    )
    drafts: list[_Draft] = []
    no_sender: list[OutboxMessage] = []
    for row in rows:
        channel = Channel(row.channel)
        sender = senders(session, row.portfolio_id, channel)
        if sender is None:
            no_sender.append(row)
            continue
        as_of = to_local(now, zones.get(row.portfolio_id) or "Asia/Shanghai").date()
        drafts.append(_Draft(row, channel, sender, as_of))
    dead: list[tuple[OutboxMessage, ArrearsError]] = []
    return _Rendered(_render(session, drafts, dead=dead), no_sender, dead)


def _settle(rendered: _Rendered, *, now: datetime, report: DispatchReport) -> None:
    """The rows the read half could not take further: back to the queue (no sender) or dead letters."""
    for row in rendered.no_sender:
        row.status = "queued"
        row.claimed_by = None
        row.next_attempt_at = now + lease()
        row.last_reason = f"no_sender:{Channel(row.channel).value}"
        report.deferred += 1
    for row, exc in rendered.dead:
        _dead(row, exc, now=now, report=report)


def _prepare_batch(
    session: Session,
    rendered: _Rendered,
    *,
    now: datetime,
    collector: str,
    report: DispatchReport,
) -> list[_Ready]:
    """Gate the rendered rows and record their attempts; return what to send. Rows settled here
    (deferred, blocked, dead letter) are updated in the session; the caller commits."""
    _settle(rendered, now=now, report=report)
    drafts = rendered.drafts
    if not drafts:
        return []
    # The cases are locked before their records are read: an append by anyone else (a collector's call)
    # waits until this batch's attempts are in, and the gate sees a record no one is changing.
    contacts_service.lock_cases(session, case_ids={d.row.case_id for d in drafts})
    requests = []
    for draft in drafts:
        assert draft.resolved is not None and draft.parts is not None and draft.data is not None
        requests.append(
            gate_batch.ContactRequest(
                key=draft.row.id,
                case_id=draft.row.case_id,
                contact_point_id=draft.row.contact_point_id,
                channel=draft.channel,
                collector=collector,
                account_ids=(draft.row.account_id,),
                purpose=_purpose(draft.resolved.template.kind),
                text=_gate_text(draft.channel, draft.parts),
                template_kind=service.lint_kind(draft.resolved.template.kind, draft.channel),
                locale=draft.data.locale,
            )
        )
    # The one gate, at the moment of sending (RULEBOOK "One gate"; CN-1 / US-1 quiet hours and the rest):
    # the run planned the message for a window, but only now counts. Same inputs as `check_contact`, loaded
    # for the batch at once; the pure `decide` per message, in order, each seeing the ones before it.
    batch = gate_batch.gate_inputs_many(session, requests=requests, at=now)
    new_attempts: list[tuple[_Draft, dict[str, Any]]] = []
    ready: list[_Draft] = []
    for draft in drafts:
        row = draft.row
        if row.id in batch.errors:  # e.g. the contact point no longer belongs to the case's debtor
            _dead(row, batch.errors[row.id], now=now, report=report)
            continue
        inputs = batch.for_key(row.id)
        try:
            decision = decide(inputs.attempt, inputs.history, inputs.context, inputs.pack)
        except ArrearsError as exc:
            _dead(row, exc, now=now, report=report)
            continue
        if row.contact_attempt_id is None:
            # The message's one attempt, allowed or blocked, stored with the decision; a retry records
            # nothing new.
            fields = _attempt_fields(inputs, decision, row.case_id)
            fields["contact_point_id"] = row.contact_point_id
            new_attempts.append((draft, fields))
            batch.remember(
                row.case_id,
                gate_batch.prior_attempt(
                    inputs.attempt, outcome=Outcome.SENT if decision.allowed else Outcome.BLOCKED
                ),
            )
        elif not decision.allowed:
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
            _finish(
                row, status="blocked", reason=_blocked_reason(decision), now=now, rule_ids=decision.rule_ids
            )
            report.blocked += 1
            continue
        ready.append(draft)
    ids = contacts_service.append_attempts(session, attempts=[fields for _, fields in new_attempts])
    for (draft, _), attempt_id in zip(new_attempts, ids, strict=True):
        set_committed_value(draft.row, "contact_attempt_id", attempt_id)
    _write_links(session, drafts)
    out: list[_Ready] = []
    for draft in ready:
        row = draft.row
        assert draft.parts is not None and draft.data is not None
        message = _outbound(row, draft.parts, draft.data)
        out.append(
            _Ready(row.id, row.attempts, row.idempotency_key, row.contact_attempt_id, message, draft.sender)
        )
    return out


def _write_links(session: Session, drafts: list[_Draft]) -> None:
    """Store every rendered row's template and contact attempt with one statement (PostgreSQL: arrays;
    SQLite: one executemany), rather than one unit-of-work update per row."""
    if not drafts:
        return
    ids = [d.row.id for d in drafts]
    template_ids = [d.row.template_id for d in drafts]
    attempt_ids = [d.row.contact_attempt_id for d in drafts]
    if session.get_bind().dialect.name == "postgresql":
        session.execute(
            text(
                "UPDATE outbox_message SET template_id = v.template_id, contact_attempt_id = v.attempt_id"
                " FROM unnest(CAST(:ids AS bigint[]), CAST(:template_ids AS bigint[]),"
                " CAST(:attempt_ids AS bigint[])) AS v(id, template_id, attempt_id)"
                " WHERE outbox_message.id = v.id"
            ),
            {"ids": ids, "template_ids": template_ids, "attempt_ids": attempt_ids},
        )
        return
    table = OutboxMessage.__table__
    assert isinstance(table, Table)
    session.execute(
        update(table)
        .where(table.c.id == bindparam("row_id"))
        .values(template_id=bindparam("tid"), contact_attempt_id=bindparam("aid")),
        [{"row_id": i, "tid": t, "aid": a} for i, t, a in zip(ids, template_ids, attempt_ids, strict=True)],
    )


def _record_sent(
    session: Session,
    items: list[tuple[_Ready, SendResult]],
    *,
    token: str,
    now: datetime,
    report: DispatchReport,
) -> None:
    """Mark sent messages ``sent`` with one statement (guarded by the claim token, like every result)."""
    if not items:
        return
    report.sent += len(items)
    if session.get_bind().dialect.name == "postgresql":
        # One short statement for the group (ids and provider ids as two arrays), not one per message.
        session.execute(
            text(
                "UPDATE outbox_message SET status = 'sent', sent_at = :now, provider_message_id = v.provider_id,"
                " last_reason = NULL, next_attempt_at = NULL, updated_at = :now"
                " FROM unnest(CAST(:ids AS bigint[]), CAST(:provider_ids AS text[])) AS v(id, provider_id)"
                " WHERE outbox_message.id = v.id AND outbox_message.claimed_by = :token"
                " AND outbox_message.status = 'sending'"
            ),
            {
                "now": now,
                "ids": [ready.row_id for ready, _ in items],
                "provider_ids": [result.provider_message_id for _, result in items],
                "token": token,
            },
        )
        return
    table = OutboxMessage.__table__
    assert isinstance(table, Table)
    session.execute(
        update(table)
        .where(
            table.c.id == bindparam("row_id"),
            table.c.claimed_by == token,
            table.c.status == "sending",
        )
        .values(
            status="sent",
            sent_at=now,
            provider_message_id=bindparam("provider_id"),
            last_reason=None,
            next_attempt_at=None,
            updated_at=now,
        ),
        [{"row_id": ready.row_id, "provider_id": result.provider_message_id} for ready, result in items],
    )


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
    """A message that did not go out: back to the queue after its backoff, or to the dead letters."""
    mine = (
        OutboxMessage.id == ready.row_id,
        OutboxMessage.claimed_by == token,
        OutboxMessage.status == "sending",
    )
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


def _record(
    session_factory: SessionFactory,
    items: list[tuple[_Ready, SendResult]],
    *,
    token: str,
    now: datetime,
    policy: RetryPolicy,
    report: DispatchReport,
) -> None:
    if not items:
        return
    with session_factory() as session, session.begin():
        _record_sent(
            session,
            [i for i in items if i[1].status is SendOutcome.SENT],
            token=token,
            now=now,
            report=report,
        )
        for ready, result in items:
            if result.status is not SendOutcome.SENT:
                _record_result(session, ready, result, token=token, now=now, policy=policy, report=report)


#: How often a long drain looks again for rows abandoned in ``sending`` (seconds of real time).
REQUEUE_EVERY_S = 30.0


def default_concurrency() -> int:
    """Messages one dispatcher keeps in flight at once (``[dispatch] concurrency``)."""
    return int(service.dispatch_settings()["dispatch"]["concurrency"])


def _record_every() -> int:
    return int(service.dispatch_settings()["dispatch"]["record_every"])


@contextmanager
def _switch_interval() -> Iterator[None]:
    """While a dispatcher drains with its sends overlapping the next batch's prepare step, a sending
    thread whose reply has arrived waits for the interpreter lock held by the rendering thread: a shorter
    switch interval (``[dispatch] switch_interval_ms``) keeps that wait, repeated at every reply of every
    message, from bounding the messages in flight."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(float(service.dispatch_settings()["dispatch"]["switch_interval_ms"]) / 1000)
    try:
        yield
    finally:
        sys.setswitchinterval(before)


@dataclass
class _Pass:
    """A pass between its prepare step (committed) and its sends."""

    token: str
    now: datetime
    policy: RetryPolicy
    report: DispatchReport
    ready: list[_Ready]
    started: float


def _begin(
    session_factory: SessionFactory,
    *,
    now: datetime,
    resolver: SenderResolver,
    portfolio_id: int | None,
    limit: int | None,
    lease_for: timedelta | None,
    policy: RetryPolicy | None,
    collector: str,
    requeue: bool = True,
) -> _Pass:
    """Re-queue abandoned rows (with ``requeue``), claim, and prepare (render, gate, record the attempts):
    all committed."""
    started = time.perf_counter()
    now = as_utc(now)
    channels = _channels_of(resolver)
    report = DispatchReport()
    token = uuid.uuid4().hex
    done = _Pass(token, now, policy or default_policy(), report, [], started)
    if requeue:
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
        # The rows are read once, in the prepare transaction below, not also here.
        report.claimed = _claim_update(
            session,
            token=token,
            now=now,
            limit=limit or default_batch(),
            channels=channels,
            portfolio_id=portfolio_id,
        )
    if not report.claimed:
        return done
    with session_factory() as session:
        # Reading the claimed rows and rendering them (most of the prepare step's work) only reads, so on
        # SQLite it runs without the write lock and two dispatchers render at the same time; the gate and
        # the contact record, which must see no other writer, follow in a transaction that holds it.
        with session.begin(), session.no_autoflush:
            rows = list(
                session.scalars(
                    select(OutboxMessage)
                    .where(OutboxMessage.claimed_by == token, OutboxMessage.status == "sending")
                    .order_by(OutboxMessage.id)
                )
            )
            rendered = _render_batch(session, rows, now=now, senders=resolver)
        with session.begin():
            _write_first(session)
            done.ready = _prepare_batch(session, rendered, now=now, collector=collector, report=report)
    return done


def _send_pass(session_factory: SessionFactory, work: _Pass, pool: SendPool) -> DispatchReport:
    """Send a prepared pass and record the results; returns its report."""
    # Every row in `ready` is committed as `sending`, with its contact attempt: now, and only now, send.
    # Results are recorded in small groups while the rest is still sending: a crash leaves at most the
    # messages in flight and one unrecorded group in `sending` (re-sent under the same key after the lease).
    ready, report = work.ready, work.report
    pending: list[tuple[_Ready, SendResult]] = []
    every = _record_every()

    def record(items: list[tuple[_Ready, SendResult]]) -> None:
        _record(session_factory, items, token=work.token, now=work.now, policy=work.policy, report=report)

    for index, result in pool.send([(item.sender, item.message) for item in ready]):
        pending.append((ready[index], result))
        if len(pending) >= every:
            record(pending)
            pending = []
    record(pending)
    report.duration_ms = int((time.perf_counter() - work.started) * 1000)
    return report


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
    pool: SendPool | None = None,
) -> DispatchReport:
    """One pass: re-queue abandoned rows, claim up to ``limit`` due rows, gate, send and record them.

    ``now`` is the time of the pass (claims, the gate, results, backoff). ``senders`` is a mapping of
    channel to sender (the same for every portfolio) or a `SenderResolver`. ``pool`` sends the messages
    (several at once); without one a pool of ``[dispatch] concurrency`` threads lives for this pass.
    Commits (this is an edge).
    """
    resolver: SenderResolver = FixedSenders(senders) if isinstance(senders, Mapping) else senders
    work = _begin(
        session_factory,
        now=now,
        resolver=resolver,
        portfolio_id=portfolio_id,
        limit=limit,
        lease_for=lease_for,
        policy=policy,
        collector=collector,
    )
    if pool is not None:
        return _send_pass(session_factory, work, pool)
    with SendPool(default_concurrency()) as own:
        return _send_pass(session_factory, work, own)


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
    concurrency: int | None = None,
    overlap: bool = False,
) -> DispatchReport:
    """Dispatch passes until nothing due is left (or ``max_passes``); ``now`` may be a clock function.

    One `SendPool` of ``concurrency`` threads (``[dispatch] concurrency``) serves every pass, so its
    connections stay open from one batch to the next. With ``overlap`` the next batch is claimed and
    prepared while the previous one is still sending (at most one batch sending at a time); its sessions
    then run in two threads, so ``session_factory`` must give each session its own connection.
    """
    resolver: SenderResolver = FixedSenders(senders) if isinstance(senders, Mapping) else senders
    total = DispatchReport()
    passes = 0

    def finished(report: DispatchReport) -> None:
        nonlocal total
        total = total.merge(report)
        if on_pass is not None:
            on_pass(report)

    with (
        SendPool(concurrency or default_concurrency()) as pool,
        ThreadPoolExecutor(1) as background,
        _switch_interval() if overlap else nullcontext(),
    ):
        sending: Future[DispatchReport] | None = None
        requeued_at: float | None = None
        while max_passes is None or passes < max_passes:
            moment = now() if callable(now) else now
            # Abandoned rows only appear once a lease has run out: looking for them on the first pass and
            # then every `REQUEUE_EVERY_S` is enough, and spares every pass a scan of the rows in `sending`.
            requeue = requeued_at is None or time.monotonic() - requeued_at >= REQUEUE_EVERY_S
            if requeue:
                requeued_at = time.monotonic()
            work = _begin(
                session_factory,
                now=moment,
                resolver=resolver,
                portfolio_id=portfolio_id,
                limit=limit,
                lease_for=lease_for,
                policy=policy,
                collector=DEFAULT_COLLECTOR,
                requeue=requeue,
            )
            passes += 1
            if sending is not None:
                finished(sending.result())
                sending = None
            if overlap and work.ready:
                sending = background.submit(_send_pass, session_factory, work, pool)
            else:
                finished(_send_pass(session_factory, work, pool))
            if work.report.claimed == 0:
                break
        if sending is not None:
            finished(sending.result())
    return total
