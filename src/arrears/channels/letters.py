"""Letters as PDF: one PDF per letter, and a daily print batch that concatenates letters.

A written collection notice is evidence (CN-8, CN-25), so it must print the same everywhere: the CJK font
(Noto Sans CJK SC, SIL OFL 1.1, installed from PyPI with the project) is subset and embedded in the PDF.
Each letter has the institution's header, the recipient block, the date, the case reference with a QR
code of it, the title and body (rendered from a template whose CN-8 content the linter checks) and
"page x of n" on every page, numbered per letter inside a batch.

Output is deterministic: the PDF's creation date is the letter's (or batch's) date, never the wall clock,
so the same letters give the same bytes and a stored hash can prove a letter unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any

import segno
from fontTools.ttLib import TTCollection
from fpdf import FPDF
from fpdf.enums import WrapMode, XPos, YPos

from arrears.channels import _data
from arrears.channels.templates import MessageTemplate, render_parts, resolve_locale
from arrears.channels.templates import format_letter_date as format_letter_date  # the letter's date
from arrears.enums import Channel
from arrears.errors import ConfigurationError, ValidationFailed

FONT_FAMILY = "ArrearsCJK"

# Layout in millimetres on A4 portrait (layout, not rule parameters).
_PAGE_W = 210.0
_MARGIN = 20.0
_FOOTER_Y = 297.0 - 14.0
_BOTTOM_MARGIN = 24.0
_QR_SIZE = 24.0
_BODY_LINE_H = 6.6
_BODY_SIZE = 11.0


@dataclass(frozen=True, slots=True)
class Institution:
    """The collecting institution as it appears in the letter's header (CN-5, CN-8)."""

    name: str
    address: str
    phone: str
    website: str | None = None


@dataclass(frozen=True, slots=True)
class Letter:
    """One letter ready to print: rendered title and body (paragraphs separated by blank lines)."""

    letter_id: str
    case_reference: str
    letter_date: date
    recipient_name: str
    recipient_address: str
    title: str
    body: str
    institution: Institution
    locale: str = "zh_CN"
    qr_payload: str | None = None  # defaults to the case reference


@dataclass(frozen=True, slots=True)
class BatchEntry:
    """Where one letter sits in a print batch (1-based page numbers)."""

    letter_id: str
    first_page: int
    page_count: int


@dataclass(frozen=True, slots=True)
class RenderedBatch:
    """A print batch PDF and the page range of each letter in it."""

    pdf: bytes
    entries: tuple[BatchEntry, ...]


@dataclass(frozen=True, slots=True)
class CjkFont:
    """The packaged CJK font: file and face index inside its collection."""

    path: Path
    collection_index: int
    face: str


@cache
def cjk_font() -> CjkFont:
    """Locate the embedded font named in ``letters.toml`` (a face inside an OpenType collection)."""
    spec = _data.load_toml("letters.toml")["font"]
    try:
        path = Path(str(files(spec["package"]).joinpath(spec["file"])))
    except ModuleNotFoundError as exc:
        raise ConfigurationError(
            f"font package {spec['package']!r} is not installed", code="letter_font_missing"
        ) from exc
    if not path.is_file():
        raise ConfigurationError(f"font file {path} not found", code="letter_font_missing")
    collection = TTCollection(str(path), lazy=True)
    for index, font in enumerate(collection.fonts):
        if font["name"].getDebugName(4) == spec["face"]:
            return CjkFont(path=path, collection_index=index, face=str(spec["face"]))
    raise ConfigurationError(f"font face {spec['face']!r} not in {path}", code="letter_font_missing")


def labels(locale: str) -> Mapping[str, str]:
    """Printed labels (date, case reference, page x of n ...) for a locale."""
    table: dict[str, dict[str, str]] = _data.load_toml("letters.toml")["labels"]
    return table[resolve_locale(locale)]


def contact_line(institution: Institution, locale: str) -> str:
    """The header's contact line: address, phone and website, each only when the sender has one.

    A law firm may be referred without an address or a phone; the letter then prints no empty label.
    """
    lab = labels(locale)
    parts = [
        f"{lab['address']}{institution.address.strip()}" if institution.address.strip() else "",
        f"{lab['phone']}{institution.phone.strip()}" if institution.phone.strip() else "",
        (institution.website or "").strip(),
    ]
    return "    ".join(part for part in parts if part)


def letter_from_template(
    template: MessageTemplate,
    context: Mapping[str, Any],
    *,
    letter_id: str,
    case_reference: str,
    letter_date: date,
    recipient_name: str,
    recipient_address: str,
    institution: Institution,
) -> Letter:
    """Render a letter template's title and body with a context into a printable `Letter`."""
    if template.channel not in (Channel.LETTER, Channel.LAWYER_LETTER):
        raise ValidationFailed(f"template {template.id!r} is not a letter", code="wrong_channel")
    parts = render_parts(template, context)
    return Letter(
        letter_id=letter_id,
        case_reference=case_reference,
        letter_date=letter_date,
        recipient_name=recipient_name,
        recipient_address=recipient_address,
        title=parts["title"].strip(),
        body=parts["body"],
        institution=institution,
        locale=template.locale,
    )


