"""Table files: the same rows as CSV, JSON Lines and Parquet hold the same values; bytes are reproducible."""

from __future__ import annotations

import io
import json
import math
import sys

import pandas as pd
import pytest

from emovid.errors import OutputError
from emovid.outputs import Staged
from emovid.tables import Column, FormatError, check_format, csv_cells, json_record, open_table

TABLE = (Column("name", "str"), Column("track_id", "int"), Column("t_s", "float", 3), Column("p", "float", 4))
ROWS = [("=cmd.mp4", 1, 0.12345, 0.666666), ("clip \u00e9.mp4", None, 1.0, None), ("b,\"x\".mp4", 7, 2.5, float("nan"))]
EXPECTED = [  # floats rounded to their decimals; None and NaN are missing values; names as they are (no quote)
    {"name": "=cmd.mp4", "track_id": 1, "t_s": 0.123, "p": 0.6667},
    {"name": "clip \u00e9.mp4", "track_id": None, "t_s": 1.0, "p": None},
    {"name": "b,\"x\".mp4", "track_id": 7, "t_s": 2.5, "p": None},
]


def write(tmp_path, table_format: str, rows=ROWS):
    final = tmp_path / f"t.{table_format}"
    with Staged() as staged:
        with open_table(staged, final, TABLE, table_format) as table:
            table.write(rows[:1])
            table.write(rows[1:])
        staged.commit()
    return final


def records(path) -> list[dict]:
    if path.suffix == ".csv":
        frame = pd.read_csv(path, dtype={"track_id": "Int64", "name": str}, keep_default_na=False,
                            na_values={"t_s": [""], "p": [""], "track_id": [""]})
        frame["name"] = frame["name"].str.removeprefix("'")  # the CSV quotes a leading = for spreadsheets
    elif path.suffix == ".jsonl":
        frame = pd.read_json(path, lines=True, dtype={"track_id": "Int64"}, precise_float=True)
    else:
        frame = pd.read_parquet(path)
    out = []
    for row in frame.to_dict("records"):
        out.append({k: (None if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)) else
                        (int(v) if k == "track_id" else v)) for k, v in row.items()})
    return out


@pytest.mark.parametrize("table_format", ["csv", "jsonl", "parquet"])
def test_every_format_holds_the_same_values(tmp_path, table_format):
    assert records(write(tmp_path, table_format)) == EXPECTED


def test_the_csv_has_fixed_decimals_and_empty_cells():
    assert csv_cells(TABLE, ROWS[0]) == ["'=cmd.mp4", "1", "0.123", "0.6667"]
    assert csv_cells(TABLE, ROWS[1]) == ["clip \u00e9.mp4", "", "1.000", ""]


def test_json_lines_are_one_object_per_row_with_nulls(tmp_path):
    lines = write(tmp_path, "jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == EXPECTED
    assert json_record(TABLE, ROWS[2])["p"] is None  # NaN is not JSON


@pytest.mark.parametrize("table_format", ["csv", "jsonl", "parquet"])
def test_the_same_rows_give_the_same_bytes(tmp_path, table_format):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    assert write(tmp_path / "a", table_format).read_bytes() == write(tmp_path / "b", table_format).read_bytes()


def test_parquet_columns_are_typed_and_nullable(tmp_path):
    import pyarrow.parquet as pq

    schema = pq.read_schema(write(tmp_path, "parquet"))
    assert [(f.name, str(f.type), f.nullable) for f in schema] == [
        ("name", "string", True), ("track_id", "int64", True), ("t_s", "double", True), ("p", "double", True)]


def test_parquet_writes_row_groups_as_rows_come(tmp_path, monkeypatch):
    import pyarrow.parquet as pq

    monkeypatch.setattr("emovid.tables._ROW_GROUP", 2)
    rows = [("v.mp4", i, i / 10, 0.5) for i in range(5)]
    path = write(tmp_path, "parquet", rows)
    assert pq.ParquetFile(path).metadata.num_row_groups == 3
    assert pd.read_parquet(path)["track_id"].tolist() == list(range(5))


def test_a_failed_block_leaves_no_file(tmp_path):
    final = tmp_path / "t.parquet"
    with pytest.raises(RuntimeError), Staged() as staged, open_table(staged, final, TABLE, "parquet") as table:
        table.write(ROWS)
        raise RuntimeError("analysis failed")
    assert list(tmp_path.iterdir()) == []


def test_a_write_error_names_the_output(tmp_path):
    class Full(io.StringIO):
        def write(self, text):
            raise OSError(28, "No space left on device")

    from emovid.tables import _JsonlWriter

    writer = _JsonlWriter(TABLE, tmp_path / "t.jsonl", Full())
    with pytest.raises(OutputError, match=r"t\.jsonl.*No space left"):
        writer.write(ROWS)


def test_unknown_formats_and_missing_pyarrow_are_clear_errors(monkeypatch):
    with pytest.raises(FormatError, match="expected one of csv, jsonl, parquet"):
        check_format("xlsx")
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    with pytest.raises(FormatError, match=r"pip install 'emovid\[parquet\]'"):
        check_format("parquet")
    check_format("jsonl")  # needs nothing
