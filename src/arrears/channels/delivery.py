"""Letters and delivery evidence: the daily print batch, delivery entered by hand, SMS delivery receipts.

A delivered demand interrupts the limitation period (CN-24, CN-25), so the proof that a message or letter
reached the debtor is appended to the contact record (`contacts.service.record_delivery`); the limitation
dates read it from there. Letters leave the outbox in a daily print batch: each letter passes the gate,
is recorded as a contact attempt (a demand, channel ``letter``) and printed into one PDF, stored as a
document. Its delivery (a postal tracking reference, a signed receipt) is entered later. SMS gateways
push delivery receipts to a webhook whose HMAC signature is checked first. Services flush, never commit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from arrears.channels import letters, service
from arrears.channels import templates as tpl
from arrears.channels.outbox import latest_attempt
from arrears.channels.receipts import parse_receipts, verify_signature
from arrears.channels.schemas import ReceiptStatus
from arrears.clock import DEFAULT_ZONE, as_utc, zone_info
from arrears.compliance.schemas import Outcome, Purpose
from arrears.contacts import service as contacts_service
from arrears.enums import Channel
from arrears.errors import ArrearsError, Conflict, Forbidden, NotFound
from arrears.holds import documents
from arrears.models import ContactAttempt, Creditor, OutboxMessage, Portfolio

# --- letters ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PrintedLetter:
    """One letter in a print batch: its outbox row, contact attempt and pages."""

    message_id: int
    case_id: int
    attempt_id: int
    first_page: int
    page_count: int


@dataclass
class LetterBatch:
    """A day's print batch: the PDF (None when nothing was printed), the document, letters, refusals."""

    batch_date: date
    pdf: bytes | None
    document_id: int | None
    letters: list[PrintedLetter] = field(default_factory=list)
    blocked: list[tuple[int, list[str]]] = field(default_factory=list)  # (message id, rule ids)
    failed: list[tuple[int, str]] = field(default_factory=list)  # (message id, reason)


def letters_batch(
    session: Session,
    *,
    batch_date: date,
    now: datetime,
    portfolio_id: int | None = None,
    document_dir: Path | str | None = None,
) -> LetterBatch:
    """Print every queued letter planned up to ``batch_date`` into one PDF, each recorded as a demand.

    Each letter passes the gate at ``now`` (flags, time-barred accounts, CN-10 ...); a refused one is marked
    ``blocked`` with its rule ids. Printed letters become ``sent`` with their contact attempt's id.
    """
    now = as_utc(now)
    stmt = select(OutboxMessage).where(
        OutboxMessage.channel == Channel.LETTER.value,
        OutboxMessage.status == "queued",
        OutboxMessage.as_of_date <= batch_date,
    )
    if portfolio_id is not None:
        stmt = stmt.where(OutboxMessage.portfolio_id == portfolio_id)
    batch = LetterBatch(batch_date=batch_date, pdf=None, document_id=None)
    printed: list[tuple[OutboxMessage, letters.Letter]] = []
    for row in session.scalars(
        stmt.order_by(OutboxMessage.portfolio_id, OutboxMessage.case_id, OutboxMessage.id)
    ):
        try:
            with session.begin_nested():
                letter = _prepare_letter(session, row, batch_date=batch_date, now=now)
        except ArrearsError as exc:
            row.status, row.last_reason, row.updated_at = "dead_letter", f"{exc.code}: {exc.message}", now
            batch.failed.append((row.id, exc.code))
            continue
        if letter is None:
            batch.blocked.append((row.id, list(row.rule_ids)))
        else:
            printed.append((row, letter))
    if not printed:
        session.flush()
        return batch
    rendered = letters.render_print_batch([letter for _, letter in printed], batch_date=batch_date)
    document = documents.store_document(
        session,
        content=rendered.pdf,
        filename=f"print-batch-{batch_date.isoformat()}.pdf",
        kind=str(service.dispatch_settings()["letters"]["document_kind"]),
        media_type="application/pdf",
        document_dir=document_dir,
    )
    for (row, _letter), entry in zip(printed, rendered.entries, strict=True):
        row.provider_message_id = f"print-batch:{document.id}:p{entry.first_page}"
        assert row.contact_attempt_id is not None
        batch.letters.append(
            PrintedLetter(row.id, row.case_id, row.contact_attempt_id, entry.first_page, entry.page_count)
        )
    batch.pdf, batch.document_id = rendered.pdf, document.id
    session.flush()
    return batch


