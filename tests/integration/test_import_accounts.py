"""Account import end to end on SQLite and PostgreSQL: messy files, all-or-nothing, re-imports."""

from __future__ import annotations

import csv
from datetime import date
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from arrears.models import Account, AccountFlag, ContactPoint, Debtor, ImportChange, Instalment
from arrears.portfolios import service
from arrears.users.masking import (
    mask_bank_account,
    mask_contact_value,
    mask_national_id,
    sql_mask_bank_account,
    sql_mask_contact_value,
    sql_mask_national_id,
)

AS_OF = date(2025, 7, 1)
HEADERS = [
    "借据号",
    "姓名",
    "身份证号",
    "手机号",
    "产品类型",
    "逾期金额",
    "到期日",
    "放款日期",
    "紧急联系人",
    "紧急联系人关系",
    "紧急联系人电话",
    "期数",
    "每期金额",
    "首期还款日",
    "特殊标记",
]
# Valid IDs (check digits computed by python-stdnum in test_validate_unit).
ID_A = "11010519491231002X"
ID_B = "440524198001010013"
ID_C = "110105199003070017"


def messy_rows() -> list[list[str]]:
    """Full-width digits, Excel serial dates, currency signs, thousands separators, mixed date styles."""
    return [
        [
            "LN0001",
            "张三",
            ID_A,
            "１３８００１３８０００",
            "信用卡",
            "￥１,２３４.５０",
            "45800",
            "",
            "张父",
            "父亲",
            "010-12345678",
            "",
            "",
            "",
            "",
        ],
        [
            "LN0002",
            "张三",
            ID_A,
            "13800138000",
            "消费贷",
            "CNY 500",
            "2025年6月1日",
            "2024/1/1",
            "",
            "",
            "",
            "",
            "",
            "",
            "异议",
        ],
        [
            "LN0003",
            "李四",
            ID_B,
            "13900001111",
            "分期",
            "1,200.00",
            "2025/5/31",
            "2024-12-01",
            "",
            "",
            "",
            "12",
            "100",
            "2025-01-31",
            "",
        ],
        [
            "LN0004",
            "王五",
            ID_C,
            "13700001111",
            "消费贷",
            "800",
            "20250420",
            "2024-02-02",
            "王妻",
            "配偶",
            "13600002222",
            "",
            "",
            "",
            "",
        ],
    ]


def write_csv(path: Path, rows: list[list[str]], encoding: str = "gb18030") -> Path:
    with path.open("w", encoding=encoding, newline="") as fh:
        w = csv.writer(fh)
        w.writerow(HEADERS)
        w.writerows(rows)
    return path


@pytest.fixture
def portfolio(session: Session) -> str:
    service.create_portfolio(session, name="p-test", creditor="测试银行")
    return "p-test"


def count(session: Session, model: type) -> int:
    return int(session.scalar(select(func.count()).select_from(model)) or 0)


def test_messy_gb18030_file_with_two_bad_rows_imports_nothing_and_names_exactly_those_rows(
    session: Session, portfolio: str, tmp_path: Path
) -> None:
    rows = messy_rows()
    rows[1][2] = ID_A[:-1] + "5"  # wrong check digit on row 3 of the sheet
    rows[3][3] = "1380013"  # invalid phone on row 5
    path = write_csv(tmp_path / "messy.csv", rows)
    before = (count(session, Account), count(session, Debtor))

    report = service.import_accounts(session, path=path, portfolio_name=portfolio, as_of=AS_OF)

    assert report.encoding == "gb18030"
    assert report.status == "rejected"
    assert report.error_rows == [3, 5]
    codes = {(r["row"], r["column"], r["code"]) for r in report.errors.iter_rows(named=True)}
    assert codes == {(3, "身份证号", "id_check_digit"), (5, "手机号", "bad_mobile")}
    assert (count(session, Account), count(session, Debtor)) == before


