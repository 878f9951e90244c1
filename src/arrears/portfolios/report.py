"""The row-level problem report of an import, as CSV (UTF-8 with BOM, opens in Excel) or XLSX."""

from __future__ import annotations

import csv
from pathlib import Path

import polars as pl

from arrears.portfolios.fields import label
from arrears.portfolios.messages import message

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


def report_rows(issues: pl.DataFrame) -> list[list[str]]:
    rows: list[list[str]] = []
    for r in issues.iter_rows(named=True):
        params = {"max": r["detail"], "allowed": r["detail"], "other": r["detail"], "expected": r["detail"]}
        field = r["field"] or ""
        rows.append(
            [
                str(r["row"]),
                r["column"] or "",
                f"{label(field, 'zh_CN')} / {label(field, 'en')}" if field else "",
                r["value"] or "",
                "错误 error" if r["severity"] == "error" else "警告 warning",
                message(r["code"], "zh_CN", **params),
                message(r["code"], "en", **params),
                r["code"],
            ]
        )
    return rows


def write_report(issues: pl.DataFrame, path: Path) -> Path:
    """Write the problems to `path`; the suffix (.csv or .xlsx) picks the format."""
    rows = report_rows(issues)
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
