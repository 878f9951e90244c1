"""The evidence bundle of a case, on SQLite and PostgreSQL: a ZIP whose manifest hashes match every file,
whose contact record verifies (and says where it does not after tampering), whose summary PDF prints the
debtor's Chinese name and balances in the embedded CJK font, with statements, plans, payments and letters
with their delivery evidence; each generation recorded, the ZIP stored for the desk."""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
import json
import os
import shutil
import subprocess
import zipfile
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import pytest
from bundle_builders import demo_case
from casework_builders import Book
from PIL import Image
from pypdf import PdfReader
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from arrears.legal import bundle
from arrears.models import AccessLog, Account, EvidenceBundle


def _read(zip_bytes: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(zip_bytes)) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def _pdf_text(pdf: bytes) -> str:
    """The PDF's text with all white space removed (pypdf yields the CID font's two-byte codes with NULs)."""
    raw = "".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)
    return "".join(raw.replace("\x00", "").split())


def _rows(content: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(content.decode("utf-8-sig"))))


def test_the_bundle_holds_the_whole_case_and_its_manifest_hashes_match(
    session: Session, book: Book, tmp_path: Path
) -> None:
    docs = tmp_path / "docs"
    demo = demo_case(session, book, docs)
    generated_at = datetime.combine(demo.as_of, time(8, 30), tzinfo=UTC)
    built = bundle.build_bundle(
        session,
        case_id=demo.case_id,
        as_of=demo.as_of,
        generated_at=generated_at,
        generated_by_id=book.users["compliance"].id,
        document_dir=docs,
    )
    files = _read(built.zip_bytes)
    manifest = json.loads(files["manifest.json"])
    # every file is listed with its SHA-256, and nothing else is in the ZIP
    assert sorted(f["name"] for f in manifest["files"]) == sorted(n for n in files if n != "manifest.json")
    for entry in manifest["files"]:
        assert hashlib.sha256(files[entry["name"]]).hexdigest() == entry["sha256"], entry["name"]
        assert len(files[entry["name"]]) == entry["size_bytes"]
    assert bundle.check_bundle(built.zip_bytes).ok
    assert manifest["contact_record"]["status"] == "ok" and manifest["contact_record"]["broken"] == []
    assert json.loads(files["chain_verification.json"])["status"] == "ok"
    assert manifest["as_of"] == demo.as_of.isoformat()
    assert manifest["generated_at"] == generated_at.isoformat()
    assert manifest["generator"]["version"] == bundle.GENERATOR_VERSION
    assert manifest["case"]["debtor_name"] == "张三"
    assert manifest["generated_by"]["username"] == book.users["compliance"].username

    names = list(files)
    assert names[0] == "summary.pdf" and names[-1] == "manifest.json"
    ref1, ref2 = book.account("1").external_ref, book.account("2").external_ref
    for name in (f"statements/{ref1}.pdf", f"statements/{ref1}.csv", f"statements/{ref2}.pdf"):
        assert name in files
    record = _rows(files["contact_record.csv"])
    assert [int(r["seq"]) for r in record] == list(range(1, len(record) + 1))
    assert record[0]["prev_hash"] == "0" * 64
    assert all(r["prev_hash"] == prev["hash"] for prev, r in itertools.pairwise(record))
    assert any("承诺三日内还款" in r["notes"] for r in record)
    [promise] = _rows(files["promises.csv"])
    assert (promise["amount_minor"], promise["account"]) == ("50000", ref1)
    [plan] = _rows(files["arrangements.csv"])
    assert plan["kind"] == "instalments" and plan["accounts"] == ref2
    schedule = _rows(files["arrangement_schedule.csv"])
    assert len(schedule) == 6 and sum(int(r["amount_minor"]) for r in schedule) == int(plan["payable_minor"])
    [payment] = _rows(files["payments.csv"])
    assert payment["amount_minor"] == "50000"
    allocations = _rows(files["allocations.csv"])
    assert sum(-int(r["amount_minor"]) for r in allocations) == 50000
    [sent] = _rows(files["letters.csv"])
    assert sent["channel"] == "letter" and sent["evidence_ref"] == "EMS 1190012345678"
    assert sent["delivered_at"].startswith((demo.start + timedelta(days=7)).isoformat())
    assert sent["outbox_message_id"] == str(demo.letter_message_id)
    milestones = _rows(files["legal_milestones.csv"])
    assert [m["milestone"] for m in milestones] == ["prepared", "filed", "served"]
    [legal_case] = _rows(files["legal_cases.csv"])
    assert (
        legal_case["case_number"] == "(2026)京0105民初12345号"
        and legal_case["body"] == "北京市朝阳区人民法院"
    )
    [cost] = _rows(files["legal_costs.csv"])
    assert cost["costs_minor"] == "80000" and cost["posted"] == "true"
    lawyer_letters = [n for n in files if n.startswith("documents/") and "lawyer-letter" in n]
    assert len(lawyer_letters) == 1 and files[lawyer_letters[0]].startswith(b"%PDF")
    # the day's print batch holds other debtors' letters: it is not part of this case's bundle
    assert not any("print-batch" in n for n in files)

    # recorded: who, when, the ZIP's hash; the ZIP is stored and served back unchanged; access logged
    row = built.record
    assert row is not None and row.sha256 == hashlib.sha256(built.zip_bytes).hexdigest()
    assert (row.case_id, row.generated_by_id, row.chain_ok) == (
        demo.case_id,
        book.users["compliance"].id,
        True,
    )
    assert [b.id for b in bundle.list_bundles(session, case_id=demo.case_id)] == [row.id]
    stored_row, stored = bundle.read_bundle(
        session, bundle_id=row.id, user_id=book.users["compliance"].id, at=generated_at, document_dir=docs
    )
    assert stored == built.zip_bytes and stored_row is row
    actions = session.scalars(
        select(AccessLog.action).where(AccessLog.case_id == demo.case_id).order_by(AccessLog.id)
    ).all()
    assert list(actions)[-2:] == ["evidence_bundle", "evidence_bundle_download"]

    # the same record, date and moment give the same bytes
    again = bundle.build_bundle(
        session,
        case_id=demo.case_id,
        as_of=demo.as_of,
        generated_at=generated_at,
        generated_by_id=book.users["compliance"].id,
        record=False,
        document_dir=docs,
    )
    assert again.record is None
    changed = [n for n, c in _read(again.zip_bytes).items() if files.get(n) != c]
    assert changed == [] and again.zip_bytes == built.zip_bytes
    assert (
        session.scalar(
            select(EvidenceBundle.id).where(
                EvidenceBundle.id != row.id, EvidenceBundle.case_id == demo.case_id
            )
        )
        is None
    )