def test_fixed_file_imports_then_reimport_changes_nothing_then_update_changes_exactly_that(
    session: Session, portfolio: str, tmp_path: Path
) -> None:
    path = write_csv(tmp_path / "fixed.csv", messy_rows())
    first = service.import_accounts(session, path=path, portfolio_name=portfolio, as_of=AS_OF)
    assert first.status == "applied", first.errors
    assert first.counts.accounts_created == 4
    assert first.counts.cases_created == 3  # 张三 has two accounts in one case
    acc = session.scalar(select(Account).where(Account.external_ref == "LN0001"))
    assert acc is not None
    assert acc.principal_minor == 123450  # full-width digits and ¥ parsed exactly
    assert acc.due_date == date(2025, 5, 23)  # Excel serial 45800 (45658 is 2025-01-01)
    inst = session.scalars(
        select(Instalment)
        .join(Instalment.account)
        .where(Account.external_ref == "LN0003")
        .order_by(Instalment.seq)
    ).all()
    assert [i.due_date for i in inst[:2]] == [date(2025, 1, 31), date(2025, 2, 28)]
    assert len(inst) == 12 and sum(i.amount_minor for i in inst) == 12 * 10000
    flags = session.scalars(  # this portfolio's holds: other tests commit their own
        select(AccountFlag)
        .join(Account, Account.id == AccountFlag.account_id)
        .where(Account.portfolio_id == service.get_portfolio(session, name=portfolio).id)
    ).all()
    assert [f.kind for f in flags] == ["dispute"]

    snapshot = (
        count(session, Account),
        count(session, Debtor),
        count(session, ContactPoint),
        count(session, Instalment),
        count(session, AccountFlag),
    )
    again = service.import_accounts(session, path=path, portfolio_name=portfolio, as_of=AS_OF)
    assert again.status == "applied"
    assert (
        again.counts.accounts_created,
        again.counts.accounts_updated,
        again.counts.accounts_unchanged,
    ) == (0, 0, 4)
    assert again.counts.changes == 0
    assert snapshot == (
        count(session, Account),
        count(session, Debtor),
        count(session, ContactPoint),
        count(session, Instalment),
        count(session, AccountFlag),
    )

    rows = messy_rows()
    rows[2][5] = "1,100.00"  # LN0003 paid 100
    rows[3][3] = "13511112222"  # LN0004's debtor has a new mobile
    updated = service.import_accounts(
        session, path=write_csv(tmp_path / "updated.csv", rows), portfolio_name=portfolio, as_of=AS_OF
    )
    assert updated.status == "applied"
    assert updated.counts.accounts_created == 0
    assert updated.counts.accounts_updated == 1
    changes = session.scalars(
        select(ImportChange).where(ImportChange.import_batch_id == updated.batch_id)
    ).all()
    fields = sorted((c.entity, c.field, c.old_value, c.new_value) for c in changes)
    assert ("account", "principal_minor", "120000", "110000") in fields
    # the new number, as the desk shows it: the record of changes keeps contact values masked (PI-6)
    assert ("debtor", "contact_point", None, "mobile:self:+86 135****2222") in fields
    assert count(session, Account) == snapshot[0]


def test_dry_run_reports_counts_and_writes_nothing(session: Session, portfolio: str, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "dry.csv", messy_rows(), encoding="utf-8-sig")
    before = count(session, Account)
    report = service.import_accounts(session, path=path, portfolio_name=portfolio, as_of=AS_OF, dry_run=True)
    assert report.status == "dry_run"
    assert report.encoding == "utf-8-sig"
    assert report.counts.accounts_created == 4
    assert count(session, Account) == before


def test_xlsx_with_real_date_cells_imports(session: Session, portfolio: str, tmp_path: Path) -> None:
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.append(["account_ref", "name", "id_number", "mobile", "product", "amount_due", "due_date"])
    ws.append(["X1", "Li Lei", ID_C, "+86 137 0000 1111", "credit card", 99.9, date(2025, 6, 1)])
    path = tmp_path / "accounts.xlsx"
    wb.save(path)
    report = service.import_accounts(session, path=path, portfolio_name=portfolio, as_of=AS_OF)
    assert report.status == "applied", report.errors
    acc = session.scalar(select(Account).where(Account.external_ref == "X1"))
    assert acc is not None and acc.due_date == date(2025, 6, 1) and acc.principal_minor == 9990


