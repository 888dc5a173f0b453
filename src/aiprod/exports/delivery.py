"""Sending an export over HTTP: size limit, `ETag`, `Range` and `If-Range`.

Every export (JSON, CSV, ZIP) has a length and a strong entity tag known
before its first byte, so all of them are served alike: 413
``export_too_large`` over ``AIPROD_EXPORT_MAX_BYTES`` before anything is
streamed; 304 for a matching `If-None-Match`; one byte range (206, or 416
when it starts past the end) unless `If-Range` names another version, in
which case the whole current export is sent (200), as RFC 9110 §13.1.5 says.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

from fastapi import Response
from fastapi.responses import StreamingResponse

from aiprod import http_ranges
from aiprod.errors import TooLarge
from aiprod.jobs.artifacts import byte_span


class Body(Protocol):
    @property
    def size(self) -> int: ...

    @property
    def etag(self) -> str: ...

    def stream(self, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]: ...


@dataclass(frozen=True)
class BytesBody:
    """A small export made in memory (JSON, CSV)."""

    data: bytes

    @property
    def size(self) -> int:
        return len(self.data)

    @property
    def etag(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    async def stream(self, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        yield self.data[start:end]


def check_size(body: Body, limit: int) -> None:
    if body.size > limit:
        raise TooLarge(
            f"this export would be {body.size} bytes, over the limit of {limit} bytes",
            "export_too_large",
            details={"bytes": body.size, "limit_bytes": limit},
        )


def respond(
    body: Body,
    *,
    filename: str,
    media_type: str,
    limit: int,
    range_: str | None,
    if_range: str | None,
    if_none_match: str | None,
) -> Response:
    check_size(body, limit)
    etag = http_ranges.quote_etag(body.etag)
    headers = {
        "Accept-Ranges": "bytes",
        "Cache-Control": "private, no-cache",
        "Content-Disposition": f'attachment; filename="{filename}"',
        "ETag": etag,
    }
    if if_none_match is not None and http_ranges.etag_matches(if_none_match, etag):
        return Response(status_code=304, headers=headers)
    allowed = range_ if http_ranges.if_range_allows(if_range, etag) else None
    status, start, end, extra = byte_span(allowed, body.size, "the export")
    headers.update(extra)
    headers["Content-Length"] = str(end - start)
    return StreamingResponse(
        body.stream(start, end), status_code=status, media_type=media_type, headers=headers
    )


__all__ = ["Body", "BytesBody", "check_size", "respond"]
