"""The access rules applied to a request: the facts ``users/access.py`` needs, gathered from the database.

The pages (``web/routes.py``) and every API router call these same functions, so the two doors never
disagree about who may open which case (invariant 6). A refusal is ``Forbidden`` (403, code
``not_your_case``); a case that does not exist is ``NotFound`` (404). Services flush, never commit.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from arrears import clock
from arrears.agencies import service as agencies_service
from arrears.enums import Role
from arrears.errors import Forbidden, NotFound, ValidationFailed
from arrears.models import (
    Account,
    AccountFlag,
    Agency,
    AppUser,
    Arrangement,
    Case,
    CollectorProfile,
    ContactAttempt,
    Debtor,
    Dispute,
    Document,
    LegalCase,
    Payment,
    WorkItem,
)
from arrears.users import access

NOT_YOURS = "无权查看该案件 / you may not open this case"


@dataclass(frozen=True, slots=True)
class CaseAccess:
    """What a user may do with one case today."""

    case: Case
    read: bool
    work: bool
    reveal: bool


def team_of(session: Session, *, user_id: int) -> frozenset[int]:
    """The collectors who share a work queue with ``user_id`` (their team), the user included."""
    profiles = list(session.scalars(select(CollectorProfile).where(CollectorProfile.active.is_(True))))
    mine = next((p for p in profiles if p.user_id == user_id), None)
    if mine is None or not mine.queues:
        return frozenset({user_id})
    queues = set(mine.queues)
    return frozenset({user_id} | {p.user_id for p in profiles if queues.intersection(p.queues or [])})


def today() -> date:
    """The date placements are judged on (the default zone's today)."""
    return clock.today()


def case_access(session: Session, *, user: AppUser, case: Case, on: date | None = None) -> CaseAccess:
    """Whether ``user`` may read, work and reveal on ``case`` on ``on`` (default: today)."""
    placed_agency_id: int | None = None
    team: frozenset[int] = frozenset()
    if user.role == Role.AGENCY:
        placement = agencies_service.active_placement(session, case_id=case.id, as_of=on or today())
        placed_agency_id = placement.agency_id if placement is not None else None
    elif user.role == Role.COLLECTOR and case.assignee_id not in (None, user.id):
        team = team_of(session, user_id=user.id)
    read = access.may_read_case(
        role=user.role,
        user_id=user.id,
        assignee_id=case.assignee_id,
        team_ids=team,
        user_agency_id=user.agency_id,
        placed_agency_id=placed_agency_id,
    )
    work = access.may_work_case(
        role=user.role,
        user_id=user.id,
        assignee_id=case.assignee_id,
        user_agency_id=user.agency_id,
        placed_agency_id=placed_agency_id,
    )
    return CaseAccess(
        case=case, read=read, work=work, reveal=access.may_reveal(role=user.role, may_work=work)
    )


def require_case(
    session: Session, *, user: AppUser, case_id: int, work: bool = False, message: str = NOT_YOURS
) -> Case:
    """The case, if ``user`` may read it (or work it); NotFound or Forbidden otherwise."""
    case = session.get(Case, case_id)
    if case is None:
        raise NotFound(f"案件不存在：{case_id} / case {case_id} not found", code="case_not_found")
    allowed = case_access(session, user=user, case=case)
    if not (allowed.work if work else allowed.read):
        raise Forbidden(message, code="not_your_case")
    return case


def require_account(session: Session, *, user: AppUser, account_id: int, work: bool = False) -> Account:
    """The account, if ``user`` may read (or work) its case."""
    account = session.get(Account, account_id)
    if account is None:
        raise NotFound(f"账户不存在：{account_id} / account {account_id} not found", code="account_not_found")
    require_case(session, user=user, case_id=account.case_id, work=work)
    return account


def require_accounts(session: Session, *, user: AppUser, account_ids: list[int], work: bool = False) -> None:
    """Every account named, if ``user`` may read (or work) each one's case."""
    for account_id in dict.fromkeys(account_ids):
        require_account(session, user=user, account_id=account_id, work=work)


def require_debtor(session: Session, *, user: AppUser, debtor_id: int, work: bool = False) -> Debtor:
    """The debtor, if ``user`` may read (or work) at least one of the debtor's cases."""
    debtor = session.get(Debtor, debtor_id)
    if debtor is None:
        raise NotFound(f"债务人不存在：{debtor_id} / debtor {debtor_id} not found", code="debtor_not_found")
    if access.has_role(user.role, access.READ_ALL) and not work:
        return debtor
    case_ids = session.scalars(select(Account.case_id).where(Account.debtor_id == debtor_id).distinct())
    for case_id in case_ids:
        case = session.get(Case, case_id)
        if case is None:
            continue
        allowed = case_access(session, user=user, case=case)
        if allowed.work if work else allowed.read:
            return debtor
    raise Forbidden(NOT_YOURS, code="not_your_case")


def require_role(user: AppUser, allowed: frozenset[Role]) -> None:
    """Forbidden unless the user's role is one of ``allowed``."""
    if not access.has_role(user.role, allowed):
        names = ", ".join(sorted(r.value for r in allowed))
        raise Forbidden(
            f"角色 {user.role} 无权执行此操作（需要：{names}） / role {user.role} may not do this (needs {names})",
            code="role_forbidden",
        )


def case_id_of(session: Session, *, kind: str, subject_id: int) -> int:
    """The case a dispute, plan, legal case, payment, document, hold, attempt or work item belongs to."""
    if kind == "dispute":
        dispute = session.get(Dispute, subject_id)
        if dispute is None:
            raise NotFound(
                f"异议不存在：{subject_id} / dispute {subject_id} not found", code="dispute_not_found"
            )
        return dispute.case_id
    if kind == "arrangement":
        plan = session.get(Arrangement, subject_id)
        if plan is None:
            raise NotFound(
                f"还款安排不存在：{subject_id} / arrangement {subject_id} not found",
                code="arrangement_not_found",
            )
        return plan.case_id
    if kind == "legal_case":
        legal = session.get(LegalCase, subject_id)
        if legal is None:
            raise NotFound(
                f"法律案件不存在：{subject_id} / legal case {subject_id} not found",
                code="legal_case_not_found",
            )
        return legal.case_id
    if kind == "payment":
        payment = session.get(Payment, subject_id)
        if payment is None or payment.account_id is None:
            raise NotFound(f"payment {subject_id} not found", code="payment_not_found")
        account = session.get(Account, payment.account_id)
        if account is None:
            raise NotFound(f"payment {subject_id} not found", code="payment_not_found")
        return account.case_id
    if kind == "document":
        doc = session.get(Document, subject_id)
        if doc is None:
            raise NotFound(f"document {subject_id} not found", code="document_not_found")
        return _document_case(session, doc)
    if kind == "hold":
        flag = session.get(AccountFlag, subject_id)
        if flag is None:
            raise NotFound(f"hold {subject_id} not found", code="hold_not_found")
        account = session.get(Account, flag.account_id)
        if account is None:
            raise NotFound(f"hold {subject_id} not found", code="hold_not_found")
        return account.case_id
    if kind == "contact_attempt":
        attempt = session.get(ContactAttempt, subject_id)
        if attempt is None:
            raise NotFound(f"contact attempt {subject_id} not found", code="attempt_not_found")
        return attempt.case_id
    if kind == "work_item":
        item = session.get(WorkItem, subject_id)
        if item is None:
            raise NotFound(f"work item {subject_id} not found", code="work_item_not_found")
        return item.case_id
    raise ValueError(kind)


def _document_case(session: Session, doc: Document) -> int:
    if doc.case_id is not None:
        return doc.case_id
    if doc.account_id is not None:
        account = session.get(Account, doc.account_id)
        if account is not None:
            return account.case_id
    if doc.dispute_id is not None:
        return case_id_of(session, kind="dispute", subject_id=doc.dispute_id)
    if doc.legal_case_id is not None:
        return case_id_of(session, kind="legal_case", subject_id=doc.legal_case_id)
    raise NotFound(f"document {doc.id} not found", code="document_not_found")


def require_subject(
    session: Session, *, user: AppUser, kind: str, subject_id: int, work: bool = False
) -> Case:
    """The case behind a subject row, if ``user`` may read (or work) it."""
    return require_case(
        session, user=user, case_id=case_id_of(session, kind=kind, subject_id=subject_id), work=work
    )


# ------------------------------------------------------------------------------------- sign-in networks


def network_allowed(allowlist: list[str], ip: str | None) -> bool:
    """Whether ``ip`` falls in one of the networks (CIDR or single addresses); an empty list allows all."""
    if not allowlist:
        return True
    if not ip:
        return False
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return False
    for entry in allowlist:
        try:
            if address in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            continue
    return False


class NetworkRefused(Forbidden):
    """An agency user signing in (or using a token) from outside the agency's allowed networks."""

    default_code = "network_refused"


def check_network(session: Session, *, user: AppUser, ip: str | None) -> None:
    """Refuse an agency user outside their agency's login IP allow-list (pages at sign-in, API on use)."""
    if user.agency_id is None:
        return
    agency = session.get(Agency, user.agency_id)
    if agency is None or not agency.active:
        raise NetworkRefused("所属机构已停用 / the user's agency is not active")
    if not network_allowed(list(agency.login_ip_allowlist or []), ip):
        raise NetworkRefused(
            f"不允许从该网络登录：{ip} / signing in from {ip} is not allowed for this agency",
            details={"ip": ip},
        )


# ---------------------------------------------------------------------------------------------- reveal


REVEALABLE = ("national_id", "address", "contact_point", "bank_account")


@dataclass(frozen=True, slots=True)
class Revealed:
    value: str
    log_id: int
    kind: str  # what was shown: national_id, address, bank_account, or the contact point's kind


def reveal(
    session: Session,
    *,
    user: AppUser,
    debtor_id: int,
    field: str,
    reason: str,
    at: datetime,
    contact_point_id: int | None = None,
    account_id: int | None = None,
    case_id: int | None = None,
    ip: str | None = None,
) -> Revealed:
    """A masked field in clear, for a user who may reveal it; the reveal and its reason are logged (PI-6).

    ``contact_point`` names one of the debtor's contact points (``contact_point_id``), ``bank_account`` one
    of the debtor's accounts (``account_id``; the user must be allowed to reveal on that account's case).
    ``case_id`` (the page the person is on) must be one of the debtor's cases the user may work. A field
    that holds nothing (no address, an account without a bank account) is refused (``nothing_to_reveal``)
    and not logged.
    """
    from arrears.models import ContactPoint
    from arrears.users import service as users_service

    reason = reason.strip()
    if len(reason) < 3:
        raise ValidationFailed("请写明查看原因 / give a reason for the reveal", code="reason_required")
    if field not in REVEALABLE:
        raise ValidationFailed(f"不可查看的字段：{field} / {field!r} cannot be revealed", code="bad_field")
    debtor = require_debtor(session, user=user, debtor_id=debtor_id)
    account: Account | None = None
    if field == "bank_account":
        account = session.get(Account, account_id) if account_id is not None else None
        if account is None or account.debtor_id != debtor_id or case_id not in (None, account.case_id):
            raise NotFound(
                f"账户不存在：{account_id} / account {account_id} not found", code="account_not_found"
            )
        case_id = account.case_id  # a bank account is revealed on its own account's case
    cases = (
        [case_id]
        if case_id is not None
        else list(session.scalars(select(Account.case_id).where(Account.debtor_id == debtor_id).distinct()))
    )
    allowed_case: int | None = None
    for cid in cases:
        case = session.get(Case, cid)
        if (
            case is not None
            and case.debtor_id == debtor_id
            and case_access(session, user=user, case=case).reveal
        ):
            allowed_case = case.id
            break
    if allowed_case is None:
        raise Forbidden(
            "无权查看完整信息 / you may not reveal this debtor's masked fields", code="reveal_forbidden"
        )
    value: str | None
    kind = field
    if field == "national_id":
        value = debtor.national_id
    elif field == "address":
        value = debtor.address
    elif account is not None:
        value = account.bank_account
        field = f"bank_account:{account.id}"
    else:
        point = session.get(ContactPoint, contact_point_id) if contact_point_id is not None else None
        if point is None or point.debtor_id != debtor_id:
            raise NotFound(
                f"联系方式不存在：{contact_point_id} / contact point {contact_point_id} not found",
                code="contact_point_not_found",
            )
        value = point.value
        kind = point.kind
        field = f"contact_point:{point.id}"
    if not value:
        # nothing is recorded there: nothing to show, so nothing is logged as revealed
        raise NotFound(
            "该字段没有记录，无可查看 / nothing is recorded in that field to reveal", code="nothing_to_reveal"
        )
    log_id = users_service.log_access(
        session,
        user_id=user.id,
        debtor_id=debtor_id,
        case_id=allowed_case,
        at=at,
        action=f"reveal_{field}"[:32],
        ip=ip,
        reason=reason,
    )
    return Revealed(value=value, log_id=log_id, kind=kind)
