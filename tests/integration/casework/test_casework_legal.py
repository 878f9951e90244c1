"""Legal cases on SQLite and PostgreSQL: referral refused for disputed or time-barred accounts, approval
by a supervisor, milestones in order, costs posted to the ledger, the lawyer's letter as a Chinese PDF."""

from __future__ import annotations

import os
import shutil
import subprocess
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from casework_builders import Book
from sqlalchemy.orm import Session

from arrears.errors import ComplianceBlocked, Conflict, Forbidden
from arrears.holds import documents
from arrears.holds import service as holds
from arrears.legal import service as legal
from arrears.models import LegalCase

AT = datetime(2025, 7, 2, 2, 0, tzinfo=UTC)
FIRM = "北京市正衡律师事务所"


def refer(
    session: Session, book: Book, refs: list[str], time_barred_account_ids: frozenset[int] = frozenset()
) -> LegalCase:
    return legal.refer_to_legal(
        session,
        account_ids=[book.account(r).id for r in refs],
        kind="lawyer_letter",
        referred_by_id=book.users["collector"].id,
        referred_on=date(2025, 7, 1),
        law_firm_name=FIRM,
        law_firm_address="北京市东城区东长安街1号东方广场W3座8层",
        law_firm_phone="010-85001234",
        lawyer_name="周明",
        time_barred_account_ids=time_barred_account_ids,
    )


def test_referral_is_refused_for_a_disputed_or_time_barred_account(session: Session, book: Book) -> None:
    holds.open_dispute(
        session, account_id=book.account("2").id, reason_code="not_mine", received_on=date(2025, 6, 30), at=AT
    )
    with pytest.raises(ComplianceBlocked) as disputed:
        refer(session, book, ["1", "2"])
    assert disputed.value.code == "referral_refused"
    assert [r["code"] for r in disputed.value.details["reasons"]] == ["flag_dispute"]

    with pytest.raises(ComplianceBlocked) as barred:
        refer(session, book, ["3"], time_barred_account_ids=frozenset({book.account("3").id}))
    assert barred.value.details["rule_ids"] == ["CN-22"]
    assert "时效" in barred.value.details["reasons"][0]["message_zh"]


def test_referral_is_refused_when_the_record_shows_the_debt_is_time_barred(
    session: Session, book: Book
) -> None:
    # Due in 2021 with no demand, promise or payment since: the 3-year period ended in 2024 (CN-20, CN-22).
    account = book.account("3")
    account.due_date = date(2021, 3, 1)
    account.last_due_date = None
    session.flush()
    with pytest.raises(ComplianceBlocked) as barred:
        refer(session, book, ["3"])
    assert barred.value.details["rule_ids"] == ["CN-22"]


def test_referral_needs_a_supervisor_then_moves_through_milestones_with_costs(
    session: Session, book: Book, tmp_path: Path
) -> None:
    case = refer(session, book, ["3"])
    assert case.status == "pending_approval" and case.milestone is None
    with pytest.raises(Forbidden):
        legal.decide_referral(
            session,
            legal_case_id=case.id,
            user_id=book.users["collector"].id,
            approve=True,
            at=AT,
        )
    legal.decide_referral(
        session,
        legal_case_id=case.id,
        user_id=book.users["supervisor"].id,
        approve=True,
        at=AT,
        reason="证据齐全",
    )
    assert (case.status, case.milestone, case.approved_by_id) == (
        "approved",
        "prepared",
        book.users["supervisor"].id,
    )

    letter = legal.lawyer_letter(
        session, legal_case_id=case.id, letter_date=date(2025, 7, 3), document_dir=tmp_path
    )
    with pytest.raises(Conflict):
        legal.record_milestone(
            session, legal_case_id=case.id, milestone="judgment", occurred_on=date(2025, 7, 5)
        )
    served = legal.record_milestone(
        session,
        legal_case_id=case.id,
        milestone="served",
        occurred_on=date(2025, 7, 6),
        document_id=letter.document.id,
        note="EMS 回执 1234567890",
    )
    assert served.document_id == letter.document.id
    cost = legal.add_cost(
        session,
        legal_case_id=case.id,
        account_id=book.account("3").id,
        description="律师费",
        costs_minor=80000,
        incurred_on=date(2025, 7, 6),
    )
    assert cost.posted and cost.posting_id is not None  # posted to the ledger as ``costs`` at once
    assert legal.unposted_costs(session, portfolio_id=book.portfolio.id) == []
    legal.record_milestone(session, legal_case_id=case.id, milestone="closed", occurred_on=date(2025, 7, 20))
    assert [m.milestone for m in case.milestones] == ["prepared", "served", "closed"]
    assert case.status == "closed"


def test_approval_rechecks_holds_placed_after_the_referral(session: Session, book: Book) -> None:
    case = refer(session, book, ["4"])
    holds.place_hold(
        session, account_id=book.account("4").id, kind="bankruptcy", reason_code="court_notice", at=AT
    )
    with pytest.raises(ComplianceBlocked):
        legal.decide_referral(
            session,
            legal_case_id=case.id,
            user_id=book.users["admin"].id,
            approve=True,
            at=AT,
        )
    legal.decide_referral(
        session,
        legal_case_id=case.id,
        user_id=book.users["admin"].id,
        approve=False,
        at=AT,
        reason="债务人破产",
    )
    assert case.status == "rejected"


