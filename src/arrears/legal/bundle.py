"""Evidence bundles: everything the record holds about one case, as a ZIP that proves itself.

A bundle goes with a legal referral (DESIGN: "an evidence bundle goes with it") and is what a compliance
officer hands over when asked what happened on a case. It holds:

* ``summary.pdf``: debtor, accounts and contract facts, balances on ``as_of``, the contact record's hash
  chain result, promises, plans, payments, letters and legal steps in brief (the embedded CJK font of the
  letters, so it prints the same everywhere);
* ``contact_record.csv``: every contact attempt in chain order with its ``prev_hash`` and ``hash``, and
  ``chain_verification.json``: the result of the same check as ``arrears audit verify``;
* ``promises.csv``, ``arrangements.csv``, ``arrangement_schedule.csv``, ``arrangement_waivers.csv``,
  ``approvals.csv``;
* ``payments.csv`` and ``allocations.csv`` (every posting each payment made);
* ``statements/<account>.pdf`` and ``.csv`` per account on ``as_of`` (the ledger's statement);
* ``letters.csv``: letters sent, with their delivery evidence from the contact record; ``documents/``:
  the case's stored documents (lawyer's letters, court papers, dispute evidence), each checked against
  its stored SHA-256;
* ``legal_cases.csv``, ``legal_milestones.csv``, ``legal_costs.csv``, ``holds.csv``;
* ``manifest.json``: the SHA-256 and size of every other file, and the bundle's own facts (case, as-of
  date, when and by whom generated, generator version, the chain result).

What it says about the debtor (PI-1, PI-6): a bundle is handed to the lawyers a case is referred to and
to whoever asks what happened on it, and it is copied and forwarded from there. It has to identify the
debtor and prove the debt and the contact record, not carry the debtor's identifiers, so the summary shows
them masked exactly as the desk shows them to every role: the ID number (region and last 4), the address
(province and city), the debtor's own phones (first 3 and last 4) and the repayment bank accounts (last
4). A filing that needs a value in full (a complaint names the defendant's ID number and address for
service) gets it through the logged reveal, with its reason in the access log, by the person preparing it.
What the record holds as evidence goes in as recorded: the stored documents (lawyer's letters, court
papers, which carry the address they were sent to) byte for byte against their SHA-256, and the contact
record's free text (notes, message text, visit place) as it was written and hashed into the chain.

The ZIP is deterministic: files in a fixed order, every entry dated ``generated_at``, so the same record,
``as_of`` and ``generated_at`` give the same bytes. Each generation is recorded (`EvidenceBundle`, append-
only: who, when, the ZIP's SHA-256) and the ZIP is stored as a document, so the desk can list and serve
bundles later (`list_bundles`, `read_bundle`) without building them again. Services flush, never commit.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from fpdf import FPDF
from fpdf.enums import XPos, YPos
from fpdf.fonts import FontFace
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

import arrears
from arrears import clock
from arrears.arrangements import service as arrangements_service
from arrears.channels import letters
from arrears.contacts import service as contacts_service
from arrears.contacts.chain import ChainReport
from arrears.enums import Channel, Component
from arrears.errors import NotFound, ValidationFailed
from arrears.holds import documents
from arrears.ledger import statement as ledger_statement
from arrears.models import (
    Account,
    AccountFlag,
    Approval,
    AppUser,
    Arrangement,
    Case,
    ContactAttempt,
    Creditor,
    Debtor,
    Dispute,
    Document,
    EvidenceBundle,
    LegalCase,
    OutboxMessage,
    Payment,
    Portfolio,
    Posting,
    Promise,
)
from arrears.money import format_minor
from arrears.users.masking import mask_address, mask_bank_account, mask_national_id, mask_phone
from arrears.web.i18n import Translator

FORMAT = "arrears-evidence-bundle/1"
GENERATOR_VERSION = f"{arrears.__version__}+bundle.1"
MANIFEST = "manifest.json"
DOCUMENT_KIND = "evidence_bundle"
LETTER_CHANNELS = (Channel.LETTER.value, Channel.LAWYER_LETTER.value)

LABELS: dict[str, dict[str, str]] = {
    "zh_CN": {
        "title": "催收证据材料汇总",
        "bundle": "材料信息",
        "case": "案件编号",
        "as_of": "余额截至",
        "generated_at": "生成时间",
        "generated_by": "生成人",
        "generator": "生成程序",
        "debtor": "债务人",
        "name": "姓名",
        "national_id": "证件号码",
        "address": "地址",
        "phones": "联系电话",
        "bank_accounts": "还款账号",
        "creditor": "债权人",
        "portfolio": "资产包",
        "accounts": "账户与合同",
        "account": "借据号",
        "product": "产品",
        "originated": "放款日",
        "due": "到期日",
        "original_principal": "合同本金",
        "rates": "年利率/罚息",
        "status": "状态",
        "balances": "余额（截至 {as_of}）",
        "principal": "本金",
        "interest": "利息",
        "penalty": "罚息",
        "fees": "费用",
        "costs": "实现债权的费用",
        "total": "合计",
        "credit": "溢缴款",
        "contact_record": "催收记录",
        "attempts": "共 {n} 条记录",
        "chain_ok": "哈希链校验：完整，记录自写入后未被改动。",
        "chain_broken": "哈希链校验：断裂！",
        "promises": "承诺还款",
        "arrangements": "还款方案",
        "payments": "还款记录",
        "letters": "已寄送函件",
        "delivered": "已送达",
        "not_delivered": "未见送达凭证",
        "legal": "法务案件",
        "none": "无",
        "files": "材料清单（SHA-256 见 manifest.json）",
        "page": "第 {page} 页，共 {pages} 页",
    },
    "en": {
        "title": "Collection evidence bundle: summary",
        "bundle": "Bundle",
        "case": "Case",
        "as_of": "Balances as of",
        "generated_at": "Generated at",
        "generated_by": "Generated by",
        "generator": "Generator",
        "debtor": "Debtor",
        "name": "Name",
        "national_id": "ID number",
        "address": "Address",
        "phones": "Phone",
        "bank_accounts": "Bank account",
        "creditor": "Creditor",
        "portfolio": "Portfolio",
        "accounts": "Accounts and contracts",
        "account": "Account",
        "product": "Product",
        "originated": "Originated",
        "due": "Due",
        "original_principal": "Contract principal",
        "rates": "Rate / penalty (yearly)",
        "status": "Status",
        "balances": "Balances (as of {as_of})",
        "principal": "Principal",
        "interest": "Interest",
        "penalty": "Penalty",
        "fees": "Fees",
        "costs": "Costs",
        "total": "Total",
        "credit": "Credit",
        "contact_record": "Contact record",
        "attempts": "{n} attempts",
        "chain_ok": "Hash chain: intact; no record was changed after it was written.",
        "chain_broken": "Hash chain: BROKEN!",
        "promises": "Promises to pay",
        "arrangements": "Repayment plans",
        "payments": "Payments",
        "letters": "Letters sent",
        "delivered": "delivered",
        "not_delivered": "no delivery evidence",
        "legal": "Legal cases",
        "none": "none",
        "files": "Files (SHA-256 in manifest.json)",
        "page": "Page {page} of {pages}",
    },
}


@dataclass(frozen=True, slots=True)
class BundleFile:
    """One file of the bundle."""

    name: str
    content: bytes
    media_type: str


@dataclass(frozen=True, slots=True)
class GeneratedBundle:
    """A built bundle: the ZIP, its SHA-256, the manifest, the chain result and the record row."""

    zip_bytes: bytes
    sha256: str
    manifest: dict[str, Any]
    chain: ChainReport
    record: EvidenceBundle | None
    filename: str


@dataclass(frozen=True, slots=True)
class BundleCheck:
    """The result of checking a bundle against its own manifest."""

    ok: bool
    files: int
    mismatched: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()
    unlisted: tuple[str, ...] = ()
    chain_ok: bool | None = None


@dataclass
class _Facts:
    """What the bundle is built from, loaded once."""

    case: Case
    debtor: Debtor
    portfolio: Portfolio
    creditor: Creditor | None
    accounts: list[Account]
    attempts: list[ContactAttempt]
    chain: ChainReport
    promises: list[Promise]
    plans: list[Arrangement]
    payments: list[Payment]
    allocations: list[Posting]
    outbox: list[OutboxMessage]
    legal_cases: list[LegalCase]
    documents: list[Document]
    flags: list[AccountFlag]
    disputes: list[Dispute]
    approvals: list[Approval]
    statements: dict[int, ledger_statement.Statement] = field(default_factory=dict)


def _csv(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> bytes:
    """UTF-8 CSV with a BOM (opens in Excel with Chinese intact); ``None`` is an empty cell."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow(["" if v is None else _cell(v) for v in row])
    return out.getvalue().encode("utf-8-sig")


