"""Listing productions: filter, full text, sort, keyset pages, and a stream.

:class:`Search` is what a caller asks (whose productions, ``filter``, ``q``,
``sort``); :func:`prepare` reads it, refusing what it cannot read (400
``invalid_filter``) before the database is touched; :func:`page` answers one
page and the cursor of the next; :func:`stream` yields every matching row in
the same order, a batch at a time, for the bulk export.

Pages are keyset pages on (sort column, id): a cursor names the last row
shown, so rows written while a client pages never shift what it sees, and
every page is an index range read, however deep.  ``completed`` is empty
until a production completes: rows without it come after all the others in
either direction, ordered by id (a second keyset range over the same index).
The default sort (newest first) keeps the cursor format listings always had.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, literal_column, or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from aiprod.db.engine import Database
from aiprod.db.paging import BadCursor, decode_cursor, encode_cursor
from aiprod.jobs.models import Job
from aiprod.search import fulltext
from aiprod.search.fields import compile_filter
from aiprod.search.filters import InvalidFilter, describe, parse
from aiprod.search.fulltext import MAX_WORDS, TextQuery, Words
from aiprod.search.text import MAX_WORD

_SORTS: dict[str, Any] = {
    "created": Job.created_at,
    "updated": Job.updated_at,
    "completed": Job.completed_at,
    "cost": Job.cost,
    "duration": Job.duration,
}
SORTS = tuple(f"{sign}{name}" for name in _SORTS for sign in ("", "-"))
DEFAULT_SORT = "-created"
_NULLABLE = {"completed"}
WINDOW = 2000  # SQLite: rows of a page's sort order tried before the filter's index
COMMON = 5000  # SQLite: full text matching more rows (and one in DENSE) is tested row by row
DENSE = 50
_WORD = re.compile(r"[^\W_]+")


@dataclass(frozen=True)
class Search:
    """What a listing asks for.  `owner_id` None is an admin's view (every
    owner; the ``owner`` field allowed); otherwise only that user's rows."""

    owner_id: uuid.UUID | None
    filter: str = ""
    q: str = ""
    sort: str = DEFAULT_SORT
    status: str | None = None


@dataclass(frozen=True)
class Sort:
    token: str
    column: Any
    descending: bool
    nullable: bool

    def order(self, phase_null: bool, by_index: bool = True) -> list[Any]:
        """ORDER BY terms.  `by_index` False writes them as ``+column``, which
        SQLite's planner may not read from an index: it then reads the rows
        through the filter's index and sorts them."""
        columns = [Job.id] if phase_null else [self.column, Job.id]
        if not by_index:
            columns = [literal_column(f"+{Job.__tablename__}.{c.key}") for c in columns]
        return [c.desc() if self.descending else c.asc() for c in columns]


@dataclass(frozen=True)
class Position:
    """The last row shown: its sort value (None: in the rows without one) and id."""

    value: Any
    id: uuid.UUID


@dataclass(frozen=True)
class Prepared:
    search: Search
    sort: Sort
    conditions: list[ColumnElement[bool]]
    text: TextQuery = field(default_factory=lambda: TextQuery(()))
    filtered: bool = False  # conditions beyond the owner and the status parameter
    scope: list[ColumnElement[bool]] = field(default_factory=list)  # the owner's


def _sort(token: str) -> Sort:
    name = token.removeprefix("-")
    if token not in SORTS:
        raise InvalidFilter("sort", 0, "one of " + ", ".join(SORTS), describe(token, 0))
    return Sort(token, _SORTS[name], token.startswith("-"), name in _NULLABLE)


def _query_words(q: str) -> TextQuery:
    if not q.strip():
        return TextQuery(())
    found = list(_WORD.finditer(q.lower()))
    if not found:
        raise InvalidFilter("q", 0, "words (letters or digits)", describe(q, 0))
    if len(found) > MAX_WORDS:
        raise InvalidFilter("q", found[MAX_WORDS].start(), f"at most {MAX_WORDS} words", "more")
    return TextQuery(((Words(tuple(m.group()[:MAX_WORD] for m in found)),),))