def test_a_contact_note_changed_in_the_database_shows_as_a_broken_link(
    session: Session, book: Book, tmp_path: Path
) -> None:
    docs = tmp_path / "docs"
    demo = demo_case(session, book, docs)
    session.execute(
        text("UPDATE contact_attempt SET notes = :notes WHERE id = :id"),
        {"notes": "债务人拒绝还款", "id": demo.call_id},
    )
    session.expire_all()
    built = bundle.build_bundle(
        session,
        case_id=demo.case_id,
        as_of=demo.as_of,
        generated_at=datetime.combine(demo.as_of, time(9), tzinfo=UTC),
        document_dir=docs,
    )
    manifest = json.loads(_read(built.zip_bytes)["manifest.json"])
    chain = manifest["contact_record"]
    assert chain["status"] == "broken" and not built.chain.ok
    [link] = chain["broken"]
    assert (link["attempt_id"], link["problem"]) == (demo.call_id, "content_changed")
    assert "被改动" in link["message_zh"]
    assert built.record is not None and built.record.chain_ok is False
    assert bundle.check_bundle(built.zip_bytes).ok  # the bundle itself is intact; the record is not
    assert "哈希链校验：断裂" in _pdf_text(_read(built.zip_bytes)["summary.pdf"])


def test_the_summary_pdf_prints_the_debtor_in_chinese_with_balances_and_renders(
    session: Session, book: Book, tmp_path: Path
) -> None:
    docs = tmp_path / "docs"
    demo = demo_case(session, book, docs)
    account = session.scalars(
        select(Account).where(Account.case_id == demo.case_id).order_by(Account.id)
    ).first()
    assert account is not None
    account.bank_account, account.bank_name = "6222021234567890128", "中国工商银行"
    session.flush()
    built = bundle.build_bundle(
        session,
        case_id=demo.case_id,
        as_of=demo.as_of,
        generated_at=datetime.combine(demo.as_of, time(8), tzinfo=UTC),
        document_dir=docs,
    )
    pdf = _read(built.zip_bytes)["summary.pdf"]
    assert b"NotoSansCJK" in pdf  # the letters' CJK font, embedded
    compact = _pdf_text(pdf)
    assert "催收证据材料汇总" in compact and "张三" in compact
    # the address is masked like the ID number, phones and bank account: province and city only
    assert "地址：北京市朝阳区*****" in compact and "建国路" not in compact
    assert "+86138****8000" in compact and "13800138000" not in compact
    assert "哈希链校验：完整" in compact
    # balances on the as-of date: account 1 is 10,000.00 - 500.00 paid + 800.00 lawyer's fee
    assert "¥10,300.00" in compact and "¥5,000.00" in compact and "¥15,300.00" in compact
    assert "110105********002X" in compact  # the ID number is masked
    assert "还款账号" in compact and "************0128中国工商银行" in compact  # and so is the bank account
    assert "6222021234567890128" not in compact
    assert "信用卡" in compact and "在催" in compact  # products and statuses in words, not their codes
    assert "credit_card" not in compact and "active" not in compact
    poppler = shutil.which("pdftoppm") is not None and shutil.which("pdftotext") is not None
    if not poppler:
        if os.environ.get("CI") == "true":
            pytest.fail("poppler-utils (pdftoppm, pdftotext) are required under CI")
        pytest.skip("needs poppler-utils")
    out_dir = Path(os.environ.get("ARREARS_LETTER_PNG_DIR", tmp_path))
    source = tmp_path / "summary.pdf"
    source.write_bytes(pdf)
    layout = subprocess.run(
        ["pdftotext", "-layout", str(source), "-"], capture_output=True, text=True, check=True
    ).stdout
    assert "张三" in "".join(layout.split())
    subprocess.run(
        [
            "pdftoppm",
            "-png",
            "-r",
            "80",
            "-f",
            "1",
            "-l",
            "1",
            str(source),
            str(out_dir / "evidence-summary"),
        ],
        check=True,
    )
    [png] = sorted(out_dir.glob("evidence-summary*.png"))
    with Image.open(png) as image:
        grey = image.convert("L")
        dark = sum(grey.histogram()[:128]) / (grey.width * grey.height)
    assert 0.01 < dark < 0.4  # text on the page, not an empty or black page