def _new_document(created_on: date) -> FPDF:
    font = cjk_font()
    pdf = FPDF(orientation="P", unit="mm", format="A4")
    pdf.set_margins(_MARGIN, _MARGIN, _MARGIN)
    pdf.set_auto_page_break(True, margin=_BOTTOM_MARGIN)
    pdf.add_font(FONT_FAMILY, "", str(font.path), collection_font_number=font.collection_index)
    pdf.set_creation_date(datetime.combine(created_on, time(0, 0), tzinfo=UTC))
    pdf.set_creator("arrears")
    pdf.set_producer("arrears")
    return pdf


def _wrap_mode(locale: str) -> WrapMode:
    # Chinese has no spaces between words: break between any two characters.
    return WrapMode.CHAR if resolve_locale(locale).startswith("zh") else WrapMode.WORD


# Chinese line-breaking rules (禁则): these never start a line, those never end one.
_NO_LINE_START = frozenset("，。、；：？！）》」』】〕”’…—,.;:?!)]}%")
_NO_LINE_END = frozenset("（《「『【〔“‘([{¥$")
# A run of these stays on one line: numbers, amounts, Latin words, links, references.
_UNBREAKABLE_RUN = re.compile(r"[A-Za-z0-9@#%&*+=/\\_.,:;?!~'$¥€£-]+")


def _tokens(text: str) -> list[str]:
    """Split a paragraph into units that may not be broken: Latin/number runs, single other characters."""
    tokens: list[str] = []
    position = 0
    for match in _UNBREAKABLE_RUN.finditer(text):
        tokens.extend(text[position : match.start()])
        tokens.append(match.group())
        position = match.end()
    tokens.extend(text[position:])
    return tokens


def break_lines(text: str, width: float, measure: Callable[[str], float]) -> list[str]:
    """Lines of a Chinese (or mixed) paragraph no wider than ``width``, by ``measure``.

    Numbers, amounts and Latin runs are never split (unless one alone is wider than a line); closing
    punctuation hangs at the end of a line rather than starting the next, opening punctuation moves to
    the next line.
    """
    lines: list[str] = []
    current = ""
    for token in _tokens(text):
        if token == " " and not current:
            continue
        candidate = current + token
        if measure(candidate) <= width:
            current = candidate
            continue
        if current and token in _NO_LINE_START:
            current = candidate  # hanging punctuation: a little past the margin is allowed
            continue
        carry = ""
        while current and current[-1] in _NO_LINE_END:
            carry = current[-1] + carry
            current = current[:-1]
        if current.strip():
            lines.append(current.rstrip())
        current = (carry + token).lstrip(" ")
        while measure(current) > width and len(current) > 1:  # a run longer than a whole line
            cut = len(current) - 1
            while cut > 1 and measure(current[:cut]) > width:
                cut -= 1
            lines.append(current[:cut])
            current = current[cut:]
    if current.strip():
        lines.append(current.rstrip())
    return lines


