"""DELETE /v1/productions/{id}, the retention task and interrupted deletions,
on SQLite and PostgreSQL: after a deletion, storage is listed and no file of
the production is left, no row of any table names it, the stage-cache
entries only it used are gone, and the audit log records it."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, text, update

from aiprod.db.base import utcnow
from aiprod.events.models import WebhookDelivery, WebhookEndpoint
from aiprod.identity.audit import SYSTEM, AuditFilter
from aiprod.identity.models import AuditEvent
from aiprod.jobs import cache_refs, deletion
from aiprod.jobs.cache_refs import JobCache
from aiprod.jobs.deletion import ProductionDeleter, tombstone_key
from aiprod.jobs.models import Checkpoint, Job, JobEvent
from aiprod.jobs.retention import retention_pass
from aiprod.settings import Settings
from tests.api.conftest import WORKER, Api, running

FILES = {
    "video.mp4": b"\x00\x00\x00\x18ftypmp42" + b"v" * 5000,
    "subtitles.srt": b"1\n00:00:00,000 --> 00:00:01,000\nBees\n",
    "thumbs/thumb_000.jpg": b"\xff\xd8\xff" + b"t" * 100,
    "work/clips/scene_000.mp4": b"clip" * 100,
}


def deleter(api: Api) -> ProductionDeleter:
    found: ProductionDeleter = api.app.state.deleter
    return found


async def stored(api: Api, prefix: str = "") -> list[str]:
    return sorted(o.key for o in await api.storage.listing(prefix))


async def rows_naming(api: Api, job_id: uuid.UUID) -> dict[str, int]:
    """How many rows of each table that holds a job id name this one."""
    counts = {}
    async with api.db.session() as s:
        for name, column in (
            ("jobs", Job.id),
            ("job_events", JobEvent.job_id),
            ("checkpoints", Checkpoint.job_id),
            ("webhook_deliveries", WebhookDelivery.job_id),
        ):
            q = select(func.count()).select_from(column.class_).where(column == job_id)
            counts[name] = int((await s.execute(q)).scalar_one())
        if s.get_bind().dialect.name == "sqlite":  # the full-text index's rows (search)
            q = text("SELECT count(*) FROM jobs_fts_rows WHERE job_id = :id")
            counts["jobs_fts_rows"] = int((await s.execute(q, {"id": job_id.hex})).scalar_one())
    return counts


async def add_delivery(api: Api, owner: uuid.UUID, job_id: uuid.UUID) -> None:
    async with api.db.transaction() as s:
        endpoint = WebhookEndpoint(
            id=uuid.uuid4(),
            owner_id=owner,
            url="https://hooks.example.com/x",
            event_types=["*"],
            secret="v0:test",
            created_at=utcnow(),
            updated_at=utcnow(),
        )
        s.add(endpoint)
        await s.flush()
        s.add(
            WebhookDelivery(
                endpoint_id=endpoint.id,
                message_id="msg_1",
                event_type="job.completed",
                job_id=job_id,
                seq=1,
                payload={},
                created_at=utcnow(),
            )
        )


def use_cache(settings: Settings, job_id: uuid.UUID, key: str, tmp: Path) -> Path:
    """Make `job_id` a user of the cache entry `key`, as its worker would."""
    cache = JobCache(settings.stage_cache_dir, settings.cache_ttl_hours, job_id)
    if cache.get(key) is None:
        src = tmp / f"{key}.wav"
        src.write_bytes(key.encode())
        cache.put(key, [src], {"stage": "narrate"}, names=["000.wav"])
    entry = settings.stage_cache_dir / key[:2] / key
    assert entry.is_dir()
    return entry


def key(label: str) -> str:
    return hashlib.sha256(label.encode()).hexdigest()


async def job_ids(api: Api) -> list[uuid.UUID]:
    async with api.db.session() as s:
        return list((await s.execute(select(Job.id))).scalars())


async def audit_of(api: Api, job_id: uuid.UUID) -> list[AuditEvent]:
    return await api.identity.audit.query(AuditFilter(subject_id=str(job_id)), 10)


# --------------------------------------------------------------- deleting


async def test_a_deleted_production_leaves_no_file_row_or_cache_entry(
    api: Api, tmp_path: Path
) -> None:
    owner, headers = await api.account()
    job = await api.submit(headers)
    other = await api.submit(headers, title="kept")
    jid, oid = uuid.UUID(job["id"]), uuid.UUID(other["id"])
    await api.complete(job["id"], FILES)
    await api.storage.put_bytes(f"jobs/{oid}/video.mp4", b"other's video")
    await add_delivery(api, owner.id, jid)
    mine = use_cache(api.settings, jid, key("mine"), tmp_path)
    shared = use_cache(api.settings, jid, key("shared"), tmp_path)
    use_cache(api.settings, oid, key("shared"), tmp_path)
    assert len(await stored(api, f"jobs/{jid}/")) == len(FILES)

    r = await api.client.delete(f"/v1/productions/{jid}", headers=headers)
    assert r.status_code == 204, r.text
    assert r.content == b""

    assert await stored(api) == [f"jobs/{oid}/video.mp4"]  # nothing of it, no tombstone
    before = await rows_naming(api, oid)
    assert before["jobs"] == 1 and before.get("jobs_fts_rows", 1) == 1  # they would show
    assert set((await rows_naming(api, jid)).values()) == {0}
    assert not mine.exists()  # only it used this entry
    assert shared.exists() and (shared / "000.wav").exists()  # the other still does
    assert cache_refs.entries_used_by(api.settings.stage_cache_dir, jid) == []
    assert (await api.client.get(f"/v1/productions/{jid}", headers=headers)).status_code == 404
    again = await api.client.delete(f"/v1/productions/{jid}", headers=headers)
    assert again.status_code == 404
    (event,) = await audit_of(api, jid)
    assert (event.event, event.outcome, event.actor_id) == (
        "production.deleted",
        "success",
        owner.id,
    )
    assert event.details["reason"] == "request" and event.details["status"] == "completed"
    assert (await api.identity.audit.verify()).ok

    # Deleting the other production frees the shared entry too.
    r = await api.client.delete(f"/v1/productions/{oid}", headers=headers)
    assert r.status_code == 204
    assert not shared.exists() and await stored(api) == []


async def test_only_the_owner_or_an_admin_deletes(api: Api) -> None:
    _, alice = await api.account()
    job = await api.submit(alice)
    url = f"/v1/productions/{job['id']}"
    _, bob = await api.account()
    assert (await api.client.delete(url, headers=bob)).status_code == 404  # not even a hint
    _, viewer = await api.account("viewer")
    r = await api.client.delete(url, headers=viewer)
    assert r.status_code == 403 and r.json()["error"]["details"]["needs"] == "jobs:delete"
    assert (await api.client.delete(url)).status_code == 401
    assert (await api.client.get(url, headers=alice)).status_code == 200
    admin, admin_headers = await api.account("admin")
    assert (await api.client.delete(url, headers=admin_headers)).status_code == 204
    (event,) = await audit_of(api, uuid.UUID(job["id"]))
    assert event.actor_id == admin.id and event.details["status"] == "queued"


async def _fake_worker(api: Api, job_id: uuid.UUID, seen: list[str]) -> None:
    """What the job worker does on cancel: beat, see the flag, remove the
    job's files, finish the cancellation."""
    while True:
        ours, cancel = await api.jobs.heartbeat(job_id, WORKER)
        if not ours:
            return
        if cancel:
            seen.append("cancel")
            await api.storage.delete_prefix(f"jobs/{job_id}/")
            await api.jobs.finish_cancel(job_id, WORKER)
            return
        await asyncio.sleep(0.05)


