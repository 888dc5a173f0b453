"""The fields a filter may name, the values each takes, and the conditions they make.

Every field reads an indexed column of ``jobs`` (B-tree), except ``title``,
which reads the full-text index (the words of the title, in any form), and
``owner``, which only admins may use.  A field that does not exist, or that
the caller may not use, is refused (400), never ignored.

Values by kind:

* enumerations (status, stage, preset, aspect, resolution): one of the listed
  values, no comparison; ``language``: a language code (its primary subtag:
  ``en`` matches ``en-US``); ``voice``: a voice name, exactly;
  ``fast_track``, ``review``: ``true`` or ``false``.
* dates (created, updated, completed): ``2026``, ``2026-03``, ``2026-03-14``
  or an ISO 8601 date-time (UTC unless it says).  A date is its whole period:
  ``created:2026-03`` is all of March, ``created:>2026-03`` after March,
  ``created:<=2026-03`` up to its end.
* numbers: ``cost`` in the estimate's currency (``cost:<0.25``); durations:
  ``duration`` as seconds (``90``) or with units (``90s``, ``1.5m``,
  ``1m30s``, ``1h``).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, get_args

from sqlalchemy import ColumnElement, and_, or_, select

from aiprod.identity.models import User
from aiprod.jobs.models import Job
from aiprod.jobs.state import STATUSES
from aiprod.production.models import STAGES, AspectRatio, PresetName, Resolution
from aiprod.search.filters import Clause, InvalidFilter, Value
from aiprod.search.fulltext import MAX_WORDS, TextQuery, Words
from aiprod.search.text import base_language, words

_NUMBER = re.compile(r"^\d{1,12}(\.\d{1,8})?$")
_PART = r"(\d{1,9}(?:\.\d{1,6})?)"
_DURATION = re.compile(rf"^(?:{_PART}h)?(?:{_PART}m)?(?:{_PART}s)?$")
_DATE = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?$")
_LANGUAGE = re.compile(r"^[a-z]{2,8}$")
_MICROSECOND = timedelta(microseconds=1)


@dataclass(frozen=True)
class Compiled:
    """What a filter asks: conditions on ``jobs`` and a full-text query."""

    conditions: list[ColumnElement[bool]]
    text: TextQuery


Interval = tuple[Any, Any]  # [start, end) that a value stands for; end None: the one value
Reader = Callable[[Value], Interval]


@dataclass(frozen=True)
class Field:
    name: str
    column: Any
    kind: str  # what the error messages call its values
    read: Reader
    ordered: bool = False  # takes comparisons
    admin_only: bool = False


def _bad(value: Value, expected: str) -> InvalidFilter:
    return InvalidFilter("filter", value.position, expected, repr(value.text))


def _choice(options: tuple[str, ...]) -> Reader:
    def read(value: Value) -> Interval:
        text = value.text.lower()
        if text not in options:
            raise _bad(value, "one of " + ", ".join(options))
        return text, None

    return read


def _boolean(value: Value) -> Interval:
    text = value.text.lower()
    if text not in ("true", "false"):
        raise _bad(value, "true or false")
    return text == "true", None


def _language(value: Value) -> Interval:
    code = base_language(value.text)
    if not _LANGUAGE.match(code):
        raise _bad(value, "a language code such as en or fr")
    return code, None


def _voice(value: Value) -> Interval:
    if not 0 < len(value.text) <= 64:
        raise _bad(value, "a voice name (at most 64 characters)")
    return value.text, None


def _number(value: Value) -> Interval:
    if not _NUMBER.match(value.text):
        raise _bad(value, "a number such as 0.25")
    return float(value.text), None


def _duration(value: Value) -> Interval:
    text = value.text.lower()
    match = _DURATION.match(text)
    if _NUMBER.match(text):
        seconds = float(text)
    elif match and text:
        hours, minutes, secs = (float(g) if g else 0.0 for g in match.groups())
        seconds = hours * 3600 + minutes * 60 + secs
    else:
        raise _bad(value, "a duration such as 90, 90s, 1.5m, 1m30s or 1h")
    return seconds, None


def _date(value: Value) -> Interval:
    text = value.text
    match = _DATE.match(text)
    try:
        if match:
            year, month, day = (int(g) if g else None for g in match.groups())
            start = datetime(year or 0, month or 1, day or 1, tzinfo=UTC)  # year 0: ValueError
            if day is not None:
                end = start + timedelta(days=1)
            elif month is not None:
                end = (start + timedelta(days=32)).replace(day=1)
            else:
                end = start.replace(year=start.year + 1)
            return start, end
        when = datetime.fromisoformat(text.replace("z", "Z"))
        when = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
        return when, when + _MICROSECOND
    except (ValueError, OverflowError):
        raise _bad(value, "a date (2026, 2026-03, 2026-03-14) or an ISO 8601 date-time") from None


def _owner(value: Value) -> Interval:
    try:
        return uuid.UUID(value.text), None
    except ValueError:
        pass
    if "@" not in value.text or len(value.text) > 320:
        raise _bad(value, "a user id or an email address")
    return value.text.strip().lower(), None


def _text(value: Value) -> Interval:
    found = words(value.text)
    if not found:
        raise _bad(value, "words (letters or digits)")
    return tuple(found[:MAX_WORDS]), None


def _enum(name: str, column: Any, options: tuple[str, ...]) -> Field:
    return Field(name, column, "value", _choice(options))


FIELDS: dict[str, Field] = {
    f.name: f
    for f in (
        _enum("status", Job.status, tuple(STATUSES)),
        _enum("stage", Job.stage, STAGES),
        _enum("preset", Job.preset, get_args(PresetName)),
        _enum("aspect", Job.aspect, get_args(AspectRatio)),
        _enum("resolution", Job.resolution, get_args(Resolution)),
        Field("language", Job.language, "language", _language),
        Field("voice", Job.voice, "voice", _voice),
        Field("fast_track", Job.fast_track, "boolean", _boolean),
        Field("review", Job.review, "boolean", _boolean),
        Field("created", Job.created_at, "date", _date, ordered=True),
        Field("updated", Job.updated_at, "date", _date, ordered=True),
        Field("completed", Job.completed_at, "date", _date, ordered=True),
        Field("cost", Job.cost, "number", _number, ordered=True),
        Field("duration", Job.duration, "duration", _duration, ordered=True),
        Field("title", None, "words", _text),
        Field("owner", Job.owner_id, "user", _owner, admin_only=True),
    )
}


def names(admin: bool) -> list[str]:
    """The fields this caller may use."""
    return [n for n, f in FIELDS.items() if admin or not f.admin_only]


def _field(clause: Clause, admin: bool) -> Field:
    field = FIELDS.get(clause.field)
    if field is not None and field.admin_only and not admin:
        expected = f"a field you may use ({', '.join(names(False))}); {field.name} is for admins"
        raise InvalidFilter("filter", clause.position, expected, repr(clause.field))
    if field is None:
        expected = "a field: " + ", ".join(names(admin))
        raise InvalidFilter("filter", clause.position, expected, repr(clause.field))
    return field


def _compare(field: Field, value: Value) -> ColumnElement[bool]:
    start, end = field.read(value)
    column = field.column
    if value.op == "=":
        return column == start if end is None else and_(column >= start, column < end)
    if not field.ordered:
        raise InvalidFilter(
            "filter",
            value.start,
            f"a value ({field.name} takes no comparison)",
            repr(value.op),
        )
    if value.op == ">":
        return column > start if end is None else column >= end  # type: ignore[no-any-return]
    if value.op == "<=":
        return column <= start if end is None else column < end  # type: ignore[no-any-return]
    return column >= start if value.op == ">=" else column < start  # type: ignore[no-any-return]


def _owner_condition(value: Value, field: Field) -> ColumnElement[bool]:
    who, _ = field.read(value)
    if isinstance(who, uuid.UUID):
        return Job.owner_id == who
    return Job.owner_id.in_(select(User.id).where(User.email == who))


def _title(clause: Clause, field: Field) -> tuple[Words, ...]:
    for value in clause.values:
        if value.op != "=":
            raise InvalidFilter(
                "filter", value.start, "words (title takes no comparison)", repr(value.op)
            )
    return tuple(Words(field.read(v)[0], title_only=True) for v in clause.values)


def compile_filter(clauses: list[Clause], admin: bool) -> Compiled:
    """Conditions for `clauses`: AND between clauses, OR between a clause's values."""
    conditions: list[ColumnElement[bool]] = []
    groups: list[tuple[Words, ...]] = []
    for clause in clauses:
        field = _field(clause, admin)
        if field.name == "title":
            groups.append(_title(clause, field))
            continue
        if field.name == "owner":
            for value in clause.values:
                if value.op != "=":
                    raise InvalidFilter(
                        "filter", value.start, "a user (owner takes no comparison)", repr(value.op)
                    )
            alternatives = [_owner_condition(v, field) for v in clause.values]
        else:
            alternatives = [_compare(field, v) for v in clause.values]
        conditions.append(or_(*alternatives) if len(alternatives) > 1 else alternatives[0])
    return Compiled(conditions, TextQuery(tuple(groups)))


__all__ = ["FIELDS", "Compiled", "compile_filter", "names"]
