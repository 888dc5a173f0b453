"""Migration 0007 on a database that already has productions: their search
columns are derived and their text indexed, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import sqlalchemy as sa

from aiprod.db import migrate
from aiprod.db.base import JSONType, UTCDateTime
from aiprod.db.engine import Database, make_engine
from aiprod.search.listing import Search, page, prepare
from tests.jobs.conftest import make_request

WHEN = datetime(2026, 2, 1, tzinfo=UTC)
_users = sa.table(
    "users",
    sa.column("id", sa.Uuid()),
    sa.column("email", sa.String()),
    sa.column("role", sa.String()),
    sa.column("is_active", sa.Boolean()),
    sa.column("created_at", UTCDateTime()),
    sa.column("updated_at", UTCDateTime()),
)
_jobs = sa.table(  # the columns of jobs at revision 0006
    "jobs",
    *(sa.column(n, sa.Uuid()) for n in ("id", "owner_id")),
    *(sa.column(n, sa.String()) for n in ("status", "title", "request_hash")),
    *(sa.column(n, JSONType) for n in ("request", "estimate", "storyboard")),
    *(sa.column(n, sa.Integer()) for n in ("progress", "attempts", "max_attempts", "last_seq")),
    *(sa.column(n, sa.Boolean()) for n in ("fast_track", "review", "approved")),
    sa.column("cancel_requested", sa.Boolean()),
    *(sa.column(n, UTCDateTime()) for n in ("next_attempt_at", "created_at", "updated_at")),
)


def _old_rows(url: str, owner: uuid.UUID) -> list[uuid.UUID]:
    async def run() -> list[uuid.UUID]:
        engine = make_engine(url)
        ids = [uuid.uuid4(), uuid.uuid4()]
        request = make_request(script="Otters float on their backs.", aspect="9:16")
        french = make_request(script="Les chevaux courent.", language="fr-CA")
        storyboard = {
            "title": "Otters",
            "language": "en",
            "scenes": [{"index": 0, "narration": "Kelp forests sway.", "duration": 8.0}],
        }
        try:
            async with engine.begin() as conn:
                await conn.execute(
                    sa.insert(_users).values(
                        id=owner,
                        email="old@example.com",
                        role="user",
                        is_active=True,
                        created_at=WHEN,
                        updated_at=WHEN,
                    )
                )
                base = {
                    "owner_id": owner,
                    "status": "completed",
                    "request_hash": "0" * 64,
                    "estimate": {"total": 0.75},
                    "progress": 100,
                    "attempts": 0,
                    "max_attempts": 3,
                    "last_seq": 1,
                    "fast_track": False,
                    "review": False,
                    "approved": False,
                    "cancel_requested": False,
                    "next_attempt_at": WHEN,
                    "created_at": WHEN,
                    "updated_at": WHEN,
                }
                await conn.execute(
                    sa.insert(_jobs),
                    [
                        base
                        | {
                            "id": ids[0],
                            "title": "Otters",
                            "request": request.model_dump(mode="json"),
                            "storyboard": storyboard,
                        },
                        base
                        | {
                            "id": ids[1],
                            "title": "Camargue",
                            "request": french.model_dump(mode="json"),
                            "storyboard": None,
                        },
                    ],
                )
        finally:
            await engine.dispose()
        return ids

    return asyncio.run(run())


def test_existing_productions_are_backfilled(db_url: str) -> None:
    migrate.downgrade(db_url, "0006")
    owner = uuid.uuid4()
    otters, horses = _old_rows(db_url, owner)
    migrate.upgrade(db_url)

    async def check() -> None:
        db = Database(db_url)
        try:

            async def ids(filter_: str = "", q: str = "") -> list[uuid.UUID]:
                rows, _ = await page(db, prepare(Search(owner, filter_, q)), 10, None)
                return [r.id for r in rows]

            assert await ids("aspect:9:16,cost:0.75,duration:8") == [otters]
            assert await ids("language:fr") == [horses]
            assert await ids(q="kelp forest") == [otters]  # the narration
            assert await ids(q="otter") == [otters]
            assert await ids(q="cheval") == [horses]
            assert set(await ids("preset:quick_social,resolution:480p")) == {otters, horses}
        finally:
            await db.dispose()

    asyncio.run(check())
