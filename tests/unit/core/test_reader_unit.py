"""Reading account files: a refused CSV names the row and line where it breaks."""

from __future__ import annotations

from pathlib import Path

import pytest

from arrears.errors import ValidationFailed
from arrears.portfolios.reader import locate_csv_problem, open_source


def _read_all(path: Path) -> None:
    source = open_source(path)
    try:
        for _chunk in source.chunks(2):
            pass
    finally:
        source.close()


def test_unterminated_quote_names_its_row_and_line(tmp_path: Path) -> None:
    path = tmp_path / "q.csv"
    path.write_text(
        '借据号,姓名,地址\nA1,张三,"北京市\n朝阳区"\nA2,李四,上海\nA3,"王五,广州\nA4,赵六,深圳\n',
        encoding="utf-8",
    )
    # the quoted address of row 2 spans lines 2-3, so row 4 starts on line 5
    assert locate_csv_problem(path) == (4, 5, "unterminated_quote")
    with pytest.raises(ValidationFailed) as exc:
        _read_all(path)
    assert exc.value.code == "malformed_csv"
    assert "第 4 行（文件第 5 行）引号未闭合" in exc.value.message
    assert "row 4 (line 5): unterminated quote" in exc.value.message
    assert "\n" not in exc.value.message


def test_unterminated_quote_in_a_gb18030_file_names_the_original_file(tmp_path: Path) -> None:
    path = tmp_path / "gbk.csv"
    path.write_bytes('借据号,姓名\nA1,"张三\n'.encode("gb18030"))
    with pytest.raises(ValidationFailed, match=r"^gbk\.csv: 第 2 行（文件第 2 行）"):
        _read_all(path)


def test_a_well_formed_file_has_no_problem(tmp_path: Path) -> None:
    path = tmp_path / "ok.csv"
    path.write_text('借据号,姓名\nA1,"张,三"\n', encoding="utf-8")
    assert locate_csv_problem(path) is None
