"""Filtered full-text search over a million productions, on SQLite and PostgreSQL.

    .venv/bin/python bench/search.py [--rows 1000000] [--runs 15] [--only sqlite|postgresql]
        [--pg-admin-url postgresql://postgres@127.0.0.1:5432/test] [--keep]

Seeds `--rows` productions over 1,000 owners (a few with tens of thousands of
rows, most with a few hundred) with a bulk loader: rows are generated
(deterministic seed), written with executemany (SQLite) or COPY into a
staging table (PostgreSQL), and indexed after the load, the way a restore
would; the full-text documents are the ones the service writes
(:func:`aiprod.search.text.document`; stemmed in Python for SQLite, by
``to_tsvector`` in the production's configuration for PostgreSQL).
Statistics are gathered (ANALYZE), as a running database has them.

Then the bulk export (``GET /v1/exports/productions``'s generator,
:func:`aiprod.exports.listing.lines`) streams every row as CSV to nowhere in
a child process, which reports its peak RSS beside that of a child that only
reads one page (the baseline): constant memory means the two stay close
whatever ``--rows`` is.

Then a fixed set of listings runs through the code the API runs
(:func:`aiprod.search.listing.page`, 20 rows a page): single filters,
ranges, combinations, full text, full text with filters, sorts, and deep
pages (a cursor 100,000 rows in).  Each runs once to warm the caches, then
`--runs` times; the figures are the p50 and p95 of those runs, per query and
over all of them, in milliseconds.

SQLite is a file in a private temporary folder; PostgreSQL a database
``bench_search`` created beside the admin URL's and dropped at the end
(``--keep`` keeps both and prints where they are).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import asyncpg
from sqlalchemy import Table, create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.schema import CreateIndex

from aiprod.db.engine import Database
from aiprod.db.migrate import upgrade_async
from aiprod.exports.listing import lines
from aiprod.jobs.models import Job
from aiprod.search import fulltext, listing
from aiprod.search.columns import derive
from aiprod.search.text import document

OWNERS = 1000
BATCH = 5000
T0 = datetime(2025, 1, 1, tzinfo=UTC)
SPAN_DAYS = 730
BIG_OWNER = 0  # the owner with the most productions: user queries ask as them

ENGLISH = """
video honey bees hive flowers garden river forest mountain ocean city night morning
coffee recipe kitchen bread cake product launch brand campaign summer winter sale
travel journey train station market street music dance festival school lesson science
space planet star rocket robot machine factory farm harvest animals horses dogs cats
birds wolves whales running walking cooking painting building learning teaching
explains shows discovers explores celebrates introduces reveals compares history
future energy solar wind water climate health sleep fitness yoga football tennis
""".split()
FRENCH = """
chevaux cheval prairie montagne rivière forêt cuisine pain gâteau marché ville nuit
matin café recette jardin fleurs abeilles miel voyage gare musique danse école leçon
étoiles fusée robot usine ferme récolte chiens chats oiseaux courir marcher peindre
construire apprendre découvre explore célèbre présente histoire avenir énergie soleil
""".split()
# A long tail of rarer words (made up, deterministic), as real prose has.
_SYLLABLES = "ka lo mi ru ve sa tor nel pi da gu fen or is al bre".split()
_TAIL_RNG = random.Random(5)
TAIL = sorted({"".join(_TAIL_RNG.choices(_SYLLABLES, k=3)) for _ in range(4000)})
_TAIL_RNG.shuffle(TAIL)
ENGLISH += TAIL
RARE_WORD = TAIL[1500]  # in about one production in 200
STATUSES = ["completed"] * 60 + ["failed"] * 8 + ["cancelled"] * 7 + ["queued"] * 10
STATUSES += ["processing"] * 5 + ["awaiting_approval"] * 10
STAGES = ["plan", "narrate", "visuals", "music", "montage", "qa"]
VOICES = ["hibari-heart", "en-US", "en-GB", "fr-FR", "de-DE", "es-ES"]


def _zipf(words: list[str]) -> list[float]:
    return [1.0 / (rank + 1) ** 0.9 for rank in range(len(words))]


@dataclass
class Generated:
    jobs: list[dict[str, Any]]
    owners: list[uuid.UUID]


def _owners(rng: random.Random) -> tuple[list[uuid.UUID], list[float]]:
    ids = [uuid.UUID(int=rng.getrandbits(128), version=4) for _ in range(OWNERS)]
    weights = [1.0 / (rank + 1) ** 0.8 for rank in range(OWNERS)]
    return ids, weights


def generate(rows: int, seed: int = 12) -> Iterator[list[dict[str, Any]]]:
    """Batches of job rows: the columns of ``jobs`` plus the searchable document."""
    rng = random.Random(seed)
    owners, owner_weights = _owners(rng)
    en_w, fr_w = _zipf(ENGLISH), _zipf(FRENCH)
    batch: list[dict[str, Any]] = []
    for i in range(rows):
        language = rng.choices(["en", "fr", "de", "es"], [60, 25, 10, 5])[0]
        vocab, weights = (FRENCH, fr_w) if language == "fr" else (ENGLISH, en_w)
        prompt = " ".join(rng.choices(vocab, weights, k=rng.randint(12, 30)))
        title = " ".join(rng.choices(vocab, weights, k=rng.randint(2, 5))).capitalize()
        status = rng.choice(STATUSES)
        created = T0 + timedelta(seconds=rng.uniform(0, SPAN_DAYS * 86400))
        duration = rng.choice([15, 20, 30, 45, 60, 90, 120])
        preset = "premium_spot" if duration > 60 else rng.choice(["quick_social", "brand_campaign"])
        resolution = rng.choice(["720p", "1080p"] if preset == "premium_spot" else ["480p", "720p"])
        request = {
            "prompt": prompt,
            "language": language,
            "duration": duration,
            "aspect": rng.choice(["16:9", "16:9", "9:16", "1:1"]),
            "resolution": resolution,
            "preset": preset,
            "voice": {"name": rng.choice(VOICES)},
            "review": False,
        }
        estimate = {"total": round(rng.lognormvariate(-1.5, 1.0), 6), "seconds": duration * 1.5}
        storyboard = None
        if status in ("completed", "awaiting_approval", "failed"):
            scenes = [
                {"index": k, "narration": " ".join(rng.choices(vocab, weights, k=10))}
                for k in range(3)
            ]
            storyboard = {"title": title, "language": language, "scenes": scenes}
        done = created + timedelta(minutes=rng.uniform(1, 30)) if status == "completed" else None
        row = {
            "id": uuid.UUID(int=rng.getrandbits(128), version=4),
            "owner_id": rng.choices(owners, owner_weights)[0],
            "status": status,
            "stage": "qa" if status == "completed" else rng.choice(STAGES),
            "progress": 100 if done else rng.randint(0, 99),
            "title": title,
            "request": request,
            "storyboard": storyboard,
            "estimate": estimate,
            "fast_track": duration <= 20,
            "review": status == "awaiting_approval",
            "approved": False,
            "request_hash": f"{i:064x}",
            "attempts": 0,
            "max_attempts": 3,
            "next_attempt_at": created,
            "cancel_requested": False,
            "last_seq": 3,
            "created_at": created,
            "updated_at": (done or created) + timedelta(seconds=rng.uniform(0, 3600)),
            "completed_at": done,
            **derive(request, estimate, None),
        }
        row["doc"] = document(title, request, storyboard, row["language"])
        batch.append(row)
        if len(batch) == BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


JOBS = cast(Table, Job.__table__)
PG_DIALECT = make_url("postgresql+asyncpg://").get_dialect()()
JOB_COLUMNS = [c.name for c in JOBS.columns]
JSON_COLUMNS = {"request", "storyboard", "estimate", "qa", "error"}
TIME_COLUMNS = {"next_attempt_at", "created_at", "updated_at", "completed_at", "lease_expires_at"}


# ------------------------------------------------------------------ SQLite


def _sqlite_value(name: str, value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, uuid.UUID):
        return value.hex
    if name in JSON_COLUMNS:
        return json.dumps(value)
    if name in TIME_COLUMNS:
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(value, bool):
        return int(value)
    return value


def load_sqlite(path: Path, rows: int) -> float:
    """Bulk load; the seconds it took."""
    start = time.perf_counter()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("PRAGMA cache_size=-400000")
    indexes = list(JOBS.indexes)
    for index in indexes:
        conn.execute(f"DROP INDEX {index.name}")
    rng = random.Random(12)
    owners, _ = _owners(rng)
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO users (id, email, role, is_active, created_at, updated_at) "
        "VALUES (?, ?, 'user', 1, '2025-01-01 00:00:00.000000', '2025-01-01 00:00:00.000000')",
        [(o.hex, f"owner{n}@example.com") for n, o in enumerate(owners)],
    )
    columns = [c for c in JOB_COLUMNS if c in _sample_keys()]
    insert = f"INSERT INTO jobs ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
    index_rows = "INSERT INTO jobs_fts_rows (job_id, lang, title, body) VALUES (?, ?, ?, ?)"
    done = 0
    for batch in generate(rows):
        conn.executemany(insert, [[_sqlite_value(c, r[c]) for c in columns] for r in batch])
        docs = []
        for r in batch:
            title, body = r["doc"].stemmed()
            docs.append((r["id"].hex, r["doc"].config, title, body))
        conn.executemany(index_rows, docs)
        done += len(batch)
        if done % 100_000 == 0:
            print(f"  sqlite: {done:,} rows, {time.perf_counter() - start:.0f} s", flush=True)
    conn.execute("COMMIT")
    engine = create_engine(f"sqlite:///{path}")
    with engine.begin() as sync:
        for index in indexes:
            index.create(sync)
    engine.dispose()
    conn.execute("ANALYZE")
    conn.close()
    return time.perf_counter() - start


def _sample_keys() -> set[str]:
    return set(next(generate(1))[0])


# -------------------------------------------------------------- PostgreSQL


async def load_postgres(url: str, rows: int) -> float:
    start = time.perf_counter()
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("SET maintenance_work_mem = '1GB'")
        indexes = list(JOBS.indexes)
        for index in indexes:
            await conn.execute(f"DROP INDEX {index.name}")
        await conn.execute(f"DROP INDEX {fulltext.PG_INDEX}")
        rng = random.Random(12)
        owners, _ = _owners(rng)
        await conn.executemany(
            "INSERT INTO users (id, email, role, is_active, created_at, updated_at) "
            "VALUES ($1, $2, 'user', true, now(), now())",
            [(o, f"owner{n}@example.com") for n, o in enumerate(owners)],
        )
        columns = [c for c in JOB_COLUMNS if c in _sample_keys()]
        staged = [*columns, "doc_config", "doc_title", "doc_body"]
        await conn.execute(
            "CREATE UNLOGGED TABLE bench_staging AS SELECT "
            + ", ".join(columns)
            + ", ''::text AS doc_config, ''::text AS doc_title, ''::text AS doc_body "
            "FROM jobs WITH NO DATA"
        )
        done = 0
        for batch in generate(rows):
            records = []
            for r in batch:
                values = [json.dumps(r[c]) if c in JSON_COLUMNS and r[c] is not None else r[c]
                          for c in columns]  # fmt: skip
                doc = r["doc"]
                records.append((*values, doc.config, doc.title, doc.body))
            await conn.copy_records_to_table("bench_staging", records=records, columns=staged)
            done += len(batch)
            if done % 100_000 == 0:
                print(f"  postgresql: {done:,} staged, {time.perf_counter() - start:.0f} s")
        vector = fulltext.pg_vector("doc_config", "doc_title", "doc_body")
        await conn.execute(
            f"INSERT INTO jobs ({', '.join(columns)}, {fulltext.PG_COLUMN}) "
            f"SELECT {', '.join(columns)}, {vector} FROM bench_staging"
        )
        await conn.execute("DROP TABLE bench_staging")
        print(f"  postgresql: inserted with documents, {time.perf_counter() - start:.0f} s")
        for index in indexes:
            await conn.execute(str(CreateIndex(index).compile(dialect=PG_DIALECT)))
        await conn.execute(
            f"CREATE INDEX {fulltext.PG_INDEX} ON jobs USING gin ({fulltext.PG_COLUMN})"
        )
        await conn.execute("VACUUM ANALYZE jobs")
    finally:
        await conn.close()
    return time.perf_counter() - start


# ----------------------------------------------------------------- queries


@dataclass(frozen=True)
class Query:
    name: str
    search: listing.Search
    deep: int = 0  # start this many rows in (a cursor made from that row)


def queries(owner: uuid.UUID) -> list[Query]:
    admin = None
    S = listing.Search
    return [
        Query("newest, one user", S(owner)),
        Query("newest, admin", S(admin)),
        Query("status:failed", S(admin, "status:failed")),
        Query("user: status:completed,language:fr", S(owner, "status:completed,language:fr")),
        Query("created:2025-06 (a month)", S(admin, "created:2025-06")),
        Query("cost:>5 (range, 1 %)", S(admin, "cost:>5")),
        Query(
            "duration:>=1m,duration:<2m,aspect:9:16",
            S(admin, "duration:>=1m,duration:<2m,aspect:9:16"),
        ),
        Query(
            "completed:>=2026-12-01,sort=-completed",
            S(admin, "completed:>=2026-12-01", sort="-completed"),
        ),
        Query("sort=-cost", S(admin, sort="-cost")),
        Query(
            "owner:<email>,status:failed|cancelled",
            S(admin, "owner:owner3@example.com,status:failed|cancelled"),
        ),
        Query("q=whales", S(admin, q="whales")),
        Query(f"q={RARE_WORD} (rare word)", S(admin, q=RARE_WORD)),
        Query("q=rocket factory", S(admin, q="rocket factory")),
        Query("q=cheval (French stem)", S(admin, q="cheval")),
        Query("user: q=dance", S(owner, q="dance")),
        Query(
            "q=whale + status:completed,created:>=2026",
            S(admin, "status:completed,created:>=2026", q="whale"),
        ),
        Query("title:festival,preset:premium_spot", S(admin, "title:festival,preset:premium_spot")),
        Query("deep page: newest, admin, row 100,000", S(admin), deep=100_000),
        Query("deep page: sort=-cost, row 100,000", S(admin, sort="-cost"), deep=100_000),
        Query(
            "deep page: user, sort=completed, row 10,000", S(owner, sort="completed"), deep=10_000
        ),
    ]


async def _cursor_at(db: Database, query: Query) -> str | None:
    """The cursor of the page that starts `query.deep` rows in (walked once,
    with the largest pages, as a client that paged that far would hold)."""
    if not query.deep:
        return None
    prepared = listing.prepare(query.search)
    cursor, seen = None, 0
    while seen < query.deep:
        rows, cursor = await listing.page(db, prepared, min(1000, query.deep - seen), cursor)
        seen += len(rows)
        if cursor is None:
            break
    return cursor


def _p(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def measure(url: str, runs: int) -> list[tuple[str, float, float, int]]:
    db = Database(url)
    results = []
    try:
        owner = _owners(random.Random(12))[0][BIG_OWNER]
        for query in queries(owner):
            cursor = await _cursor_at(db, query)
            prepared = listing.prepare(query.search)
            rows, _ = await listing.page(db, prepared, 20, cursor)  # warm
            samples = []
            for _ in range(runs):
                start = time.perf_counter()
                await listing.page(db, listing.prepare(query.search), 20, cursor)
                samples.append((time.perf_counter() - start) * 1000)
            results.append((query.name, _p(samples, 0.5), _p(samples, 0.95), len(rows)))
            print(f"  {query.name:48s} p50 {results[-1][1]:7.2f} ms  p95 {results[-1][2]:7.2f} ms"
                  f"  ({len(rows)} rows)", flush=True)  # fmt: skip
    finally:
        await db.dispose()
    return results


async def _export_child(url: str, mode: str) -> None:
    """In a child process: stream the whole listing (``export``) or read one page
    (``baseline``), then print rows, bytes, seconds and the peak RSS as JSON."""
    db = Database(url)
    start = time.perf_counter()
    rows = size = 0
    try:
        if mode == "export":
            async for line in lines(db, listing.Search(None), "csv"):
                rows += 1
                size += len(line)
            rows -= 1  # the header
        else:
            found, _ = await listing.page(db, listing.prepare(listing.Search(None)), 20, None)
            rows = len(found)
    finally:
        await db.dispose()
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"rows": rows, "bytes": size, "seconds": time.perf_counter() - start,
                      "peak_mb": peak_kb / 1024}))  # fmt: skip


def measure_export(url: str) -> None:
    """The bulk export's peak RSS against a one-page read's, each in a fresh child."""
    found = {}
    for mode in ("baseline", "export"):
        out = subprocess.run(
            [sys.executable, __file__, "--export-child", mode, "--url", url],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        found[mode] = json.loads(out.strip().splitlines()[-1])
    e, b = found["export"], found["baseline"]
    print(
        f"  bulk export (CSV, every row): {e['rows']:,} rows, {e['bytes'] / 1e6:.0f} MB in "
        f"{e['seconds']:.1f} s ({e['rows'] / e['seconds']:,.0f} rows/s); peak RSS "
        f"{e['peak_mb']:.0f} MB vs {b['peak_mb']:.0f} MB reading one page",
        flush=True,
    )


def report(name: str, results: list[tuple[str, float, float, int]], load_s: float) -> None:
    p50s = [r[1] for r in results]
    p95s = [r[2] for r in results]
    print(f"\n{name}: loaded in {load_s:.0f} s; {len(results)} queries")
    print(f"  median of per-query p50: {statistics.median(p50s):.2f} ms")
    print(f"  worst per-query p95:     {max(p95s):.2f} ms  ({results[p95s.index(max(p95s))][0]})")


async def run_postgres(args: argparse.Namespace) -> None:
    admin = make_url(args.pg_admin_url)
    admin_dsn = admin.set(drivername="postgresql").render_as_string(hide_password=False)
    url = admin.set(drivername="postgresql+asyncpg", database="bench_search")
    url_s = url.render_as_string(hide_password=False)
    conn = await asyncpg.connect(admin_dsn)
    await conn.execute("DROP DATABASE IF EXISTS bench_search WITH (FORCE)")
    await conn.execute("CREATE DATABASE bench_search")
    await conn.close()
    try:
        await upgrade_async(url_s)
        print(f"PostgreSQL: loading {args.rows:,} productions …", flush=True)
        load_s = await load_postgres(url_s, args.rows)
        await asyncio.to_thread(measure_export, url_s)
        results = await measure(url_s, args.runs)
        report("PostgreSQL", results, load_s)
    finally:
        if args.keep:
            print(f"kept: {url.render_as_string(hide_password=True)}")
        else:
            conn = await asyncpg.connect(admin_dsn)
            await conn.execute("DROP DATABASE IF EXISTS bench_search WITH (FORCE)")
            await conn.close()


async def run_sqlite(args: argparse.Namespace) -> None:
    folder = Path(tempfile.mkdtemp(prefix="aiprod-bench-search-"))
    path = folder / "search.db"
    url = f"sqlite+aiosqlite:///{path}"
    try:
        await upgrade_async(url)
        print(f"SQLite: loading {args.rows:,} productions …", flush=True)
        load_s = await asyncio.to_thread(load_sqlite, path, args.rows)
        print(f"  file: {path.stat().st_size / 1e9:.2f} GB")
        await asyncio.to_thread(measure_export, url)
        results = await measure(url, args.runs)
        report("SQLite", results, load_s)
    finally:
        if args.keep:
            print(f"kept: {path}")
        else:
            for suffix in ("", "-wal", "-shm"):
                path.with_name(path.name + suffix).unlink(missing_ok=True)
            folder.rmdir()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--only", choices=["sqlite", "postgresql"])
    parser.add_argument("--pg-admin-url", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--keep", action="store_true", help="keep the databases")
    parser.add_argument("--export-child", choices=["export", "baseline"], help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.export_child:
        asyncio.run(_export_child(args.url, args.export_child))
        return
    if args.only != "postgresql":
        asyncio.run(run_sqlite(args))
    if args.only != "sqlite":
        asyncio.run(run_postgres(args))


if __name__ == "__main__":
    main()
