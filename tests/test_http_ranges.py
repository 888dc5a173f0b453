"""aiprod.http_ranges: the Range and If-None-Match parsing the download route uses."""

from __future__ import annotations

import pytest

from aiprod.http_ranges import (
    Unsatisfiable,
    etag_matches,
    if_range_allows,
    parse_range,
    quote_etag,
)

HUGE = "9" * 5000


@pytest.mark.parametrize(
    ("header", "size", "span"),
    [
        ("bytes=0-9", 100, (0, 10)),
        (" bytes=90- ", 100, (90, 100)),
        ("bytes=-10", 100, (90, 100)),
        ("bytes=-1000", 100, (0, 100)),
        ("bytes=5-1000", 100, (5, 100)),
        (f"bytes=5-{HUGE}", 100, (5, 100)),
        (f"bytes=-{HUGE}", 100, (0, 100)),
        ("bytes=000010-000019", 100, (10, 20)),
        ("bytes=" + "0" * 5000 + "7-8", 100, (7, 9)),
    ],
)
def test_ranges(header: str, size: int, span: tuple[int, int]) -> None:
    assert parse_range(header, size) == span


@pytest.mark.parametrize(
    "header", ["bytes=0-1,5-6", "items=0-5", "bytes=9-3", "bytes=x-y", "bytes=-", "bytes=١-٢"]
)
def test_ignored(header: str) -> None:
    assert parse_range(header, 100) is None


@pytest.mark.parametrize(
    ("header", "size"),
    [("bytes=100-", 100), ("bytes=-0", 100), ("bytes=-5", 0), (f"bytes={HUGE}-", 100)],
)
def test_unsatisfiable(header: str, size: int) -> None:
    with pytest.raises(Unsatisfiable):
        parse_range(header, size)


def test_a_last_position_below_a_huge_first_is_ignored() -> None:
    assert parse_range(f"bytes={HUGE}-5", 100) is None


def test_etags() -> None:
    assert etag_matches('"a", W/"b"', '"b"')
    assert etag_matches(" * ", '"x"')
    assert not etag_matches('"a"', '"b"')


def test_if_range_allows_the_range_only_for_the_current_strong_tag() -> None:
    tag = quote_etag("abc")
    assert if_range_allows(None, tag)
    assert if_range_allows(' "abc" ', tag)
    assert not if_range_allows('W/"abc"', tag)  # weak: never for ranges
    assert not if_range_allows('"other"', tag)
    assert not if_range_allows("Sat, 01 Jan 2026 00:00:00 GMT", tag)  # a date