def _cell(value: Any) -> str:
    if isinstance(value, datetime):
        return clock.as_utc(value).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | dict):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return str(value)


def _ts(value: datetime | None) -> str | None:
    return None if value is None else clock.as_utc(value).isoformat()


# --- loading ---------------------------------------------------------------------------------------------


def _load(session: Session, *, case_id: int, as_of: date) -> _Facts:
    case = session.get(Case, case_id)
    if case is None:
        raise NotFound(f"案件不存在：{case_id} / case {case_id} not found", code="case_not_found")
    debtor = session.get(Debtor, case.debtor_id)
    portfolio = session.get(Portfolio, case.portfolio_id)
    assert debtor is not None and portfolio is not None
    creditor = session.get(Creditor, portfolio.creditor_id)
    accounts = list(session.scalars(select(Account).where(Account.case_id == case_id).order_by(Account.id)))
    account_ids = [a.id for a in accounts]
    for account in accounts:  # bulk ledger writes bypass the identity map
        session.refresh(account)
    payments = list(
        session.scalars(
            select(Payment)
            .where(
                Payment.portfolio_id == portfolio.id,
                Payment.debtor_id == debtor.id,
                Payment.received_on <= as_of,
            )
            .order_by(Payment.received_on, Payment.id)
        )
    )
    payment_ids = [p.id for p in payments]
    allocations = (
        list(
            session.scalars(
                select(Posting)
                .where(Posting.payment_id.in_(payment_ids), Posting.account_id.in_(account_ids))
                .order_by(Posting.id)
            )
        )
        if payment_ids and account_ids
        else []
    )
    legal_cases = list(
        session.scalars(select(LegalCase).where(LegalCase.case_id == case_id).order_by(LegalCase.id))
    )
    disputes = list(session.scalars(select(Dispute).where(Dispute.case_id == case_id).order_by(Dispute.id)))
    conditions = [Document.case_id == case_id]
    if legal_cases:
        conditions.append(Document.legal_case_id.in_([lc.id for lc in legal_cases]))
    if disputes:
        conditions.append(Document.dispute_id.in_([d.id for d in disputes]))
    docs = list(
        session.scalars(
            select(Document).where(or_(*conditions), Document.kind != DOCUMENT_KIND).order_by(Document.id)
        )
    )
    plans = sorted(arrangements_service.list_arrangements(session, case_id=case_id), key=lambda p: p.id)
    subjects = [("arrangement", p.id) for p in plans] + [("legal_case", lc.id) for lc in legal_cases]
    approvals = [
        a
        for kind, sid in subjects
        for a in arrangements_service.approvals(session, subject_kind=kind, subject_id=sid)
    ]
    facts = _Facts(
        case=case,
        debtor=debtor,
        portfolio=portfolio,
        creditor=creditor,
        accounts=accounts,
        attempts=contacts_service.list_attempts(session, case_id=case_id),
        chain=contacts_service.verify_chain(session, case_id=case_id),
        promises=arrangements_service.list_promises(session, case_id=case_id),
        plans=plans,
        payments=payments,
        allocations=allocations,
        outbox=list(
            session.scalars(
                select(OutboxMessage)
                .where(OutboxMessage.case_id == case_id, OutboxMessage.channel.in_(LETTER_CHANNELS))
                .order_by(OutboxMessage.id)
            )
        ),
        legal_cases=legal_cases,
        documents=docs,
        flags=list(
            session.scalars(
                select(AccountFlag).where(AccountFlag.case_id == case_id).order_by(AccountFlag.id)
            )
        ),
        disputes=disputes,
        approvals=approvals,
    )
    for account in accounts:
        facts.statements[account.id] = ledger_statement.statement(session, account_id=account.id, as_of=as_of)
    return facts


