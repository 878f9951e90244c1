"""Payment files: bank or core-system exports posted all or nothing, with a row-level report."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import ledger_builders as b
import pytest
from openpyxl import Workbook
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from arrears import bulk as table_bulk
from arrears.ledger import payments_import, service
from arrears.ledger.payments_import import import_payments
from arrears.models import Payment, Posting
from arrears.portfolios.report import write_report

NOW = datetime(2025, 6, 10, 9, 0, tzinfo=UTC)


def _count(session: Session, model: type[Payment] | type[Posting], portfolio_id: int) -> int:
    return int(
        session.scalar(select(func.count()).select_from(model).where(model.portfolio_id == portfolio_id)) or 0
    )


def test_a_bank_file_posts_every_row_by_account_or_id_number(session: Session, tmp_path: Path) -> None:
    p = b.portfolio(session)
    d1, c1 = b.debtor(session, p)
    d2, c2 = b.debtor(session, p, national_id="11010519491231002X")
    a1 = b.account(session, p, d1, c1, ref="JJ-001", principal=10_000, interest=500)
    a2 = b.account(session, p, d2, c2, ref="JJ-002", principal=20_000)
    f = tmp_path / "bank.csv"
    f.write_text(
        "借据号,身份证号,还款金额,还款日期,流水号\n"
        'JJ-001,,"¥1,000.50",2025/6/1,B001\n'
        ",11010519491231002x,300,2025年6月2日,B002\n"
        "JJ-001,,99999,20250603,B003\n",
        encoding="gb18030",
    )
    report = import_payments(session, path=f, portfolio_id=p.id, now=NOW)
    assert report.status == "applied", report.issues
    assert (report.rows_total, report.amount_minor) == (3, 100_050 + 30_000 + 9_999_900)
    assert report.allocated_minor + report.credit_minor == report.amount_minor
    session.refresh(a1)
    session.refresh(a2)
    assert (a1.principal_minor, a1.interest_minor) == (0, 0)
    assert (a2.principal_minor, a2.credit_minor) == (0, 10_000)  # found by ID number; overpaid
    assert a1.credit_minor == 100_050 + 9_999_900 - 10_500
    assert service.verify_balances(session, portfolio_id=p.id) == []


def test_a_file_with_one_bad_row_posts_nothing_and_the_report_names_each_problem(
    session: Session, tmp_path: Path
) -> None:
    p = b.portfolio(session)
    d, c = b.debtor(session, p)
    b.account(session, p, d, c, ref="A", principal=10_000)
    service.post_payment(
        session,
        portfolio_id=p.id,
        debtor_id=d.id,
        amount_minor=1,
        received_on=NOW.date(),
        reference="OLD",
        now=NOW,
    )
    before = (_count(session, Payment, p.id), _count(session, Posting, p.id))
    f = tmp_path / "bank.csv"
    f.write_text(
        "account_ref,amount,date,reference\n"
        "A,100,2025-06-01,R1\n"
        "A,abc,2025-06-01,R2\n"
        "NOPE,100,2025-06-01,R3\n"
        "A,100,2025-13-01,R4\n"
        "A,100,2025-06-01,R1\n"
        "A,100,2025-06-01,OLD\n"
        "A,0,2025-06-01,R7\n"
        "A,100,2024-06-01,R8\n",
        encoding="utf-8",
    )
    report = import_payments(session, path=f, portfolio_id=p.id, now=NOW)
    assert report.status == "rejected"
    got = sorted((r["row"], r["code"]) for r in report.errors.iter_rows(named=True))
    assert got == [
        (3, "bad_amount"),
        (4, "account_unknown"),
        (5, "bad_date"),
        (6, "duplicate_reference"),
        (7, "reference_posted"),
        (8, "zero_amount"),
    ]
    assert (_count(session, Payment, p.id), _count(session, Posting, p.id)) == before
    out = write_report(report.issues, tmp_path / "problems.csv")
    text = out.read_text(encoding="utf-8-sig")
    assert (
        "文件中流水号重复（另见第 2 行）" in text
        and "reference repeated in the file (see also row 2)" in text
    )

    fixed = tmp_path / "fixed.csv"
    fixed.write_text("account_ref,amount,date,reference\nA,100,2024-06-01,R8\n", encoding="utf-8")
    late = import_payments(session, path=fixed, portfolio_id=p.id, now=NOW)
    assert [(r["row"], r["code"]) for r in late.errors.iter_rows(named=True)] == [(2, "before_opening")]
    assert (_count(session, Payment, p.id), _count(session, Posting, p.id)) == before


def test_an_xlsx_core_system_file_and_a_dry_run(session: Session, tmp_path: Path) -> None:
    p = b.portfolio(session)
    d, c = b.debtor(session, p)
    a = b.account(session, p, d, c, ref="X1", principal=50_000)
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.append(["借据号", "实还金额", "入账日期", "交易流水号"])
    ws.append(["X1", 123.45, datetime(2025, 6, 5), "T-1"])
    ws.append(["X1", "200", "2025-06-06", "T-2"])
    f = tmp_path / "core.xlsx"
    wb.save(f)
    dry = import_payments(session, path=f, portfolio_id=p.id, now=NOW, dry_run=True)
    assert dry.status == "dry_run" and dry.allocated_minor == 32_345
    assert _count(session, Payment, p.id) == 0
    done = import_payments(session, path=f, portfolio_id=p.id, now=NOW)
    assert done.status == "applied" and done.batch_id is not None
    session.refresh(a)
    assert a.principal_minor == 50_000 - 32_345
    again = import_payments(session, path=f, portfolio_id=p.id, now=NOW)
    assert again.status == "rejected" and set(again.errors["code"]) == {"reference_posted"}


def test_several_payments_in_one_file_split_as_if_posted_one_by_one(session: Session, tmp_path: Path) -> None:
    p = b.portfolio(session)
    d1, c1 = b.debtor(session, p)
    d2, c2 = b.debtor(session, p)
    spec = dict(principal=10_000, interest=1_001, penalty=333, fees=50, costs=7)
    in_file = b.account(session, p, d1, c1, ref="F", **spec)  # type: ignore[arg-type]
    by_hand = b.account(session, p, d2, c2, ref="H", **spec)  # type: ignore[arg-type]
    amounts = [5, 1_000, 377, 3_000, 9_999]
    f = tmp_path / "bank.csv"
    f.write_text(
        "借据号,还款金额,还款日期,流水号\n"
        + "".join(f"F,{a / 100:.2f},2025-06-0{i + 1},F{i}\n" for i, a in enumerate(amounts)),
        encoding="utf-8",
    )
    assert import_payments(session, path=f, portfolio_id=p.id, now=NOW).status == "applied"
    for i, a in enumerate(amounts):
        service.post_payment(
            session,
            portfolio_id=p.id,
            account_id=by_hand.id,
            amount_minor=a,
            received_on=datetime(2025, 6, i + 1).date(),
            reference=f"H{i}",
            now=NOW,
        )

    def splits(account_id: int) -> list[tuple[str | None, int, str | None]]:
        rows = session.scalars(
            select(Posting)
            .where(Posting.account_id == account_id, Posting.payment_id.is_not(None))
            .order_by(Posting.payment_id, Posting.id)
        )
        return [(r.component, r.amount_minor, r.rule_id) for r in rows]

    assert splits(in_file.id) == splits(by_hand.id)
    session.refresh(in_file)
    session.refresh(by_hand)
    assert (in_file.principal_minor, in_file.credit_minor) == (by_hand.principal_minor, by_hand.credit_minor)


def test_a_large_file_resolves_in_memory_and_a_stored_reference_still_refuses_it(
    session: Session, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # every file takes the large-file path: accounts joined in memory, references left to the unique
    # constraint, the payment indexes rebuilt after the load when the table is small
    monkeypatch.setattr(payments_import, "RESOLVE_IN_MEMORY_ROWS", 0)
    monkeypatch.setattr(table_bulk, "DEFER_INDEXES_MIN_ROWS", 0)
    p = b.portfolio(session)
    d1, c1 = b.debtor(session, p)
    d2, c2 = b.debtor(session, p, national_id="11010519491231002X")
    a1 = b.account(session, p, d1, c1, ref="L-1", principal=10_000)
    a2 = b.account(session, p, d2, c2, ref="L-2", principal=20_000)
    f = tmp_path / "bank.csv"
    f.write_text(
        "借据号,身份证号,还款金额,还款日期,流水号\nL-1,,40,2025-06-01,S1\n,11010519491231002X,30,2025-06-02,S2\n",
        encoding="utf-8",
    )
    done = import_payments(session, path=f, portfolio_id=p.id, now=NOW)
    assert done.status == "applied", done.issues
    session.refresh(a1)
    session.refresh(a2)
    assert (a1.principal_minor, a2.principal_minor) == (10_000 - 4_000, 20_000 - 3_000)
    before = (_count(session, Payment, p.id), _count(session, Posting, p.id))

    # the same references again: refused by the stored ones, named row by row, nothing written
    again = import_payments(session, path=f, portfolio_id=p.id, now=NOW)
    assert again.status == "rejected"
    assert sorted((r["row"], r["code"]) for r in again.errors.iter_rows(named=True)) == [
        (2, "reference_posted"),
        (3, "reference_posted"),
    ]
    # a stored reference next to other problems is named too
    mixed = tmp_path / "mixed.csv"
    mixed.write_text(
        "借据号,还款金额,还款日期,流水号\nL-1,10,2025-06-03,S1\nNOPE,10,2025-06-03,S9\nL-2,10,2025-06-03,S10\n",
        encoding="utf-8",
    )
    report = import_payments(session, path=mixed, portfolio_id=p.id, now=NOW)
    assert sorted((r["row"], r["code"]) for r in report.errors.iter_rows(named=True)) == [
        (2, "reference_posted"),
        (3, "account_unknown"),
    ]
    assert (_count(session, Payment, p.id), _count(session, Posting, p.id)) == before
    assert service.verify_balances(session, portfolio_id=p.id) == []