def test_duplicate_reference_in_file_is_an_error_on_the_later_row(
    session: Session, portfolio: str, tmp_path: Path
) -> None:
    rows = messy_rows()
    rows[3][0] = "LN0001"
    before = count(session, Account)
    report = service.import_accounts(
        session, path=write_csv(tmp_path / "d.csv", rows), portfolio_name=portfolio, as_of=AS_OF
    )
    assert report.status == "rejected"
    assert [(r["row"], r["code"], r["detail"]) for r in report.errors.iter_rows(named=True)] == [
        (5, "duplicate_ref", "2")
    ]
    assert count(session, Account) == before


def test_debtor_without_id_is_matched_by_verified_mobile(
    session: Session, portfolio: str, tmp_path: Path
) -> None:
    service.import_accounts(
        session, path=write_csv(tmp_path / "a.csv", messy_rows()), portfolio_name=portfolio, as_of=AS_OF
    )
    rows = [
        ["LN0100", "李四", "", "13900001111", "信用卡", "50", "2025-06-01", "", "", "", "", "", "", "", ""]
    ]
    report = service.import_accounts(
        session, path=write_csv(tmp_path / "b.csv", rows), portfolio_name=portfolio, as_of=AS_OF
    )
    assert report.status == "applied", report.errors
    assert report.counts.debtors_created == 0
    acc = session.scalar(select(Account).where(Account.external_ref == "LN0100"))
    debtor = session.scalar(select(Debtor).where(Debtor.national_id == ID_B))
    assert acc is not None and debtor is not None and acc.debtor_id == debtor.id


def _with_bank(rows: list[list[str]], cards: list[str], banks: list[str]) -> list[list[str]]:
    return [[*r, c, b] for r, c, b in zip(rows, cards, banks, strict=True)]


def _write_bank_csv(path: Path, rows: list[list[str]]) -> Path:
    with path.open("w", encoding="gb18030", newline="") as fh:
        w = csv.writer(fh)
        w.writerow([*HEADERS, "银行卡号", "开户行"])
        w.writerows(rows)
    return path


def _bank_of(session: Session, ref: str) -> tuple[str | None, str | None]:
    acc = session.scalar(select(Account).where(Account.external_ref == ref))
    assert acc is not None
    session.refresh(acc)
    return acc.bank_account, acc.bank_name


def test_bank_account_imports_normalised_updates_on_reimport_and_stays_when_the_column_is_absent(
    session: Session, portfolio: str, tmp_path: Path
) -> None:
    cards = ["6222 0212 3456 7890 128", "６２２８４８００１２３４５６７８", "", "310066123456"]
    banks = ["中国工商银行", "中国农业银行", "", ""]
    first = service.import_accounts(
        session,
        path=_write_bank_csv(tmp_path / "bank.csv", _with_bank(messy_rows(), cards, banks)),
        portfolio_name=portfolio,
        as_of=AS_OF,
    )
    assert first.status == "applied", first.errors
    assert _bank_of(session, "LN0001") == ("6222021234567890128", "中国工商银行")
    assert _bank_of(session, "LN0002") == ("6228480012345678", "中国农业银行")  # full-width digits
    assert _bank_of(session, "LN0003") == (None, None)
    assert _bank_of(session, "LN0004") == ("310066123456", None)  # a passbook account: no card check

    cards[0] = "6222021234567890136"
    updated = service.import_accounts(
        session,
        path=_write_bank_csv(tmp_path / "bank2.csv", _with_bank(messy_rows(), cards, banks)),
        portfolio_name=portfolio,
        as_of=AS_OF,
    )
    assert updated.status == "applied", updated.errors
    assert updated.counts.accounts_updated == 1
    assert _bank_of(session, "LN0001") == ("6222021234567890136", "中国工商银行")
    changes = session.scalars(
        select(ImportChange).where(ImportChange.import_batch_id == updated.batch_id)
    ).all()
    # the record of changes says which number changed and to which (the last 4), never the numbers (PI-6)
    assert [(c.field, c.old_value, c.new_value) for c in changes] == [
        ("bank_account", "**** **** **** 0128", "**** **** **** 0136")
    ]

    # a file without the columns leaves the stored bank accounts alone
    plain = service.import_accounts(
        session, path=write_csv(tmp_path / "plain.csv", messy_rows()), portfolio_name=portfolio, as_of=AS_OF
    )
    assert plain.status == "applied" and plain.counts.changes == 0
    assert _bank_of(session, "LN0001") == ("6222021234567890136", "中国工商银行")


