"""The SQLite engine's locking: readers never queue behind a writer."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import text

from aiprod.db.engine import Database


async def test_a_read_inside_an_open_write_does_not_wait_for_the_lock(tmp_path: Path) -> None:
    """Every transaction used to take SQLite's write lock (BEGIN IMMEDIATE), so
    a read opened while a write transaction was open in the same process
    waited the whole 30 s busy timeout and failed "database is locked" (the
    worker's CI failures).  Readers now read a WAL snapshot beside the writer."""
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
    try:
        async with db.transaction() as s:
            await s.execute(text("CREATE TABLE t (x INTEGER)"))
        async with db.transaction() as w:
            await w.execute(text("INSERT INTO t VALUES (1)"))

            async def read() -> int:
                async with db.session() as r:
                    return int((await r.execute(text("SELECT count(*) FROM t"))).scalar_one())

            # Bounded so that a regression fails in seconds, not after 30 s.
            assert await asyncio.wait_for(read(), timeout=10) == 0  # the snapshot before
        async with db.session() as r:
            assert (await r.execute(text("SELECT count(*) FROM t"))).scalar_one() == 1
        # Writers still serialise: a second writer waits for the first, then sees its row.
        async with db.transaction() as w:
            await w.execute(text("INSERT INTO t VALUES (2)"))
        async with db.session() as r:
            assert (await r.execute(text("SELECT count(*) FROM t"))).scalar_one() == 2
    finally:
        await db.dispose()
