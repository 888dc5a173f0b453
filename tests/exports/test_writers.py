"""CSV and NDJSON writers: what the stdlib reads back, formulas neutralised."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime

import pytest

from aiprod.exports.writers import cell, csv_bytes, csv_line, iter_csv, json_bytes, ndjson_line


def test_csv_reads_back_with_the_stdlib() -> None:
    rows = [
        [0, "Bees, at dawn", 1.5, None, True],
        [1, 'He said "hi"\nthen left', -0.25, {"a": [1, 2]}, False],
        [2, '=HYPERLINK("http://x")', 0.0000123456, "+1", "@sum"],
    ]
    data = csv_bytes(("i", "text", "number", "extra", "flag"), rows)
    assert data.count(b"\r\n") == 4  # header + 3 rows (the embedded \n is quoted)
    table = list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))
    assert table[0] == ["i", "text", "number", "extra", "flag"]
    assert table[1] == ["0", "Bees, at dawn", "1.5", "", "true"]
    assert table[2] == ["1", 'He said "hi"\nthen left', "-0.25", '{"a":[1,2]}', "false"]
    assert table[3] == ["2", '\'=HYPERLINK("http://x")', "0.00001235", "'+1", "'@sum"]


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.0, "0"),
        (-0.0, "0"),
        (2.0, "2"),
        (1e-12, "0"),
        (3, "3"),
        (datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), "2026-01-02T03:04:05+00:00"),
        ("-dash", "'-dash"),
        ("plain", "plain"),
    ],
)
def test_cells(value: object, text: str) -> None:
    assert cell(value) == text


def test_rows_must_fit_the_header() -> None:
    with pytest.raises(ValueError, match="header"):
        list(iter_csv(("a", "b"), [[1]]))


def test_csv_streams_line_by_line() -> None:
    lines = list(iter_csv(("a",), ([i] for i in range(3))))
    assert lines == [b"a\r\n", b"0\r\n", b"1\r\n", b"2\r\n"]
    assert csv_line(["x,y", "=1+1", None]) == b'"x,y",\'=1+1,\r\n'


def test_ndjson_and_json() -> None:
    lines = b"".join(ndjson_line(i) for i in [{"a": "é"}, [1]]).decode().splitlines()
    assert [json.loads(x) for x in lines] == [{"a": "é"}, [1]]
    assert json.loads(json_bytes({"b": 1, "a": 2})) == {"b": 1, "a": 2}
    assert json_bytes({"b": 1}) == json_bytes({"b": 1})