def test_bad_bank_account_rejects_the_file_naming_row_and_column_and_a_failed_card_check_warns(
    session: Session, portfolio: str, tmp_path: Path
) -> None:
    cards = ["6222-0212", "6222021234567890127", "", ""]
    path = _write_bank_csv(tmp_path / "bad.csv", _with_bank(messy_rows(), cards, [""] * 4))
    report = service.import_accounts(session, path=path, portfolio_name=portfolio, as_of=AS_OF)
    assert report.status == "rejected"
    bank = report.issues.filter(pl.col("field") == "bank_account")
    assert sorted(bank.select("row", "column", "code", "severity", "value").rows()) == [
        (2, "银行卡号", "bad_bank_account", "error", "6222-0212"),
        (3, "银行卡号", "bank_account_luhn", "warning", "6222021234567890127"),
    ]
    assert (
        session.scalar(select(func.count()).select_from(Account).where(Account.external_ref == "LN0001")) == 0
    )


def test_the_record_of_changes_keeps_an_added_id_number_masked(
    session: Session, portfolio: str, tmp_path: Path
) -> None:
    row = ["LN0200", "赵六", "", "13500001234", "信用卡", "50", "2025-06-01", "", "", "", "", "", "", "", ""]
    first = service.import_accounts(
        session, path=write_csv(tmp_path / "a.csv", [row]), portfolio_name=portfolio, as_of=AS_OF
    )
    assert first.status == "applied", first.errors
    row[2] = "110105197705230418"  # an ID number no other test's debtor carries (debtors are shared)
    added = service.import_accounts(
        session, path=write_csv(tmp_path / "b.csv", [row]), portfolio_name=portfolio, as_of=AS_OF
    )
    assert added.status == "applied", added.errors
    debtor = session.scalar(select(Debtor).where(Debtor.national_id == row[2]))
    assert debtor is not None  # the stored debtor has the number in full
    changes = session.scalars(
        select(ImportChange).where(
            ImportChange.import_batch_id == added.batch_id, ImportChange.field == "national_id"
        )
    ).all()
    assert [(c.entity_id, c.old_value, c.new_value) for c in changes] == [
        (debtor.id, None, "110105********0418")
    ]


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    value=st.one_of(
        st.none(),
        st.text(alphabet="0123456789X", max_size=40),
        st.text(alphabet="0123456789 -", max_size=34),
    )
)
def test_the_sql_masks_give_what_the_views_show(session: Session, value: str | None) -> None:
    query = text(
        f"SELECT {sql_mask_national_id('CAST(:v AS TEXT)')}, {sql_mask_bank_account('CAST(:v AS TEXT)')}"
    )
    assert tuple(session.execute(query, {"v": value}).one()) == (
        mask_national_id(value),
        mask_bank_account(value),
    )


@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    kind=st.sampled_from(["mobile", "landline", "email", "address", "other"]),
    value=st.one_of(
        st.none(),
        st.builds(
            lambda plus, d: plus + d, st.sampled_from(["", "+", "+86"]), st.text("0123456789", max_size=16)
        ),
        st.builds(
            lambda a, b: a + b, st.text("abz.", max_size=4), st.sampled_from(["", "@", "@bank.example"])
        ),
        st.text(alphabet="北京市朝阳区建国路88号A座-", max_size=20),
    ),
)
def test_the_sql_contact_mask_gives_what_the_views_show(
    session: Session, kind: str, value: str | None
) -> None:
    find = "strpos" if session.get_bind().dialect.name == "postgresql" else "instr"
    query = text(f"SELECT {sql_mask_contact_value('CAST(:k AS TEXT)', 'CAST(:v AS TEXT)', find=find)}")
    assert session.execute(query, {"k": kind, "v": value}).scalar() == mask_contact_value(kind, value)
