"""The row-level problem report of an import, as CSV (UTF-8 with BOM, opens in Excel) or XLSX.

Each problem names the row, the column and the field, the value found and what is wrong with it. A report
the server keeps (a desk import job's, shown on the job's page and downloaded from there) is stored at rest,
so it holds ID numbers and bank account numbers masked as every view shows them (PI-6): the row, the
column, the problem and the last 4 characters find the cell in the operator's own file. The report the CLI
writes for the operator (in the working directory, or at ``--report``) keeps the value as they sent it.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

if TYPE_CHECKING:
    from rich.table import Table

from arrears.portfolios.fields import label
from arrears.portfolios.messages import message
from arrears.users.masking import mask_bank_account, mask_national_id

# The fields whose values a stored report masks.
MASKED_FIELDS = {"national_id": mask_national_id, "bank_account": mask_bank_account}

REPORT_HEADERS = [
    "行号 row",
    "列 column",
    "字段 field",
    "值 value",
    "级别 severity",
    "问题",
    "problem",
    "代码 code",
]


def report_rows(issues: pl.DataFrame, *, masked: bool = False) -> list[list[str]]:
    """The report's rows; with ``masked``, ID numbers and bank account numbers masked."""
    rows: list[list[str]] = []
    for r in issues.iter_rows(named=True):
        params = {"max": r["detail"], "allowed": r["detail"], "other": r["detail"], "expected": r["detail"]}
        field = r["field"] or ""
        mask = MASKED_FIELDS.get(field) if masked else None
        value = (mask(r["value"]) if mask else r["value"]) or ""
        rows.append(
            [
                str(r["row"]),
                r["column"] or "",
                f"{label(field, 'zh_CN')} / {label(field, 'en')}" if field else "",
                value,
                "错误 error" if r["severity"] == "error" else "警告 warning",
                message(r["code"], "zh_CN", **params),
                message(r["code"], "en", **params),
                r["code"],
            ]
        )
    return rows


def problem_table(issues: pl.DataFrame, *, limit: int = 20) -> Table:
    """The first ``limit`` problems for a terminal: row, column (the field, when the file has no column
    for it, as for a field the product requires), value and problem, errors in red."""
    from rich.table import Table

    table = Table("row 行", "column 列", "value 值", "problem 问题", title=f"problems 问题 (first {limit})")
    for r in report_rows(issues.head(limit)):
        table.add_row(
            r[0], r[1] or r[2], r[3], f"{r[5]} / {r[6]}", style="red" if "error" in r[4] else "yellow"
        )
    return table


def write_report(issues: pl.DataFrame, path: Path, *, masked: bool = False) -> Path:
    """Write the problems to `path`; the suffix (.csv or .xlsx) picks the format. ``masked`` for a report
    kept at rest (ID numbers and bank account numbers masked)."""
    rows = report_rows(issues, masked=masked)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".xlsx":
        from openpyxl import Workbook

        wb = Workbook(write_only=True)
        ws = wb.create_sheet("problems")
        ws.append(REPORT_HEADERS)
        for row in rows:
            ws.append(row)
        wb.save(path)
        return path
    with path.open("w", encoding="utf-8-sig", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(REPORT_HEADERS)
        w.writerows(rows)
    return path
