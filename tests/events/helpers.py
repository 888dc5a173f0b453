"""Playing a worker against a real database, with or without a publisher."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiprod.db.engine import Database
from aiprod.events.bus import EventPublisher, Sink
from aiprod.events.transports.redis import RedisPublisher
from aiprod.jobs.service import JobService
from aiprod.settings import Settings

WORKER = "test-worker"
STAGES = ("plan", "narrate", "visuals")


async def play_job(
    jobs: JobService, job_id: str, *, steps: int = 3, stages: tuple[str, ...] = STAGES
) -> None:
    """Claim the job and run it to completion the way a worker reports it."""
    jid = uuid.UUID(job_id)
    claimed = await jobs.claim(WORKER)
    assert claimed is not None and claimed.id == jid, "expected to claim this job"
    await play_stages(jobs, job_id, steps=steps, stages=stages)
    await jobs.complete(jid, WORKER, {"passed": True, "checks": []}, ["video.mp4"])


async def play_stages(
    jobs: JobService, job_id: str, *, steps: int = 3, stages: tuple[str, ...] = STAGES
) -> None:
    jid = uuid.UUID(job_id)
    for n, stage in enumerate(stages):
        base = n * 100 // len(stages)
        await jobs.stage_event(jid, WORKER, "stage.started", stage, base, None)
        for i in range(1, steps + 1):
            await jobs.stage_event(
                jid, WORKER, "stage.progress", stage, base + i, 10.0, {"fraction": i / steps}
            )
        await jobs.stage_event(
            jid,
            WORKER,
            "stage.completed",
            stage,
            base + steps + 1,
            5.0,
            {"cached": 0, "units": 1, "artifacts": [f"{stage}.json"]},
        )


@asynccontextmanager
async def foreign_writer(
    settings: Settings, *, redis_url: str | None = None
) -> AsyncIterator[JobService]:
    """A JobService as another process has it: its own engine, no bus; NOTIFY
    on PostgreSQL, Redis when given, and on SQLite nothing at all (the API's
    bus must find its events by polling)."""
    db = Database(settings.sqlalchemy_url)
    redis = RedisPublisher(redis_url, settings.events_channel) if redis_url else None
    sinks: list[Sink] = [redis] if redis is not None else []
    if redis is not None:
        await redis.start()
    try:
        yield JobService(db, settings, EventPublisher(settings.events_channel, sinks))
    finally:
        if redis is not None:
            await redis.stop()
        await db.dispose()