async def test_a_running_production_is_cancelled_first(api: Api) -> None:
    _, headers = await api.account()
    job = await api.submit(headers)
    jid = uuid.UUID(job["id"])
    await api.claim(job["id"])
    await api.storage.put_bytes(f"jobs/{jid}/work/partial.wav", b"half a narration")
    seen: list[str] = []
    worker = asyncio.create_task(_fake_worker(api, jid, seen))
    r = await api.client.delete(f"/v1/productions/{jid}", headers=headers)
    await asyncio.wait_for(worker, 10)
    assert r.status_code == 204, r.text
    assert seen == ["cancel"]
    assert await stored(api) == []
    assert (await rows_naming(api, jid))["jobs"] == 0
    (event,) = await audit_of(api, jid)
    assert event.details["status"] == "cancelled"


@pytest.fixture
async def impatient(api_settings: Settings) -> AsyncIterator[Api]:
    async with running(api_settings.model_copy(update={"deletion_wait_seconds": 0.3})) as a:
        yield a


async def test_a_worker_that_does_not_stop_in_time_answers_409(impatient: Api) -> None:
    api = impatient
    _, headers = await api.account()
    job = await api.submit(headers)
    jid = uuid.UUID(job["id"])
    await api.claim(job["id"])
    await api.storage.put_bytes(f"jobs/{jid}/video.mp4", b"still rendering")
    r = await api.client.delete(f"/v1/productions/{jid}", headers=headers)
    assert r.status_code == 409, r.text
    assert r.json()["error"]["code"] == "still_running"
    assert r.headers["retry-after"] == "5"
    row = await api.jobs.get(jid, None)
    assert row.status == "processing" and row.cancel_requested  # asked to stop
    assert await stored(api) == [f"jobs/{jid}/video.mp4"]  # nothing removed, no tombstone
    assert await audit_of(api, jid) == []


