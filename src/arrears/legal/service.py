"""Legal cases, stored: referral (checked and approved), milestones with dates and documents, costs, and
the lawyer's letter as a PDF sent in the law firm's name.

Referral is refused for time-barred accounts (CN-22 / US-8) and for accounts with a dispute, bankruptcy or
deceased hold (`milestones.can_refer`). Whether an account is time-barred is computed live from the contact
record and due dates by the compliance module at the referral date; callers may name more time-barred
accounts (``time_barred_account_ids``), for example from evidence the system does not hold.

Costs are posted to the ledger as ``costs`` (a ``charge``) when they are recorded; a correction reverses
the posting and records the right amount as a new cost.
"""

from __future__ import annotations

import tomllib
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from arrears import clock
from arrears.channels import letters
from arrears.channels.templates import (
    MessageTemplate,
    TemplateKind,
    default_context,
    resolve_locale,
    validate_parts,
)
from arrears.compliance import lint_text, load_pack
from arrears.compliance import service as compliance_service
from arrears.compliance.schemas import TemplateKind as LintKind
from arrears.enums import Channel, Component, FlagKind
from arrears.errors import ComplianceBlocked, ConfigurationError, Conflict, NotFound, ValidationFailed
from arrears.holds import documents
from arrears.holds import service as holds_service
from arrears.holds.authority import APPROVING_ROLES, get_user, require_role
from arrears.legal.milestones import (
    AccountLegalState,
    LegalCaseKind,
    Milestone,
    ReferralDecision,
    can_refer,
    require_transition,
)
from arrears.models import (
    Account,
    Approval,
    Creditor,
    Debtor,
    Document,
    LegalCase,
    LegalCaseAccount,
    LegalCost,
    LegalMilestone,
    Portfolio,
)
from arrears.money import format_minor


class LegalStatus:
    PENDING_APPROVAL = "pending_approval"
    APPROVED = "approved"
    REJECTED = "rejected"
    CLOSED = "closed"


@cache
def _letter_settings() -> dict[str, Any]:
    text = resources.files("arrears.legal").joinpath("letters.toml").read_text(encoding="utf-8")
    return tomllib.loads(text)


def _accounts(session: Session, account_ids: Sequence[int]) -> list[Account]:
    ids = list(dict.fromkeys(account_ids))
    if not ids:
        raise ValidationFailed("至少需要一个账户 / at least one account is needed", code="no_accounts")
    accounts = list(session.scalars(select(Account).where(Account.id.in_(ids)).order_by(Account.id)))
    missing = set(ids) - {a.id for a in accounts}
    if missing:
        raise NotFound(f"账户不存在 / accounts not found: {sorted(missing)}", code="account_not_found")
    if len({a.case_id for a in accounts}) > 1:
        raise ValidationFailed(
            "一个法务案件只能包含同一案件的账户 / a legal case covers accounts of one case only",
            code="accounts_in_several_cases",
        )
    return accounts


def referral_check(
    session: Session, *, accounts: Sequence[Account], as_of: date, time_barred_account_ids: Collection[int]
) -> ReferralDecision:
    """Whether these accounts may go to legal action on ``as_of`` (holds in force, time-barred ids)."""
    held = holds_service.held_account_ids(session, as_of=as_of, account_ids=[a.id for a in accounts])
    portfolio = session.get(Portfolio, accounts[0].portfolio_id)
    assert portfolio is not None
    live = compliance_service.limitations(
        session, scope=compliance_service.AccountScope(account_ids=tuple(a.id for a in accounts)), as_of=as_of
    )
    time_barred_account_ids = set(time_barred_account_ids) | {i for i, r in live.items() if r.time_barred}
    states = [
        AccountLegalState(
            account_ref=a.external_ref,
            currency=a.currency,
            time_barred=a.id in time_barred_account_ids,
            flags=frozenset(held.get(a.id, set())),
        )
        for a in accounts
    ]
    return can_refer(states, rule_pack=portfolio.rule_pack)


def _refuse(decision: ReferralDecision) -> None:
    if decision.ok:
        return
    raise ComplianceBlocked(
        "不得移交法务 / referral refused: " + "; ".join(r.message_en for r in decision.reasons),
        code="referral_refused",
        details={
            "rule_ids": list(decision.rule_ids),
            "reasons": [
                {
                    "account": r.account_ref,
                    "code": r.code,
                    "rule_ids": list(r.rule_ids),
                    "message_zh": r.message_zh,
                    "message_en": r.message_en,
                }
                for r in decision.reasons
            ],
        },
    )


