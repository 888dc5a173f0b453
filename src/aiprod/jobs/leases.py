"""What workers do to jobs: claim them under a lease, renew it by heartbeat,
report progress and checkpoints, and record the outcome.

Workers claim jobs with a lease (compare-and-set on the row: portable to
SQLite and PostgreSQL) and renew it by heartbeat; a lease that runs out makes
the job claimable again and the next worker resumes after the last
checkpoint.  Every call but `claim` and `beat` checks that the lease is still
the caller's, and raises :class:`LeaseLost` otherwise.

Fair share: the claim serves owners, not the queue.  Among the runnable jobs
it takes the oldest job of the owner with the fewest jobs running now, and
among owners with as few, the one whose job a worker took longest ago
(``claim_turns``): one user's thousand queued productions wait their turn
behind another user's single one instead of in front of it.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from aiprod.db.base import utcnow
from aiprod.jobs.lifecycle import JobLog
from aiprod.jobs.models import Checkpoint, Job, WorkerBeat
from aiprod.jobs.quota_models import ClaimTurn
from aiprod.ops import metrics

CANDIDATES = 5
"""Jobs a claim tries in turn when other workers take the first ones."""


class LeaseLost(Exception):
    """The worker's lease ran out and another worker may own the job now."""


class Leases(JobLog):
    """The worker side of :class:`aiprod.jobs.service.JobService`."""

    async def claim(self, worker_id: str) -> Job | None:
        """Take a runnable job (queued and due, or processing with an expired
        lease: its worker died), fairly across owners (see the module's
        docstring).  Compare-and-set keeps two workers from taking the same
        job on any database; a worker that loses a race tries the next
        candidate."""
        now = utcnow()
        runnable = or_(
            and_(Job.status == "queued", Job.next_attempt_at <= now),
            and_(Job.status == "processing", Job.lease_expires_at < now),
        )
        async with self.db.session() as s:
            candidates = (await s.execute(_fair_order(runnable, now))).scalars().all()
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
                    await _take_turn(s, job.owner_id)
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
                    metrics.lease_reclaimed("failed")
                    continue
                await self._event(
                    s, job, "job.resumed", {"worker": worker_id, "attempt": job.attempts}
                )
                await _take_turn(s, job.owner_id)
                metrics.lease_reclaimed("resumed")
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


def _fair_order(runnable: Any, now: datetime) -> Any:
    """The ids of the jobs to try, best first: each owner's oldest runnable
    job, owners with the fewest live leases first, then the owner served
    longest ago (never served: first), then the oldest job; then each owner's
    second job in the same order, so a worker that loses the first races
    still has work.  One query on the claim index, whatever the queue holds
    per owner."""
    ranked = (
        select(
            Job.id.label("id"),
            Job.owner_id.label("owner_id"),
            Job.next_attempt_at.label("due"),
            func.row_number()
            .over(partition_by=Job.owner_id, order_by=(Job.next_attempt_at, Job.id))
            .label("rank"),
        )
        .where(runnable)
        .subquery()
    )
    leased = (
        select(Job.owner_id.label("owner_id"), func.count().label("running"))
        .where(Job.status == "processing", Job.lease_expires_at >= now)
        .group_by(Job.owner_id)
        .subquery()
    )
    return (
        select(ranked.c.id)
        .outerjoin(leased, leased.c.owner_id == ranked.c.owner_id)
        .outerjoin(ClaimTurn, ClaimTurn.owner_id == ranked.c.owner_id)
        .where(ranked.c.rank <= 2)
        .order_by(
            ranked.c.rank,
            func.coalesce(leased.c.running, 0),
            ClaimTurn.claimed_at.asc().nulls_first(),
            ranked.c.due,
            ranked.c.id,
        )
        .limit(CANDIDATES)
    )


async def _take_turn(s: AsyncSession, owner_id: uuid.UUID) -> None:
    """Record that `owner_id` was served now (in the claim's transaction)."""
    insert = pg_insert if s.get_bind().dialect.name == "postgresql" else sqlite_insert
    now = utcnow()
    await s.execute(
        insert(ClaimTurn)
        .values(owner_id=owner_id, claimed_at=now)
        .on_conflict_do_update(index_elements=["owner_id"], set_={"claimed_at": now})
    )


__all__ = ["LeaseLost", "Leases"]
