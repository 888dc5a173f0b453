"""The full-text indexes of productions, and matching a query against them.

PostgreSQL: ``jobs.fts``, a ``tsvector`` with a GIN index.  It holds the title
(weight A) and the body read by the production's text-search configuration
(``english``, ``french``, … ``simple``, chosen by ``jobs.language``); a
query asks one GIN scan per distinct reading of its words ("an English
production with 'run', or a French one with 'running'"), the language
checked on the rows found.

SQLite: an FTS5 table ``jobs_fts`` (columns lang, title, body; external
content) over ``jobs_fts_rows``, which holds one row per job with the words
already stemmed in Python (:mod:`aiprod.search.text`); triggers on
``jobs_fts_rows`` keep the FTS5 index in step with it, and its foreign key
deletes a job's row (and so its index entries) with the job.  The integer key
of ``jobs_fts_rows`` is what FTS5 indexes: ``jobs`` has no integer key
(SQLite may renumber a rowid table's implicit rowids on VACUUM).

Both are written by :func:`index` in the transaction that writes the job
(:mod:`aiprod.search.sync`).  Neither can be declared as a model: migration
0007 creates them, and ``aiprod.db.base.outside_models`` keeps Alembic's
comparison of models and database from reporting them.

A query (``q=`` words, ``title:`` clauses) is a :class:`TextQuery`: groups
that must all match, each a choice of word sets.  Each production is matched
in its own language: the query's words are read (stemmed, stop words
dropped) by every configuration, configurations that read it the same are
grouped, and each group's reading is matched only against productions of
those languages.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Column,
    ColumnElement,
    Integer,
    MetaData,
    Table,
    Text,
    Uuid,
    and_,
    cast,
    column,
    exists,
    false,
    func,
    literal,
    literal_column,
    or_,
    select,
    table,
    text,
    union_all,
)
from sqlalchemy.dialects.postgresql import TSQUERY
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncSession

from aiprod.search.text import ALL_CONFIGS, CONFIGS, SIMPLE, Document, stem

FTS_TABLE = "jobs_fts"
ROWS_TABLE = "jobs_fts_rows"
PG_COLUMN = "fts"
PG_INDEX = "ix_jobs_fts"
MAX_WORDS = 32

_rows = Table(
    ROWS_TABLE,
    MetaData(),  # not the models' metadata: created by migration 0007, SQLite only
    Column("id", Integer, primary_key=True),
    Column("job_id", Uuid, nullable=False, unique=True),
    Column("lang", Text, nullable=False),
    Column("title", Text, nullable=False),
    Column("body", Text, nullable=False),
)
_fts = table(FTS_TABLE, column("rowid"))


# ------------------------------------------------------------------ writing


def pg_vector(config: str, title: str, body: str) -> str:
    """The SQL of a job's tsvector from these SQL expressions (parameters or
    columns): the title with weight A, then the body."""
    cfg = f"CAST({config} AS regconfig)"
    return f"setweight(to_tsvector({cfg}, {title}), 'A') || to_tsvector({cfg}, {body})"


PG_UPDATE = (
    f"UPDATE jobs SET {PG_COLUMN} = "  # noqa: S608
    + pg_vector(":config", ":title", ":body")
    + " WHERE id = :id"
)
SQLITE_UPSERT = (
    f"INSERT INTO {ROWS_TABLE} (job_id, lang, title, body) "  # noqa: S608
    "VALUES (:id, :config, :title, :body) ON CONFLICT (job_id) DO UPDATE SET "
    "lang = excluded.lang, title = excluded.title, body = excluded.body"
)


def _params(dialect: str, job_id: uuid.UUID, doc: Document) -> dict[str, Any]:
    if dialect == "sqlite":
        title, body = doc.stemmed()
        return {"id": job_id.hex, "config": doc.config, "title": title, "body": body}
    return {
        "id": job_id,
        "config": doc.config,
        "title": doc.title,
        "body": doc.body,
    }


def index(connection: Connection, job_id: uuid.UUID, doc: Document) -> None:
    """Index (or index again) one job's text, on the caller's transaction."""
    index_many(connection, [(job_id, doc)])


def index_many(connection: Connection, docs: Sequence[tuple[uuid.UUID, Document]]) -> None:
    """Index many jobs in one statement (the migration's backfill, the benchmark)."""
    if not docs:
        return
    dialect = connection.dialect.name
    sql = SQLITE_UPSERT if dialect == "sqlite" else PG_UPDATE
    connection.execute(text(sql), [_params(dialect, job_id, doc) for job_id, doc in docs])


# ------------------------------------------------------------------ queries


@dataclass(frozen=True)
class Words:
    """All of these words (as typed), in the title only or anywhere."""

    words: tuple[str, ...]
    title_only: bool = False


@dataclass(frozen=True)
class TextQuery:
    """Every group must match; a group matches when any of its word sets does."""

    groups: tuple[tuple[Words, ...], ...]

    def __bool__(self) -> bool:
        return bool(self.groups)

    def __and__(self, other: TextQuery) -> TextQuery:
        return TextQuery(self.groups + other.groups)

    def word_count(self) -> int:
        return sum(len(w.words) for group in self.groups for w in group)


def _group(parts: Iterable[str | None], joiner: str) -> str | None:
    kept = [p for p in parts if p]
    if not kept:
        return None
    return kept[0] if len(kept) == 1 else "(" + joiner.join(kept) + ")"


def _sqlite_reading(query: TextQuery, config: str) -> str | None:
    """`query` as an FTS5 expression for productions read by `config` (None:
    only stop words, which match nothing, as in PostgreSQL)."""

    def words(w: Words) -> str | None:
        stems = [s for s in (stem(config, word) for word in w.words) if s]
        if not stems:
            return None
        columns = "{title}" if w.title_only else "{title body}"
        return f"{columns} : (" + " AND ".join(f'"{s}"' for s in stems) + ")"

    return _group((_group((words(w) for w in g), " OR ") for g in query.groups), " AND ")


def _pg_input(query: TextQuery) -> str:
    """`query` as to_tsquery input: each configuration normalises the words."""

    def words(w: Words) -> str:
        suffix = ":A" if w.title_only else ""
        return "(" + " & ".join(f"{word}{suffix}" for word in w.words) + ")"

    return " & ".join("(" + " | ".join(words(w) for w in g) + ")" for g in query.groups)


def _by_reading(readings: dict[str, str | None]) -> dict[str, list[str]]:
    """Configurations grouped by their reading of the query (empty readings dropped)."""
    groups: dict[str, list[str]] = {}
    for config, reading in readings.items():
        if reading:
            groups.setdefault(reading, []).append(config)
    return groups


def sqlite_branches(query: TextQuery) -> list[tuple[str, list[str] | None]]:
    """(FTS5 MATCH expression, the configurations it is for; None: every one)
    for each distinct reading of `query`.  The language is checked on the
    matching rows, not in the MATCH: a language's doclist holds most rows."""
    readings = {c: _sqlite_reading(query, c) for c in ALL_CONFIGS}
    groups = _by_reading(readings)
    return [
        (reading, None if len(configs) == len(ALL_CONFIGS) else configs)
        for reading, configs in groups.items()
    ]


def _matches(reading: str) -> ColumnElement[bool]:
    return literal_column(FTS_TABLE).op("MATCH")(reading)


def _sqlite_condition(query: TextQuery, job_id: Any, per_row: bool) -> ColumnElement[bool]:
    branches = sqlite_branches(query)
    if not branches:
        return false()
    if per_row:  # this job's row of the index, tested against each reading
        options = []
        for reading, configs in branches:
            hit = exists(select(_fts.c.rowid).where(_matches(reading), _fts.c.rowid == _rows.c.id))
            options.append(and_(_rows.c.lang.in_(configs), hit) if configs else hit)
        return exists(select(_rows.c.id).where(_rows.c.job_id == job_id, or_(*options)))
    parts = []
    for reading, configs in branches:
        hits = select(_fts.c.rowid).where(_matches(reading))
        part = select(_rows.c.job_id).where(_rows.c.id.in_(hits))
        parts.append(part.where(_rows.c.lang.in_(configs)) if configs else part)
    return job_id.in_(parts[0] if len(parts) == 1 else union_all(*parts))  # type: ignore[no-any-return]


async def sqlite_matches(session: AsyncSession, query: TextQuery, cap: int) -> int:
    """About how many rows match `query` (the largest reading's count, taken
    from the index's own lists and counted no further than `cap`: cheap,
    however common the words)."""
    most = 0
    for reading, _ in sqlite_branches(query):
        hits = select(_fts.c.rowid).where(_matches(reading)).limit(cap).subquery()
        most = max(
            most, (await session.execute(select(func.count()).select_from(hits))).scalar_one()
        )
        if most >= cap:
            break
    return most


async def sqlite_rows(session: AsyncSession) -> int:
    """About how many jobs the index holds (its largest key: no count)."""
    return int((await session.execute(select(func.max(_rows.c.id)))).scalar_one() or 0)


async def pg_readings(session: AsyncSession, query: TextQuery) -> dict[str, list[str]]:
    """Each distinct tsquery (as text) that `query` is in some configuration,
    with those configurations: one round trip has PostgreSQL read the words in
    every configuration.  Empty: only stop words, which match nothing."""
    source = _pg_input(query)
    columns = ", ".join(
        f"CAST(to_tsquery(CAST('{c}' AS regconfig), :q) AS text)" for c in ALL_CONFIGS
    )
    row = (await session.execute(text(f"SELECT {columns}"), {"q": source})).one()
    return _by_reading(dict(zip(ALL_CONFIGS, row, strict=True)))


def _read_by(configs: list[str], language: Any) -> ColumnElement[bool] | None:
    """`jobs.language` is read by one of `configs` (None: by any)."""
    if len(configs) == len(ALL_CONFIGS):
        return None
    codes = [code for code, name in CONFIGS.items() if name in configs]
    if SIMPLE not in configs:
        return language.in_(codes)  # type: ignore[no-any-return]
    others = [code for code, name in CONFIGS.items() if name not in configs]
    return language.not_in(others)  # type: ignore[no-any-return]


async def condition(
    session: AsyncSession,
    query: TextQuery,
    job_id: Any,
    language_column: Any = None,
    per_row: bool = False,
) -> ColumnElement[bool]:
    """A WHERE condition on jobs: the job (`job_id`, its id column) matches
    `query` (in the language of its `language_column`, PostgreSQL).  On SQLite,
    `per_row` tests each job on its own (for a few rows already chosen)
    instead of listing every match first."""
    dialect = session.get_bind().dialect.name
    if dialect == "sqlite":
        return _sqlite_condition(query, job_id, per_row)
    vector: ColumnElement[Any] = literal_column(f"jobs.{PG_COLUMN}")
    options = []
    for reading, configs in (await pg_readings(session, query)).items():
        match = vector.op("@@")(cast(literal(reading), TSQUERY))
        language = _read_by(configs, language_column)
        options.append(match if language is None else and_(language, match))
    return or_(*options) if options else false()
