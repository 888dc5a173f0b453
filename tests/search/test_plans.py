"""Every filter on an indexed field is answered through an index, on both databases.

A few thousand jobs over many owners (enough that a plan's choice means
something; statistics gathered), then the statements a listing really
executes (captured from the driver, with their parameters) are explained:

* SQLite: ``EXPLAIN QUERY PLAN`` reads ``jobs`` by ``SEARCH … USING INDEX``,
  never ``SCAN jobs`` (the table, or a whole index in sort order);
* PostgreSQL: ``EXPLAIN`` shows an index or bitmap index scan of the field's
  index and no ``Seq Scan on jobs`` (with ``enable_seqscan`` off, so a small
  table cannot make a sequential scan the cheaper plan).
"""

from __future__ import annotations

import random
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event, insert, text

from aiprod.db.engine import Database
from aiprod.identity.models import User
from aiprod.jobs.models import Job
from aiprod.search import columns, fulltext, listing
from aiprod.search.text import document
from aiprod.settings import Settings
from tests.jobs.conftest import make_request, new_user

ROWS = 3000
OWNERS = 30
T0 = datetime(2026, 1, 1, tzinfo=UTC)
WORDS = "bee hive honey flower meadow river salmon forest mountain cloud rain".split()
RARE = "zeppelin"


async def _seed(db: Database, settings: Settings) -> list[User]:
    owners = [await new_user(db, settings) for _ in range(OWNERS)]
    rng = random.Random(7)
    base = make_request().model_dump(mode="json")
    rows: list[dict[str, Any]] = []
    for i in range(ROWS):
        request = dict(
            base,
            script=" ".join(rng.choices(WORDS, k=8)) + (f" {RARE}" if i % 500 == 0 else ""),
            language=rng.choice(["en", "fr", "de"]),
            aspect=rng.choice(["16:9", "9:16", "1:1"]),
            preset=rng.choice(["quick_social", "brand_campaign", "premium_spot"]),
            resolution=rng.choice(["480p", "720p", "1080p"]),
            voice={"name": rng.choice(["en-US", "fr-FR", "de-DE", "hibari-heart"])},
            duration=rng.choice([15, 30, 45, 60]),
        )
        estimate = {"total": round(rng.uniform(0, 3), 4)}
        created = T0 + timedelta(minutes=i)
        done = created + timedelta(minutes=5) if i % 3 == 0 else None
        row = {
            "id": uuid.uuid4(),
            "owner_id": owners[i % OWNERS].id,
            "status": "completed" if done else rng.choice(["queued", "failed", "processing"]),
            "stage": "qa" if done else rng.choice(["plan", "narrate", None]),
            "title": f"Production {i}",
            "request": request,
            "estimate": estimate,
            "request_hash": "0" * 64,
            "fast_track": i % 7 == 0,
            "review": i % 11 == 0,
            "next_attempt_at": created,
            "created_at": created,
            "updated_at": created + timedelta(minutes=rng.randint(0, 600)),
            "completed_at": done,
            **columns.derive(request, estimate, None),
        }
        rows.append(row)
    async with db.transaction() as s:
        await s.execute(insert(Job), rows)
        docs = [(r["id"], document(r["title"], r["request"], None, r["language"])) for r in rows]
        conn = await s.connection()
        await conn.run_sync(lambda sync: fulltext.index_many(sync, docs))
    async with db.engine.connect() as conn:
        await conn.exec_driver_sql("ANALYZE")
        await conn.commit()
    return owners


@contextmanager
def _captured(db: Database) -> Iterator[list[tuple[str, Any]]]:
    statements: list[tuple[str, Any]] = []

    def capture(_c: Any, _cur: Any, statement: str, params: Any, _ctx: Any, _many: Any) -> None:
        if re.search(r"\bFROM jobs\b", statement) and not statement.startswith("EXPLAIN"):
            statements.append((statement, params))

    event.listen(db.engine.sync_engine, "before_cursor_execute", capture)
    try:
        yield statements
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", capture)


def _tree(nodes: list[tuple[int, int, str]]) -> str:
    """SQLite's plan as lines indented by depth (a subquery's steps under it)."""
    depth = {0: -1}
    lines = []
    for node, parent, detail in nodes:
        depth[node] = depth.get(parent, -1) + 1
        lines.append("  " * depth[node] + detail)
    return "\n".join(lines)


async def _plans(db: Database, search: listing.Search) -> list[str]:
    """The plan of each statement the first page of `search` executes."""
    with _captured(db) as statements:
        await listing.page(db, listing.prepare(search), 20, None)
    plans = []
    for statement, params in statements:
        async with db.engine.connect() as conn:
            if db.url.startswith("sqlite"):
                rows = await conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, params)
                plans.append(_tree([(r[0], r[1], str(r[3])) for r in rows]))
            else:
                await conn.exec_driver_sql("SET enable_seqscan = off")
                rows = await conn.exec_driver_sql("EXPLAIN " + statement, params)
                plans.append("\n".join(str(r[0]) for r in rows))
    assert plans, "no statement read jobs"
    return plans


