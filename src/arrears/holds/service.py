"""Holds and disputes on accounts, as `account_flag` rows with every change logged in `hold_event`.

A hold (dispute, cease request, deceased, bankruptcy, complaint under review, legal hold) stops collection
contact on its account until an authorised user (supervisor, compliance, admin) clears it with a reason, or
until its expiry date, when `release_expired_holds` releases it. ``expires_on`` is the first day the hold
no longer applies.

Disputes carry more: a reason code, evidence documents, an outcome (open, upheld, rejected) and, under the
``us-regf`` pack, the US-7 validation period: a written dispute received within it holds collection until
verification is sent (`record_verification_sent`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from pathlib import Path

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from arrears import clock
from arrears.compliance import load_pack
from arrears.compliance.periods import validation_period_ends_on
from arrears.enums import FlagKind
from arrears.errors import Conflict, NotFound, ValidationFailed
from arrears.holds import documents
from arrears.holds.authority import CLEARING_ROLES, get_user, require_role
from arrears.models import Account, AccountFlag, Dispute, Document, HoldEvent, Portfolio

VALIDATION_RULE = "US-7"


class HoldEventKind:
    """What happened to a hold (the ``hold_event.event`` values)."""

    PLACED = "placed"
    CLEARED = "cleared"
    RELEASED = "released"  # at expiry, by the system
    EVIDENCE_ADDED = "evidence_added"
    DISPUTE_RESOLVED = "dispute_resolved"
    VERIFICATION_SENT = "verification_sent"


class DisputeStatus:
    OPEN = "open"
    UPHELD = "upheld"
    REJECTED = "rejected"


def _start_of(day: date) -> datetime:
    return datetime.combine(day, time(0, 0), tzinfo=UTC)


def _log(
    session: Session,
    flag: AccountFlag,
    event: str,
    *,
    at: datetime,
    user_id: int | None = None,
    reason: str | None = None,
) -> HoldEvent:
    row = HoldEvent(
        flag_id=flag.id,
        account_id=flag.account_id,
        case_id=flag.case_id,
        event=event,
        occurred_at=clock.as_utc(at),
        user_id=user_id,
        reason=reason,
    )
    session.add(row)
    return row


def _account(session: Session, account_id: int) -> Account:
    account = session.get(Account, account_id)
    if account is None:
        raise NotFound(f"账户不存在：{account_id} / account {account_id} not found", code="account_not_found")
    return account


def _flag(session: Session, flag_id: int) -> AccountFlag:
    flag = session.get(AccountFlag, flag_id)
    if flag is None:
        raise NotFound(f"标记不存在：{flag_id} / hold {flag_id} not found", code="hold_not_found")
    return flag


def _dispute(session: Session, dispute_id: int) -> Dispute:
    dispute = session.get(Dispute, dispute_id)
    if dispute is None:
        raise NotFound(f"异议不存在：{dispute_id} / dispute {dispute_id} not found", code="dispute_not_found")
    return dispute


def _text(value: str | None, what: str, code: str) -> str:
    if value is None or not value.strip():
        raise ValidationFailed(f"{what}不能为空 / a {code.replace('_', ' ')} is required", code=code)
    return value.strip()


def place_hold(
    session: Session,
    *,
    account_id: int,
    kind: FlagKind | str,
    reason_code: str,
    at: datetime,
    reason: str | None = None,
    expires_on: date | None = None,
    source: str = "manual",
    user_id: int | None = None,
) -> AccountFlag:
    """Put a hold on an account (logged). Any user may place one; only authorised users clear it."""
    kind = FlagKind(kind)
    account = _account(session, account_id)
    reason_code = _text(reason_code, "原因代码", "reason_code")
    if user_id is not None:
        get_user(session, user_id)
    if expires_on is not None and expires_on <= clock.as_utc(at).date():
        raise ValidationFailed("到期日须晚于今天 / the expiry must be after today", code="bad_expiry")
    flag = AccountFlag(
        account_id=account.id,
        case_id=account.case_id,
        kind=kind.value,
        reason_code=reason_code,
        reason=reason,
        source=source,
        expires_on=expires_on,
    )
    session.add(flag)
    session.flush()
    _log(session, flag, HoldEventKind.PLACED, at=at, user_id=user_id, reason=reason or reason_code)
    session.flush()
    return flag


def clear_hold(session: Session, *, flag_id: int, user_id: int, reason: str, at: datetime) -> AccountFlag:
    """Clear a hold: needs a supervisor, compliance officer or admin, and a reason (logged)."""
    reason = _text(reason, "解除原因", "clear_reason")
    require_role(session, user_id=user_id, roles=CLEARING_ROLES, action="解除停催标记 / clear a hold")
    flag = _flag(session, flag_id)
    if flag.cleared_at is not None:
        raise Conflict(
            f"标记已解除：{flag_id} / hold {flag_id} is already cleared", code="hold_already_cleared"
        )
    flag.cleared_at = clock.as_utc(at)
    flag.cleared_by_id = user_id
    flag.clear_reason = reason
    _log(session, flag, HoldEventKind.CLEARED, at=at, user_id=user_id, reason=reason)
    session.flush()
    return flag


def _in_force(as_of: date) -> ColumnElement[bool]:
    return and_(
        AccountFlag.cleared_at.is_(None),
        or_(AccountFlag.expires_on.is_(None), AccountFlag.expires_on > as_of),
    )


def active_holds(
    session: Session,
    *,
    as_of: date,
    account_ids: Iterable[int] | None = None,
    case_id: int | None = None,
) -> list[AccountFlag]:
    """Holds in force on ``as_of`` (not cleared, not expired), for some accounts or a case."""
    query = select(AccountFlag).where(_in_force(as_of))
    if account_ids is not None:
        query = query.where(AccountFlag.account_id.in_(list(account_ids)))
    if case_id is not None:
        query = query.where(AccountFlag.case_id == case_id)
    return list(session.scalars(query.order_by(AccountFlag.id)))


def held_account_ids(
    session: Session, *, as_of: date, account_ids: Iterable[int]
) -> dict[int, set[FlagKind]]:
    """For each of ``account_ids`` with a hold in force on ``as_of``, the kinds of its holds."""
    held: dict[int, set[FlagKind]] = {}
    for flag in active_holds(session, as_of=as_of, account_ids=account_ids):
        held.setdefault(flag.account_id, set()).add(FlagKind(flag.kind))
    return held


def release_expired_holds(
    session: Session, *, as_of: date, at: datetime | None = None, portfolio_id: int | None = None
) -> list[AccountFlag]:
    """Release every uncleared hold whose expiry date has come (``expires_on <= as_of``), each logged.

    Idempotent: a released hold is cleared, so a second run for the same date finds nothing.
    """
    moment = at or _start_of(as_of)
    query = select(AccountFlag).where(
        AccountFlag.cleared_at.is_(None), AccountFlag.expires_on.is_not(None), AccountFlag.expires_on <= as_of
    )
    if portfolio_id is not None:
        query = query.join(Account, Account.id == AccountFlag.account_id).where(
            Account.portfolio_id == portfolio_id
        )
    released = list(session.scalars(query.order_by(AccountFlag.id)))
    for flag in released:
        assert flag.expires_on is not None
        reason = f"到期自动解除 / expired on {flag.expires_on.isoformat()}"
        flag.cleared_at = clock.as_utc(moment)
        flag.clear_reason = reason
        _log(session, flag, HoldEventKind.RELEASED, at=moment, reason=reason)
    session.flush()
    return released


def hold_events(
    session: Session, *, account_id: int | None = None, flag_id: int | None = None
) -> list[HoldEvent]:
    """The hold log, oldest first, for an account or one hold."""
    query = select(HoldEvent)
    if account_id is not None:
        query = query.where(HoldEvent.account_id == account_id)
    if flag_id is not None:
        query = query.where(HoldEvent.flag_id == flag_id)
    return list(session.scalars(query.order_by(HoldEvent.id)))


# --- disputes ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Evidence:
    """A file the debtor sent with a dispute."""

    filename: str
    content: bytes
    media_type: str = "application/octet-stream"


def record_validation_notice(session: Session, *, account_id: int, sent_on: date) -> Account:
    """US-7: the day the validation notice was sent for an account (starts the validation period)."""
    account = _account(session, account_id)
    account.validation_notice_sent_on = sent_on
    session.flush()
    return account


def validation_period_end(session: Session, account: Account) -> date | None:
    """US-7: the last day of the account's validation period, if its pack has one and a notice was sent."""
    portfolio = session.get(Portfolio, account.portfolio_id)
    assert portfolio is not None
    pack = load_pack(portfolio.rule_pack)
    if pack.validation is None or account.validation_notice_sent_on is None:
        return None
    return validation_period_ends_on(account.validation_notice_sent_on, pack)


