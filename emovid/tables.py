"""Table files (the timeline and the per-frame rows) as CSV, JSON Lines or Parquet, from one typed row.

A table is a tuple of `Column`s; a row is a tuple of values (None, int, float or str), one per column. Floats are
rounded to the column's decimals in every format, so the three files hold the same numbers, and the same rows give
byte-identical files. CSV: fixed decimals, empty cells for None, text that a spreadsheet would take for a formula
quoted (OWASP). JSON Lines: one object per row, null for None. Parquet (needs pyarrow, `pip install
'emovid[parquet]'`): typed, nullable columns, written in row groups as rows come, so memory stays bounded.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from emovid.errors import EmovidError

FORMATS: tuple[str, ...] = ("csv", "jsonl", "parquet")
PARQUET_INSTALL = "pip install 'emovid[parquet]'"
_ROW_GROUP = 8192  # rows buffered before a Parquet row group is written
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


class FormatError(EmovidError):
    """A table format that is unknown or whose library is not installed."""


@dataclass(frozen=True)
class Column:
    name: str
    kind: str  # "str", "int" or "float"
    decimals: int | None = None  # floats: rounded to this many decimals in every format

    def __post_init__(self) -> None:
        if self.kind not in ("str", "int", "float"):
            raise ValueError(f"{self.name}: unknown kind {self.kind!r}")
        if self.kind == "float" and self.decimals is None:
            raise ValueError(f"{self.name}: a float column needs its decimals")


def csv_text_cell(text: str) -> str:
    """A text cell that a spreadsheet shows as text: a leading single quote before = + - @, tab or CR (OWASP's
    advice against CSV injection)."""
    return "'" + text if text.startswith(_FORMULA_START) else text


def check_format(table_format: str) -> None:
    """FormatError when `table_format` is unknown, or is parquet and pyarrow is not installed."""
    if table_format not in FORMATS:
        raise FormatError(f"unknown table format {table_format!r}: expected one of {', '.join(FORMATS)}")
    if table_format == "parquet":
        _pyarrow()


def _pyarrow():
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError:
        raise FormatError(f"Parquet output needs pyarrow, which is not installed: {PARQUET_INSTALL}") from None
    return pyarrow, pyarrow.parquet


def _rounded(value: float, decimals: int) -> float | None:
    value = float(value)
    return round(value, decimals) if math.isfinite(value) else None


def csv_cells(columns: Sequence[Column], row: Sequence) -> list[str]:
    """One row as CSV cells: fixed decimals, '' for None (and for a float that is not finite)."""
    cells = []
    for column, value in zip(columns, row, strict=True):
        if value is None:
            cells.append("")
        elif column.kind == "float":
            cells.append(f"{float(value):.{column.decimals}f}" if math.isfinite(value) else "")
        elif column.kind == "int":
            cells.append(str(int(value)))
        else:
            cells.append(csv_text_cell(str(value)))
    return cells


def json_record(columns: Sequence[Column], row: Sequence) -> dict:
    """One row as a JSON-ready dict: floats rounded to their column's decimals, None for missing values."""
    record = {}
    for column, value in zip(columns, row, strict=True):
        if value is None:
            record[column.name] = None
        elif column.kind == "float":
            record[column.name] = _rounded(value, column.decimals)
        elif column.kind == "int":
            record[column.name] = int(value)
        else:
            record[column.name] = str(value)
    return record


def write_csv_rows(handle, header: Iterable[str] | None, rows: Iterable[list[str]]) -> None:
    """CSV rows ('\\n' line ends) to an open text file, one at a time. A row with a CR in a cell (a file name) is
    written with every cell quoted: the csv module leaves a lone CR unquoted, which readers take for a line end."""
    minimal = csv.writer(handle, lineterminator="\n")
    quoted = csv.writer(handle, lineterminator="\n", quoting=csv.QUOTE_ALL)
    for row in ([header] if header is not None else []):
        minimal.writerow(row)
    for row in rows:
        (quoted if any("\r" in cell for cell in row) else minimal).writerow(row)


