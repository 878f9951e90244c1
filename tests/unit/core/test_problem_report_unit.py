"""The problem report: the CLI's report beside the operator's own file keeps the value they sent; a report
kept at rest by the server masks ID numbers and bank account numbers (PI-6) and keeps everything else."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from arrears.portfolios.report import report_rows, write_report
from arrears.portfolios.validate import ISSUE_SCHEMA

ISSUES = pl.DataFrame(
    [
        {"row": 3, "column": "身份证号", "field": "national_id", "value": "110105194912310021",
         "code": "id_check_digit", "severity": "error", "detail": None},
        {"row": 4, "column": "还款账号", "field": "bank_account", "value": "6222-0212",
         "code": "bad_bank_account", "severity": "error", "detail": None},
        {"row": 5, "column": "本金", "field": "principal", "value": "一百元",
         "code": "bad_amount", "severity": "error", "detail": None},
        {"row": 6, "column": "身份证号", "field": "national_id", "value": None,
         "code": "no_identity", "severity": "error", "detail": None},
    ],
    schema=ISSUE_SCHEMA,
)  # fmt: skip


def test_the_cli_report_keeps_the_values_the_operator_sent() -> None:
    assert [r[3] for r in report_rows(ISSUES)] == ["110105194912310021", "6222-0212", "一百元", ""]


def test_a_report_kept_at_rest_masks_id_and_bank_numbers_and_keeps_row_column_and_problem(
    tmp_path: Path,
) -> None:
    masked = report_rows(ISSUES, masked=True)
    assert [r[3] for r in masked] == ["110105********0021", "**** **** **** 0212", "一百元", ""]
    plain = report_rows(ISSUES)
    assert [r[:3] + r[4:] for r in masked] == [r[:3] + r[4:] for r in plain]
    text = write_report(ISSUES, tmp_path / "p.csv", masked=True).read_text(encoding="utf-8-sig")
    assert "110105194912310021" not in text and "110105********0021" in text
