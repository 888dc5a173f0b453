"""The job's event log and state machine, which every change goes through.

:meth:`JobLog._transition` checks the state machine and appends a numbered
row to ``job_events`` in the same transaction, so the event log and the job
never disagree.  The API's actions (:mod:`aiprod.jobs.service`) and the
workers' (:mod:`aiprod.jobs.leases`) both build on it.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from aiprod.db.base import utcnow
from aiprod.db.engine import Database
from aiprod.errors import NotFound
from aiprod.jobs import state
from aiprod.jobs.models import Job, JobEvent
from aiprod.ops import metrics
from aiprod.production.cost import PriceTable
from aiprod.search import sync as search_sync
from aiprod.settings import Settings

assert search_sync.installed()  # every job write keeps its search columns and index in step

EventHook = Callable[[AsyncSession, Job, JobEvent], Awaitable[None]]
"""Called for every new event inside its transaction (after the row is flushed).
``aiprod.events`` uses it to publish the event once the transaction commits,
so that subscribers never see an event the database rolled back."""


class JobLog:
    """The database, the settings and the one way to change a job's status."""

    def __init__(self, db: Database, settings: Settings, on_event: EventHook | None = None) -> None:
        self.db = db
        self.settings = settings
        self.prices = PriceTable.default(settings.compute_price_per_hour, settings.prices)
        self.on_event = on_event

    # ----------------------------------------------------------------- events

    async def _event(
        self, s: AsyncSession, job: Job, type_: str, payload: dict[str, Any] | None = None
    ) -> JobEvent:
        seq = (
            await s.execute(
                update(Job)
                .where(Job.id == job.id)
                .values(last_seq=Job.last_seq + 1)
                .returning(Job.last_seq)
            )
        ).scalar_one()
        job.last_seq = seq
        body = {
            "status": job.status,
            "stage": job.stage,
            "progress": job.progress,
            **(payload or {}),
        }
        ev = JobEvent(job_id=job.id, seq=seq, type=type_, payload=body, created_at=utcnow())
        s.add(ev)
        await s.flush()
        metrics.job_event(type_)
        if self.on_event is not None:
            await self.on_event(s, job, ev)
        return ev

    async def _transition(
        self,
        s: AsyncSession,
        job: Job,
        target: str,
        type_: str,
        payload: dict[str, Any] | None = None,
    ) -> JobEvent:
        state.check(job.status, target)
        job.status = target
        job.updated_at = utcnow()
        return await self._event(s, job, type_, payload)

    async def _locked(self, s: AsyncSession, job_id: uuid.UUID, owner_id: uuid.UUID | None) -> Job:
        job = (
            await s.execute(select(Job).where(Job.id == job_id).with_for_update())
        ).scalar_one_or_none()
        if job is None or (owner_id is not None and job.owner_id != owner_id):
            raise NotFound(f"production {job_id} not found")
        return job


__all__ = ["EventHook", "JobLog"]