# --- the files -------------------------------------------------------------------------------------------


def _contact_record(facts: _Facts) -> bytes:
    header = [
        "seq",
        "attempt_id",
        "corrects_id",
        "started_at",
        "ended_at",
        "channel",
        "direction",
        "purpose",
        "collector",
        "agent_id",
        "contact_point_id",
        "account_ids",
        "outcome",
        "allowed",
        "rule_ids",
        "notes",
        "message_text",
        "visit_place",
        "visit_staff",
        "id_shown",
        "recording_ref",
        "delivered_at",
        "evidence_ref",
        "prev_hash",
        "hash",
    ]
    rows = [
        [
            a.seq,
            a.id,
            a.corrects_id,
            a.started_at,
            a.ended_at,
            a.channel,
            a.direction,
            a.purpose,
            a.collector,
            a.agent_id,
            a.contact_point_id,
            ",".join(str(i) for i in sorted(a.account_ids or [])),
            a.outcome,
            a.allowed,
            a.rule_ids,
            a.notes,
            a.message_text,
            a.visit_place,
            a.visit_staff,
            a.id_shown,
            a.recording_ref,
            a.delivered_at,
            a.evidence_ref,
            a.prev_hash,
            a.hash,
        ]
        for a in facts.attempts
    ]
    return _csv(header, rows)


def chain_result(report: ChainReport) -> dict[str, Any]:
    """The chain check as the bundle states it (``status`` ``ok`` or ``broken``, with the broken links)."""
    return {
        "status": "ok" if report.ok else "broken",
        "ok": report.ok,
        "cases": report.cases,
        "attempts": report.attempts,
        "broken": [
            {
                "case_id": b.case_id,
                "seq": b.seq,
                "attempt_id": b.attempt_id,
                "problem": b.problem,
                "message_zh": b.zh,
                "message_en": b.en,
            }
            for b in report.broken
        ],
        "method": "SHA-256 over canonical JSON of each attempt, linked by prev_hash (arrears audit verify)",
    }


def _refs(facts: _Facts) -> dict[int, str]:
    return {a.id: a.external_ref for a in facts.accounts}


def _promises(facts: _Facts) -> bytes:
    refs = _refs(facts)
    return _csv(
        [
            "promise_id",
            "account",
            "made_on",
            "promised_on",
            "deadline_on",
            "amount_minor",
            "currency",
            "channel",
            "taken_by_id",
            "status",
            "paid_minor",
            "kept_on",
            "broken_on",
            "evaluated_on",
        ],
        [
            [
                p.id,
                refs.get(p.account_id, p.account_id),
                p.made_on,
                p.promised_on,
                p.deadline_on,
                p.amount_minor,
                p.currency,
                p.channel,
                p.taken_by_id,
                p.status,
                p.paid_minor,
                p.kept_on,
                p.broken_on,
                p.evaluated_on,
            ]
            for p in facts.promises
        ],
    )