def _within_validation_period(session: Session, account: Account, received_on: date, written: bool) -> bool:
    portfolio = session.get(Portfolio, account.portfolio_id)
    assert portfolio is not None
    if not written or load_pack(portfolio.rule_pack).validation is None:
        return False
    end = validation_period_end(session, account)
    # No notice sent yet: the period has not even started, so the dispute is in time.
    return end is None or received_on <= end


def open_dispute(
    session: Session,
    *,
    account_id: int,
    reason_code: str,
    received_on: date,
    at: datetime,
    description: str | None = None,
    written: bool = False,
    user_id: int | None = None,
    evidence: Iterable[Evidence] = (),
    document_dir: Path | str | None = None,
) -> Dispute:
    """Record a dispute: a dispute hold on the account, the dispute row and any evidence files.

    Under ``us-regf`` a written dispute within the validation period is marked so (US-7): collection stays
    stopped until verification is sent.
    """
    account = _account(session, account_id)
    within = _within_validation_period(session, account, received_on, written)
    flag = place_hold(
        session,
        account_id=account_id,
        kind=FlagKind.DISPUTE,
        reason_code=reason_code,
        reason=description,
        at=at,
        source="dispute",
        user_id=user_id,
    )
    dispute = Dispute(
        account_id=account.id,
        case_id=account.case_id,
        flag_id=flag.id,
        reason_code=reason_code.strip(),
        description=description,
        received_on=received_on,
        written=written,
        within_validation_period=within,
        status=DisputeStatus.OPEN,
        recorded_by_id=user_id,
    )
    session.add(dispute)
    session.flush()
    for item in evidence:
        add_dispute_evidence(
            session,
            dispute_id=dispute.id,
            filename=item.filename,
            content=item.content,
            media_type=item.media_type,
            at=at,
            user_id=user_id,
            document_dir=document_dir,
        )
    return dispute


