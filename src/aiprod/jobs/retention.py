"""The periodic task that deletes finished productions past their retention.

With ``AIPROD_RETENTION_DAYS`` > 0, every production that finished
(completed, failed or cancelled) longer ago than that is deleted through
:class:`aiprod.jobs.deletion.ProductionDeleter`, as if its owner had asked:
artifacts, checkpoints, events, search entries and unshared cache entries
go; the audit log keeps a ``production.deleted`` event (actor ``system``,
``reason: retention``) and is never pruned.  Each pass also finishes the
deletions a crash interrupted.

It runs inside the API process (started by the app's lifespan when
``AIPROD_RETENTION_CHECK_SECONDS`` > 0), once at start-up and then every
period.  Several API processes may run it at once: each deletion locks its
row, and one that another process got to first is skipped.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from contextlib import suppress
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import func, select

from aiprod.db.base import utcnow
from aiprod.errors import AppError
from aiprod.identity.audit import SYSTEM
from aiprod.jobs import state
from aiprod.jobs.deletion import ProductionDeleter
from aiprod.jobs.models import Job

log = logging.getLogger("aiprod.jobs.retention")

BATCH = 100


@dataclass(frozen=True)
class RetentionPass:
    deleted: int
    interrupted_finished: int


async def expired(deleter: ProductionDeleter, days: float, limit: int = BATCH) -> list[uuid.UUID]:
    """Finished productions whose end is more than `days` ago, oldest first."""
    cutoff = utcnow() - timedelta(days=days)
    finished_at = func.coalesce(Job.completed_at, Job.updated_at)
    q = (
        select(Job.id)
        .where(Job.status.in_(sorted(state.TERMINAL)), finished_at < cutoff)
        .order_by(finished_at)
        .limit(limit)
    )
    async with deleter.jobs.db.session() as s:
        return list((await s.execute(q)).scalars())


async def retention_pass(deleter: ProductionDeleter, days: float) -> RetentionPass:
    """Delete every expired production (days > 0), then finish interrupted deletions."""
    deleted = 0
    while days > 0:
        batch = await expired(deleter, days)
        progressed = 0
        for job_id in batch:
            try:
                await deleter.delete(job_id, None, SYSTEM, reason="retention")
            except AppError as exc:  # gone already, or re-run meanwhile
                log.info("retention skipped production %s: %s", job_id, exc.message)
                continue
            progressed += 1
        deleted += progressed
        if len(batch) < BATCH or progressed == 0:
            break
    finished = await deleter.finish_interrupted()
    if deleted or finished:
        log.info("retention: %d productions deleted, %d deletions finished", deleted, finished)
    return RetentionPass(deleted, finished)


async def retention_loop(
    deleter: ProductionDeleter, days: float, period: float, stop: asyncio.Event
) -> None:
    while not stop.is_set():
        try:
            await retention_pass(deleter, days)
        except Exception:  # keep the task alive: the next period tries again
            log.exception("retention pass failed")
        with suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=period)


class RetentionTask:
    """Start/stop handle for the lifespan."""

    def __init__(self, deleter: ProductionDeleter, days: float, period: float) -> None:
        self.stop = asyncio.Event()
        self.task = asyncio.create_task(
            retention_loop(deleter, days, period, self.stop), name="aiprod-retention"
        )

    async def close(self) -> None:
        self.stop.set()
        try:
            await asyncio.wait_for(self.task, timeout=30)
        except TimeoutError:
            self.task.cancel()
            with suppress(asyncio.CancelledError):
                await self.task


__all__ = ["RetentionPass", "RetentionTask", "expired", "retention_pass"]