def refer_to_legal(
    session: Session,
    *,
    account_ids: Sequence[int],
    kind: LegalCaseKind | str,
    referred_by_id: int,
    referred_on: date,
    law_firm_name: str,
    law_firm_address: str | None = None,
    law_firm_phone: str | None = None,
    lawyer_name: str | None = None,
    body: str | None = None,
    time_barred_account_ids: Collection[int] = frozenset(),
) -> LegalCase:
    """Propose legal action on some accounts of one case; it waits for a supervisor's approval.

    Refused (ComplianceBlocked, with rule ids) for time-barred accounts and accounts with a dispute,
    bankruptcy or deceased hold in force.
    """
    kind = LegalCaseKind(kind)
    if not law_firm_name or not law_firm_name.strip():
        raise ValidationFailed("须指定受托律师事务所 / a law firm is required", code="law_firm_required")
    get_user(session, referred_by_id)
    accounts = _accounts(session, account_ids)
    _refuse(
        referral_check(
            session, accounts=accounts, as_of=referred_on, time_barred_account_ids=time_barred_account_ids
        )
    )
    legal = LegalCase(
        portfolio_id=accounts[0].portfolio_id,
        case_id=accounts[0].case_id,
        kind=kind.value,
        status=LegalStatus.PENDING_APPROVAL,
        body=body,
        law_firm_name=law_firm_name.strip(),
        law_firm_address=law_firm_address,
        law_firm_phone=law_firm_phone,
        lawyer_name=lawyer_name,
        referred_on=referred_on,
        referred_by_id=referred_by_id,
    )
    legal.accounts = [LegalCaseAccount(account_id=a.id) for a in accounts]
    session.add(legal)
    session.flush()
    return legal


def get_legal_case(session: Session, *, legal_case_id: int) -> LegalCase:
    """A legal case, or NotFound."""
    legal = session.get(LegalCase, legal_case_id)
    if legal is None:
        raise NotFound(
            f"法务案件不存在：{legal_case_id} / legal case {legal_case_id} not found",
            code="legal_case_not_found",
        )
    return legal


def legal_accounts(session: Session, legal: LegalCase) -> list[Account]:
    """The accounts of a legal case."""
    ids = [link.account_id for link in legal.accounts]
    return list(session.scalars(select(Account).where(Account.id.in_(ids)).order_by(Account.id)))


def decide_referral(
    session: Session,
    *,
    legal_case_id: int,
    user_id: int,
    approve: bool,
    at: datetime,
    reason: str | None = None,
    time_barred_account_ids: Collection[int] = frozenset(),
) -> LegalCase:
    """A supervisor approves (re-checked at that moment) or rejects a referral; the decision is recorded.

    An approved case starts at its first milestone (``prepared``) on the approval date.
    """
    require_role(
        session, user_id=user_id, roles=APPROVING_ROLES, action="审批法务移交 / decide a legal referral"
    )
    legal = get_legal_case(session, legal_case_id=legal_case_id)
    if legal.status != LegalStatus.PENDING_APPROVAL:
        raise Conflict(
            f"法务案件状态为 {legal.status} / legal case is {legal.status}, not pending approval",
            code="not_pending_approval",
        )
    if not approve and not (reason and reason.strip()):
        raise ValidationFailed("驳回须说明原因 / a rejection needs a reason", code="reason_required")
    moment = clock.as_utc(at)
    if approve:
        _refuse(
            referral_check(
                session,
                accounts=legal_accounts(session, legal),
                as_of=moment.date(),
                time_barred_account_ids=time_barred_account_ids,
            )
        )
    session.add(
        Approval(
            subject_kind="legal_case",
            subject_id=legal.id,
            user_id=user_id,
            decided_at=moment,
            decision="approved" if approve else "rejected",
            reason=reason,
        )
    )
    if approve:
        legal.status = LegalStatus.APPROVED
        legal.approved_by_id = user_id
        legal.approved_at = moment
        session.flush()
        record_milestone(
            session,
            legal_case_id=legal.id,
            milestone=Milestone.PREPARED,
            occurred_on=moment.date(),
            user_id=user_id,
        )
    else:
        legal.status = LegalStatus.REJECTED
    session.flush()
    return legal