def prepare(search: Search) -> Prepared:
    """Read `search` (InvalidFilter, 400, for what cannot be read)."""
    compiled = compile_filter(parse(search.filter), admin=search.owner_id is None)
    conditions = list(compiled.conditions)
    scope = [Job.owner_id == search.owner_id] if search.owner_id is not None else []
    conditions += scope
    if search.status is not None:
        conditions.append(Job.status == search.status)
    full_text = compiled.text & _query_words(search.q)
    if full_text.word_count() > MAX_WORDS:
        raise InvalidFilter("q", 0, f"at most {MAX_WORDS} words with the title's", "more")
    filtered = bool(compiled.conditions) or search.status is not None
    return Prepared(search, _sort(search.sort), conditions, full_text, filtered, scope)


# ------------------------------------------------------------------ cursors


def encode(sort: Sort, row: Job) -> str:
    value = getattr(row, sort.column.key)
    if sort.token == DEFAULT_SORT:
        return encode_cursor(value, row.id)
    if isinstance(value, datetime):
        value = value.isoformat()
    raw = json.dumps([sort.token, value, str(row.id)], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode(sort: Sort, cursor: str | None) -> Position | None:
    """The position a cursor of this sort names; BadCursor (422) otherwise."""
    if cursor is None:
        return None
    if sort.token == DEFAULT_SORT:
        decoded = decode_cursor(cursor)
        return Position(*decoded) if decoded is not None else None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        token, value, key = json.loads(raw)
        position = Position(_value(sort, value), uuid.UUID(key))
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError, AttributeError) as exc:
        raise BadCursor() from exc
    if token != sort.token or (value is None and not sort.nullable):
        raise BadCursor()
    return position


def _value(sort: Sort, value: Any) -> Any:
    if value is None:
        return None
    if sort.column.key.endswith("_at"):
        when = datetime.fromisoformat(value)
        if when.tzinfo is None:
            raise ValueError("naive")
        return when
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError("not a number")
    return float(value)


# ------------------------------------------------------------------ queries


def _after(sort: Sort, position: Position) -> ColumnElement[bool]:
    column = sort.column
    if position.value is None:
        beyond = Job.id < position.id if sort.descending else Job.id > position.id
        return and_(column.is_(None), beyond)
    if sort.descending:
        return or_(column < position.value, and_(column == position.value, Job.id < position.id))
    return or_(column > position.value, and_(column == position.value, Job.id > position.id))


@dataclass(frozen=True)
class Plan:
    """The conditions of a prepared search, and how to read them in order."""

    conditions: list[ColumnElement[bool]]
    scope: list[ColumnElement[bool]]  # the owner's: the sort index answers them
    windowed: bool = False  # SQLite: try the first WINDOW rows in order first
    in_window: list[ColumnElement[bool]] = field(default_factory=list)  # their conditions
    sort_by_index: bool = True  # False: SQLite reads the matches first, then sorts them


