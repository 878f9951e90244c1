"""Letters as PDF: CN-8 content, embedded CJK font, QR code, page numbers; rendered to PNG with pdftoppm."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from datetime import date
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from pypdf import PdfReader

from arrears.channels.letters import (
    Institution,
    Letter,
    cjk_font,
    contact_line,
    letter_from_template,
    render_letter_pdf,
    render_print_batch,
)
from arrears.channels.templates import default_context, default_template

INSTITUTION = Institution(
    name="华夏消费金融有限公司 贷后服务中心",
    address="上海市浦东新区世纪大道100号20层",
    phone="400-800-1234",
    website="https://www.example.cn",
)
DPI = 72
needs_poppler = pytest.mark.skipif(
    shutil.which("pdftoppm") is None or shutil.which("pdftotext") is None, reason="needs poppler-utils"
)


def notice(locale: str = "zh_CN", *, letter_id: str = "L-1", case_reference: str = "C-2025-000123") -> Letter:
    context = default_context(locale) | {
        "debtor_name": "张三",
        "creditor_name": "华夏消费金融有限公司",
        "account_reference": "LN-2024-000123",
        "reason": "未按合同约定按期归还分期款项" if locale == "zh_CN" else "missed instalments",
        "letter_date": "2025年3月10日" if locale == "zh_CN" else "10 March 2025",
        "balance": "¥12,345.67",
        "amount_due": "¥2,100.00",
        "overdue_days": "5",
        "payment_instructions": "通过App“还款”页面还款" if locale == "zh_CN" else "pay in the app",
        "institution_name": INSTITUTION.name,
        "institution_phone": INSTITUTION.phone,
        "institution_address": INSTITUTION.address,
        "self_service_link": "https://pay.example.cn/c/C2025000123",
    }
    return letter_from_template(
        default_template("formal_notice", locale),
        context,
        letter_id=letter_id,
        case_reference=case_reference,
        letter_date=date(2025, 3, 10),
        recipient_name="张三",
        recipient_address="北京市朝阳区建国路88号\n3号楼2单元501室\n100022",
        institution=INSTITUTION,
    )


def long_letter() -> Letter:
    base = notice(letter_id="L-long", case_reference="C-2025-000999")
    body = "\n\n".join([base.body] + ["附：还款明细说明。" * 30] * 6)
    return Letter(**{**_fields(base), "body": body})


def _fields(letter: Letter) -> dict[str, Any]:
    return {name: getattr(letter, name) for name in letter.__slots__}  # type: ignore[attr-defined]


def embedded_fonts(pdf: bytes) -> dict[str, dict[str, Any]]:
    """BaseFont -> font descriptor, for every font any page uses."""
    fonts: dict[str, dict[str, Any]] = {}
    for page in PdfReader(BytesIO(pdf)).pages:
        for ref in page["/Resources"]["/Font"].values():
            font = ref.get_object()
            descendant = font["/DescendantFonts"][0].get_object()
            fonts[str(font["/BaseFont"])] = descendant["/FontDescriptor"].get_object()
    return fonts


def page_texts(pdf: bytes) -> list[str]:
    """Text of each page as poppler's pdftotext reads it, whitespace removed."""
    texts = []
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "doc.pdf"
        source.write_bytes(pdf)
        pages = len(PdfReader(BytesIO(pdf)).pages)
        for number in range(1, pages + 1):
            out = subprocess.run(
                ["pdftotext", "-f", str(number), "-l", str(number), str(source), "-"],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            texts.append("".join(out.split()))
    return texts


def to_png(pdf: bytes, folder: Path, stem: str = "letter") -> list[Path]:
    source = folder / f"{stem}.pdf"
    source.write_bytes(pdf)
    subprocess.run(["pdftoppm", "-r", str(DPI), "-png", str(source), str(folder / stem)], check=True)
    return sorted(folder.glob(f"{stem}-*.png"))


def dark_share(image: Image.Image, box: tuple[int, int, int, int] | None = None) -> float:
    grey = image.convert("L")
    if box is not None:
        grey = grey.crop(box)
    histogram = grey.histogram()
    return sum(histogram[:128]) / (grey.width * grey.height)


def mm(value: float) -> int:
    return round(value * DPI / 25.4)


def test_the_packaged_cjk_font_is_the_simplified_chinese_face() -> None:
    font = cjk_font()
    assert font.face == "Noto Sans CJK SC"
    assert font.path.is_file()


def test_cn8_letter_embeds_the_cjk_font_as_a_subset() -> None:
    fonts = embedded_fonts(render_letter_pdf(notice()))
    assert len(fonts) == 1
    (base_font, descriptor) = next(iter(fonts.items()))
    assert "NotoSansCJKSC" in base_font
    assert base_font[1:7].isupper() and base_font[7] == "+"  # subset tag, e.g. /ABCDEF+NotoSansCJKSC
    assert "/FontFile3" in descriptor or "/FontFile2" in descriptor


@needs_poppler
def test_cn8_letter_states_debtor_balance_reason_legal_basis_rights_and_contact() -> None:
    (text,) = page_texts(render_letter_pdf(notice()))
    for expected in (
        "欠款催收通知书",
        "张三",
        "¥12,345.67",
        "未按合同约定按期归还分期款项",
        "民法典",
        "提出异议",
        "400-800-1234",
        INSTITUTION.address,
        "案件编号：C-2025-000123",
        "第1页/共1页",
        "2025年3月10日",
    ):
        assert "".join(expected.split()) in text, expected


@needs_poppler
def test_english_letter_uses_english_labels() -> None:
    (text,) = page_texts(render_letter_pdf(notice("en")))
    assert "NoticeofArrears" in text
    assert "Page1of1" in text
    assert "March10,2025" in text  # the letter's own date, in English long form


def test_same_letter_gives_the_same_bytes() -> None:
    assert render_letter_pdf(notice()) == render_letter_pdf(notice())


@needs_poppler
def test_print_batch_numbers_pages_per_letter() -> None:
    batch = render_print_batch(
        [notice(letter_id="A"), long_letter(), notice("en", letter_id="C")], batch_date=date(2025, 3, 10)
    )
    assert (batch.entries[0].letter_id, batch.entries[0].first_page) == ("A", 1)
    long_entry = batch.entries[1]
    assert long_entry.page_count >= 2
    texts = page_texts(batch.pdf)
    assert len(texts) == sum(e.page_count for e in batch.entries)
    assert (
        f"第{long_entry.page_count}页/共{long_entry.page_count}页"
        in texts[long_entry.first_page - 1 + long_entry.page_count - 1]
    )
    assert "第1页/共1页" in texts[0]
    assert "Page1of1" in texts[-1]
    assert len(embedded_fonts(batch.pdf)) == 1  # one font subset shared by the whole batch


def test_duplex_batch_starts_every_letter_on_a_new_sheet() -> None:
    batch = render_print_batch(
        [notice(letter_id="A"), notice(letter_id="B")], batch_date=date(2025, 3, 10), duplex=True
    )
    assert [e.first_page for e in batch.entries] == [1, 3]
    assert len(PdfReader(BytesIO(batch.pdf)).pages) == 4


@needs_poppler
def test_rendered_letter_is_not_blank_and_shows_the_qr_code(tmp_path: Path) -> None:
    (png,) = to_png(render_letter_pdf(notice()), tmp_path)
    image = Image.open(png)
    assert image.size == (mm(210), mm(297)) or abs(image.width - mm(210)) <= 1
    assert dark_share(image) > 0.01  # text was drawn
    # The QR code sits in the top-right corner, 24 mm square: about half its modules are dark.
    qr_box = (mm(210 - 20 - 24), mm(20), mm(210 - 20), mm(20 + 24))
    assert 0.3 < dark_share(image, qr_box) < 0.8
    # The body text area has ink (the CJK glyphs rendered, not empty boxes left to the viewer).
    assert dark_share(image, (mm(20), mm(110), mm(190), mm(200))) > 0.02


@needs_poppler
def test_every_page_of_a_batch_renders_with_ink(tmp_path: Path) -> None:
    batch = render_print_batch([notice(letter_id="A"), long_letter()], batch_date=date(2025, 3, 10))
    pngs = to_png(batch.pdf, tmp_path, "batch")
    assert len(pngs) == len(PdfReader(BytesIO(batch.pdf)).pages)
    # Ink above the footer on every page: no page carries only its page number.
    above_footer = (0, 0, mm(210), mm(297 - 16))
    assert all(dark_share(Image.open(p), above_footer) > 0.0005 for p in pngs)


@needs_poppler
def test_pdffonts_reports_the_cjk_font_embedded(tmp_path: Path) -> None:
    if shutil.which("pdffonts") is None:
        pytest.skip("needs poppler-utils (pdffonts)")
    source = tmp_path / "letter.pdf"
    source.write_bytes(render_letter_pdf(notice()))
    listing = subprocess.run(["pdffonts", str(source)], check=True, capture_output=True, text=True).stdout
    (row,) = [line for line in listing.splitlines() if "NotoSansCJKSC" in line]
    emb, sub, uni = row.split()[-5:-2]
    assert (emb, sub, uni) == ("yes", "yes", "yes")


def test_the_header_prints_only_the_contact_details_the_sender_has() -> None:
    assert contact_line(INSTITUTION, "zh_CN") == (
        "地址：上海市浦东新区世纪大道100号20层    电话：400-800-1234    https://www.example.cn"
    )
    bare = Institution(name="北京市正衡律师事务所", address="", phone=" ")
    assert contact_line(bare, "zh_CN") == "" and contact_line(bare, "en") == ""
    phone_only = Institution(name="Zhengheng Law Firm", address="", phone="010-85001234")
    assert contact_line(phone_only, "en") == "Tel. 010-85001234"