def record_milestone(
    session: Session,
    *,
    legal_case_id: int,
    milestone: Milestone | str,
    occurred_on: date,
    document_id: int | None = None,
    note: str | None = None,
    user_id: int | None = None,
    case_number: str | None = None,
    body: str | None = None,
) -> LegalMilestone:
    """Move an approved legal case to its next milestone (order from ``milestones.toml``), with history."""
    milestone = Milestone(milestone)
    legal = get_legal_case(session, legal_case_id=legal_case_id)
    if legal.status not in (LegalStatus.APPROVED,):
        raise Conflict(
            f"法务案件未获批准或已结束（{legal.status}） / legal case is {legal.status}",
            code="legal_case_not_open",
        )
    current = Milestone(legal.milestone) if legal.milestone else None
    require_transition(LegalCaseKind(legal.kind), current, milestone)
    if legal.milestones and occurred_on < legal.milestones[-1].occurred_on:
        raise ValidationFailed(
            "节点日期不得早于上一节点 / a milestone cannot be dated before the previous one",
            code="milestone_date",
        )
    if document_id is not None and session.get(Document, document_id) is None:
        raise NotFound(
            f"文件不存在：{document_id} / document {document_id} not found", code="document_not_found"
        )
    row = LegalMilestone(
        milestone=milestone.value,
        occurred_on=occurred_on,
        document_id=document_id,
        note=note,
        recorded_by_id=user_id,
    )
    legal.milestones.append(row)
    legal.milestone = milestone.value
    if case_number:
        legal.case_number = case_number
    if body:
        legal.body = body
    if milestone is Milestone.CLOSED:
        legal.status = LegalStatus.CLOSED
    session.flush()
    return row


COST_RULE = "legal_cost"


def _cost_rule(cost_id: int) -> str:
    return f"{COST_RULE}:{cost_id}"


def add_cost(
    session: Session,
    *,
    legal_case_id: int,
    account_id: int,
    description: str,
    costs_minor: int,
    incurred_on: date,
    user_id: int | None = None,
) -> LegalCost:
    """Record a cost of enforcing the claim (court fee, lawyer's fee) on one of the case's accounts and post
    it to the ledger at once: a ``charge`` on the ``costs`` component dated ``incurred_on`` with rule id
    ``legal_cost:<id>``. A payment then meets it first (CN-28: costs, interest, fees, principal)."""
    legal = get_legal_case(session, legal_case_id=legal_case_id)
    if costs_minor <= 0:
        raise ValidationFailed("费用须为正数 / a cost must be positive", code="bad_cost")
    if not description or not description.strip():
        raise ValidationFailed(
            "须说明费用内容 / a cost needs a description", code="cost_description_required"
        )
    if legal.status not in (LegalStatus.PENDING_APPROVAL, LegalStatus.APPROVED):
        raise Conflict(
            f"法务案件已结束（{legal.status}） / legal case is {legal.status}", code="legal_case_not_open"
        )
    if account_id not in {link.account_id for link in legal.accounts}:
        raise ValidationFailed(
            "账户不属于该法务案件 / the account is not part of this legal case",
            code="account_not_in_legal_case",
        )
    if user_id is not None:
        get_user(session, user_id)
    account = session.get(Account, account_id)
    assert account is not None
    cost = LegalCost(
        account_id=account_id,
        description=description.strip(),
        costs_minor=costs_minor,
        currency=account.currency,
        incurred_on=incurred_on,
        posted=False,
        recorded_by_id=user_id,
    )
    legal.costs.append(cost)
    session.flush()
    _post_cost(session, legal, cost)
    return cost


def _post_cost(session: Session, legal: LegalCase, cost: LegalCost) -> None:
    from arrears.ledger import postings as core
    from arrears.ledger import service as ledger_service

    [row] = ledger_service.post_adjustments(
        session,
        portfolio_id=legal.portfolio_id,
        postings=[
            core.Posting(
                account_id=cost.account_id,
                component=Component.COSTS,
                amount_minor=cost.costs_minor,
                kind=core.PostingKind.CHARGE,
                effective_date=cost.incurred_on,
                rule_id=_cost_rule(cost.id),
            )
        ],
    )
    cost.posted, cost.posting_id = True, row.id
    session.flush()


def post_unposted_costs(session: Session, *, portfolio_id: int | None = None) -> list[LegalCost]:
    """Post every legal cost recorded before costs were posted on entry (kept for older data); once each."""
    out = []
    for cost in unposted_costs(session, portfolio_id=portfolio_id):
        if cost.reversed_on is not None:
            continue
        _post_cost(session, get_legal_case(session, legal_case_id=cost.legal_case_id), cost)
        out.append(cost)
    return out


def _get_cost(session: Session, cost_id: int) -> LegalCost:
    cost = session.get(LegalCost, cost_id)
    if cost is None:
        raise NotFound(f"费用不存在：{cost_id} / legal cost {cost_id} not found", code="legal_cost_not_found")
    return cost


