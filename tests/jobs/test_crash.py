"""Crash recovery with real processes, on SQLite and PostgreSQL.

`aiprod worker` runs as a subprocess, exactly as operators run it, and is
killed with SIGKILL in the middle of a production: no shutdown code runs, the
lease simply stops being renewed.  A second worker process must take the job
over once the lease expires and finish it from the last checkpoint, without
redoing the stages that were checkpointed.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

import pytest

from aiprod.db import migrate
from aiprod.db.engine import Database
from aiprod.identity.service import IdentityService
from aiprod.jobs.service import JobService
from aiprod.jobs.worker import artifact_key
from aiprod.production.media.probe import probe
from aiprod.settings import Settings
from aiprod.storage.store import Storage
from tests.jobs.conftest import (
    LONG_SCRIPT,
    PASSWORD,
    event_log,
    event_types,
    expire_lease,
    make_request,
    new_user,
    wait_status,
    wait_until,
)

pytestmark = pytest.mark.slow

DONE = {"completed", "failed", "cancelled"}
LATER_STAGES = ("visuals", "music", "montage", "qa")

Spawn = Callable[[str], subprocess.Popen[bytes]]


@pytest.fixture
def spawn(tmp_path: Path, settings: Settings) -> Iterator[Spawn]:
    """Start `aiprod worker` processes sharing the test's database, data folder
    and storage; every one still running at the end is stopped (then killed)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIPROD_")}
    env.update(
        AIPROD_DATABASE_URL=settings.sqlalchemy_url,
        AIPROD_DATA_DIR=str(settings.data_dir),
        AIPROD_STORAGE_URL=settings.artifact_url,
        AIPROD_LEASE_SECONDS="3",
        AIPROD_HEARTBEAT_SECONDS="0.5",
        AIPROD_POLL_SECONDS="0.2",
        AIPROD_RETRY_BACKOFF_SECONDS="0.2",
        PYTHONUNBUFFERED="1",
    )
    started: list[tuple[subprocess.Popen[bytes], IO[bytes]]] = []

    def start(name: str) -> subprocess.Popen[bytes]:
        log = (tmp_path / f"{name}.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "aiprod.cli", "worker"],
            env=env,
            cwd=tmp_path,  # no stray .env file from the checkout
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        started.append((proc, log))
        return proc

    try:
        yield start
    finally:
        for proc, log in started:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            log.close()


def output(tmp_path: Path, name: str) -> str:
    text = (tmp_path / f"{name}.log").read_text(errors="replace")
    return f"\n--- {name} worker output (tail) ---\n" + text[-4000:]


def narrate_cache(cache: Path) -> dict[str, int]:
    """Each narrate cache entry's files with their modification times."""
    entries: dict[str, int] = {}
    for meta in cache.glob("*/*/meta.json"):
        if json.loads(meta.read_text()).get("info", {}).get("stage") != "narrate":
            continue
        for f in meta.parent.iterdir():
            entries[str(f.relative_to(cache))] = f.stat().st_mtime_ns
    return entries


async def test_a_killed_worker_is_resumed_from_its_checkpoints(
    db: Database, settings: Settings, storage: Storage, spawn: Spawn, tmp_path: Path
) -> None:
    owner = await IdentityService(db, settings).create_user("crash@example.com", PASSWORD)
    service = JobService(db, settings)
    job, _ = await service.create(owner.id, make_request(script=LONG_SCRIPT), None)

    first = spawn("first")

    async def past_narrate() -> bool:
        if first.poll() is not None:
            pytest.fail("the first worker exited on its own" + output(tmp_path, "first"))
        marks = [(e.type, e.payload["stage"]) for e in await service.events(job.id)]
        return ("stage.completed", "narrate") in marks and any(
            t == "stage.started" and s in LATER_STAGES for t, s in marks
        )

    await wait_until(
        past_narrate,
        timeout=120,
        interval=0.02,
        what="the first worker to finish narrating",
        service=service,
        job_id=job.id,
    )
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    killed = await service.get(job.id, None)
    assert killed.status == "processing", (
        "the production finished before the worker could be killed"
        + "\n"
        + await event_log(service, job.id)
    )
    checkpointed = [c.stage for c in await service.checkpoints(job.id)]
    assert checkpointed[:2] == ["plan", "narrate"]
    cache_before = narrate_cache(settings.stage_cache_dir)
    assert cache_before, "narration was not cached"

    spawn("second")
    done = await wait_status(service, job.id, DONE, timeout=120)
    log = await event_log(service, job.id)
    assert done.status == "completed", log + output(tmp_path, "second")

    events = await service.events(job.id)
    started = [e.payload["stage"] for e in events if e.type == "stage.started"]
    assert started.count("plan") == 1, log  # checkpointed stages were not rerun
    assert started.count("narrate") == 1, log
    resumed = [e for e in events if e.type == "job.resumed"]
    assert len(resumed) == 1, log
    first_worker = next(e for e in events if e.type == "job.started").payload["worker"]
    assert resumed[0].payload["worker"] != first_worker
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert narrate_cache(settings.stage_cache_dir) == cache_before  # nothing re-made

    video = tmp_path / "final.mp4"
    await storage.get_to_file(artifact_key(job.id, "video.mp4"), video)
    info = probe(video)
    assert (info.video_codec, info.audio_codec) == ("h264", "aac")
    assert info.has_video and info.has_audio and info.duration > 3


async def test_a_fresh_worker_finishes_queued_and_orphaned_jobs(
    db: Database, settings: Settings, storage: Storage, spawn: Spawn, tmp_path: Path
) -> None:
    owner = await new_user(db, settings)
    service = JobService(db, settings)
    orphan, _ = await service.create(owner.id, make_request(seed=1), None)
    claimed = await service.claim("dead-host:1:dead")  # its worker died right after
    assert claimed is not None and claimed.id == orphan.id
    await expire_lease(db, orphan.id)
    queued, _ = await service.create(owner.id, make_request(seed=2), None)

    worker = spawn("fresh")
    for job in (orphan, queued):
        done = await wait_status(service, job.id, DONE, timeout=120)
        assert done.status == "completed", await event_log(service, job.id) + output(
            tmp_path, "fresh"
        )
        assert await storage.size(artifact_key(job.id, "video.mp4")) > 0
    orphan_events = await service.events(orphan.id)
    resumed = [e for e in orphan_events if e.type == "job.resumed"]
    assert len(resumed) == 1 and resumed[0].payload["worker"] != "dead-host:1:dead"
    assert (await event_types(service, queued.id)).count("job.started") == 1

    # SIGTERM is a clean stop.
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=20) == 0, output(tmp_path, "fresh")
    assert "stopped" in output(tmp_path, "fresh")


async def test_worker_command_migrates_an_empty_database(
    settings: Settings, spawn: Spawn, tmp_path: Path
) -> None:
    """`aiprod worker` brings an empty database to the head revision before polling."""
    url = settings.sqlalchemy_url
    await asyncio.to_thread(migrate.downgrade, url, "base")
    proc = spawn("migrating")

    async def ready() -> bool:
        if proc.poll() is not None:
            pytest.fail("the worker exited" + output(tmp_path, "migrating"))
        return "started (concurrency" in output(tmp_path, "migrating")

    await wait_until(ready, timeout=60, what="the worker to start")
    db = Database(url)
    try:
        owner = await new_user(db, settings)
        service = JobService(db, settings)
        job, _ = await service.create(owner.id, make_request(), None)
        assert job.status == "queued"

        async def beating() -> bool:  # the first beat follows "started" closely
            return await service.last_worker_beat() is not None

        await wait_until(beating, timeout=30, what="the worker's first heartbeat")
    finally:
        await db.dispose()