async def plan(s: AsyncSession, prepared: Prepared) -> Plan:
    """The full-text condition (PostgreSQL reads the query's words in one round
    trip) and, on SQLite, the reading order.

    SQLite (built without STAT4) cannot tell how many rows a range such as
    ``cost:>2`` selects: with ORDER BY on another column it either walks that
    column's index testing every row (quick when many rows match, a scan of
    the table when few do) or reads the filter's index and sorts every match
    (the reverse).  So a filtered page on SQLite is read in two steps: among
    the next `WINDOW` rows in sort order (a walk of the sort's index, bounded);
    and only if fewer than a page match there, which means matches are rarer
    than one in ``WINDOW / limit``, through the filter's index, sorted.  Full
    text decides by its own count (to `COMMON`, from the index's lists): a
    rare word's matches are listed, joined and sorted; a common word's are
    too many for that, and the window tests its rows one by one instead.
    PostgreSQL keeps statistics of value ranges (and of lexemes) and plans
    this itself."""
    conditions = list(prepared.conditions)
    in_window = list(prepared.conditions)
    if prepared.text:
        conditions.append(await fulltext.condition(s, prepared.text, Job.id, Job.language))
    if s.get_bind().dialect.name != "sqlite":
        return Plan(conditions, prepared.scope)
    windowed = prepared.filtered
    if prepared.text:
        in_window.append(
            await fulltext.condition(s, prepared.text, Job.id, Job.language, per_row=True)
        )
        # Testing rows one by one pays when one row in WINDOW / (2 * page)
        # matches; a rarer word's matches are fewer to list than to test.
        common = max(COMMON, await fulltext.sqlite_rows(s) // DENSE)
        windowed = await fulltext.sqlite_matches(s, prepared.text, common) >= common
    selective = prepared.filtered or bool(prepared.text)
    return Plan(conditions, prepared.scope, windowed, in_window, sort_by_index=not selective)


def _phases(prepared: Prepared, position: Position | None) -> list[bool]:
    """Which ranges to read, in order: the rows with a sort value (False) and,
    for a nullable sort, then those without (True)."""
    in_nulls = position is not None and position.value is None
    phases = [] if in_nulls else [False]
    return [*phases, True] if prepared.sort.nullable else phases


def _range(
    prepared: Prepared,
    conditions: list[ColumnElement[bool]],
    position: Position | None,
    in_nulls: bool,
    by_index: bool,
    limit: int,
) -> Select[uuid.UUID]:
    """The ids of the next `limit` rows matching `conditions` after `position`."""
    sort = prepared.sort
    ids = select(Job.id).where(*conditions)
    if sort.nullable:
        ids = ids.where(sort.column.is_(None) if in_nulls else sort.column.is_not(None))
    if position is not None and (position.value is None) == in_nulls:
        ids = ids.where(_after(sort, position))
    return ids.order_by(*sort.order(in_nulls, by_index)).limit(limit)


def statement(
    prepared: Prepared,
    plan: Plan,
    position: Position | None,
    in_nulls: bool,
    limit: int,
    window: bool = False,
) -> Select[Job]:
    """The next `limit` rows after `position` in one keyset range.  The ids are
    found and ordered first (the sort handles keys, not whole rows with their
    documents); then those rows are read by primary key.  `window`: only among
    the next WINDOW rows of the owner's (or everyone's) in sort order."""
    conditions = list(plan.in_window if window else plan.conditions)
    if window:
        walk = _range(prepared, plan.scope, position, in_nulls, True, WINDOW)
        conditions.append(Job.id.in_(walk))
    ids = _range(prepared, conditions, position, in_nulls, window or plan.sort_by_index, limit)
    return select(Job).where(Job.id.in_(ids)).order_by(*prepared.sort.order(in_nulls))


async def _rows(
    s: AsyncSession, prepared: Prepared, plan: Plan, position: Position | None, limit: int
) -> list[Job]:
    if s.get_bind().dialect.name == "postgresql":
        # A prepared statement's generic plan knows neither the owner (one with
        # 60,000 rows is planned as the average one) nor the words: plan each
        # page for its own values.
        await s.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))
    rows: list[Job] = []
    for in_nulls in _phases(prepared, position):
        wanted = limit - len(rows)
        if plan.windowed:
            found = list(
                (
                    await s.execute(
                        statement(prepared, plan, position, in_nulls, wanted, window=True)
                    )
                ).scalars()
            )
            if len(found) == wanted:
                rows += found
                break
        rows += (await s.execute(statement(prepared, plan, position, in_nulls, wanted))).scalars()
        if len(rows) >= limit:
            break
    return rows


async def page(
    db: Database, prepared: Prepared, limit: int, cursor: str | None
) -> tuple[list[Job], str | None]:
    """One page of at most `limit` rows after `cursor`, and the next page's cursor."""
    position = decode(prepared.sort, cursor)
    async with db.session() as s:
        rows = await _rows(s, prepared, await plan(s, prepared), position, limit + 1)
    shown = rows[:limit]
    more = len(rows) > limit and shown
    return shown, encode(prepared.sort, shown[-1]) if more else None


async def stream(db: Database, search: Search, batch: int = 500) -> AsyncIterator[Job]:
    """Every row `search` matches, in its sort order, `batch` rows per read.

    For the bulk export: each batch is one short read (no transaction held
    open while the caller writes), and the keyset carries on from the last
    row, so memory stays one batch whatever the number of rows."""
    prepared = prepare(search)
    position: Position | None = None
    async with db.session() as s:
        reading = await plan(s, prepared)
    while True:
        async with db.session() as s:
            rows = await _rows(s, prepared, reading, position, batch)
            s.expunge_all()
        for row in rows:
            yield row
        if len(rows) < batch:
            return
        last = rows[-1]
        position = Position(getattr(last, prepared.sort.column.key), last.id)