# (filter, the index PostgreSQL must choose for an admin, when the filter is
# selective enough that reading another index in sort order would not be
# cheaper; for a user, the owner's rows are few and an owner index serves)
FILTERS = [
    ("status:failed", None),
    ("stage:narrate", None),
    ("preset:brand_campaign", None),
    ("aspect:9:16", None),
    ("resolution:1080p", None),
    ("language:fr", None),
    ("voice:nobody", "voice"),
    ("fast_track:true", None),
    ("review:true", None),
    ("created:2026-01-01", None),
    ("updated:<2026-01-01T02:00", "updated"),
    ("completed:>2026-01-03", "completed"),
    ("cost:>2.99", "cost"),
    ("duration:>60", "duration"),
    ("status:failed|queued,cost:<0.01", "(status|cost)"),
    (f"title:{RARE}", "fts"),
]


@pytest.mark.parametrize("admin", [True, False], ids=["admin", "user"])
async def test_filters_on_indexed_fields_use_an_index(
    db: Database, settings: Settings, admin: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On SQLite a filtered page first looks among the next WINDOW rows in sort
    order (a walk of the sort's index bounded by LIMIT: the one ``SCAN`` allowed,
    inside the subquery), then through the filter's index: a small window here
    makes every listing take both steps, so both plans are checked."""
    monkeypatch.setattr(listing, "WINDOW", 5)
    owners = await _seed(db, settings)
    owner = None if admin else owners[3].id
    cases = [*FILTERS, (f"owner:{owners[3].id}", "owner")] if admin else FILTERS
    queries: list[tuple[str, str, str | None]] = [(f, "", index) for f, index in cases]
    queries.append(("", RARE, "fts"))
    for filter_, q, index in queries:
        plans = await _plans(db, listing.Search(owner, filter_, q))
        for plan in plans:
            shown = f"{filter_ or 'q=' + q} ({'admin' if admin else 'user'}):\n{plan}"
            if db.url.startswith("sqlite"):
                window = r"^ {4,}SCAN jobs USING COVERING INDEX ix_jobs_created$"
                scans = re.findall(r"^ *SCAN jobs\b.*$", plan, re.M)
                assert all(re.match(window, line) for line in scans), shown
                continue
            assert "Seq Scan on jobs" not in plan, shown
            assert re.search(r"(Index|Bitmap Index|Index Only) Scan", plan), shown
            if admin and index == "fts":
                assert "ix_jobs_fts" in plan, shown
            elif admin and index is not None:
                assert re.search(rf"ix_jobs_{index}", plan), shown
        if db.url.startswith("sqlite"):  # the last step: through the filter's index
            shown = f"{filter_ or 'q=' + q} ({'admin' if admin else 'user'}):\n{plans[-1]}"
            assert not re.search(r"\bSCAN jobs\b", plans[-1]), shown
            if index == "fts":
                assert "SCAN jobs_fts VIRTUAL TABLE" in plans[-1], shown
            else:
                assert re.search(r"SEARCH jobs USING (COVERING )?INDEX ix_jobs_", plans[-1]), shown


async def test_sorts_read_their_index(db: Database, settings: Settings) -> None:
    owners = await _seed(db, settings)
    for owner in (None, owners[0].id):
        for sort in listing.SORTS:
            name = sort.removeprefix("-")
            for plan in await _plans(db, listing.Search(owner, sort=sort)):
                shown = f"sort={sort} owner={owner}:\n{plan}"
                if db.url.startswith("sqlite"):
                    # the ids are read in order from the sort's index; only the
                    # page itself (top level, at most `limit` rows) is sorted
                    index = "ix_jobs_" + ("owner_" if owner else "") + name
                    assert re.search(rf"USING (COVERING )?INDEX {index}\b", plan), shown
                    assert not re.search(r"^ +USE TEMP B-TREE", plan, re.M), shown
                else:
                    assert "Seq Scan on jobs" not in plan, shown
                    assert re.search(rf"ix_jobs_(owner_)?({name}|status)", plan), shown


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_enough_rows_make_postgres_choose_the_gin_index(
    db: Database, settings: Settings
) -> None:
    """With statistics and sequential scans allowed, a rare word is found through
    the GIN index (a bitmap scan), not by reading every row."""
    await _seed(db, settings)
    with _captured(db) as statements:
        await listing.page(db, listing.prepare(listing.Search(None, q=RARE)), 20, None)
    (statement, params), *_ = statements
    async with db.engine.connect() as conn:
        plan = "\n".join(
            str(r[0]) for r in await conn.exec_driver_sql("EXPLAIN " + statement, params)
        )
        hits = await conn.execute(text("SELECT count(*) FROM jobs WHERE fts IS NOT NULL"))
        assert hits.scalar_one() == ROWS
    assert "Bitmap Index Scan on ix_jobs_fts" in plan, plan
