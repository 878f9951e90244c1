"""Account statements at any date: opening balance, every posting, closing balance by component.

The statement is computed from postings alone (the cache on ``account`` is not read), so it is what the
ledger proves. An account not yet opened in the ledger shows its imported balances as its opening charges.
Rendered as JSON (the pydantic model), CSV (UTF-8 with BOM, opens in Excel) or PDF with the embedded CJK
font that the letters use, so Chinese prints the same everywhere.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, time

from fpdf import FPDF
from fpdf.fonts import FontFace
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from arrears import clock, money
from arrears.errors import NotFound, ValidationFailed
from arrears.ledger.postings import COMPONENTS, PostingKind
from arrears.models import Account, Payment, Portfolio, Posting

BUCKETS = [*(c.value for c in COMPONENTS), "credit"]

LABELS: dict[str, dict[str, str]] = {
    "zh_CN": {
        "title": "账户对账单",
        "account": "借据号",
        "product": "产品",
        "currency": "币种",
        "period": "期间",
        "as_of": "截至",
        "opening": "期初余额",
        "closing": "期末余额",
        "date": "日期",
        "kind": "类型",
        "component": "余额构成",
        "amount": "金额",
        "balance": "余额合计",
        "rule": "规则",
        "reference": "流水号",
        "costs": "实现债权的费用",
        "interest": "利息",
        "penalty": "罚息",
        "fees": "费用",
        "principal": "本金",
        "credit": "溢缴款",
        "total": "合计",
        "charge": "入账",
        "accrual": "计息",
        "payment": "还款",
        "waiver": "减免",
        "write_off": "核销",
        "reversal": "冲正",
        "adjustment": "调整",
        "page": "第 {n} 页",
    },
    "en": {
        "title": "Account statement",
        "account": "Account",
        "product": "Product",
        "currency": "Currency",
        "period": "Period",
        "as_of": "As of",
        "opening": "Opening balance",
        "closing": "Closing balance",
        "date": "Date",
        "kind": "Kind",
        "component": "Component",
        "amount": "Amount",
        "balance": "Total owed",
        "rule": "Rule",
        "reference": "Reference",
        "costs": "Costs",
        "interest": "Interest",
        "penalty": "Penalty interest",
        "fees": "Fees",
        "principal": "Principal",
        "credit": "Credit balance",
        "total": "Total",
        "charge": "Charge",
        "accrual": "Accrual",
        "payment": "Payment",
        "waiver": "Waiver",
        "write_off": "Write-off",
        "reversal": "Reversal",
        "adjustment": "Adjustment",
        "page": "Page {n}",
    },
}


class StatementLine(BaseModel):
    """One posting on the statement, with the total owed after it (credit balance not netted)."""

    posting_id: int | None
    effective_date: date
    kind: str
    component: str  # a component, or "credit"
    amount_minor: int
    rule_id: str | None
    payment_id: int | None
    payment_reference: str | None
    total_after_minor: int


class Statement(BaseModel):
    """Opening balances, the postings of the period and closing balances, per component and credit."""

    account_id: int
    external_ref: str
    product: str
    currency: str
    from_date: date | None
    as_of: date
    opening: dict[str, int]
    lines: list[StatementLine]
    closing: dict[str, int]
    opening_total_minor: int
    closing_total_minor: int


def statement(session: Session, *, account_id: int, as_of: date, from_date: date | None = None) -> Statement:
    """The statement of an account at ``as_of`` (postings effective on or before it), from ``from_date``.

    Without ``from_date`` the statement starts at the first posting (opening balances are zero). Credit
    balance is shown as a positive amount held for the debtor.
    """
    account = session.get(Account, account_id)
    if account is None:
        raise NotFound(f"账户不存在 / account {account_id} not found", code="account_not_found")
    if from_date is not None and from_date > as_of:
        raise ValidationFailed("起始日期晚于截至日期 / from date is after as-of date", code="bad_period")
    rows = session.execute(
        select(Posting, Payment.reference)
        .outerjoin(Payment, Payment.id == Posting.payment_id)
        .where(Posting.account_id == account_id, Posting.effective_date <= as_of)
        .order_by(Posting.effective_date, Posting.id)
    ).all()
    entries: list[tuple[int | None, date, str, str, int, str | None, int | None, str | None]] = [
        (
            p.id,
            p.effective_date,
            p.kind,
            p.component or "credit",
            -p.amount_minor if p.component is None else p.amount_minor,
            p.rule_id,
            p.payment_id,
            ref,
        )
        for p, ref in rows
    ]
    if account.ledger_opened_on is None:
        portfolio = session.get(Portfolio, account.portfolio_id)
        zone = portfolio.timezone if portfolio else clock.DEFAULT_ZONE
        opened_on = clock.to_local(account.created_at, zone).date()
        if opened_on <= as_of:
            entries = [
                (None, opened_on, PostingKind.CHARGE.value, c.value, amount, "opening", None, None)
                for c in COMPONENTS
                if (amount := int(getattr(account, f"{c.value}_minor"))) > 0
            ]
    opening = dict.fromkeys(BUCKETS, 0)
    lines: list[StatementLine] = []
    running = dict.fromkeys(BUCKETS, 0)
    for posting_id, day, kind, bucket, amount, rule, payment_id, ref in entries:
        running[bucket] += amount
        if from_date is not None and day < from_date:
            opening[bucket] += amount
            continue
        lines.append(
            StatementLine(
                posting_id=posting_id,
                effective_date=day,
                kind=kind,
                component=bucket,
                amount_minor=amount,
                rule_id=rule,
                payment_id=payment_id,
                payment_reference=ref,
                total_after_minor=sum(v for k, v in running.items() if k != "credit"),
            )
        )
    return Statement(
        account_id=account.id,
        external_ref=account.external_ref,
        product=account.product,
        currency=account.currency,
        from_date=from_date,
        as_of=as_of,
        opening=opening,
        lines=lines,
        closing=running,
        opening_total_minor=sum(v for k, v in opening.items() if k != "credit"),
        closing_total_minor=sum(v for k, v in running.items() if k != "credit"),
    )


def _labels(locale: str) -> dict[str, str]:
    return LABELS["en"] if locale.lower().startswith("en") else LABELS["zh_CN"]


def statement_csv(st: Statement, *, locale: str = "zh_CN") -> str:
    """The statement as CSV text: a header block, one row per posting, opening and closing rows."""
    lab = _labels(locale)
    out = io.StringIO()
    w = csv.writer(out)

    def amount(value: int) -> str:
        return money.format_minor(value, st.currency)

    w.writerow([lab["title"], st.external_ref, st.currency, f"{lab['as_of']} {st.as_of.isoformat()}"])
    w.writerow(
        [
            lab["date"],
            lab["kind"],
            lab["component"],
            lab["amount"],
            lab["balance"],
            lab["reference"],
            lab["rule"],
            "posting_id",
        ]
    )
    opened_on = (st.from_date or (st.lines[0].effective_date if st.lines else st.as_of)).isoformat()
    w.writerow([opened_on, lab["opening"], lab["total"], amount(st.opening_total_minor), "", "", "", ""])
    for line in st.lines:
        w.writerow(
            [
                line.effective_date.isoformat(),
                lab.get(line.kind, line.kind),
                lab.get(line.component, line.component),
                amount(line.amount_minor),
                amount(line.total_after_minor),
                line.payment_reference or "",
                line.rule_id or "",
                "" if line.posting_id is None else str(line.posting_id),
            ]
        )
    for bucket in BUCKETS:
        w.writerow(
            [st.as_of.isoformat(), lab["closing"], lab[bucket], amount(st.closing[bucket]), "", "", "", ""]
        )
    w.writerow(
        [st.as_of.isoformat(), lab["closing"], lab["total"], amount(st.closing_total_minor), "", "", "", ""]
    )
    return out.getvalue()


def statement_pdf(st: Statement, *, locale: str = "zh_CN") -> bytes:
    """The statement as an A4 PDF with the packaged CJK font embedded (as the letters are printed)."""
    from arrears.channels.letters import cjk_font

    lab = _labels(locale)
    font = cjk_font()
    pdf = FPDF(orientation="P", unit="mm", format="A4")
    pdf.set_margins(15, 15, 15)
    pdf.set_auto_page_break(True, margin=15)
    pdf.add_font("cjk", "", str(font.path), collection_font_number=font.collection_index)
    pdf.set_creation_date(datetime.combine(st.as_of, time(0, 0), tzinfo=UTC))
    pdf.set_creator("arrears")
    pdf.set_title(f"{lab['title']} {st.external_ref}")
    pdf.add_page()

    def amount(value: int) -> str:
        return money.format_minor(value, st.currency)

    pdf.set_font("cjk", size=16)
    pdf.cell(0, 10, lab["title"], new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("cjk", size=10)
    period = f"{st.from_date.isoformat() if st.from_date else '—'} ~ {st.as_of.isoformat()}"
    for key, value in (
        ("account", st.external_ref),
        ("product", st.product),
        ("currency", st.currency),
        ("period", period),
    ):
        pdf.cell(0, 6, f"{lab[key]}：{value}", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(2)

    def balances_table(title: str, values: dict[str, int], total: int) -> None:
        pdf.set_font("cjk", size=11)
        pdf.cell(0, 7, title, new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("cjk", size=9)
        with pdf.table(
            col_widths=(60, 40),
            text_align=("LEFT", "RIGHT"),
            width=100,
            align="LEFT",
            first_row_as_headings=False,
        ) as table:
            for bucket in BUCKETS:
                row = table.row()
                row.cell(lab[bucket])
                row.cell(amount(values[bucket]))
            row = table.row()
            row.cell(lab["total"])
            row.cell(amount(total))
        pdf.ln(3)

    balances_table(lab["opening"], st.opening, st.opening_total_minor)
    pdf.set_font("cjk", size=8)
    headings = (
        lab["date"],
        lab["kind"],
        lab["component"],
        lab["amount"],
        lab["balance"],
        lab["reference"],
        lab["rule"],
    )
    with pdf.table(
        col_widths=(20, 14, 24, 24, 24, 30, 44),
        text_align=("LEFT", "LEFT", "LEFT", "RIGHT", "RIGHT", "LEFT", "LEFT"),
        headings_style=FontFace(emphasis="", fill_color=(235, 235, 235)),
    ) as table:
        head = table.row()
        for h in headings:
            head.cell(h)
        for line in st.lines:
            row = table.row()
            row.cell(line.effective_date.isoformat())
            row.cell(lab.get(line.kind, line.kind))
            row.cell(lab.get(line.component, line.component))
            row.cell(amount(line.amount_minor))
            row.cell(amount(line.total_after_minor))
            row.cell(line.payment_reference or "")
            row.cell(line.rule_id or "")
    pdf.ln(3)
    balances_table(
        f"{lab['closing']}（{lab['as_of']} {st.as_of.isoformat()}）", st.closing, st.closing_total_minor
    )
    return bytes(pdf.output())