def _arrangements(facts: _Facts) -> tuple[bytes, bytes, bytes]:
    refs = _refs(facts)
    plans = _csv(
        [
            "arrangement_id",
            "kind",
            "status",
            "accounts",
            "quoted_on",
            "agreed_on",
            "currency",
            "balance_minor",
            "waived_minor",
            "payable_minor",
            "discount_bps",
            "within_policy",
            "requires_approval",
            "policy",
            "paid_minor",
            "breach_on",
            "breached_seq",
            "completed_on",
            "created_by_id",
            "request",
        ],
        [
            [
                p.id,
                p.kind,
                p.status,
                " ".join(refs.get(i, str(i)) for i in arrangements_service.account_ids_of(p)),
                p.quoted_on,
                p.agreed_on,
                p.currency,
                p.balance_minor,
                p.waived_minor,
                p.payable_minor,
                p.discount_bps,
                p.within_policy,
                p.requires_approval,
                f"{p.policy_name} v{p.policy_version}",
                p.paid_minor,
                p.breach_on,
                p.breached_seq,
                p.completed_on,
                p.created_by_id,
                p.request,
            ]
            for p in facts.plans
        ],
    )
    schedule = _csv(
        ["arrangement_id", "seq", "due_on", "amount_minor", "kind", "status", "paid_minor", "paid_on"],
        [
            [p.id, i.seq, i.due_on, i.amount_minor, i.kind, i.status, i.paid_minor, i.paid_on]
            for p in facts.plans
            for i in p.instalments
        ],
    )
    waivers = _csv(
        ["arrangement_id", "account", "component", "agreed_minor", "posted_minor", "posted_at"],
        [
            [
                p.id,
                refs.get(w.account_id, w.account_id),
                w.component,
                w.amount_minor,
                w.posted_minor,
                w.posted_at,
            ]
            for p in facts.plans
            for w in sorted(p.waivers, key=lambda w: (w.account_id, w.component))
        ],
    )
    return plans, schedule, waivers


def _approvals(facts: _Facts) -> bytes:
    return _csv(
        ["approval_id", "subject_kind", "subject_id", "decision", "user_id", "decided_at", "reason"],
        [
            [a.id, a.subject_kind, a.subject_id, a.decision, a.user_id, a.decided_at, a.reason]
            for a in facts.approvals
        ],
    )


def _payments(facts: _Facts) -> tuple[bytes, bytes]:
    refs = _refs(facts)
    payments = _csv(
        [
            "payment_id",
            "reference",
            "received_on",
            "amount_minor",
            "currency",
            "source",
            "status",
            "policy",
            "allocated_minor",
            "credit_minor",
            "collector",
            "reversed_on",
            "reversal_reason",
        ],
        [
            [
                p.id,
                p.reference,
                p.received_on,
                p.amount_minor,
                p.currency,
                p.source,
                p.status,
                p.policy,
                p.allocated_minor,
                p.credit_minor,
                p.collector,
                p.reversed_on,
                p.reversal_reason,
            ]
            for p in facts.payments
        ],
    )
    allocations = _csv(
        [
            "posting_id",
            "payment_id",
            "account",
            "component",
            "kind",
            "amount_minor",
            "effective_date",
            "rule_id",
            "reverses_posting_id",
        ],
        [
            [
                p.id,
                p.payment_id,
                refs.get(p.account_id, p.account_id),
                p.component or "credit",
                p.kind,
                p.amount_minor,
                p.effective_date,
                p.rule_id,
                p.reverses_posting_id,
            ]
            for p in facts.allocations
        ],
    )
    return payments, allocations


@dataclass(frozen=True, slots=True)
class _LetterRow:
    attempt: ContactAttempt
    latest: ContactAttempt
    message: OutboxMessage | None


def _letters_sent(facts: _Facts) -> list[_LetterRow]:
    """Letters on the contact record, each with the latest correction (where delivery evidence sits)."""
    latest: dict[int, ContactAttempt] = {}
    root: dict[int, int] = {}
    for a in facts.attempts:
        origin = root.get(a.corrects_id, a.corrects_id) if a.corrects_id is not None else a.id
        root[a.id] = origin
        latest[origin] = a
    by_attempt = {m.contact_attempt_id: m for m in facts.outbox if m.contact_attempt_id is not None}
    return [
        _LetterRow(a, latest[a.id], by_attempt.get(a.id))
        for a in facts.attempts
        if a.corrects_id is None and a.channel in LETTER_CHANNELS
    ]


def _letters(facts: _Facts) -> bytes:
    return _csv(
        [
            "attempt_id",
            "latest_attempt_id",
            "channel",
            "sent_at",
            "allowed",
            "rule_ids",
            "outcome",
            "delivered_at",
            "evidence_ref",
            "outbox_message_id",
            "template",
            "print_reference",
            "message_text",
        ],
        [
            [
                r.attempt.id,
                r.latest.id,
                r.attempt.channel,
                r.attempt.started_at,
                r.attempt.allowed,
                r.attempt.rule_ids,
                r.latest.outcome,
                r.latest.delivered_at,
                r.latest.evidence_ref,
                r.message.id if r.message else None,
                r.message.template if r.message else None,
                r.message.provider_message_id if r.message else None,
                r.attempt.message_text,
            ]
            for r in _letters_sent(facts)
        ],
    )


def _legal(facts: _Facts) -> tuple[bytes, bytes, bytes]:
    refs = _refs(facts)
    cases = _csv(
        [
            "legal_case_id",
            "kind",
            "status",
            "milestone",
            "body",
            "case_number",
            "accounts",
            "law_firm",
            "lawyer",
            "referred_on",
            "referred_by_id",
            "approved_by_id",
            "approved_at",
        ],
        [
            [
                lc.id,
                lc.kind,
                lc.status,
                lc.milestone,
                lc.body,
                lc.case_number,
                " ".join(refs.get(link.account_id, str(link.account_id)) for link in lc.accounts),
                lc.law_firm_name,
                lc.lawyer_name,
                lc.referred_on,
                lc.referred_by_id,
                lc.approved_by_id,
                lc.approved_at,
            ]
            for lc in facts.legal_cases
        ],
    )
    milestones = _csv(
        ["legal_case_id", "milestone", "occurred_on", "document_id", "note", "recorded_by_id", "recorded_at"],
        [
            [lc.id, m.milestone, m.occurred_on, m.document_id, m.note, m.recorded_by_id, m.created_at]
            for lc in facts.legal_cases
            for m in lc.milestones
        ],
    )
    costs = _csv(
        [
            "legal_case_id",
            "cost_id",
            "account",
            "description",
            "costs_minor",
            "currency",
            "incurred_on",
            "posted",
            "posting_id",
            "reversed_on",
            "reversal_reason",
        ],
        [
            [
                lc.id,
                c.id,
                refs.get(c.account_id, c.account_id),
                c.description,
                c.costs_minor,
                c.currency,
                c.incurred_on,
                c.posted,
                c.posting_id,
                c.reversed_on,
                c.reversal_reason,
            ]
            for lc in facts.legal_cases
            for c in lc.costs
        ],
    )
    return cases, milestones, costs


