"""Job worker latencies: how long a cancel and a shutdown take.

* cancel: a job renders its visuals (480p24, real motion renderer) in an
  in-process worker on SQLite; the time from ``JobService.cancel`` to the job
  reading ``cancelled`` (the pipeline notices at its next progress step, the
  worker removes the job's files, then records the end).
* shutdown: the app with an embedded worker, ready and idle; the time its
  lifespan takes to end (the worker stops between polls, nothing to release).

Each figure is the median (with min and max) of ``--runs`` runs, each on a
fresh database and data folder.  These were timed assertions in
tests/jobs/test_worker.py (cancel < 5 s) and tests/api/test_health.py
(shutdown < 5 s); tests now only check that the outcome is right.

    .venv/bin/python bench/worker.py            # 5 runs each
    .venv/bin/python bench/worker.py --runs 9
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

SCRIPT = (
    "Honeybees leave the hive at dawn for the flowers of the meadow.\n\n"
    "They carry nectar home, where the colony slowly turns it into honey.\n\n"
    "In winter the bees live on what they stored through the summer."
)
SECRET_KEY = "bench-signing-key-" + "z" * 32


async def _until(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}")
        await asyncio.sleep(0.01)


async def cancel_once(folder: Path) -> float:
    """Seconds from asking a rendering job to cancel to its `cancelled` state."""
    from aiprod.db import migrate
    from aiprod.db.base import utcnow
    from aiprod.db.engine import Database
    from aiprod.identity.models import User
    from aiprod.jobs.service import JobService
    from aiprod.jobs.worker import Worker
    from aiprod.production.models import ProductionRequest
    from aiprod.settings import Settings
    from aiprod.storage.store import Storage

    url = f"sqlite+aiosqlite:///{folder / 'bench.db'}"
    await migrate.upgrade_async(url)
    settings = Settings(
        _env_file=None,
        data_dir=folder / "data",
        database_url=url,
        storage_url=str(folder / "store"),
        secret_key=SECRET_KEY,
        lease_seconds=2,
        heartbeat_seconds=0.2,
        poll_seconds=0.05,
        workers=1,
    )
    db = Database(url)
    try:
        owner = User(
            id=uuid.uuid4(),
            email=f"bench-{secrets.token_hex(4)}@example.com",
            password_hash="!",
            role="user",
            is_active=True,
            created_at=utcnow(),
            updated_at=utcnow(),
        )
        async with db.transaction() as s:
            s.add(owner)
        service = JobService(db, settings)
        request = ProductionRequest.model_validate(
            {
                "script": SCRIPT,
                "resolution": "480p",
                "fps": 24,
                "preset": "quick_social",
                "music": None,
            }
        )
        job, _ = await service.create(owner.id, request, None)
        stop = asyncio.Event()
        loop = asyncio.create_task(Worker(db, Storage(settings.artifact_url), settings).run(stop))
        try:

            async def rendering() -> bool:
                events = await service.events(job.id)
                return any(
                    e.type == "stage.progress" and e.payload.get("stage") == "visuals"
                    for e in events
                )

            await _until(rendering, "the visuals to render")
            asked = time.perf_counter()
            await service.cancel(job.id, None)

            async def cancelled() -> bool:
                return (await service.get(job.id, None)).status == "cancelled"

            await _until(cancelled, "the job to be cancelled")
            return time.perf_counter() - asked
        finally:
            stop.set()
            await asyncio.wait_for(loop, timeout=60)
    finally:
        await db.dispose()


async def shutdown_once(folder: Path) -> float:
    """Seconds an app with an idle, ready embedded worker takes to stop."""
    from aiprod.api.app import create_app
    from aiprod.settings import Settings

    settings = Settings(
        _env_file=None,
        data_dir=folder / "data",
        database_url=f"sqlite+aiosqlite:///{folder / 'bench.db'}",
        secret_key=SECRET_KEY,
        workers=1,
        poll_seconds=0.2,
    )
    app = create_app(settings)
    context = app.router.lifespan_context(app)
    await context.__aenter__()
    try:
        jobs = app.state.jobs

        async def beating() -> bool:
            return await jobs.last_worker_beat() is not None

        await _until(beating, "the embedded worker's first beat")
    finally:
        started = time.perf_counter()
        await context.__aexit__(None, None, None)
    return time.perf_counter() - started


def _line(name: str, values: list[float]) -> str:
    return (
        f"{name:<10} median {statistics.median(values):6.3f} s   "
        f"min {min(values):6.3f}   max {max(values):6.3f}   (n={len(values)})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    results: dict[str, list[float]] = {"cancel": [], "shutdown": []}
    for _ in range(args.runs):
        for name, run in (("cancel", cancel_once), ("shutdown", shutdown_once)):
            with tempfile.TemporaryDirectory(prefix="aiprod-bench-") as tmp:
                results[name].append(asyncio.run(run(Path(tmp))))
    for name, values in results.items():
        print(_line(name, values))


if __name__ == "__main__":
    main()
