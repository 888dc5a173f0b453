"""Keep a job's search columns and full-text index in step with the job.

Every write of a job through the ORM (submit, the planner's checkpoint, a
storyboard edit, a scene re-rendered, …) goes through a flush; these mapper
events run inside it, on the same connection and transaction:

* before the INSERT or UPDATE, the columns filters read (cost, duration,
  preset, …) are derived again from the request, estimate and storyboard;
* after it, when the title, the request or the storyboard changed, the job's
  text is indexed again (:func:`aiprod.search.fulltext.index`).

So a search never sees a job whose index disagrees with its row, and a failed
write leaves neither behind.  Writes that bypass the ORM (``update(Job)``
statements) touch only leases, sequence numbers and timestamps, which no
search column derives from.  A job's index entries are deleted with it (its
column on PostgreSQL; a cascading foreign key on SQLite).

Importing this module installs the events; :mod:`aiprod.jobs.lifecycle`,
which every job write goes through, imports it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event, inspect
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Mapper

from aiprod.jobs.models import Job
from aiprod.search import columns, fulltext
from aiprod.search.text import document

_DERIVED_FROM = ("request", "estimate", "storyboard")
_TEXT_FROM = ("title", "request", "storyboard")


def _changed(job: Job, names: tuple[str, ...]) -> bool:
    state = inspect(job)
    return any(state.attrs[name].history.has_changes() for name in names)


def _derive(job: Job) -> None:
    for name, value in columns.derive(job.request, job.estimate, job.storyboard).items():
        if getattr(job, name) != value:
            setattr(job, name, value)


def _index(connection: Connection, job: Job) -> None:
    doc = document(job.title, job.request, job.storyboard, job.language)
    fulltext.index(connection, job.id, doc)


@event.listens_for(Job, "before_insert")
def _before_insert(_: Mapper[Any], __: Connection, job: Job) -> None:
    _derive(job)


@event.listens_for(Job, "before_update")
def _before_update(_: Mapper[Any], __: Connection, job: Job) -> None:
    if _changed(job, _DERIVED_FROM):
        _derive(job)


@event.listens_for(Job, "after_insert")
def _after_insert(_: Mapper[Any], connection: Connection, job: Job) -> None:
    _index(connection, job)


@event.listens_for(Job, "after_update")
def _after_update(_: Mapper[Any], connection: Connection, job: Job) -> None:
    if _changed(job, _TEXT_FROM):
        _index(connection, job)


def installed() -> bool:
    """Whether the events are in place (they are once this module is imported)."""
    return event.contains(Job, "after_insert", _after_insert)
