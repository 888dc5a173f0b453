"""CSV and NDJSON encoders shared by every export.

Written as generators of encoded lines so that an export of many rows (a
listing of productions) streams with constant memory; :func:`csv_bytes` is
the whole-table convenience for the small tables of one production.

CSV follows RFC 4180 as the stdlib writes it: UTF-8 without a byte-order
mark, a header row, ``\\r\\n`` line ends, quotes where needed.  Cells are
written as: None → empty; bool → ``true``/``false``; float → up to 8
decimals, no exponent; dict and list → compact JSON; text that a
spreadsheet would run as a formula (starting with ``=``, ``+``, ``-``, ``@``,
tab or carriage return) is prefixed with ``'`` (OWASP "CSV injection").
Numbers are never prefixed: a negative number stays a number.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any

_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def cell(value: Any) -> str:
    """One CSV cell's text (see the module's rules)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        text = f"{value:.8f}".rstrip("0").rstrip(".")
        return "0" if text in ("", "-0") else text
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict | list | tuple):
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
    else:
        text = str(value)
    return "'" + text if text.startswith(_FORMULA) else text


class _Line:
    """A file-like that hands back what csv.writer wrote for one row."""

    def __init__(self) -> None:
        self.buf = io.StringIO()

    def take(self) -> bytes:
        text = self.buf.getvalue()
        self.buf.seek(0)
        self.buf.truncate()
        return text.encode()


def iter_csv(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> Iterator[bytes]:
    """The table as encoded lines, header first."""
    line = _Line()
    writer = csv.writer(line.buf, lineterminator="\r\n")
    writer.writerow(header)
    yield line.take()
    for row in rows:
        if len(row) != len(header):
            raise ValueError(f"row of {len(row)} cells under a header of {len(header)}")
        writer.writerow([cell(v) for v in row])
        yield line.take()


def csv_line(row: Sequence[Any]) -> bytes:
    """One row as an encoded CSV line (the bulk export writes them one by one)."""
    line = _Line()
    csv.writer(line.buf, lineterminator="\r\n").writerow([cell(v) for v in row])
    return line.take()


def csv_bytes(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> bytes:
    return b"".join(iter_csv(header, rows))


def ndjson_line(item: Any) -> bytes:
    """One compact JSON document and its newline (``application/x-ndjson``)."""
    return json.dumps(item, ensure_ascii=False, separators=(",", ":"), default=str).encode() + b"\n"


def json_bytes(document: Any) -> bytes:
    """A JSON document as exports write it: UTF-8, indented, keys in the
    document's own order (so the same data gives the same bytes)."""
    return json.dumps(document, ensure_ascii=False, indent=2, default=str).encode() + b"\n"


__all__ = ["cell", "csv_bytes", "csv_line", "iter_csv", "json_bytes", "ndjson_line"]