def add_dispute_evidence(
    session: Session,
    *,
    dispute_id: int,
    filename: str,
    content: bytes,
    at: datetime,
    media_type: str = "application/octet-stream",
    user_id: int | None = None,
    document_dir: Path | str | None = None,
) -> Document:
    """Store an evidence file for a dispute (SHA-256 recorded) and log it on the dispute's hold."""
    dispute = _dispute(session, dispute_id)
    doc = documents.store_document(
        session,
        content=content,
        filename=filename,
        kind="dispute_evidence",
        media_type=media_type,
        case_id=dispute.case_id,
        account_id=dispute.account_id,
        dispute_id=dispute.id,
        uploaded_by_id=user_id,
        document_dir=document_dir,
    )
    _log(
        session,
        _flag(session, dispute.flag_id),
        HoldEventKind.EVIDENCE_ADDED,
        at=at,
        user_id=user_id,
        reason=f"{doc.filename} sha256:{doc.sha256}",
    )
    session.flush()
    return doc


def dispute_documents(session: Session, *, dispute_id: int) -> list[Document]:
    """Evidence stored for a dispute."""
    return list(
        session.scalars(select(Document).where(Document.dispute_id == dispute_id).order_by(Document.id))
    )


def resolve_dispute(
    session: Session, *, dispute_id: int, outcome: str, resolution: str, user_id: int, at: datetime
) -> Dispute:
    """Decide a dispute (upheld or rejected) with a written resolution; needs an authorised user.

    A rejected dispute clears its hold (collection may resume). An upheld one keeps the hold: the account
    must be corrected first, and clearing it is a separate, logged decision.
    """
    if outcome not in (DisputeStatus.UPHELD, DisputeStatus.REJECTED):
        raise ValidationFailed(
            f"结果须为 upheld 或 rejected / outcome must be upheld or rejected, got {outcome!r}",
            code="bad_dispute_outcome",
        )
    resolution = _text(resolution, "处理结果说明", "resolution")
    require_role(session, user_id=user_id, roles=CLEARING_ROLES, action="处理异议 / resolve a dispute")
    dispute = _dispute(session, dispute_id)
    if dispute.status != DisputeStatus.OPEN:
        raise Conflict(
            f"异议已处理：{dispute_id} / dispute {dispute_id} is already {dispute.status}",
            code="dispute_closed",
        )
    if (
        outcome == DisputeStatus.REJECTED
        and dispute.within_validation_period
        and dispute.verification_sent_on is None
    ):
        raise Conflict(
            "验证材料寄出前不得驳回验证期内的书面异议 / send verification before rejecting a dispute made "
            f"within the validation period ({VALIDATION_RULE})",
            code="verification_required",
            details={"rule_ids": [VALIDATION_RULE]},
        )
    dispute.status = outcome
    dispute.resolution = resolution
    dispute.resolved_at = clock.as_utc(at)
    dispute.resolved_by_id = user_id
    flag = _flag(session, dispute.flag_id)
    _log(
        session,
        flag,
        HoldEventKind.DISPUTE_RESOLVED,
        at=at,
        user_id=user_id,
        reason=f"{outcome}: {resolution}",
    )
    session.flush()
    if outcome == DisputeStatus.REJECTED and flag.cleared_at is None:
        clear_hold(
            session,
            flag_id=flag.id,
            user_id=user_id,
            reason=f"异议驳回 / dispute rejected: {resolution}",
            at=at,
        )
    return dispute