def _paragraph(pdf: FPDF, text: str, width: float, line_height: float, locale: str, align: str = "L") -> None:
    """Write a paragraph: Chinese with `break_lines`, other languages with fpdf2's word wrap."""
    if _wrap_mode(locale) is WrapMode.CHAR:
        for line in break_lines(text, width, pdf.get_string_width):
            pdf.cell(width, line_height, line, align=align, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    else:
        pdf.multi_cell(width, line_height, text, align=align, new_x=XPos.LMARGIN, new_y=YPos.NEXT)


def _draw_qr(pdf: FPDF, payload: str, x: float, y: float, size: float) -> None:
    """Vector QR code (dark modules as rectangles, runs merged per row): crisp at any print size."""
    qr = segno.make(payload, error="m", micro=False)
    rows = [list(row) for row in qr.matrix_iter(scale=1, border=0)]
    module = size / len(rows)
    pdf.set_fill_color(0, 0, 0)
    for r, row in enumerate(rows):
        c = 0
        while c < len(row):
            if row[c]:
                start = c
                while c < len(row) and row[c]:
                    c += 1
                pdf.rect(x + start * module, y + r * module, (c - start) * module, module, style="F")
            else:
                c += 1


def _draw_letter(pdf: FPDF, letter: Letter) -> BatchEntry:
    lab = labels(letter.locale)
    wrap = _wrap_mode(letter.locale)
    width = _PAGE_W - 2 * _MARGIN
    pdf.add_page()
    first_page = pdf.page
    inst = letter.institution

    # Institution header (CN-5: the letter identifies the collecting institution).
    pdf.set_text_color(0, 0, 0)
    pdf.set_font(FONT_FAMILY, size=16)
    pdf.set_xy(_MARGIN, _MARGIN)
    pdf.multi_cell(width - _QR_SIZE - 6, 8, inst.name, wrapmode=wrap, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font(FONT_FAMILY, size=9)
    contact = contact_line(inst, letter.locale)
    if contact:
        pdf.multi_cell(width - _QR_SIZE - 6, 5, contact, wrapmode=wrap, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    _draw_qr(pdf, letter.qr_payload or letter.case_reference, _PAGE_W - _MARGIN - _QR_SIZE, _MARGIN, _QR_SIZE)
    pdf.set_font(FONT_FAMILY, size=7)
    pdf.set_xy(_PAGE_W - _MARGIN - _QR_SIZE - 4, _MARGIN + _QR_SIZE + 1)
    pdf.cell(_QR_SIZE + 4, 4, lab["scan_hint"], align="C")
    rule_y = max(pdf.get_y() + 6, _MARGIN + _QR_SIZE + 7)
    pdf.set_draw_color(120, 120, 120)
    pdf.line(_MARGIN, rule_y, _PAGE_W - _MARGIN, rule_y)

    # Recipient block, date and case reference.
    pdf.set_xy(_MARGIN, rule_y + 6)
    pdf.set_font(FONT_FAMILY, size=11)
    pdf.multi_cell(
        width / 2,
        6,
        letter.recipient_name + lab["recipient_suffix"],
        wrapmode=wrap,
        new_x=XPos.LMARGIN,
        new_y=YPos.NEXT,
    )
    pdf.set_font(FONT_FAMILY, size=10)
    pdf.multi_cell(
        width / 2, 5.5, letter.recipient_address, wrapmode=wrap, new_x=XPos.LMARGIN, new_y=YPos.NEXT
    )
    left_bottom = pdf.get_y()
    pdf.set_xy(_MARGIN + width / 2, rule_y + 6)
    pdf.cell(
        width / 2,
        6,
        f"{lab['date']}{format_letter_date(letter.letter_date, letter.locale)}",
        align="R",
        new_x=XPos.LEFT,
        new_y=YPos.NEXT,
    )
    pdf.cell(
        width / 2,
        6,
        f"{lab['case_reference']}{letter.case_reference}",
        align="R",
        new_x=XPos.LMARGIN,
        new_y=YPos.NEXT,
    )
    pdf.set_y(max(left_bottom, pdf.get_y()) + 8)

    # Title and body.
    pdf.set_font(FONT_FAMILY, size=16)
    pdf.multi_cell(width, 9, letter.title, align="C", wrapmode=wrap, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(4)
    pdf.set_font(FONT_FAMILY, size=_BODY_SIZE)
    for paragraph in _paragraphs(letter.body):
        _paragraph(pdf, paragraph, width, _BODY_LINE_H, letter.locale)
        pdf.ln(2.5)
    pdf.ln(6)
    if pdf.will_page_break(3 * _BODY_LINE_H):
        pdf.add_page()  # keep the closing (institution and date) together
    pdf.multi_cell(
        width, _BODY_LINE_H, inst.name, align="R", wrapmode=wrap, new_x=XPos.LMARGIN, new_y=YPos.NEXT
    )
    pdf.cell(width, _BODY_LINE_H, format_letter_date(letter.letter_date, letter.locale), align="R")
    last_page = pdf.page

    # Footers, once the page count is known: page x of n per letter, and the case reference.
    count = last_page - first_page + 1
    auto_break = pdf.auto_page_break
    pdf.set_auto_page_break(False)
    for number in range(1, count + 1):
        pdf.page = first_page + number - 1
        pdf.set_font(FONT_FAMILY, size=8)
        pdf.set_text_color(90, 90, 90)
        pdf.set_xy(_MARGIN, _FOOTER_Y)
        pdf.cell(width / 2, 5, f"{lab['case_reference']}{letter.case_reference}")
        pdf.set_xy(_MARGIN + width / 2, _FOOTER_Y)
        pdf.cell(width / 2, 5, lab["page"].format(page=number, pages=count), align="R")
    pdf.page = last_page
    pdf.set_text_color(0, 0, 0)
    pdf.set_auto_page_break(auto_break, margin=_BOTTOM_MARGIN)
    return BatchEntry(letter_id=letter.letter_id, first_page=first_page, page_count=count)


def _paragraphs(body: str) -> list[str]:
    blocks = [block.strip() for block in body.replace("\r\n", "\n").split("\n\n")]
    return [block for block in blocks if block]


def render_letter_pdf(letter: Letter) -> bytes:
    """One letter as a PDF with the CJK font embedded."""
    pdf = _new_document(letter.letter_date)
    pdf.set_title(letter.title)
    _draw_letter(pdf, letter)
    return bytes(pdf.output())


def render_print_batch(letters: Sequence[Letter], *, batch_date: date, duplex: bool = False) -> RenderedBatch:
    """A day's letters in one PDF, each starting on a new page (on a new sheet when ``duplex``).

    Page numbers are counted per letter. Returns the PDF and where each letter sits in it.
    """
    if not letters:
        raise ValidationFailed("a print batch needs at least one letter", code="empty_print_batch")
    pdf = _new_document(batch_date)
    pdf.set_title(f"print batch {batch_date.isoformat()}")
    entries = []
    for letter in letters:
        entries.append(_draw_letter(pdf, letter))
        if duplex and pdf.page % 2 == 1:
            pdf.add_page()  # blank back side, so the next letter starts on its own sheet
    return RenderedBatch(pdf=bytes(pdf.output()), entries=tuple(entries))
