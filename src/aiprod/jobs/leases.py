"""What workers do to jobs: claim them under a lease, renew it by heartbeat,
report progress and checkpoints, and record the outcome.

Workers claim jobs with a lease (compare-and-set on the row: portable to
SQLite and PostgreSQL) and renew it by heartbeat; a lease that runs out makes
the job claimable again and the next worker resumes after the last
checkpoint.  Every call but `claim` and `beat` checks that the lease is still
the caller's, and raises :class:`LeaseLost` otherwise.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from aiprod.db.base import utcnow
from aiprod.jobs.lifecycle import JobLog
from aiprod.jobs.models import Checkpoint, Job, WorkerBeat


class LeaseLost(Exception):
    """The worker's lease ran out and another worker may own the job now."""


class Leases(JobLog):
    """The worker side of :class:`aiprod.jobs.service.JobService`."""

    async def claim(self, worker_id: str) -> Job | None:
        """Take the oldest runnable job: queued and due, or processing with an
        expired lease (its worker died).  Compare-and-set keeps two workers from
        taking the same job on any database."""
        now = utcnow()
        runnable = or_(
            and_(Job.status == "queued", Job.next_attempt_at <= now),
            and_(Job.status == "processing", Job.lease_expires_at < now),
        )
        async with self.db.session() as s:
            candidates = (
                (
                    await s.execute(
                        select(Job.id).where(runnable).order_by(Job.next_attempt_at).limit(5)
                    )
                )
                .scalars()
                .all()
            )
        for job_id in candidates:
            lease = utcnow() + timedelta(seconds=self.settings.lease_seconds)
            async with self.db.transaction() as s:
                taken = await s.execute(
                    update(Job)
                    .where(Job.id == job_id, runnable)
                    .values(lease_owner=worker_id, lease_expires_at=lease)
                    .returning(Job.status)
                )
                previous = taken.scalar_one_or_none()
                if previous is None:
                    continue  # another worker was faster
                job = await s.get(Job, job_id, populate_existing=True)
                assert job is not None
                if previous == "queued":
                    await self._transition(
                        s, job, "processing", "job.started", {"worker": worker_id}
                    )
                    return job
                # Its worker died holding the lease.  That counts as an attempt,
                # so a job that kills every worker (OOM, segfault) stops at last.
                job.attempts += 1
                if job.attempts >= job.max_attempts:
                    job.lease_owner = None
                    job.lease_expires_at = None
                    error: dict[str, Any] = {
                        "code": "worker_lost",
                        "message": f"the worker died {job.attempts} times running this job",
                        "stage": job.stage,
                        "details": {},
                    }
                    job.error = error
                    job.failed_stage = job.stage
                    await self._transition(s, job, "failed", "job.failed", {"error": error})
                    continue
                await self._event(
                    s, job, "job.resumed", {"worker": worker_id, "attempt": job.attempts}
                )
                return job
        return None

    async def release(self, job_id: uuid.UUID, worker_id: str) -> None:
        """Give a job back at once (the worker is shutting down): it is queued
        again and any worker resumes it from its last checkpoint."""
        async with self.db.transaction() as s:
            job = await self._owned(s, job_id, worker_id)
            job.lease_owner = None
            job.lease_expires_at = None
            job.next_attempt_at = utcnow()
            await self._transition(s, job, "queued", "job.queued", {"released_by": worker_id})

    async def heartbeat(self, job_id: uuid.UUID, worker_id: str) -> tuple[bool, bool]:
        """Extend the lease.  Returns (still ours, cancel requested)."""
        lease = utcnow() + timedelta(seconds=self.settings.lease_seconds)
        async with self.db.transaction() as s:
            row = (
                await s.execute(
                    update(Job)
                    .where(
                        Job.id == job_id,
                        Job.lease_owner == worker_id,
                        Job.status == "processing",
                    )
                    .values(lease_expires_at=lease)
                    .returning(Job.cancel_requested)
                )
            ).one_or_none()
        return (row is not None, bool(row[0]) if row is not None else False)

    async def _owned(self, s: AsyncSession, job_id: uuid.UUID, worker_id: str) -> Job:
        job = await self._locked(s, job_id, None)
        if job.lease_owner != worker_id or job.status != "processing":
            raise LeaseLost(f"job {job_id} is no longer leased to {worker_id}")
        return job

    async def stage_event(
        self,
        job_id: uuid.UUID,
        worker_id: str,
        type_: str,
        stage: str,
        progress: int,
        eta: float | None,
        payload: dict[str, Any] | None = None,
    ) -> None:
        async with self.db.transaction() as s:
            job = await self._owned(s, job_id, worker_id)
            job.stage = stage
            job.progress = max(0, min(100, progress))
            job.eta_seconds = eta
            await self._event(s, job, type_, {"eta": eta, **(payload or {})})

    async def save_checkpoint(
        self,
        job_id: uuid.UUID,
        worker_id: str,
        stage: str,
        artifacts: Sequence[dict[str, Any]],
        storyboard: dict[str, Any] | None = None,
    ) -> None:
        """Record a finished stage (its artifacts are already in storage)."""
        async with self.db.transaction() as s:
            job = await self._owned(s, job_id, worker_id)
            await s.execute(
                delete(Checkpoint).where(Checkpoint.job_id == job.id, Checkpoint.stage == stage)
            )
            s.add(
                Checkpoint(
                    job_id=job.id, stage=stage, artifacts=list(artifacts), created_at=utcnow()
                )
            )
            if storyboard is not None:
                job.storyboard = storyboard
                job.title = storyboard.get("title", job.title)

    async def pause_for_review(self, job_id: uuid.UUID, worker_id: str) -> None:
        async with self.db.transaction() as s:
            job = await self._owned(s, job_id, worker_id)
            job.lease_owner = None
            job.lease_expires_at = None
            await self._transition(s, job, "awaiting_approval", "job.awaiting_approval")

    async def complete(
        self, job_id: uuid.UUID, worker_id: str, qa: dict[str, Any], artifacts: list[str]
    ) -> None:
        async with self.db.transaction() as s:
            job = await self._owned(s, job_id, worker_id)
            job.progress = 100
            job.eta_seconds = 0
            job.qa = qa
            job.completed_at = utcnow()
            job.lease_owner = None
            job.lease_expires_at = None
            job.failed_stage = None
            await self._transition(s, job, "completed", "job.completed", {"artifacts": artifacts})

    async def fail(
        self,
        job_id: uuid.UUID,
        worker_id: str,
        stage: str | None,
        code: str,
        message: str,
        *,
        transient: bool,
        details: dict[str, Any] | None = None,
    ) -> str:
        """Record a failure.  Transient ones are retried with exponential backoff
        until max_attempts; returns the new status."""
        async with self.db.transaction() as s:
            job = await self._owned(s, job_id, worker_id)
            job.attempts += 1
            job.lease_owner = None
            job.lease_expires_at = None
            error = {"code": code, "message": message, "stage": stage, "details": details or {}}
            job.error = error
            job.failed_stage = stage
            if transient and job.attempts < job.max_attempts:
                delay = self.settings.retry_backoff_seconds * 2 ** (job.attempts - 1)
                job.next_attempt_at = utcnow() + timedelta(seconds=delay)
                await self._transition(
                    s,
                    job,
                    "queued",
                    "job.retry_scheduled",
                    {"error": error, "attempt": job.attempts, "retry_in": delay},
                )
            else:
                await self._transition(s, job, "failed", "job.failed", {"error": error})
            return job.status

    async def finish_cancel(self, job_id: uuid.UUID, worker_id: str) -> None:
        async with self.db.transaction() as s:
            job = await self._owned(s, job_id, worker_id)
            job.lease_owner = None
            job.lease_expires_at = None
            await self._transition(s, job, "cancelled", "job.cancelled")

    async def beat(self, worker_id: str, hostname: str, pid: int) -> None:
        async with self.db.transaction() as s:
            row = await s.get(WorkerBeat, worker_id)
            if row is None:
                s.add(
                    WorkerBeat(
                        id=worker_id,
                        hostname=hostname,
                        pid=pid,
                        started_at=utcnow(),
                        heartbeat_at=utcnow(),
                    )
                )
            else:
                row.heartbeat_at = utcnow()

    async def last_worker_beat(self) -> datetime | None:
        async with self.db.session() as s:
            q = select(WorkerBeat.heartbeat_at).order_by(WorkerBeat.heartbeat_at.desc()).limit(1)
            return (await s.execute(q)).scalar_one_or_none()


__all__ = ["LeaseLost", "Leases"]