async def test_an_abandoned_job_is_deleted_and_swept_after_its_worker(api: Api) -> None:
    """A processing job whose lease ran out has no live worker: deleted at
    once.  Its tombstone stays so that a late upload of the dead worker is
    swept by the retention task."""
    _, headers = await api.account()
    job = await api.submit(headers)
    jid = uuid.UUID(job["id"])
    await api.claim(job["id"])
    async with api.db.transaction() as s:
        expired = utcnow() - timedelta(minutes=5)
        await s.execute(update(Job).where(Job.id == jid).values(lease_expires_at=expired))
    r = await api.client.delete(f"/v1/productions/{jid}", headers=headers)
    assert r.status_code == 204, r.text
    assert await stored(api) == [tombstone_key(jid)]
    await api.storage.put_bytes(f"jobs/{jid}/work/late.wav", b"uploaded by a zombie")
    # Within the grace period nothing happens; after it the sweep finishes.
    assert await deleter(api).finish_interrupted() == 0
    assert len(await stored(api)) == 2
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(deletion, "TOMBSTONE_GRACE", timedelta(0))
        assert await deleter(api).finish_interrupted() == 1
    assert await stored(api) == []


async def test_interrupted_deletions_are_finished_and_stale_tombstones_dropped(
    api: Api, tmp_path: Path
) -> None:
    _, headers = await api.account()
    gone, alive = await api.submit(headers), await api.submit(headers)
    gid, aid = uuid.UUID(gone["id"]), uuid.UUID(alive["id"])
    await api.complete(gone["id"], {"video.mp4": b"v"})
    await api.complete(alive["id"], {"video.mp4": b"w"})
    entry = use_cache(api.settings, gid, key("crashed"), tmp_path)
    # A crash after the rows went (step 3) and before the files (step 4) ...
    await api.storage.put_bytes(tombstone_key(gid), b"{}")
    async with api.db.transaction() as s:
        await s.execute(Job.__table__.delete().where(Job.id == gid))
    # ... and a tombstone of a deletion that was refused (its job lives on).
    await api.storage.put_bytes(tombstone_key(aid), b"{}")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(deletion, "TOMBSTONE_GRACE", timedelta(0))
        assert await deleter(api).finish_interrupted() == 1
    assert await stored(api) == [f"jobs/{aid}/video.mp4"]
    assert not entry.exists()


# -------------------------------------------------------------- retention


async def _age(api: Api, job_id: str, days: float, *, completed: bool) -> None:
    when = utcnow() - timedelta(days=days)
    values = {"updated_at": when, **({"completed_at": when} if completed else {})}
    async with api.db.transaction() as s:
        await s.execute(update(Job).where(Job.id == uuid.UUID(job_id)).values(**values))


async def test_retention_deletes_finished_productions_past_their_days(api: Api) -> None:
    _, headers = await api.account()
    # Claimed oldest first, as the API fixture's worker does.
    old_done, old_failed, new_done, old_queued = [await api.submit(headers) for _ in range(4)]
    await api.complete(old_done["id"], {"video.mp4": b"old"})
    await api.fail(old_failed["id"])
    await api.complete(new_done["id"], {"video.mp4": b"new"})
    await _age(api, old_done["id"], 10, completed=True)
    await _age(api, old_failed["id"], 8, completed=False)
    await _age(api, old_queued["id"], 30, completed=False)  # not finished: kept
    await _age(api, new_done["id"], 2, completed=True)

    result = await retention_pass(deleter(api), days=7)
    assert result.deleted == 2
    left = {str(j) for j in await job_ids(api)}
    assert left == {old_queued["id"], new_done["id"]}
    assert await stored(api) == [f"jobs/{new_done['id']}/video.mp4"]
    for job in (old_done, old_failed):
        (event,) = await audit_of(api, uuid.UUID(job["id"]))
        assert event.actor == SYSTEM.actor and event.details["reason"] == "retention"
    assert (await api.identity.audit.verify()).ok  # the audit log is kept whole
    assert (await retention_pass(deleter(api), days=7)).deleted == 0
    assert (await retention_pass(deleter(api), days=0)).deleted == 0  # off


async def test_the_api_runs_retention_periodically(api_settings: Settings) -> None:
    settings = api_settings.model_copy(
        update={"retention_days": 1.0, "retention_check_seconds": 0.2}
    )
    async with running(settings) as api:
        _, headers = await api.account()
        job = await api.submit(headers)
        await api.complete(job["id"], {"video.mp4": b"v"})
        await _age(api, job["id"], 3, completed=True)
        for _ in range(100):  # rows first, then files: wait for both
            if not await job_ids(api) and not await stored(api):
                break
            await asyncio.sleep(0.1)
        assert await job_ids(api) == []
        assert await stored(api) == []
