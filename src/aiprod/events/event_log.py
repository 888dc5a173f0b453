"""Reading the event log (``job_events``) back: replays, gap fills and the
fallback when no push channel is up.  The database is the source of truth for
events; every channel that pushes them (in-process, Redis, LISTEN/NOTIFY) is
an optimisation that may lose messages, and this module is how they are found.

(Named for what it reads: the log of job events, not the artifact
:class:`aiprod.storage.store.Storage`.)"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, and_, false, or_, select

from aiprod.db.engine import Database
from aiprod.events.envelope import Envelope, envelope
from aiprod.jobs.models import Job, JobEvent

PAGE = 500


@dataclass(frozen=True, slots=True)
class JobHead:
    job_id: uuid.UUID
    owner_id: uuid.UUID
    last_seq: int
    status: str


class EventLog:
    """Queries on the job event log, each in its own short session."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def head(self, job_id: uuid.UUID) -> JobHead | None:
        async with self.db.session() as s:
            row = (
                await s.execute(
                    select(Job.id, Job.owner_id, Job.last_seq, Job.status).where(Job.id == job_id)
                )
            ).one_or_none()
        return JobHead(*row) if row is not None else None

    async def after(
        self, job_id: uuid.UUID, after: int, *, upto: int | None = None, limit: int = PAGE
    ) -> list[Envelope]:
        """Events of one job with after < seq (<= upto), in order, at most `limit`."""
        q = (
            select(JobEvent, Job.owner_id)
            .join(Job, Job.id == JobEvent.job_id)
            .where(JobEvent.job_id == job_id, JobEvent.seq > after)
            .order_by(JobEvent.seq)
            .limit(limit)
        )
        if upto is not None:
            q = q.where(JobEvent.seq <= upto)
        async with self.db.session() as s:
            rows = (await s.execute(q)).all()
        return [envelope(ev, owner) for ev, owner in rows]

    async def all_after(
        self, job_id: uuid.UUID, after: int, *, upto: int | None = None
    ) -> list[Envelope]:
        out: list[Envelope] = []
        while True:
            page = await self.after(job_id, after, upto=upto)
            out += page
            if len(page) < PAGE:
                return out
            after = page[-1].seq

    async def since(
        self,
        owner_id: uuid.UUID | None,
        since: datetime,
        *,
        job_id: uuid.UUID | None = None,
        exclude: Iterable[uuid.UUID] = (),
        limit: int = 5000,
    ) -> list[Envelope]:
        """Events recorded at or after `since` for an owner's jobs (None: every
        owner) or one job, oldest first and in `seq` order within each job."""
        q = (
            select(JobEvent, Job.owner_id)
            .join(Job, Job.id == JobEvent.job_id)
            .where(JobEvent.created_at >= since)
            .order_by(JobEvent.created_at, JobEvent.job_id, JobEvent.seq)
            .limit(limit)
        )
        if owner_id is not None:
            q = q.where(Job.owner_id == owner_id)
        if job_id is not None:
            q = q.where(JobEvent.job_id == job_id)
        skip = list(exclude)
        if skip:
            q = q.where(JobEvent.job_id.not_in(skip))
        async with self.db.session() as s:
            rows = (await s.execute(q)).all()
        # Timestamps of one job can tie or (clock steps) go backwards: within a
        # job, seq decides; jobs come in the order of their first event.
        envs = [envelope(ev, owner) for ev, owner in rows]
        first: dict[uuid.UUID, int] = {}
        for i, e in enumerate(envs):
            first.setdefault(e.job_id, i)
        envs.sort(key=lambda e: (first[e.job_id], e.seq))
        return envs

    async def heads(
        self,
        jobs: Iterable[uuid.UUID],
        owners: Iterable[uuid.UUID],
        every_owner: bool,
        changed_since: datetime,
    ) -> list[JobHead]:
        """The last sequence number of each job a subscriber cares about: the
        named jobs, plus the jobs of `owners` (or of everyone) that changed
        recently (every event bumps ``jobs.updated_at``)."""
        job_list, owner_list = list(jobs), list(owners)
        conds: list[ColumnElement[bool]] = []
        if job_list:
            conds.append(Job.id.in_(job_list))
        if every_owner:
            conds.append(Job.updated_at >= changed_since)
        elif owner_list:
            conds.append(and_(Job.owner_id.in_(owner_list), Job.updated_at >= changed_since))
        if not conds:
            return []
        q = select(Job.id, Job.owner_id, Job.last_seq, Job.status).where(or_(false(), *conds))
        async with self.db.session() as s:
            return [JobHead(*row) for row in (await s.execute(q)).all()]
