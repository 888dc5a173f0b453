"""search: filterable columns of jobs with their indexes, and the full-text index

The columns filters and sorts read (cost, duration, preset, aspect,
resolution, language, voice) are copied out of the request, estimate and
storyboard documents and indexed: with owner_id first for a user's listing,
alone (with id) for an admin's, and before created_at for the filters with
few values.  Full text: on SQLite an FTS5 table (external content in
jobs_fts_rows, kept in step by triggers); on PostgreSQL a tsvector column with
a GIN index.  Existing jobs are backfilled with the search package's
derivations (aiprod.search.columns, aiprod.search.text); the SQL that writes
the index is the one of this revision, frozen here.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-10
"""

from collections.abc import Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

from aiprod.db.base import JSONType
from aiprod.search.columns import derive
from aiprod.search.text import document

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _columns() -> list[sa.Column[Any]]:
    return [
        sa.Column("cost", sa.Float(), server_default="0", nullable=False),
        sa.Column("duration", sa.Float(), server_default="0", nullable=False),
        sa.Column("preset", sa.String(length=32), server_default="", nullable=False),
        sa.Column("aspect", sa.String(length=8), server_default="", nullable=False),
        sa.Column("resolution", sa.String(length=8), server_default="", nullable=False),
        sa.Column("language", sa.String(length=16), server_default="en", nullable=False),
        sa.Column("voice", sa.String(length=64), server_default="", nullable=False),
    ]


SORTS = {"created": "created_at", "updated": "updated_at", "completed": "completed_at"}
SORTS.update(cost="cost", duration="duration")
RANGES = ("updated_at", "completed_at", "cost", "duration")
FILTERS = ["status", "stage", "preset", "aspect", "resolution", "language", "voice"]
FILTERS += ["fast_track", "review"]
INDEXES: list[tuple[str, list[str]]] = [
    *((f"ix_jobs_owner_{k}", ["owner_id", c, "id"]) for k, c in SORTS.items() if k != "created"),
    ("ix_jobs_owner_status", ["owner_id", "status", "created_at", "id"]),
    *((f"ix_jobs_{k}", [c, "id"]) for k, c in SORTS.items()),
    *((f"ix_jobs_{c}_created", [c, "created_at", "id"]) for c in FILTERS),
]

SQLITE_FTS = [
    """CREATE TABLE jobs_fts_rows (
        id INTEGER PRIMARY KEY,
        job_id CHAR(32) NOT NULL UNIQUE REFERENCES jobs (id) ON DELETE CASCADE,
        lang TEXT NOT NULL,
        title TEXT NOT NULL,
        body TEXT NOT NULL
    )""",
    """CREATE VIRTUAL TABLE jobs_fts USING fts5 (
        lang, title, body,
        content = 'jobs_fts_rows', content_rowid = 'id',
        tokenize = 'unicode61 remove_diacritics 0', detail = 'column'
    )""",
    """CREATE TRIGGER jobs_fts_rows_insert AFTER INSERT ON jobs_fts_rows BEGIN
        INSERT INTO jobs_fts (rowid, lang, title, body)
        VALUES (new.id, new.lang, new.title, new.body);
    END""",
    """CREATE TRIGGER jobs_fts_rows_delete AFTER DELETE ON jobs_fts_rows BEGIN
        INSERT INTO jobs_fts (jobs_fts, rowid, lang, title, body)
        VALUES ('delete', old.id, old.lang, old.title, old.body);
    END""",
    """CREATE TRIGGER jobs_fts_rows_update AFTER UPDATE ON jobs_fts_rows BEGIN
        INSERT INTO jobs_fts (jobs_fts, rowid, lang, title, body)
        VALUES ('delete', old.id, old.lang, old.title, old.body);
        INSERT INTO jobs_fts (rowid, lang, title, body)
        VALUES (new.id, new.lang, new.title, new.body);
    END""",
]
SQLITE_INDEX = (
    "INSERT INTO jobs_fts_rows (job_id, lang, title, body) VALUES (:id, :config, :title, :body)"
)
PG_INDEX = (
    "UPDATE jobs SET fts = setweight(to_tsvector(CAST(:config AS regconfig), :title), 'A') "
    "|| to_tsvector(CAST(:config AS regconfig), :body) "
    "WHERE id = :id"
)

_jobs = sa.table(
    "jobs",
    sa.column("id", sa.Uuid()),
    sa.column("title", sa.String()),
    sa.column("request", JSONType),
    sa.column("estimate", JSONType),
    sa.column("storyboard", JSONType),
    *(sa.column(c.name, c.type) for c in _columns()),
)


def _batches(conn: sa.Connection, size: int = 500) -> Iterator[list[Any]]:
    last = None
    while True:
        q = sa.select(
            _jobs.c.id, _jobs.c.title, _jobs.c.request, _jobs.c.estimate, _jobs.c.storyboard
        )
        q = (q.where(_jobs.c.id > last) if last is not None else q).order_by(_jobs.c.id)
        rows = list(conn.execute(q.limit(size)))
        if not rows:
            return
        yield rows
        last = rows[-1].id


def _backfill(conn: sa.Connection) -> None:
    sqlite = conn.dialect.name == "sqlite"
    for rows in _batches(conn):
        derived = [(r, derive(r.request, r.estimate, r.storyboard)) for r in rows]
        conn.execute(
            _jobs.update().where(_jobs.c.id == sa.bindparam("job_id")),
            [{"job_id": r.id, **values} for r, values in derived],
        )
        params = []
        for r, values in derived:
            doc = document(r.title, r.request, r.storyboard, values["language"])
            if sqlite:
                title, body = doc.stemmed()
                params.append({"id": r.id.hex, "config": doc.config, "title": title, "body": body})
            else:
                params.append(
                    {"id": r.id, "config": doc.config, "title": doc.title, "body": doc.body}
                )
        conn.execute(sa.text(SQLITE_INDEX if sqlite else PG_INDEX), params)


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        for column in _columns():
            batch_op.add_column(column)
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        for name, columns in INDEXES:
            # A range on these with the default order: an index-only read on PostgreSQL.
            covering = columns[0] in RANGES and len(columns) == 2
            include = {"postgresql_include": ["created_at"]} if covering else {}
            batch_op.create_index(name, columns, unique=False, **include)
    conn = op.get_bind()
    if conn.dialect.name == "sqlite":
        for statement in SQLITE_FTS:
            op.execute(statement)
    else:
        op.add_column("jobs", sa.Column("fts", sa.dialects.postgresql.TSVECTOR(), nullable=True))
    _backfill(conn)
    if conn.dialect.name != "sqlite":
        op.create_index("ix_jobs_fts", "jobs", ["fts"], postgresql_using="gin")


def downgrade() -> None:
    conn = op.get_bind()
    if conn.dialect.name == "sqlite":
        for name in ("jobs_fts_rows_insert", "jobs_fts_rows_delete", "jobs_fts_rows_update"):
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
        op.execute("DROP TABLE IF EXISTS jobs_fts")
        op.execute("DROP TABLE IF EXISTS jobs_fts_rows")
    else:
        op.drop_index("ix_jobs_fts", table_name="jobs")
        op.drop_column("jobs", "fts")
    for name, _ in reversed(INDEXES):
        op.drop_index(name, table_name="jobs")
    # Not a batch: on SQLite that copies jobs into a new table and drops the old
    # one, whose implicit DELETE would cascade to its events and checkpoints.
    # SQLite drops columns in place since 3.35.
    for column in reversed(_columns()):
        op.drop_column("jobs", column.name)
