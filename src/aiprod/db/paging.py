"""Keyset paging shared by every listing: an opaque cursor over (created_at, id).

Listings fetch ``limit + 1`` rows ordered newest first; the extra row says
whether a next page exists, and the cursor names the last row shown, so rows
created while a client pages never shift what it sees.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol, TypeVar

from sqlalchemy import Select, and_, or_

from aiprod.errors import Invalid


class Keyed(Protocol):
    @property
    def created_at(self) -> datetime: ...
    @property
    def id(self) -> uuid.UUID: ...


Row = TypeVar("Row", bound=Keyed)


class BadCursor(Invalid):
    def __init__(self) -> None:
        message = "invalid cursor"
        super().__init__(
            message,
            details=[{"loc": ["query", "cursor"], "msg": message, "type": "invalid_cursor"}],
        )


def encode_cursor(created_at: datetime, row_id: uuid.UUID) -> str:
    """Opaque to clients so the keyset can change without breaking them."""
    raw = json.dumps([created_at.isoformat(), str(row_id)], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> tuple[datetime, uuid.UUID] | None:
    """The position a cursor names (None for the first page); BadCursor (422)."""
    if cursor is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created, row_id = json.loads(raw)
        when = datetime.fromisoformat(created)
        key = uuid.UUID(row_id)
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError) as exc:
        raise BadCursor() from exc
    if when.tzinfo is None:
        raise BadCursor()
    return when, key


def page_of(rows: Sequence[Row], limit: int) -> tuple[list[Row], str | None]:
    """The first `limit` of `limit + 1` fetched rows, and the next page's cursor."""
    page = list(rows[:limit])
    if len(rows) > limit and page:
        return page, encode_cursor(page[-1].created_at, page[-1].id)
    return page, None


def newest_first(
    query: Select[Any], model: Any, before: tuple[datetime, uuid.UUID] | None
) -> Select[Any]:
    """`query` over `model` ordered newest first on (created_at, id), starting
    after the position `before` (a decoded cursor) when there is one."""
    q = query.order_by(model.created_at.desc(), model.id.desc())
    if before is not None:
        created, key = before
        q = q.where(
            or_(model.created_at < created, and_(model.created_at == created, model.id < key))
        )
    return q
