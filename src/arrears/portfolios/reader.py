"""Streaming readers for account files: CSV (UTF-8, UTF-8 with BOM, GB18030) and XLSX.

A file is read in chunks of string columns with a `__row` column holding the row number a person sees
in a spreadsheet (the header is row 1, the first data row is row 2), so memory stays bounded whatever
the file's size.
"""

from __future__ import annotations

import codecs
import csv
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path

import polars as pl

from arrears.errors import ValidationFailed

ROW = "__row"
_BLOCK = 1 << 20


@dataclass
class SourceFile:
    path: Path
    headers: list[str]
    encoding: str  # "utf-8", "utf-8-sig", "gb18030" or "xlsx"
    _utf8_path: Path | None = None
    _tmp: tempfile.TemporaryDirectory[str] | None = None

    def chunks(self, chunk_rows: int) -> Iterator[pl.DataFrame]:
        if self.encoding == "xlsx":
            yield from _xlsx_chunks(self.path, self.headers, chunk_rows)
        else:
            yield from _csv_chunks(self._utf8_path or self.path, self.headers, chunk_rows, self.path.name)

    def estimated_rows(self) -> int | None:
        """Data rows the file holds, for a progress bar: counted lines (a quoted line break counts twice),
        or the worksheet's recorded dimension; None when the workbook does not record it."""
        if self.encoding == "xlsx":
            return _xlsx_dimension_rows(self.path)
        lines = 0
        last = b"\n"
        with (self._utf8_path or self.path).open("rb") as fh:
            while block := fh.read(_BLOCK):
                lines += block.count(b"\n")
                last = block[-1:]
        if last != b"\n":
            lines += 1
        return max(lines - 1, 0)

    def close(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


def _fails_as(path: Path, encoding: str) -> int | None:
    """Byte offset of the first undecodable byte, or None when the whole file decodes."""
    decoder = codecs.getincrementaldecoder(encoding)()
    offset = 0
    with path.open("rb") as fh:
        while block := fh.read(_BLOCK):
            try:
                decoder.decode(block)
            except UnicodeDecodeError as exc:
                return offset + exc.start
            offset += len(block)
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return offset
    return None


def detect_encoding(path: Path) -> str:
    """utf-8-sig when a BOM is present, else utf-8 if the whole file decodes, else gb18030."""
    with path.open("rb") as fh:
        head = fh.read(3)
    if head == codecs.BOM_UTF8:
        return "utf-8-sig"
    if _fails_as(path, "utf-8") is None:
        return "utf-8"
    offset = _fails_as(path, "gb18030")
    if offset is None:
        return "gb18030"
    raise ValidationFailed(
        f"{path.name}: 文件编码无法识别（应为 UTF-8 或 GB18030），字节位置 {offset} / "
        f"file is neither UTF-8 nor GB18030 (byte {offset})",
        code="bad_encoding",
    )


def _transcode(path: Path, encoding: str, target: Path) -> None:
    decoder = codecs.getincrementaldecoder(encoding)()
    with path.open("rb") as src, target.open("w", encoding="utf-8", newline="") as dst:
        while block := src.read(_BLOCK):
            dst.write(decoder.decode(block))
        dst.write(decoder.decode(b"", final=True))


def open_source(path: Path) -> SourceFile:
    """Open an account file, detect its format and encoding, and read its header row."""
    if not path.exists():
        raise ValidationFailed(f"file not found: {path}", code="file_not_found")
    suffix = path.suffix.lower()
    if suffix in (".xlsx", ".xlsm"):
        return SourceFile(path=path, headers=_xlsx_headers(path), encoding="xlsx")
    if suffix == ".xls":
        raise ValidationFailed(
            f"{path.name}: 不支持旧版 .xls，请另存为 .xlsx 或 CSV / old .xls is not supported; "
            "save it as .xlsx or CSV",
            code="unsupported_format",
        )
    encoding = detect_encoding(path)
    src = SourceFile(path=path, headers=[], encoding=encoding)
    if encoding != "utf-8":
        src._tmp = tempfile.TemporaryDirectory(prefix="arrears-import-")
        src._utf8_path = Path(src._tmp.name) / "source.csv"
        _transcode(path, encoding, src._utf8_path)
    with (src._utf8_path or path).open("r", encoding="utf-8", newline="") as fh:
        first = next(csv.reader(fh), None)
    if not first or not any(h.strip() for h in first):
        src.close()
        raise ValidationFailed(f"{path.name}: 文件没有表头 / the file has no header row", code="no_header")
    src.headers = [h.strip() for h in first]
    _check_headers(path, src.headers)
    return src


def _check_headers(path: Path, headers: list[str]) -> None:
    seen: set[str] = set()
    for i, h in enumerate(headers, start=1):
        if not h:
            raise ValidationFailed(
                f"{path.name}: 第 {i} 列表头为空 / column {i} has an empty header", code="empty_header"
            )
        if h in seen:
            raise ValidationFailed(
                f"{path.name}: 表头重复：{h} / duplicate column header {h!r}", code="duplicate_header"
            )
        seen.add(h)


def _csv_chunks(
    path: Path, headers: list[str], chunk_rows: int, display_name: str | None = None
) -> Iterator[pl.DataFrame]:
    lf = pl.scan_csv(
        path,
        infer_schema=False,
        has_header=True,
        new_columns=headers,
        encoding="utf8",
        raise_if_empty=False,
    ).with_row_index(ROW, offset=2)
    try:
        for batch in lf.collect_batches(chunk_size=chunk_rows):
            if batch.height:
                yield batch.with_columns(pl.col(ROW).cast(pl.Int64))
    except pl.exceptions.PolarsError as exc:
        raise _malformed(path, display_name or path.name, exc) from exc


def locate_csv_problem(path: Path) -> tuple[int, int, str] | None:
    """(row, line, reason) of the first record Python's strict CSV reader refuses, or None.

    Polars names no row when it refuses a file, so a refused file is read once more, record by record, to
    find where it breaks. `row` counts records as a spreadsheet shows them (the header is row 1); `line`
    is the physical line in the file where that record starts (a quoted field may span lines).
    """
    with path.open("r", encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh, strict=True)
        row, start = 0, 1
        try:
            for _record in reader:
                row += 1
                start = reader.line_num + 1
        except csv.Error as exc:
            reason = "unterminated_quote" if "end of data" in str(exc) else str(exc)
            return row + 1, start, reason
    return None


def _malformed(path: Path, name: str, exc: Exception) -> ValidationFailed:
    where = locate_csv_problem(path)
    if where is None:
        return ValidationFailed(
            f"{name}: CSV 格式错误 / malformed CSV: {str(exc).splitlines()[0]}", code="malformed_csv"
        )
    row, line, reason = where
    if reason == "unterminated_quote":
        zh, en = (
            "引号未闭合（从此处到文件末尾都在引号内）",
            "unterminated quote (the rest of the file is inside it)",
        )
    else:
        zh, en = f"格式错误（{reason}）", f"malformed ({reason})"
    return ValidationFailed(
        f"{name}: 第 {row} 行（文件第 {line} 行）{zh} / row {row} (line {line}): {en}", code="malformed_csv"
    )


def _cell_text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        if value.time() == time(0):
            return value.date().isoformat()
        return value.isoformat(sep=" ")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    text = str(value)
    return text if text.strip() else None


def _xlsx_rows(path: Path) -> Iterator[tuple[object, ...]]:
    from openpyxl import load_workbook

    try:
        wb = load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many kinds for a broken file
        raise ValidationFailed(
            f"{path.name}: 无法读取 Excel 文件 / cannot read the workbook: {exc}", code="bad_xlsx"
        ) from exc
    try:
        ws = wb.worksheets[0]
        yield from ws.iter_rows(values_only=True)
    finally:
        wb.close()


def _xlsx_dimension_rows(path: Path) -> int | None:
    from openpyxl import load_workbook

    wb = load_workbook(path, read_only=True, data_only=True)
    try:
        rows = wb.worksheets[0].max_row
        return max(rows - 1, 0) if rows else None
    finally:
        wb.close()


def _xlsx_headers(path: Path) -> list[str]:
    for row in _xlsx_rows(path):
        headers = [_cell_text(v) or "" for v in row]
        while headers and not headers[-1]:
            headers.pop()
        if not headers:
            break
        headers = [h.strip() for h in headers]
        _check_headers(path, headers)
        return headers
    raise ValidationFailed(f"{path.name}: 文件没有表头 / the file has no header row", code="no_header")


def _xlsx_chunks(path: Path, headers: list[str], chunk_rows: int) -> Iterator[pl.DataFrame]:
    width = len(headers)
    rows = _xlsx_rows(path)
    next(rows, None)  # header
    buf: list[list[str | None]] = []
    numbers: list[int] = []
    for row_no, row in enumerate(rows, start=2):
        cells = [_cell_text(v) for v in row[:width]]
        if not any(cells):
            continue
        cells.extend([None] * (width - len(cells)))
        buf.append(cells)
        numbers.append(row_no)
        if len(buf) >= chunk_rows:
            yield _frame(headers, buf, numbers)
            buf, numbers = [], []
    if buf:
        yield _frame(headers, buf, numbers)


def _frame(headers: list[str], rows: list[list[str | None]], numbers: list[int]) -> pl.DataFrame:
    columns = {h: [r[i] for r in rows] for i, h in enumerate(headers)}
    df = pl.DataFrame(columns, schema={h: pl.String for h in headers})
    return df.with_columns(pl.Series(ROW, numbers, dtype=pl.Int64))
