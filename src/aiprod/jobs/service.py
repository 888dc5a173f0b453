"""The rules of the job lifecycle, shared by the HTTP API and the workers.

:class:`JobService` is what the API and the workers hold: submitting,
reading and the user's actions are here; the workers' side (claim, lease,
heartbeat, checkpoints, outcomes) is :class:`aiprod.jobs.leases.Leases`, and
the event log and state machine every change goes through is
:class:`aiprod.jobs.lifecycle.JobLog`.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from aiprod.db.base import utcnow
from aiprod.errors import Conflict, NotFound
from aiprod.jobs import state
from aiprod.jobs.leases import LeaseLost, Leases
from aiprod.jobs.lifecycle import EventHook
from aiprod.jobs.models import Checkpoint, Job, JobEvent
from aiprod.jobs.quotas import Quotas
from aiprod.ops import context as log_context
from aiprod.production.cost import fit_budget, is_fast_track
from aiprod.production.models import STAGES, ProductionRequest, Scene, Storyboard


def request_hash(request: ProductionRequest) -> str:
    body = json.dumps(request.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(body.encode()).hexdigest()


class JobService(Leases):
    """Jobs for the API (submit, read, steer) and, through `Leases`, for workers."""

    # ------------------------------------------------------------ submitting

    @property
    def quotas(self) -> Quotas:
        return Quotas(self.settings)

    def estimate(self, request: ProductionRequest) -> tuple[dict[str, Any], bool]:
        """Cost estimate (budget applied; may raise BudgetExceeded) and fast-track flag."""
        est = fit_budget(request, self.prices)
        return est.model_dump(mode="json"), is_fast_track(request)

    async def create(
        self, owner_id: uuid.UUID, request: ProductionRequest, idempotency_key: str | None
    ) -> tuple[Job, bool]:
        """Store a queued job.  Returns (job, created); the same idempotency key with
        the same body returns the first job, with another body raises Conflict.
        The owner's quotas are checked first (aiprod.jobs.quotas: 429 or 403
        ``quota_exceeded``), in the transaction that stores the job."""
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
            request_id=log_context.request_id(),
        )
        try:
            async with self.db.transaction() as s:
                await self.quotas.check_submit(s, owner_id, float(estimate.get("total") or 0.0))
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
            await self.quotas.check_requeue(s, job.owner_id)
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
            await self.quotas.check_requeue(s, job.owner_id)
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
            await self.quotas.check_requeue(s, job.owner_id)
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


def _check_media_unchanged(job: Job, storyboard: Storyboard) -> None:
    """User media come from the request; an edit may move them between scenes but
    not point at files the request did not bring (no reading arbitrary paths).
    An upload is named by id alone: a path sent with it is dropped, the worker
    fills in its own."""
    request = job.request.get("media", [])
    paths = {str(m["path"]) for m in request if m.get("path") and not m.get("media_id")}
    uploads = {str(m["media_id"]) for m in request if m.get("media_id")}
    for scene in storyboard.scenes:
        media = scene.media
        if media is None:
            continue
        if media.media_id is not None:
            if str(media.media_id) not in uploads:
                raise Conflict(
                    f"scene {scene.index}: media {media.media_id} is not one of the "
                    "request's uploads",
                    "invalid_media",
                )
            media.file = None
        elif str(media.file) not in paths:
            raise Conflict(
                f"scene {scene.index}: media {media.file} is not one of the request's files",
                "invalid_media",
            )


__all__ = [
    "STAGES",
    "EventHook",
    "JobService",
    "LeaseLost",
    "request_hash",
]