def reverse_cost(
    session: Session,
    *,
    cost_id: int,
    reversed_on: date,
    reason: str,
    user_id: int | None = None,
) -> LegalCost:
    """Undo a legal cost recorded in error: a reversal of its ``costs`` posting, with the reason.

    Refused (Conflict) when the cost is already reversed, or when payments have already met it (reverse
    those payments first: the costs balance would turn negative).
    """
    from arrears.ledger import service as ledger_service
    from arrears.ledger.postings import reverse

    cost = _get_cost(session, cost_id)
    if not reason or not reason.strip():
        raise ValidationFailed("冲正须说明原因 / a reversal needs a reason", code="reason_required")
    if cost.reversed_on is not None:
        raise Conflict(
            f"费用 {cost_id} 已冲正 / legal cost {cost_id} is already reversed", code="already_reversed"
        )
    if user_id is not None:
        get_user(session, user_id)
    if cost.posted and cost.posting_id is not None:
        if reversed_on < cost.incurred_on:
            raise ValidationFailed(
                "冲正日期早于费用日期 / a reversal cannot predate the cost", code="bad_reversal_date"
            )
        legal = get_legal_case(session, legal_case_id=cost.legal_case_id)
        ledger = ledger_service.account_postings(session, account_ids=[cost.account_id])
        [target] = [p for p in ledger if p.id == cost.posting_id]
        try:
            reversal = reverse(
                target, ledger=ledger, effective_date=reversed_on, rule_id=f"reversal:{_cost_rule(cost.id)}"
            )
        except Conflict as exc:
            if exc.code != "negative_balance":
                raise
            raise Conflict(
                f"费用 {cost_id} 已有还款冲抵，请先冲正相关还款 / legal cost {cost_id} is already (partly) paid; "
                "reverse those payments first",
                code="cost_already_paid",
            ) from exc
        ledger_service.post_adjustments(session, portfolio_id=legal.portfolio_id, postings=reversal)
    cost.reversed_on, cost.reversal_reason = reversed_on, reason.strip()
    session.flush()
    return cost


def correct_cost(
    session: Session,
    *,
    cost_id: int,
    costs_minor: int,
    corrected_on: date,
    reason: str,
    description: str | None = None,
    user_id: int | None = None,
) -> LegalCost:
    """Correct a legal cost's amount: the old posting is reversed and the right amount recorded as a new
    cost (same account and date); both stay on the record. Returns the new cost."""
    cost = _get_cost(session, cost_id)
    reverse_cost(session, cost_id=cost_id, reversed_on=corrected_on, reason=reason, user_id=user_id)
    legal = get_legal_case(session, legal_case_id=cost.legal_case_id)
    return add_cost(
        session,
        legal_case_id=legal.id,
        account_id=cost.account_id,
        description=description or cost.description,
        costs_minor=costs_minor,
        incurred_on=cost.incurred_on,
        user_id=user_id,
    )


def unposted_costs(session: Session, *, portfolio_id: int | None = None) -> list[LegalCost]:
    """Legal costs the ledger has not posted as ``costs`` (recorded before costs were posted on entry)."""
    query = select(LegalCost).where(LegalCost.posted.is_(False))
    if portfolio_id is not None:
        query = query.join(LegalCase, LegalCase.id == LegalCost.legal_case_id).where(
            LegalCase.portfolio_id == portfolio_id
        )
    return list(session.scalars(query.order_by(LegalCost.id)))


# --- the lawyer's letter -------------------------------------------------------------------------------


def lawyer_letter_template(locale: str | None = None) -> MessageTemplate:
    """The shipped lawyer's letter template (``legal/templates/<locale>/``), linted before use."""
    loc = resolve_locale(locale)
    folder = resources.files("arrears.legal").joinpath("templates", loc)
    parts = {
        part: folder.joinpath(f"lawyer_letter.{part}.txt").read_text(encoding="utf-8")
        for part in ("title", "body")
    }
    problems = validate_parts(parts, Channel.LAWYER_LETTER, TemplateKind.LEGAL)
    if problems:
        raise ConfigurationError(
            "律师函模板不合规 / the lawyer's letter template fails its checks: "
            + "; ".join(p.message for p in problems),
            code="bad_lawyer_letter_template",
        )
    return MessageTemplate(
        id="lawyer_letter", channel=Channel.LAWYER_LETTER, kind=TemplateKind.LEGAL, locale=loc, parts=parts
    )


@dataclass(frozen=True, slots=True)
class GeneratedLetter:
    """A lawyer's letter as stored: the document row and the PDF bytes."""

    document: Document
    pdf: bytes