def _prepare_letter(
    session: Session, row: OutboxMessage, *, batch_date: date, now: datetime
) -> letters.Letter | None:
    resolved = service.resolve_template(
        session, portfolio_id=row.portfolio_id, code=row.template, channel=Channel.LETTER, locale=row.locale
    )
    data = service.message_context(
        session,
        case_id=row.case_id,
        as_of=batch_date,
        locale=resolved.template.locale,
        account_id=row.account_id,
        contact_point_id=row.contact_point_id,
    )
    portfolio = session.get(Portfolio, row.portfolio_id)
    assert portfolio is not None
    creditor = session.get(Creditor, portfolio.creditor_id)
    assert creditor is not None
    letter = letters.letter_from_template(
        resolved.template,
        data.context,
        letter_id=f"M{row.id}",
        case_reference=data.case_reference,
        letter_date=batch_date,
        recipient_name=data.to_name or "",
        recipient_address=data.recipient_address or "",
        institution=letters.Institution(
            name=creditor.name, address=creditor.address or "", phone=creditor.phone or ""
        ),
    )
    kind = service.lint_kind(resolved.template.kind, Channel.LETTER)
    purpose = (
        Purpose.MESSAGE_PASSING
        if resolved.template.kind is tpl.TemplateKind.THIRD_PARTY
        else Purpose.DEBT_COLLECTION
    )
    text = f"{letter.title}\n{letter.body}"
    recorded = contacts_service.record_attempt(
        session,
        case_id=row.case_id,
        contact_point_id=row.contact_point_id,
        channel=Channel.LETTER,
        started_at=now,
        outcome=Outcome.SENT,
        collector="in_house",
        account_ids=[row.account_id],
        purpose=purpose,
        text=text,
        template_kind=kind,
        locale=data.locale,
    )
    row.contact_attempt_id = recorded.attempt.id
    row.template_id = resolved.template_id
    row.attempts += 1
    row.updated_at = now
    row.next_attempt_at = None
    if recorded.decision is not None and not recorded.decision.allowed:
        row.status = "blocked"
        row.rule_ids = list(recorded.decision.rule_ids)
        row.last_reason = "; ".join(f"{r.rule_id}: {r.en}" for r in recorded.decision.reasons)
        return None
    row.status, row.sent_at = "sent", now
    return letter


def record_delivery_evidence(
    session: Session, *, message_id: int, delivered_at: datetime, evidence_ref: str
) -> ContactAttempt:
    """CN-25: a sent letter or message reached the debtor; the evidence goes on the contact record."""
    row = session.get(OutboxMessage, message_id)
    if row is None:
        raise NotFound(f"消息不存在：{message_id} / message {message_id} not found", code="message_not_found")
    if row.status != "sent" or row.contact_attempt_id is None:
        raise Conflict(
            f"消息 {message_id} 尚未发出（{row.status}） / message {message_id} was not sent ({row.status})",
            code="message_not_sent",
        )
    if not evidence_ref.strip():
        raise Conflict("需要送达凭证 / delivery evidence is required", code="evidence_required")
    attempt = contacts_service.record_delivery(
        session,
        attempt_id=latest_attempt(session, row.contact_attempt_id),
        delivered_at=as_utc(delivered_at),
        evidence_ref=evidence_ref.strip(),
    )
    row.delivery_status, row.delivered_at = "delivered", as_utc(delivered_at)
    session.flush()
    return attempt


# --- SMS delivery receipts -------------------------------------------------------------------------------


@dataclass
class ReceiptReport:
    """What a webhook call did with its receipts."""

    delivered: int = 0
    failed: int = 0
    pending: int = 0
    unknown: int = 0  # no outbox message with that reference or provider id
    repeated: int = 0  # already recorded (gateways resend receipts)


def _reported_at(text: str | None, zone: str, fallback: datetime) -> datetime:
    if not text:
        return fallback
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return fallback
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone_info(zone))
    return as_utc(moment)


def record_sms_receipts(
    session: Session, *, gateway: str, body: bytes, signature: str | None, at: datetime
) -> ReceiptReport:
    """Verify a delivery-receipt webhook (HMAC over the raw body) and record each receipt.

    A delivered SMS gets its delivery evidence on the contact record (CN-25); an undelivered one is
    corrected to ``failed``. Receipts already recorded are counted and skipped.
    """
    configured = service.webhook_gateway(session, name=gateway)
    check = verify_signature(body, signature, configured.secret, at=at)
    if not check.valid:
        raise Forbidden(
            f"回执签名无效（{check.reason}） / the receipt's signature is not valid ({check.reason})",
            code="bad_signature",
        )
    report = ReceiptReport()
    for receipt in parse_receipts(configured.spec, body):
        conditions = []
        if receipt.reference:
            conditions.append(OutboxMessage.idempotency_key == receipt.reference)
        if receipt.provider_message_id:
            conditions.append(OutboxMessage.provider_message_id == receipt.provider_message_id)
        row = (
            session.scalars(
                select(OutboxMessage)
                .where(OutboxMessage.channel == Channel.SMS.value, or_(*conditions))
                .limit(1)
            ).first()
            if conditions
            else None
        )
        if row is None or row.contact_attempt_id is None:
            report.unknown += 1
            continue
        if receipt.status is ReceiptStatus.PENDING:
            report.pending += 1
            continue
        if row.delivery_status in ("delivered", "failed"):
            report.repeated += 1
            continue
        attempt_id = latest_attempt(session, row.contact_attempt_id)
        if receipt.status is ReceiptStatus.DELIVERED:
            portfolio = session.get(Portfolio, row.portfolio_id)
            zone = portfolio.timezone if portfolio else DEFAULT_ZONE
            delivered_at = _reported_at(receipt.reported_at, zone, as_utc(at))
            contacts_service.record_delivery(
                session,
                attempt_id=attempt_id,
                delivered_at=delivered_at,
                evidence_ref=f"sms-receipt:{gateway}:{receipt.provider_message_id or receipt.reference}",
            )
            row.delivery_status, row.delivered_at = "delivered", delivered_at
            report.delivered += 1
        else:
            contacts_service.correct_attempt(
                session,
                attempt_id=attempt_id,
                changes={
                    "outcome": Outcome.FAILED,
                    "notes": f"undelivered: {receipt.error_code or 'unknown'}",
                },
            )
            row.delivery_status = "failed"
            report.failed += 1
    session.flush()
    return report
