"""Conditional and partial GETs: the `Range` and `If-None-Match` headers.

Kept apart from the routes that serve files so that the one subtle piece of
HTTP they share is written, and tested, once (RFC 9110 §13.1.2, §14).

Positions are compared, never trusted as integers: a header may carry
thousands of digits (valid by the grammar, which sets no limit), and Python
refuses to parse integers over 4300 digits.  Any position longer than
`_MAX_DIGITS` is beyond every file we could hold, and is treated as such:
a first position that large is unsatisfiable (416), a last position is
clamped to the end, a suffix that long asks for the whole file.
"""

from __future__ import annotations

import re

__all__ = ["Unsatisfiable", "etag_matches", "if_range_allows", "parse_range", "quote_etag"]

_RANGE = re.compile(r"bytes=([0-9]*)-([0-9]*)")
_MAX_DIGITS = 18  # 10**18 bytes is an exabyte: larger than any artifact
_BEYOND = 10**_MAX_DIGITS  # stands for every position of more digits


class Unsatisfiable(ValueError):
    """The range lies outside the representation (RFC 9110 §15.5.17): 416."""


def _position(digits: str) -> int:
    significant = digits.lstrip("0")
    return int(significant or "0") if len(significant) <= _MAX_DIGITS else _BEYOND


def parse_range(header: str, size: int) -> tuple[int, int] | None:
    """The one byte range a `Range` header asks of a `size`-byte file, as
    ``[start, end)``; None to ignore the header and send the whole file (another
    unit, several ranges or a malformed one: RFC 9110 §14.2 lets a server
    ignore what it does not support); raises Unsatisfiable (416) when the range
    starts beyond the file or asks for an empty suffix."""
    m = _RANGE.fullmatch(header.strip())
    if m is None:
        return None
    first, last = m.groups()
    if not first:
        if not last:
            return None
        suffix = _position(last)
        if suffix == 0 or size == 0:
            raise Unsatisfiable
        return max(0, size - suffix), size
    start = _position(first)
    if last and _position(last) < start:
        return None  # invalid range-spec: ignored, like any malformed header
    if start >= size:
        raise Unsatisfiable
    end = min(_position(last) + 1, size) if last else size
    return start, end


def quote_etag(tag: str) -> str:
    """A strong entity tag: the opaque value in double quotes."""
    return f'"{tag}"'


def etag_matches(if_none_match: str, etag: str) -> bool:
    """Whether an `If-None-Match` header names `etag` (quoted) or is ``*``.
    Comparison is weak (RFC 9110 §13.1.2): ``W/"x"`` matches ``"x"``."""
    if if_none_match.strip() == "*":
        return True
    return etag in {t.strip().removeprefix("W/") for t in if_none_match.split(",")}


def if_range_allows(if_range: str | None, etag: str) -> bool:
    """Whether a `Range` may be honoured given an `If-Range` header (RFC 9110
    §13.1.5): no header, or one naming the current strong `etag` (quoted).
    A weak tag or a date never matches (we send no Last-Modified), so the
    client gets the whole, current representation instead of mixing parts."""
    return if_range is None or if_range.strip() == etag