def test_lawyer_letter_pdf_is_sent_by_the_law_firm_and_renders_chinese(
    session: Session, book: Book, tmp_path: Path
) -> None:
    case = refer(session, book, ["1", "2"])
    legal.decide_referral(
        session,
        legal_case_id=case.id,
        user_id=book.users["supervisor"].id,
        approve=True,
        at=AT,
    )
    letter = legal.lawyer_letter(
        session,
        legal_case_id=case.id,
        letter_date=date(2025, 7, 3),
        document_dir=tmp_path / "docs",
    )
    assert letter.pdf.startswith(b"%PDF") and b"NotoSansCJK" in letter.pdf  # the CJK font is embedded
    doc, stored = documents.read_document(
        session, document_id=letter.document.id, document_dir=tmp_path / "docs"
    )
    assert stored == letter.pdf and doc.media_type == "application/pdf" and doc.legal_case_id == case.id
    if shutil.which("pdftotext") is None:
        pytest.skip("poppler-utils not installed")
    pdf_path = tmp_path / "letter.pdf"
    pdf_path.write_bytes(letter.pdf)
    text = subprocess.run(
        ["pdftotext", "-layout", str(pdf_path), "-"], capture_output=True, text=True, check=True
    ).stdout
    compact = "".join(text.split())
    assert "律师函" in compact and FIRM in compact and "张三" in compact
    assert "¥15,000.00" in compact and "2025年7月13日" in compact  # balance of both accounts, 10-day deadline
    # the law firm is the sender: its name heads the letter, before the recipient
    assert compact.index(FIRM) < compact.index("张三")
    out_dir = Path(os.environ.get("ARREARS_LETTER_PNG_DIR", tmp_path))
    subprocess.run(
        ["pdftoppm", "-png", "-r", "60", "-f", "1", "-l", "1", str(pdf_path), str(out_dir / "lawyer-letter")],
        check=True,
    )
    assert any(out_dir.glob("lawyer-letter*.png"))


def test_lawyer_letter_is_refused_once_the_account_is_disputed(
    session: Session, book: Book, tmp_path: Path
) -> None:
    case = refer(session, book, ["4"])
    legal.decide_referral(
        session, legal_case_id=case.id, user_id=book.users["supervisor"].id, approve=True, at=AT
    )
    holds.open_dispute(
        session,
        account_id=book.account("4").id,
        reason_code="amount_wrong",
        received_on=date(2025, 7, 2),
        at=AT,
    )
    with pytest.raises(ComplianceBlocked):
        legal.lawyer_letter(
            session, legal_case_id=case.id, letter_date=date(2025, 7, 3), document_dir=tmp_path
        )


def _letter_text(session: Session, book: Book, tmp_path: Path, *, with_contact: bool, locale: str) -> str:
    contact = (
        {"law_firm_address": "北京市东城区东长安街1号东方广场W3座8层", "law_firm_phone": "010-85001234"}
        if with_contact
        else {"law_firm_address": "  ", "law_firm_phone": None}  # left blank on the referral
    )
    case = legal.refer_to_legal(
        session,
        account_ids=[book.account("1").id],
        kind="lawyer_letter",
        referred_by_id=book.users["collector"].id,
        referred_on=date(2025, 7, 1),
        law_firm_name=FIRM,
        **contact,
    )
    legal.decide_referral(
        session, legal_case_id=case.id, user_id=book.users["supervisor"].id, approve=True, at=AT
    )
    letter = legal.lawyer_letter(
        session,
        legal_case_id=case.id,
        letter_date=date(2025, 7, 3),
        locale=locale,
        document_dir=tmp_path / "docs",
    )
    pdf_path = tmp_path / f"letter-{locale}-{with_contact}.pdf"
    pdf_path.write_bytes(letter.pdf)
    text = subprocess.run(
        ["pdftotext", str(pdf_path), "-"], capture_output=True, text=True, check=True
    ).stdout
    return "".join(text.split())


@pytest.mark.skipif(shutil.which("pdftotext") is None, reason="poppler-utils not installed")
@pytest.mark.parametrize(
    ("locale", "labels"),
    [("zh_CN", ("地址：", "电话：", "联系电话", "，地址")), ("en", ("Address:", "Tel.", "telephone"))],
)
def test_lawyer_letter_prints_no_empty_address_or_phone_label(
    session: Session, book: Book, tmp_path: Path, locale: str, labels: tuple[str, ...]
) -> None:
    without = _letter_text(session, book, tmp_path, with_contact=False, locale=locale)
    assert FIRM in without
    for label in labels:
        assert label not in without, label
    with_contact = _letter_text(session, book, tmp_path, with_contact=True, locale=locale)
    assert "010-85001234" in with_contact and "东方广场W3座8层" in with_contact
    header = {"zh_CN": ("地址：北京市", "电话：010-85001234"), "en": ("Address:北京市", "Tel.010-85001234")}
    for label in header[locale]:
        assert label in with_contact, label
