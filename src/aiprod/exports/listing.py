"""The bulk export of a listing: every production a search matches, as CSV or
NDJSON, streamed.

The rows come from ``search.listing.stream`` (keyset batches, each a short
read of its own) and leave as encoded lines as they come, so memory stays one
batch whatever the number of rows (measured by ``bench/search.py``).  Owner
scoping is the search's: a user's export never reaches another's rows.  There
is no Content-Length (the count is not known before the end) and no Range: a
client that loses the connection exports again, or pages the listing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Literal

from aiprod.db.engine import Database
from aiprod.exports.writers import csv_line, ndjson_line
from aiprod.jobs.models import Job
from aiprod.search import listing

BulkFormat = Literal["csv", "ndjson"]

COLUMNS = (
    "id",
    "owner_id",
    "title",
    "status",
    "stage",
    "progress",
    "created_at",
    "updated_at",
    "completed_at",
    "preset",
    "aspect",
    "resolution",
    "language",
    "voice",
    "duration_seconds",
    "cost_usd",
    "fast_track",
    "review",
    "attempts",
    "error_code",
)
"""One row per production: what the listing shows, flat."""


def row(job: Job) -> dict[str, Any]:
    return {
        "id": str(job.id),
        "owner_id": str(job.owner_id),
        "title": job.title,
        "status": job.status,
        "stage": job.stage,
        "progress": job.progress,
        "created_at": job.created_at,
        "updated_at": job.updated_at,
        "completed_at": job.completed_at,
        "preset": job.preset,
        "aspect": job.aspect,
        "resolution": job.resolution,
        "language": job.language,
        "voice": job.voice,
        "duration_seconds": job.duration,
        "cost_usd": job.cost,
        "fast_track": job.fast_track,
        "review": job.review,
        "attempts": job.attempts,
        "error_code": (job.error or {}).get("code"),
    }


async def lines(
    db: Database, search: listing.Search, format: BulkFormat, batch: int = 500
) -> AsyncIterator[bytes]:
    """The export's bytes, a production per line (CSV: after the header)."""
    if format == "csv":
        yield csv_line(COLUMNS)
    async for job in listing.stream(db, search, batch):
        item = row(job)
        yield csv_line([item[c] for c in COLUMNS]) if format == "csv" else ndjson_line(item)