def lawyer_letter(
    session: Session,
    *,
    legal_case_id: int,
    letter_date: date,
    user_id: int | None = None,
    locale: str | None = None,
    document_dir: Path | str | None = None,
) -> GeneratedLetter:
    """Render the lawyer's letter of an approved legal case as a PDF and store it as a document.

    The law firm is the sender (header and closing): CN-5 forbids anyone else posing as a lawyer. The
    text is checked against the rule pack's forbidden phrases (CN-6) before it is printed, and refused for
    a time-barred or disputed account by the same check as the referral.
    """
    legal = get_legal_case(session, legal_case_id=legal_case_id)
    if legal.status != LegalStatus.APPROVED:
        raise Conflict(
            f"法务案件未获批准（{legal.status}） / legal case is {legal.status}, not approved",
            code="legal_case_not_approved",
        )
    accounts = legal_accounts(session, legal)
    _refuse(
        referral_check(session, accounts=accounts, as_of=letter_date, time_barred_account_ids=frozenset())
    )
    portfolio = session.get(Portfolio, legal.portfolio_id)
    assert portfolio is not None
    creditor = session.get(Creditor, portfolio.creditor_id)
    debtor = session.get(Debtor, accounts[0].debtor_id)
    assert creditor is not None and debtor is not None
    loc = resolve_locale(locale or portfolio.locale)
    template = lawyer_letter_template(loc)
    # CN-5: the sender is the law firm, never the creditor or an agency posing as one. An address or
    # phone the referral left blank is printed nowhere, neither in the header nor in the closing.
    firm = letters.Institution(
        name=legal.law_firm_name,
        address=(legal.law_firm_address or "").strip(),
        phone=(legal.law_firm_phone or "").strip(),
    )
    currency = accounts[0].currency
    due_on = min(a.due_date for a in accounts)
    response_on = letter_date + timedelta(days=int(_letter_settings()["response_days"]))
    context = {
        **default_context(loc),
        "debtor_name": debtor.name,
        "law_firm_name": legal.law_firm_name,
        "law_firm_address": firm.address,
        "law_firm_phone": firm.phone,
        "lawyer_name": (legal.lawyer_name or "").strip(),
        "creditor_name": creditor.name,
        "institution_name": creditor.name,
        "institution_phone": creditor.phone or "",
        "institution_address": creditor.address or "",
        "account_reference": "、".join(a.external_ref for a in accounts)
        if loc == "zh_CN"
        else ", ".join(a.external_ref for a in accounts),
        "letter_date": letters.format_letter_date(letter_date, loc),
        "balance": format_minor(sum(a.balance_minor for a in accounts), currency, loc),
        "amount_due": format_minor(sum(a.overdue_amount_minor for a in accounts), currency, loc),
        "due_date": letters.format_letter_date(due_on, loc),
        "overdue_days": str(max(0, (letter_date - due_on).days)),
        "response_deadline": letters.format_letter_date(response_on, loc),
        **_letter_settings()["texts"][loc],
    }
    reference = f"LC-{legal.id}"
    letter = letters.letter_from_template(
        template,
        context,
        letter_id=f"{reference}-{letter_date.isoformat()}",
        case_reference=reference,
        letter_date=letter_date,
        recipient_name=debtor.name,
        recipient_address=debtor.address or "",
        institution=firm,
    )
    linted = lint_text(
        f"{letter.title}\n{letter.body}",
        pack=load_pack(portfolio.rule_pack),
        kind=LintKind.LAWYER_LETTER,
        locale=loc,
        channel=Channel.LAWYER_LETTER,
    )
    if not linted.ok:
        raise ComplianceBlocked(
            "律师函内容不合规 / the lawyer's letter fails the content check: "
            + "; ".join(f.en for f in linted.findings),
            code="letter_content_blocked",
            details={"rule_ids": list(linted.rule_ids)},
        )
    pdf = letters.render_letter_pdf(letter)
    doc = documents.store_document(
        session,
        content=pdf,
        filename=f"lawyer-letter-{reference}-{letter_date.isoformat()}.pdf",
        kind=str(_letter_settings()["document_kind"]),
        media_type="application/pdf",
        case_id=legal.case_id,
        account_id=accounts[0].id,
        legal_case_id=legal.id,
        uploaded_by_id=user_id,
        document_dir=document_dir,
    )
    return GeneratedLetter(document=doc, pdf=pdf)


def legal_flags(session: Session, *, legal_case_id: int, as_of: date) -> dict[int, set[FlagKind]]:
    """Holds in force on the accounts of a legal case (for the case page)."""
    legal = get_legal_case(session, legal_case_id=legal_case_id)
    return holds_service.held_account_ids(
        session, as_of=as_of, account_ids=[link.account_id for link in legal.accounts]
    )
