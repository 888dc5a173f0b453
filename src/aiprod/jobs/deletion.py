"""Deleting a production with everything it owns, in an order that never leaves
a row pointing at a missing file.

One path for every deletion (``DELETE /v1/productions/{id}``, the retention
task, erasing a user), in this order:

1. A running production is cancelled first: its worker stops within a
   heartbeat and removes its partial output; the deletion waits for that (up
   to ``AIPROD_DELETION_WAIT_SECONDS``, else 409 ``still_running`` with the
   cancellation still requested).  A job whose lease ran out has no live
   worker and is deleted at once.
2. A *tombstone* (``deletions/<job id>.json`` in storage) is written: the
   record that this job's files are to go, which survives a crash.
3. One transaction deletes the rows — checkpoints, events, the job — and
   appends ``production.deleted`` to the audit log, which is never deleted.
   Webhook deliveries and SQLite's full-text rows (``jobs_fts_rows``, whose
   triggers update the FTS5 index) follow by foreign-key cascade; PostgreSQL's
   search vector is a column of the job row.  A domain keeping rows about a
   job without a foreign key registers a ``hooks`` entry.
4. Then the files: everything under ``jobs/<id>/`` in storage, and the stage
   cache entries no other production uses (:mod:`aiprod.jobs.cache_refs`).
5. The tombstone goes last.

Rows go before files, so no reader ever finds a row whose file is gone; a
crash after step 3 leaves files with no row, which :meth:`finish_interrupted`
(run by the retention task) removes by their tombstone.  It waits
``TOMBSTONE_GRACE`` before acting, so it never races a deletion in flight, and
it keeps the tombstone of a job deleted with an expired lease until then: a
worker that lost its lease may still upload the stage it was in.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from aiprod.db.base import utcnow
from aiprod.errors import Conflict, NotFound
from aiprod.identity.audit import AuditContext, AuditLog
from aiprod.jobs import cache_refs
from aiprod.jobs.models import Checkpoint, Job, JobEvent
from aiprod.jobs.service import JobService
from aiprod.settings import Settings
from aiprod.storage.store import Storage

log = logging.getLogger("aiprod.jobs.deletion")

TOMBSTONES = "deletions/"
TOMBSTONE_GRACE = timedelta(minutes=10)
_POLL = 0.2

DeleteHook = Callable[[AsyncSession, uuid.UUID], Awaitable[None]]
"""Run inside the deletion's transaction, before the job row goes: a domain
that keeps rows about a job without a foreign key (a search index) removes
them here."""


def tombstone_key(job_id: uuid.UUID) -> str:
    return f"{TOMBSTONES}{job_id}.json"


def job_prefix(job_id: uuid.UUID) -> str:
    return f"jobs/{job_id}/"


def _lease_live(job: Job) -> bool:
    expires = job.lease_expires_at
    return job.status == "processing" and expires is not None and expires > utcnow()


@dataclass(frozen=True)
class Deleted:
    """What one deletion removed."""

    job_id: uuid.UUID
    owner_id: uuid.UUID
    status: str
    events: int
    files: int
    cache_entries: int


class ProductionDeleter:
    """Deletes productions (one per app; shared by the route, retention and erasure)."""

    def __init__(
        self, jobs: JobService, storage: Storage, audit: AuditLog, settings: Settings
    ) -> None:
        self.jobs = jobs
        self.storage = storage
        self.audit = audit
        self.settings = settings
        self.hooks: list[DeleteHook] = []

    async def delete(
        self,
        job_id: uuid.UUID,
        owner_id: uuid.UUID | None,
        ctx: AuditContext,
        *,
        reason: str = "request",
    ) -> Deleted:
        """Delete the production if `owner_id` owns it (None: any owner).
        NotFound for a missing or foreign one; Conflict ``still_running`` when
        its worker does not stop in time."""
        deadline = time.monotonic() + self.settings.deletion_wait_seconds
        while True:
            job = await self.jobs.get(job_id, owner_id)
            if _lease_live(job):
                job = await self._stop(job, owner_id, deadline)
            zombie = job.status == "processing"  # its lease ran out: a worker may linger
            await self._write_tombstone(job)
            try:
                gone = await self._delete_rows(job_id, owner_id, ctx, reason)
                break
            except BaseException as exc:
                await self.storage.delete(tombstone_key(job_id))
                if not isinstance(exc, _StillRunning):
                    raise
                # A worker claimed it between our look and our lock: stop it too.
        files = await self.storage.delete_prefix(job_prefix(job_id))
        cached = await asyncio.to_thread(cache_refs.release, self.settings.stage_cache_dir, job_id)
        if not zombie:
            await self.storage.delete(tombstone_key(job_id))
        log.info(
            "production %s deleted (%s): %d events, %d files, %d cache entries",
            job_id,
            reason,
            gone.events,
            files,
            cached,
        )
        return Deleted(gone.job_id, gone.owner_id, gone.status, gone.events, files, cached)

    # ----------------------------------------------------------------- steps

    async def _stop(self, job: Job, owner_id: uuid.UUID | None, deadline: float) -> Job:
        """Cancel a running job and wait for its worker to let go; the job then."""
        if not job.cancel_requested:
            with contextlib.suppress(Conflict):  # it finished meanwhile
                await self.jobs.cancel(job.id, owner_id)
        while True:
            current = await self.jobs.get(job.id, owner_id)
            if not _lease_live(current):
                return current
            if time.monotonic() >= deadline:
                raise Conflict(
                    "the production is still running: its cancellation is requested and its "
                    "worker stops within a few seconds; repeat the deletion then",
                    "still_running",
                    headers={"Retry-After": "5"},
                )
            await asyncio.sleep(_POLL)

    async def _write_tombstone(self, job: Job) -> None:
        body = {"job_id": str(job.id), "owner_id": str(job.owner_id), "at": utcnow().isoformat()}
        await self.storage.put_bytes(tombstone_key(job.id), json.dumps(body).encode())

    async def _delete_rows(
        self, job_id: uuid.UUID, owner_id: uuid.UUID | None, ctx: AuditContext, reason: str
    ) -> Deleted:
        async with self.jobs.db.transaction() as s:
            job = (
                await s.execute(select(Job).where(Job.id == job_id).with_for_update())
            ).scalar_one_or_none()
            if job is None or (owner_id is not None and job.owner_id != owner_id):
                raise NotFound(f"production {job_id} not found")
            if _lease_live(job):
                raise _StillRunning
            events = int(
                (
                    await s.execute(
                        select(func.count()).select_from(JobEvent).where(JobEvent.job_id == job_id)
                    )
                ).scalar_one()
            )
            for hook in self.hooks:
                await hook(s, job_id)
            await s.execute(delete(Checkpoint).where(Checkpoint.job_id == job_id))
            await s.execute(delete(JobEvent).where(JobEvent.job_id == job_id))
            await s.execute(delete(Job).where(Job.id == job_id))
            await self.audit.record(
                s,
                "production.deleted",
                "success",
                ctx,
                subject_type="production",
                subject_id=job_id,
                details={"owner_id": str(job.owner_id), "status": job.status, "reason": reason},
            )
            return Deleted(job_id, job.owner_id, job.status, events, 0, 0)

    # ------------------------------------------------------------- recovery

    async def finish_interrupted(self) -> int:
        """Finish deletions a crash interrupted (files left after their rows
        went); drop tombstones whose job still exists (the deletion was refused
        or rolled back).  Only tombstones older than `TOMBSTONE_GRACE`.  Returns
        how many deletions were finished."""
        cutoff = utcnow() - TOMBSTONE_GRACE
        finished = 0
        for key, _, modified in await self.storage.listing(TOMBSTONES):
            if modified > cutoff:
                continue
            try:
                job_id = uuid.UUID(key.removeprefix(TOMBSTONES).removesuffix(".json"))
            except ValueError:
                continue
            async with self.jobs.db.session() as s:
                exists = await s.get(Job, job_id) is not None
            if not exists:
                removed = await self.storage.delete_prefix(job_prefix(job_id))
                await asyncio.to_thread(cache_refs.release, self.settings.stage_cache_dir, job_id)
                log.info("finished the deletion of production %s (%d files)", job_id, removed)
                finished += 1
            await self.storage.delete(key)
        return finished


class _StillRunning(Exception):
    """A worker claimed the job between the look and the lock."""


__all__ = [
    "TOMBSTONES",
    "TOMBSTONE_GRACE",
    "DeleteHook",
    "Deleted",
    "ProductionDeleter",
    "job_prefix",
    "tombstone_key",
]
