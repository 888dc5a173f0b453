"""The rules of the job lifecycle, shared by the HTTP API and the workers.

Every status change goes through :meth:`JobService._transition`, which checks
the state machine and appends a numbered row to ``job_events`` in the same
transaction, so the event log and the job never disagree.  Workers claim jobs
with a lease (compare-and-set on the row: portable to SQLite and PostgreSQL)
and renew it by heartbeat; a lease that runs out makes the job claimable again
and the next worker resumes after the last checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from aiprod.db.base import utcnow
from aiprod.db.engine import Database
from aiprod.errors import Conflict, NotFound
from aiprod.jobs import state
from aiprod.jobs.models import Checkpoint, Job, JobEvent, WorkerBeat
from aiprod.production.cost import (
    PriceTable,
    fit_budget,
    is_fast_track,
)
from aiprod.production.models import STAGES, ProductionRequest, Scene, Storyboard
from aiprod.settings import Settings


def request_hash(request: ProductionRequest) -> str:
    body = json.dumps(request.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(body.encode()).hexdigest()


EventHook = Callable[[AsyncSession, Job, JobEvent], Awaitable[None]]
"""Called for every new event inside its transaction (after the row is flushed).
``aiprod.events`` uses it to publish the event once the transaction commits,
so that subscribers never see an event the database rolled back."""


class JobService:
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

    # ------------------------------------------------------------ submitting

    def estimate(self, request: ProductionRequest) -> tuple[dict[str, Any], bool]:
        """Cost estimate (budget applied; may raise BudgetExceeded) and fast-track flag."""
        est = fit_budget(request, self.prices)
        return est.model_dump(mode="json"), is_fast_track(request)

    async def create(
        self, owner_id: uuid.UUID, request: ProductionRequest, idempotency_key: str | None
    ) -> tuple[Job, bool]:
        """Store a queued job.  Returns (job, created); the same idempotency key with
        the same body returns the first job, with another body raises Conflict."""
        digest = request_hash(request)
        if idempotency_key is not None:
            existing = await self._by_key(owner_id, idempotency_key)
            if existing is not None:
                return self._same_body(existing, digest), False
        estimate, fast = self.estimate(request)
        review = request.review and not fast
        job = Job(
            id=uuid.uuid4(),
            owner_id=owner_id,
            status="queued",
            title=request.title or (request.prompt or request.script or "")[:80],
            request=request.model_dump(mode="json"),
            estimate=estimate,
            fast_track=fast,
            review=review,
            idempotency_key=idempotency_key,
            request_hash=digest,
            max_attempts=self.settings.max_attempts,
            next_attempt_at=utcnow(),
            created_at=utcnow(),
            updated_at=utcnow(),
        )
        try:
            async with self.db.transaction() as s:
                s.add(job)
                await s.flush()
                await self._event(s, job, "job.queued", {"fast_track": fast, "review": review})
        except IntegrityError:
            # A concurrent request with the same key won the race.
            if idempotency_key is None:
                raise
            existing = await self._by_key(owner_id, idempotency_key)
            if existing is None:
                raise
            return self._same_body(existing, digest), False
        return job, True

    @staticmethod
    def _same_body(job: Job, digest: str) -> Job:
        if job.request_hash != digest:
            raise Conflict(
                "this Idempotency-Key was already used with a different request body",
                "idempotency_conflict",
            )
        return job

    async def _by_key(self, owner_id: uuid.UUID, key: str) -> Job | None:
        async with self.db.session() as s:
            return (
                await s.execute(
                    select(Job).where(Job.owner_id == owner_id, Job.idempotency_key == key)
                )
            ).scalar_one_or_none()

    # --------------------------------------------------------------- reading

    async def get(self, job_id: uuid.UUID, owner_id: uuid.UUID | None) -> Job:
        """The job, if `owner_id` owns it (None: any owner, for admins and workers)."""
        async with self.db.session() as s:
            job = await s.get(Job, job_id)
        if job is None or (owner_id is not None and job.owner_id != owner_id):
            raise NotFound(f"production {job_id} not found")
        return job

    async def list_jobs(
        self,
        owner_id: uuid.UUID | None,
        limit: int,
        before: tuple[datetime, uuid.UUID] | None = None,
        status: str | None = None,
    ) -> list[Job]:
        """Newest first, keyset-paginated on (created_at, id)."""
        q = select(Job).order_by(Job.created_at.desc(), Job.id.desc()).limit(limit)
        if owner_id is not None:
            q = q.where(Job.owner_id == owner_id)
        if status is not None:
            q = q.where(Job.status == status)
        if before is not None:
            created, jid = before
            q = q.where(
                or_(Job.created_at < created, and_(Job.created_at == created, Job.id < jid))
            )
        async with self.db.session() as s:
            return list((await s.execute(q)).scalars())

    async def events(self, job_id: uuid.UUID, after: int = 0, limit: int = 1000) -> list[JobEvent]:
        async with self.db.session() as s:
            q = (
                select(JobEvent)
                .where(JobEvent.job_id == job_id, JobEvent.seq > after)
                .order_by(JobEvent.seq)
                .limit(limit)
            )
            return list((await s.execute(q)).scalars())

    async def checkpoints(self, job_id: uuid.UUID) -> list[Checkpoint]:
        async with self.db.session() as s:
            q = select(Checkpoint).where(Checkpoint.job_id == job_id).order_by(Checkpoint.id)
            return list((await s.execute(q)).scalars())

    # --------------------------------------------------------- user actions

    async def _locked(self, s: AsyncSession, job_id: uuid.UUID, owner_id: uuid.UUID | None) -> Job:
        job = (
            await s.execute(select(Job).where(Job.id == job_id).with_for_update())
        ).scalar_one_or_none()
        if job is None or (owner_id is not None and job.owner_id != owner_id):
            raise NotFound(f"production {job_id} not found")
        return job

    async def cancel(self, job_id: uuid.UUID, owner_id: uuid.UUID | None) -> Job:
        """Queued or paused jobs stop now; a running one is told to stop and its
        worker finishes the cancellation within a heartbeat."""
        async with self.db.transaction() as s:
            job = await self._locked(s, job_id, owner_id)
            if job.status in state.TERMINAL:
                raise Conflict(f"the production is already {job.status}", "invalid_state")
            if job.status == "processing":
                job.cancel_requested = True
                await self._event(s, job, "job.cancel_requested")
            else:
                await self._transition(s, job, "cancelled", "job.cancelled")
                job.lease_owner = None
            return job

    async def approve(self, job_id: uuid.UUID, owner_id: uuid.UUID | None) -> Job:
        async with self.db.transaction() as s:
            job = await self._locked(s, job_id, owner_id)
            if job.status != "awaiting_approval":
                raise Conflict(
                    f"only a production awaiting approval can be approved (it is {job.status})",
                    "invalid_state",
                )
            job.approved = True
            await self._transition(s, job, "queued", "job.queued", {"approved": True})
            job.next_attempt_at = utcnow()
            return job

    async def retry(self, job_id: uuid.UUID, owner_id: uuid.UUID | None) -> Job:
        async with self.db.transaction() as s:
            job = await self._locked(s, job_id, owner_id)
            if job.status != "failed":
                raise Conflict(
                    f"only a failed production can be retried (it is {job.status})",
                    "invalid_state",
                )
            job.attempts = 0
            job.error = None
            job.next_attempt_at = utcnow()
            await self._transition(s, job, "queued", "job.queued", {"retry_from": job.failed_stage})
            return job

    async def update_storyboard(
        self, job_id: uuid.UUID, owner_id: uuid.UUID | None, storyboard: Storyboard
    ) -> Job:
        """Replace the plan while the job waits for approval."""
        async with self.db.transaction() as s:
            job = await self._locked(s, job_id, owner_id)
            if job.status != "awaiting_approval":
                raise Conflict(
                    f"the storyboard can be edited only while awaiting approval (it is "
                    f"{job.status})",
                    "invalid_state",
                )
            _check_media_unchanged(job, storyboard)
            job.storyboard = storyboard.model_dump(mode="json")
            job.title = storyboard.title
            await s.execute(
                delete(Checkpoint).where(Checkpoint.job_id == job.id, Checkpoint.stage != "plan")
            )
            await self._event(s, job, "job.storyboard_updated", {"scenes": len(storyboard.scenes)})
            return job

    async def rerender(
        self,
        job_id: uuid.UUID,
        owner_id: uuid.UUID | None,
        index: int,
        changes: dict[str, Any],
    ) -> Job:
        """Change one scene of a finished (or failed) job and run it again: the
        stage cache serves every other scene, so only this scene and the montage
        are made anew."""
        async with self.db.transaction() as s:
            job = await self._locked(s, job_id, owner_id)
            if job.status not in ("completed", "failed"):
                raise Conflict(
                    f"a scene can be re-rendered once the production is completed or failed "
                    f"(it is {job.status})",
                    "invalid_state",
                )
            if job.storyboard is None:
                raise Conflict("the production has no storyboard yet", "invalid_state")
            sb = Storyboard.model_validate(job.storyboard)
            if not 0 <= index < len(sb.scenes):
                raise NotFound(f"scene {index} not found (0..{len(sb.scenes) - 1})")
            merged = {**sb.scenes[index].model_dump(mode="json"), **changes, "index": index}
            sb.scenes[index] = Scene.model_validate(merged)
            sb = Storyboard.model_validate(sb.model_dump(mode="json"))
            job.storyboard = sb.model_dump(mode="json")
            await s.execute(
                delete(Checkpoint).where(Checkpoint.job_id == job.id, Checkpoint.stage != "plan")
            )
            job.attempts = 0
            job.error = None
            job.qa = None
            job.completed_at = None
            job.next_attempt_at = utcnow()
            await self._transition(s, job, "queued", "job.queued", {"rerender_scene": index})
            return job

    # -------------------------------------------------------------- workers

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


class LeaseLost(Exception):
    """The worker's lease ran out and another worker may own the job now."""


def _check_media_unchanged(job: Job, storyboard: Storyboard) -> None:
    """User media come from the request; an edit may move them between scenes but
    not point at files the request did not bring (no reading arbitrary paths)."""
    allowed = {str(m["path"]) for m in job.request.get("media", [])}
    for scene in storyboard.scenes:
        if scene.media is not None and str(scene.media.path) not in allowed:
            raise Conflict(
                f"scene {scene.index}: media {scene.media.path} is not one of the request's files",
                "invalid_media",
            )


__all__ = [
    "STAGES",
    "EventHook",
    "JobService",
    "LeaseLost",
    "request_hash",
]