def _holds(facts: _Facts) -> bytes:
    refs = _refs(facts)
    return _csv(
        [
            "flag_id",
            "account",
            "kind",
            "reason_code",
            "reason",
            "source",
            "raised_at",
            "expires_on",
            "cleared_at",
            "clear_reason",
        ],
        [
            [
                f.id,
                refs.get(f.account_id, f.account_id),
                f.kind,
                f.reason_code,
                f.reason,
                f.source,
                f.created_at,
                f.expires_on,
                f.cleared_at,
                f.clear_reason,
            ]
            for f in facts.flags
        ],
    )


def _document_name(doc: Document) -> str:
    return f"documents/{doc.id:06d}-{Path(doc.filename).name}"


# --- the summary PDF -------------------------------------------------------------------------------------


def _labels(locale: str) -> dict[str, str]:
    return LABELS["en"] if locale.lower().startswith("en") else LABELS["zh_CN"]


def _rate(ppm: int | None) -> str:
    return "—" if ppm is None else f"{ppm / 10_000:.2f}%"


def summary_pdf(
    facts: _Facts,
    *,
    as_of: date,
    generated_at: datetime,
    generated_by: str | None,
    file_names: Sequence[str],
    locale: str = "zh_CN",
) -> bytes:
    """The summary page(s): debtor, accounts and contract facts, balances, the chain result and the rest in
    brief. The debtor's ID number, address, phones and bank accounts are masked as the desk shows them (see
    the module's docstring). Chinese text is set in the letters' embedded CJK font."""
    lab = _labels(locale)
    words = Translator("en" if locale.lower().startswith("en") else "zh_CN")  # codes in words
    font = letters.cjk_font()
    family = letters.FONT_FAMILY
    pdf = FPDF(orientation="P", unit="mm", format="A4")
    pdf.set_margins(15, 15, 15)
    pdf.set_auto_page_break(True, margin=18)
    pdf.add_font(family, "", str(font.path), collection_font_number=font.collection_index)
    pdf.set_creation_date(clock.as_utc(generated_at))
    pdf.set_creator("arrears")
    pdf.set_producer("arrears")
    case_ref = f"C-{facts.case.id}"
    pdf.set_title(f"{lab['title']} {case_ref}")
    pdf.add_page()
    width = pdf.epw
    currency = facts.accounts[0].currency if facts.accounts else facts.portfolio.currency

    def amount(value: int) -> str:
        return format_minor(value, currency, "en" if locale.startswith("en") else "zh_CN")

    def heading(text: str) -> None:
        pdf.ln(2)
        pdf.set_font(family, size=12)
        pdf.cell(width, 7, text, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.set_draw_color(160, 160, 160)
        pdf.line(pdf.l_margin, pdf.get_y(), pdf.l_margin + width, pdf.get_y())
        pdf.ln(1.5)
        pdf.set_font(family, size=9.5)

    def line(text: str) -> None:
        for part in letters.break_lines(text, width, pdf.get_string_width) or [""]:
            pdf.cell(width, 5.2, part, new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    def pairs(items: Sequence[tuple[str, str]]) -> None:
        for key, value in items:
            line(f"{key}：{value}" if not locale.startswith("en") else f"{key}: {value}")

    pdf.set_font(family, size=17)
    pdf.cell(width, 10, lab["title"], align="C", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font(family, size=9.5)
    pairs(
        [
            (lab["case"], case_ref),
            (lab["as_of"], as_of.isoformat()),
            (lab["generated_at"], clock.as_utc(generated_at).strftime("%Y-%m-%d %H:%M:%S UTC")),
            (lab["generated_by"], generated_by or "—"),
            (lab["generator"], f"arrears {GENERATOR_VERSION}"),
        ]
    )

    heading(lab["debtor"])
    phones = [
        mask_phone(cp.value) or ""
        for cp in facts.debtor.contact_points
        if cp.kind in ("mobile", "landline") and cp.owner_relation == "self"
    ]
    # repayment accounts, masked as the desk shows them (PI-6)
    cards = [
        " ".join(filter(None, (a.external_ref, mask_bank_account(a.bank_account), a.bank_name)))
        for a in facts.accounts
        if a.bank_account
    ]
    pairs(
        [
            (lab["name"], facts.debtor.name),
            (lab["national_id"], mask_national_id(facts.debtor.national_id) or "—"),
            (lab["address"], mask_address(facts.debtor.address) or "—"),
            (lab["phones"], ", ".join(sorted(set(phones))) or "—"),
            *([(lab["bank_accounts"], "; ".join(cards))] if cards else []),
            (lab["creditor"], facts.creditor.name if facts.creditor else "—"),
            (lab["portfolio"], facts.portfolio.name),
        ]
    )

    heading(lab["accounts"])
    pdf.set_font(family, size=8)
    with pdf.table(
        col_widths=(30, 27, 20, 20, 29, 30, 24),
        text_align=("LEFT", "LEFT", "LEFT", "LEFT", "RIGHT", "RIGHT", "LEFT"),
        headings_style=FontFace(emphasis="", fill_color=(235, 235, 235)),
    ) as table:
        head = table.row()
        for key in ("account", "product", "originated", "due", "original_principal", "rates", "status"):
            head.cell(lab[key])
        for a in facts.accounts:
            row = table.row()
            row.cell(a.external_ref)
            row.cell(words.label("products", a.product))
            row.cell(a.origination_date.isoformat() if a.origination_date else "—")
            row.cell(a.due_date.isoformat())
            row.cell(amount(a.original_principal_minor) if a.original_principal_minor is not None else "—")
            row.cell(f"{_rate(a.interest_rate_annual_ppm)} / {_rate(a.penalty_rate_annual_ppm)}")
            row.cell(words.label("account_statuses", a.status))

    heading(lab["balances"].format(as_of=as_of.isoformat()))
    pdf.set_font(family, size=8)
    buckets = [c.value for c in Component]
    totals = dict.fromkeys([*buckets, "credit"], 0)
    with pdf.table(
        col_widths=(30, 22, 20, 20, 18, 24, 26, 18),
        text_align=("LEFT", "RIGHT", "RIGHT", "RIGHT", "RIGHT", "RIGHT", "RIGHT", "RIGHT"),
        headings_style=FontFace(emphasis="", fill_color=(235, 235, 235)),
    ) as table:
        head = table.row()
        for key in ("account", *buckets, "total", "credit"):
            head.cell(lab[key])
        for a in facts.accounts:
            st = facts.statements[a.id]
            row = table.row()
            row.cell(a.external_ref)
            for bucket in buckets:
                row.cell(amount(st.closing[bucket]))
                totals[bucket] += st.closing[bucket]
            row.cell(amount(st.closing_total_minor))
            row.cell(amount(st.closing["credit"]))
            totals["credit"] += st.closing["credit"]
        row = table.row()
        row.cell(lab["total"])
        for bucket in buckets:
            row.cell(amount(totals[bucket]))
        row.cell(amount(sum(totals[b] for b in buckets)))
        row.cell(amount(totals["credit"]))

    heading(lab["contact_record"])
    line(lab["attempts"].format(n=len(facts.attempts)))
    if facts.chain.ok:
        pdf.set_text_color(0, 110, 40)
        line(lab["chain_ok"])
    else:
        pdf.set_text_color(180, 0, 0)
        line(lab["chain_broken"])
        for b in facts.chain.broken:
            line(b.en if locale.startswith("en") else b.zh)
    pdf.set_text_color(0, 0, 0)

    heading(lab["promises"])
    for p in facts.promises:
        line(
            f"#{p.id}  {p.made_on.isoformat()} → {p.promised_on.isoformat()}  {amount(p.amount_minor)}  {words.label('statuses', p.status)}"
        )
    if not facts.promises:
        line(lab["none"])

    heading(lab["arrangements"])
    for plan in facts.plans:
        line(
            f"#{plan.id}  {words.label('plan_kinds', plan.kind)}  {plan.agreed_on.isoformat()}  {amount(plan.payable_minor)}"
            f"  {len(plan.instalments)}  {words.label('plan_statuses', plan.status)}"
        )
    if not facts.plans:
        line(lab["none"])

    heading(lab["payments"])
    for pay in facts.payments:
        line(
            f"{pay.received_on.isoformat()}  {pay.reference}  {amount(pay.amount_minor)}  {words.label('statuses', pay.status)}"
        )
    if not facts.payments:
        line(lab["none"])

    heading(lab["letters"])
    sent = _letters_sent(facts)
    for r in sent:
        state = (
            f"{lab['delivered']} {clock.as_utc(r.latest.delivered_at).date().isoformat()} {r.latest.evidence_ref or ''}"
            if r.latest.delivered_at is not None
            else lab["not_delivered"]
        )
        line(
            f"{clock.as_utc(r.attempt.started_at).date().isoformat()}  {words.label('channels', r.attempt.channel)}  {state}"
        )
    if not sent:
        line(lab["none"])

    heading(lab["legal"])
    for lc in facts.legal_cases:
        line(
            f"LC-{lc.id}  {words.label('legal_kinds', lc.kind)}  {lc.status}  {lc.law_firm_name}  {lc.body or ''}  {lc.case_number or ''}".rstrip()
        )
        for m in lc.milestones:
            line(f"    {m.occurred_on.isoformat()}  {m.milestone}  {m.note or ''}".rstrip())
        for c in lc.costs:
            note = f" ({c.reversed_on.isoformat()} ✕)" if c.reversed_on else ""
            line(f"    {c.incurred_on.isoformat()}  {c.description}  {amount(c.costs_minor)}{note}")
    if not facts.legal_cases:
        line(lab["none"])

    heading(lab["files"])
    pdf.set_font(family, size=8)
    for name in file_names:
        pdf.cell(width, 4.4, name, new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    pages = pdf.page
    pdf.set_auto_page_break(False)
    for number in range(1, pages + 1):
        pdf.page = number
        pdf.set_font(family, size=7.5)
        pdf.set_text_color(90, 90, 90)
        pdf.set_xy(pdf.l_margin, 297 - 12)
        pdf.cell(width / 2, 5, case_ref)
        pdf.set_xy(pdf.l_margin + width / 2, 297 - 12)
        pdf.cell(width / 2, 5, lab["page"].format(page=number, pages=pages), align="R")
    pdf.page = pages
    return bytes(pdf.output())


# --- the ZIP ---------------------------------------------------------------------------------------------


def _zip(files: Sequence[BundleFile], moment: datetime) -> bytes:
    """Files in the given order, each entry dated ``moment`` (UTC), deflated: same input, same bytes."""
    stamp = clock.as_utc(moment)
    date_time = (max(1980, stamp.year), stamp.month, stamp.day, stamp.hour, stamp.minute, stamp.second)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for f in files:
            info = zipfile.ZipInfo(f.name, date_time=date_time)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3
            info.external_attr = 0o100644 << 16
            zf.writestr(info, f.content)
    return out.getvalue()


def _sha256(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def build_bundle(
    session: Session,
    *,
    case_id: int,
    as_of: date,
    generated_at: datetime,
    generated_by_id: int | None = None,
    locale: str | None = None,
    record: bool = True,
    document_dir: Path | str | None = None,
) -> GeneratedBundle:
    """Build the evidence bundle of a case on ``as_of`` (balances and statements at that date; the contact
    record, promises, plans, letters and legal steps as recorded at ``generated_at``).

    With ``record`` (the default) the ZIP is stored as a document and an `EvidenceBundle` row says who
    generated it, when, and its SHA-256; an access-log row is written for the user (PI-9). A broken hash
    chain does not stop the bundle: it is reported in the manifest and the summary.
    """
    if generated_at.tzinfo is None:
        raise ValidationFailed("生成时间须带时区 / generated_at needs a time zone", code="naive_timestamp")
    facts = _load(session, case_id=case_id, as_of=as_of)
    user: AppUser | None = None
    if generated_by_id is not None:
        user = session.get(AppUser, generated_by_id)
        if user is None:
            raise NotFound(
                f"用户不存在：{generated_by_id} / user {generated_by_id} not found", code="user_not_found"
            )
    loc = locale or facts.portfolio.locale or "zh_CN"
    chain = chain_result(facts.chain)

    files: list[BundleFile] = [
        BundleFile("contact_record.csv", _contact_record(facts), "text/csv"),
        BundleFile(
            "chain_verification.json",
            json.dumps(chain, ensure_ascii=False, indent=2, sort_keys=True).encode("utf-8"),
            "application/json",
        ),
        BundleFile("promises.csv", _promises(facts), "text/csv"),
    ]
    plans, schedule, waivers = _arrangements(facts)
    files += [
        BundleFile("arrangements.csv", plans, "text/csv"),
        BundleFile("arrangement_schedule.csv", schedule, "text/csv"),
        BundleFile("arrangement_waivers.csv", waivers, "text/csv"),
        BundleFile("approvals.csv", _approvals(facts), "text/csv"),
    ]
    payments, allocations = _payments(facts)
    files += [
        BundleFile("payments.csv", payments, "text/csv"),
        BundleFile("allocations.csv", allocations, "text/csv"),
        BundleFile("letters.csv", _letters(facts), "text/csv"),
    ]
    legal_cases, milestones, costs = _legal(facts)
    files += [
        BundleFile("legal_cases.csv", legal_cases, "text/csv"),
        BundleFile("legal_milestones.csv", milestones, "text/csv"),
        BundleFile("legal_costs.csv", costs, "text/csv"),
        BundleFile("holds.csv", _holds(facts), "text/csv"),
    ]
    for account in facts.accounts:
        st = facts.statements[account.id]
        safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in account.external_ref)
        files.append(
            BundleFile(
                f"statements/{safe}.pdf", ledger_statement.statement_pdf(st, locale=loc), "application/pdf"
            )
        )
        files.append(
            BundleFile(
                f"statements/{safe}.csv",
                ledger_statement.statement_csv(st, locale=loc).encode("utf-8-sig"),
                "text/csv",
            )
        )
    missing: list[dict[str, Any]] = []
    for doc in facts.documents:
        try:
            _row, content = documents.read_document(session, document_id=doc.id, document_dir=document_dir)
        except (NotFound, ValidationFailed) as exc:
            missing.append(
                {"document_id": doc.id, "filename": doc.filename, "sha256": doc.sha256, "problem": exc.code}
            )
            continue
        files.append(BundleFile(_document_name(doc), content, doc.media_type))

    names = ["summary.pdf", *(f.name for f in files), MANIFEST]
    summary = summary_pdf(
        facts,
        as_of=as_of,
        generated_at=generated_at,
        generated_by=user.username if user else None,
        file_names=names,
        locale=loc,
    )
    files.insert(0, BundleFile("summary.pdf", summary, "application/pdf"))
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "generator": {"name": "arrears", "version": GENERATOR_VERSION},
        "case": {
            "id": facts.case.id,
            "reference": f"C-{facts.case.id}",
            "portfolio": facts.portfolio.name,
            "creditor": facts.creditor.name if facts.creditor else None,
            "debtor_id": facts.debtor.id,
            "debtor_name": facts.debtor.name,
            "accounts": [a.external_ref for a in facts.accounts],
            "legal_case_ids": [lc.id for lc in facts.legal_cases],
        },
        "as_of": as_of.isoformat(),
        "generated_at": clock.as_utc(generated_at).isoformat(),
        "generated_by": {"id": user.id, "username": user.username} if user else None,
        "locale": loc,
        "contact_record": chain,
        "balances_minor": {
            a.external_ref: {
                **facts.statements[a.id].closing,
                "total": facts.statements[a.id].closing_total_minor,
            }
            for a in facts.accounts
        },
        "files": [
            {
                "name": f.name,
                "sha256": _sha256(f.content),
                "size_bytes": len(f.content),
                "media_type": f.media_type,
            }
            for f in files
        ],
        "missing_documents": missing,
    }
    files.append(
        BundleFile(
            MANIFEST,
            json.dumps(manifest, ensure_ascii=False, indent=2, sort_keys=True).encode("utf-8"),
            "application/json",
        )
    )
    zip_bytes = _zip(files, generated_at)
    digest = _sha256(zip_bytes)
    stamp = clock.as_utc(generated_at).strftime("%Y%m%dT%H%M%SZ")
    filename = f"evidence-C-{facts.case.id}-{as_of.isoformat()}-{stamp}.zip"
    row: EvidenceBundle | None = None
    if record:
        doc = documents.store_document(
            session,
            content=zip_bytes,
            filename=filename,
            kind=DOCUMENT_KIND,
            media_type="application/zip",
            case_id=facts.case.id,
            uploaded_by_id=generated_by_id,
            document_dir=document_dir,
        )
        row = EvidenceBundle(
            case_id=facts.case.id,
            legal_case_id=facts.legal_cases[-1].id if facts.legal_cases else None,
            document_id=doc.id,
            as_of=as_of,
            generated_at=clock.as_utc(generated_at),
            generated_by_id=generated_by_id,
            generator_version=GENERATOR_VERSION,
            sha256=digest,
            size_bytes=len(zip_bytes),
            file_count=len(files),
            chain_ok=facts.chain.ok,
        )
        session.add(row)
        if user is not None:
            from arrears.users import service as users_service

            users_service.log_access(
                session,
                user_id=user.id,
                debtor_id=facts.debtor.id,
                case_id=facts.case.id,
                action="evidence_bundle",
                at=clock.as_utc(generated_at),
            )
        session.flush()
    return GeneratedBundle(
        zip_bytes=zip_bytes,
        sha256=digest,
        manifest=manifest,
        chain=facts.chain,
        record=row,
        filename=filename,
    )


def check_bundle(zip_bytes: bytes) -> BundleCheck:
    """Check a bundle against its own manifest: every listed file present with its SHA-256, nothing else."""
    try:
        zf = zipfile.ZipFile(io.BytesIO(zip_bytes))
    except zipfile.BadZipFile as exc:
        raise ValidationFailed("不是有效的 ZIP 文件 / not a ZIP file", code="bad_bundle") from exc
    with zf:
        names = zf.namelist()
        if MANIFEST not in names:
            raise ValidationFailed("缺少 manifest.json / the bundle has no manifest", code="bad_bundle")
        manifest = json.loads(zf.read(MANIFEST))
        listed = {f["name"]: f["sha256"] for f in manifest.get("files", [])}
        mismatched = tuple(n for n, h in listed.items() if n in names and _sha256(zf.read(n)) != h)
        missing = tuple(n for n in listed if n not in names)
        unlisted = tuple(n for n in names if n != MANIFEST and n not in listed)
    chain_ok = manifest.get("contact_record", {}).get("ok")
    return BundleCheck(
        ok=not (mismatched or missing or unlisted),
        files=len(listed),
        mismatched=mismatched,
        missing=missing,
        unlisted=unlisted,
        chain_ok=chain_ok,
    )


def list_bundles(session: Session, *, case_id: int) -> list[EvidenceBundle]:
    """Bundles generated for a case, newest first (for the desk)."""
    return list(
        session.scalars(
            select(EvidenceBundle).where(EvidenceBundle.case_id == case_id).order_by(EvidenceBundle.id.desc())
        )
    )


def read_bundle(
    session: Session,
    *,
    bundle_id: int,
    user_id: int | None = None,
    at: datetime | None = None,
    document_dir: Path | str | None = None,
) -> tuple[EvidenceBundle, bytes]:
    """A stored bundle's row and ZIP (checked against the recorded SHA-256); a download by a user is logged
    in the access log (PI-9)."""
    row = session.get(EvidenceBundle, bundle_id)
    if row is None:
        raise NotFound(
            f"证据材料不存在：{bundle_id} / evidence bundle {bundle_id} not found", code="bundle_not_found"
        )
    _doc, content = documents.read_document(session, document_id=row.document_id, document_dir=document_dir)
    if _sha256(content) != row.sha256:
        raise ValidationFailed(
            f"证据材料 {bundle_id} 与记录的哈希不符 / bundle {bundle_id} does not match its recorded hash",
            code="bundle_hash_mismatch",
        )
    if user_id is not None:
        from arrears.users import service as users_service

        case = session.get(Case, row.case_id)
        assert case is not None
        users_service.log_access(
            session,
            user_id=user_id,
            debtor_id=case.debtor_id,
            case_id=case.id,
            action="evidence_bundle_download",
            at=clock.as_utc(at or clock.now()),
        )
    return row, content


__all__ = [
    "BundleCheck",
    "BundleFile",
    "GeneratedBundle",
    "build_bundle",
    "chain_result",
    "check_bundle",
    "list_bundles",
    "read_bundle",
    "summary_pdf",
]
