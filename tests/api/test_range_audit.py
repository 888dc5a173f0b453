"""Audit finding (issue 9): a `Range` header with thousands of digits answered
500 (Python refuses to parse integers over 4300 digits).

Such a header is syntactically valid (RFC 9110 §14.1.1 puts no limit on the
digits), so it is answered for what it says: a first position beyond the
file is unsatisfiable (416), a last position beyond it is clamped, and a
suffix longer than the file asks for all of it (206).
"""

from __future__ import annotations

import hashlib

import pytest

from tests.api.conftest import Api

DATA = bytes(range(256)) * 4
HUGE = "9" * 5000


@pytest.fixture
async def video(api: Api) -> tuple[Api, dict[str, str], str]:
    _, headers = await api.account()
    job = await api.submit(headers)
    await api.complete(job["id"], {"video.mp4": DATA})
    return api, headers, f"/v1/productions/{job['id']}/artifacts/video.mp4"


@pytest.mark.parametrize("header", [f"bytes={HUGE}-", f"bytes={HUGE}-{HUGE}"])
async def test_start_with_thousands_of_digits_is_416(
    video: tuple[Api, dict[str, str], str], header: str
) -> None:
    api, headers, url = video
    r = await api.client.get(url, headers={**headers, "Range": header})
    assert r.status_code == 416, r.text[:200]
    assert r.headers["content-range"] == f"bytes */{len(DATA)}"
    err = r.json()["error"]
    assert err["code"] == "range_not_satisfiable"
    assert len(err["message"]) < 300  # the header is not echoed whole


@pytest.mark.parametrize(
    ("header", "start", "end"),
    [
        (f"bytes=10-{HUGE}", 10, len(DATA)),
        (f"bytes=-{HUGE}", 0, len(DATA)),
        ("bytes=0000000000000000000000000000010-00000000000000000000000019", 10, 20),
    ],
    ids=["end-clamped", "suffix-whole-file", "leading-zeros"],
)
async def test_other_positions_with_many_digits_are_served(
    video: tuple[Api, dict[str, str], str], header: str, start: int, end: int
) -> None:
    api, headers, url = video
    r = await api.client.get(url, headers={**headers, "Range": header})
    assert r.status_code == 206, r.text[:200]
    assert r.content == DATA[start:end]
    assert r.headers["content-range"] == f"bytes {start}-{end - 1}/{len(DATA)}"


async def test_long_if_none_match_is_harmless(video: tuple[Api, dict[str, str], str]) -> None:
    api, headers, url = video
    etag = f'"{hashlib.sha256(DATA).hexdigest()}"'
    many = ", ".join([f'"{i}"' for i in range(2000)] + [etag])
    r = await api.client.get(url, headers={**headers, "If-None-Match": many})
    assert r.status_code == 304