def csv_text(columns: Sequence[Column], rows: Iterable[Sequence], header: bool = True) -> str:
    buffer = io.StringIO()
    write_csv_rows(buffer, [c.name for c in columns] if header else None, (csv_cells(columns, r) for r in rows))
    return buffer.getvalue()


class TableWriter:
    """Rows of one table written as they come: `write(rows)`, then `close()`. OS errors (a full disk) become
    OutputErrors that name `final`, the output (never its temporary)."""

    def __init__(self, columns: Sequence[Column], final: Path):
        self.columns, self.final = tuple(columns), Path(final)

    def write(self, rows: Iterable[Sequence]) -> None:
        try:
            self._write(rows)
        except OSError as exc:
            raise self._error(exc) from None

    def close(self) -> None:
        try:
            self._close()
        except OSError as exc:
            raise self._error(exc) from None

    def _error(self, exc: OSError):
        from emovid.outputs import output_error

        return output_error(self.final, exc)

    def _write(self, rows: Iterable[Sequence]) -> None:
        raise NotImplementedError

    def _close(self) -> None:
        """Writes what is buffered (the caller closes a text file)."""


class _CsvWriter(TableWriter):
    def __init__(self, columns: Sequence[Column], final: Path, handle):
        super().__init__(columns, final)
        self._handle = handle
        try:
            write_csv_rows(handle, [c.name for c in self.columns], [])
        except OSError as exc:
            raise self._error(exc) from None

    def _write(self, rows: Iterable[Sequence]) -> None:
        write_csv_rows(self._handle, None, (csv_cells(self.columns, r) for r in rows))


class _JsonlWriter(TableWriter):
    def __init__(self, columns: Sequence[Column], final: Path, handle):
        super().__init__(columns, final)
        self._handle = handle

    def _write(self, rows: Iterable[Sequence]) -> None:
        for row in rows:
            self._handle.write(json.dumps(json_record(self.columns, row), ensure_ascii=False, allow_nan=False))
            self._handle.write("\n")


class _ParquetWriter(TableWriter):
    def __init__(self, columns: Sequence[Column], final: Path, temp: Path):
        super().__init__(columns, final)
        pa, pq = _pyarrow()
        types = {"str": pa.string(), "int": pa.int64(), "float": pa.float64()}
        self._pa = pa
        self._schema = pa.schema([pa.field(c.name, types[c.kind], nullable=True) for c in self.columns])
        try:
            self._writer = pq.ParquetWriter(str(temp), self._schema)
        except OSError as exc:
            raise self._error(exc) from None
        self._buffer: list[dict] = []

    def _write(self, rows: Iterable[Sequence]) -> None:
        for row in rows:
            self._buffer.append(json_record(self.columns, row))
            if len(self._buffer) >= _ROW_GROUP:
                self._flush()

    def _flush(self) -> None:
        if self._buffer:
            self._writer.write_table(self._pa.Table.from_pylist(self._buffer, schema=self._schema))
            self._buffer = []

    def _close(self) -> None:
        self._flush()
        self._writer.close()


@contextlib.contextmanager
def open_table(staged, final: Path, columns: Sequence[Column], table_format: str) -> Iterator[TableWriter]:
    """A TableWriter for `final` in `table_format`, staged by an `emovid.outputs.Staged` (renamed into place by its
    commit()); complete at the end of the block."""
    check_format(table_format)
    if table_format == "parquet":
        writer = _ParquetWriter(columns, final, staged.temp(final))
        try:
            yield writer
        except BaseException:
            with contextlib.suppress(Exception):  # its file handle; Staged removes the temporary
                writer._writer.close()
            raise
        writer.close()
        return
    with staged.text(final) as handle:
        writer = (_CsvWriter if table_format == "csv" else _JsonlWriter)(columns, final, handle)
        yield writer
        writer.close()