def record_verification_sent(
    session: Session, *, dispute_id: int, sent_on: date, user_id: int, at: datetime
) -> Dispute:
    """US-7: verification of the debt was sent; a validation-period dispute's hold ends (logged)."""
    require_role(
        session, user_id=user_id, roles=CLEARING_ROLES, action="登记验证材料寄送 / record verification"
    )
    dispute = _dispute(session, dispute_id)
    if dispute.verification_sent_on is not None:
        raise Conflict("验证材料已登记 / verification was already recorded", code="verification_already_sent")
    dispute.verification_sent_on = sent_on
    flag = _flag(session, dispute.flag_id)
    _log(
        session,
        flag,
        HoldEventKind.VERIFICATION_SENT,
        at=at,
        user_id=user_id,
        reason=f"sent {sent_on.isoformat()}",
    )
    session.flush()
    if dispute.within_validation_period and flag.cleared_at is None:
        clear_hold(
            session,
            flag_id=flag.id,
            user_id=user_id,
            reason=f"已寄出验证材料 / verification sent on {sent_on.isoformat()} ({VALIDATION_RULE})",
            at=at,
        )
    return dispute


def validation_dispute_pending(session: Session, *, account_id: int) -> bool:
    """US-7: a written dispute in the validation period is waiting for verification (for the gate)."""
    return (
        session.scalar(
            select(Dispute.id).where(
                Dispute.account_id == account_id,
                Dispute.within_validation_period.is_(True),
                Dispute.verification_sent_on.is_(None),
            )
        )
        is not None
    )
