"""A real render, exported and deleted, on SQLite and PostgreSQL.

The worker records the stage-cache entries each job uses; a second job with
the same request is made from the cache and shares them.  The first job's
ZIP export holds a video PyAV decodes and files whose hashes are the
manifest's.  Deleting the first job leaves the shared entries; deleting the
second frees them, and storage, listed, holds nothing of either.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import av
import obstore
import pytest

from aiprod.db.engine import Database
from aiprod.exports import production
from aiprod.exports.archive import ZipLayout
from aiprod.identity.audit import SYSTEM, AuditLog
from aiprod.identity.models import User
from aiprod.jobs import cache_refs
from aiprod.jobs.deletion import ProductionDeleter
from aiprod.jobs.models import Job
from aiprod.jobs.service import JobService
from aiprod.jobs.worker import Worker
from aiprod.settings import Settings
from aiprod.storage.store import Storage
from tests.jobs.conftest import event_log, make_request, wait_status

pytestmark = pytest.mark.slow


async def _render(service: JobService, worker: Worker, user: User) -> list[Job]:
    jobs = [(await service.create(user.id, make_request(), None))[0] for _ in range(2)]
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        done = [await wait_status(service, j.id, {"completed", "failed"}, 120) for j in jobs]
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
    for job in done:
        assert job.status == "completed", await event_log(service, job.id)
    return done


def _keys(storage: Storage) -> list[str]:
    return sorted(m["path"] for batch in obstore.list(storage.store) for m in batch)


async def test_a_rendered_production_exports_and_deletes_without_a_trace(
    db: Database,
    service: JobService,
    storage: Storage,
    settings: Settings,
    user: User,
    tmp_path: Path,
) -> None:
    settings = settings.model_copy(update={"workers": 2})
    worker = Worker(db, storage, settings)
    first, second = await _render(service, worker, user)
    root = settings.stage_cache_dir
    used = cache_refs.entries_used_by(root, first.id)
    assert used and cache_refs.entries_used_by(root, second.id) == used  # shared entries
    assert all((root / k[:2] / k).is_dir() for k in used)

    # The ZIP export of the first.
    data = await production.gather(first, service, storage)
    layout = ZipLayout(
        production.members(data, storage, "x/"), first.completed_at or datetime.now(UTC)
    )
    blob = b"".join([chunk async for chunk in layout.stream()])
    with zipfile.ZipFile(io.BytesIO(blob)) as z:
        assert z.testzip() is None  # the CRCs the worker recorded are right
        (tmp_path / "video.mp4").write_bytes(z.read("x/video.mp4"))
        with av.open(str(tmp_path / "video.mp4")) as container:
            frames = sum(1 for _ in container.decode(video=0))
        assert frames > 24
        manifest = json.loads(z.read("x/manifest.json"))
        archived = set(z.namelist())
        checked = 0
        for asset in manifest["assets"]:
            if "x/" + asset["path"] in archived:
                content = z.read("x/" + asset["path"])
                assert hashlib.sha256(content).hexdigest() == asset["sha256"], asset["path"]
                checked += 1
        assert checked >= 5  # video, poster, subtitles, thumbnails, storyboard ...
        scenes = z.read("x/scenes.csv").decode().splitlines()
        assert len(scenes) == 1 + len(first.storyboard["scenes"])

    # Delete the first: its files and rows go, the shared cache stays.
    deleter = ProductionDeleter(service, storage, AuditLog(db), settings)
    gone = await deleter.delete(first.id, None, SYSTEM, reason="test")
    assert gone.files > 5 and gone.cache_entries == 0 and gone.events > 5
    assert not any(k.startswith(f"jobs/{first.id}/") for k in _keys(storage))
    assert all((root / k[:2] / k).is_dir() for k in used)

    # Delete the second: nothing of either is left.
    gone = await deleter.delete(second.id, user.id, SYSTEM, reason="test")
    assert gone.cache_entries == len(used)
    assert _keys(storage) == []
    assert not any((root / k[:2] / k).exists() for k in used)
    assert not (root / cache_refs.REFS / str(second.id)).exists()
