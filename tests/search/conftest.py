"""Search fixtures: a database at head on SQLite and PostgreSQL (``db`` from
tests/jobs/conftest.py), owners, and jobs made the way the service writes them
(through the ORM, so the search columns and the full-text index follow)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiprod.db.base import utcnow
from aiprod.db.engine import Database
from aiprod.jobs.models import Job
from aiprod.search import listing
from tests.jobs.conftest import (  # noqa: F401  (fixtures)
    db,
    db_url,
    make_request,
    new_user,
    pg_database,
    settings,
    user,
)


@dataclass
class Made:
    id: uuid.UUID
    title: str


def estimate(total: float = 0.01) -> dict[str, Any]:
    """An estimate as stored, without the render spec (the request's resolution counts)."""
    return {"total": total, "seconds": 1.0}


async def add_job(
    database: Database,
    owner: uuid.UUID,
    *,
    title: str = "A production",
    script: str = "Honeybees leave the hive at dawn.",
    created: datetime | None = None,
    cost: float = 0.01,
    storyboard: dict[str, Any] | None = None,
    **fields: Any,
) -> Job:
    """A job row.  `fields` sets Job attributes (status, stage, completed_at …)
    and request fields (language, aspect, resolution, preset, duration, voice)."""
    request_keys = {"language", "aspect", "resolution", "preset", "duration", "voice", "fps"}
    changes = {k: fields.pop(k) for k in list(fields) if k in request_keys}
    request = make_request(script=script, **changes).model_dump(mode="json")
    when = created or utcnow()
    job = Job(
        id=uuid.uuid4(),
        owner_id=owner,
        status=fields.pop("status", "queued"),
        title=title,
        request=request,
        estimate=estimate(cost),
        storyboard=storyboard,
        request_hash="0" * 64,
        next_attempt_at=when,
        created_at=when,
        updated_at=fields.pop("updated_at", when),
        **fields,
    )
    async with database.transaction() as s:
        s.add(job)
    return job


async def found(
    database: Database,
    owner: uuid.UUID | None,
    filter_: str = "",
    q: str = "",
    sort: str = "-created",
    limit: int = 100,
) -> list[Job]:
    """One page of what `owner` (None: an admin) finds."""
    search = listing.Search(owner, filter_, q, sort)
    rows, _ = await listing.page(database, listing.prepare(search), limit, None)
    return rows


async def titles(
    database: Database, owner: uuid.UUID | None, filter_: str = "", q: str = ""
) -> set[str]:
    return {str(j.title) for j in await found(database, owner, filter_, q)}
