"""A production whose AI provider fails, through the job worker: the job's error
and its events name the provider, the call and why; with the stage's fallback
policy at ``builtin`` the built-in backend makes the stage instead and the
manifest and a ``stage.fallback`` event say so.  The API key never appears in
the job, its events, its artifacts or the log."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from aiprod.db.engine import Database
from aiprod.identity.models import User
from aiprod.jobs.artifacts import artifact_key
from aiprod.jobs.service import JobService
from aiprod.jobs.worker import Worker
from aiprod.provider_config import ProviderConfig
from aiprod.settings import Settings
from aiprod.storage.store import Storage
from tests.conftest import base_settings
from tests.jobs.conftest import event_log, make_request
from tests.jobs.test_worker import finished, running
from tests.production.providers.wire import LocalService, Reply, local_service

__all__ = ["local_service"]

KEY = "sk-worker-" + "s3cr3t" * 6


@pytest.fixture
def settings(tmp_path: Path, db_url: str, local_service: LocalService) -> Settings:
    local_service.route(
        "POST",
        "/v1/chat/completions",
        [Reply(500, {"error": {"message": f"model crashed (key {KEY})"}})],
    )
    return base_settings(
        tmp_path,
        db_url,
        storage_url=str(tmp_path / "store"),
        lease_seconds=5,
        heartbeat_seconds=0.2,
        poll_seconds=0.05,
        retry_backoff_seconds=0.1,
        max_attempts=2,
        workers=1,
        openai_chat=ProviderConfig(
            base_url=local_service.url + "/v1",
            api_key=KEY,
            max_retries=1,
            retry_max_wait_seconds=0.1,
            breaker_failures=50,
        ),
    )


@pytest.fixture
def worker(db: Database, storage: Storage, settings: Settings) -> Worker:
    return Worker(db, storage, settings)


async def _everything_said(service: JobService, storage: Storage, job_id: object) -> str:
    job = await service.get(job_id, None)  # type: ignore[arg-type]
    said = [json.dumps(job.error or {}), await event_log(service, job.id)]
    said += [json.dumps(e.payload) for e in await service.events(job.id)]
    for c in await service.checkpoints(job.id):
        for a in c.artifacts:
            if a["name"].endswith((".json", ".srt", ".vtt", ".txt")):
                said.append((await storage.get_bytes(a["key"])).decode())
    return "\n".join(said)


async def test_a_failing_provider_fails_the_job_naming_provider_call_and_why(
    service: JobService,
    storage: Storage,
    user: User,
    worker: Worker,
    local_service: LocalService,
    caplog: pytest.LogCaptureFixture,
) -> None:
    request = make_request(
        script=None, prompt="How bees make honey", backends={"plan": "openai-chat"}
    )
    job, _ = await service.create(user.id, request, None)
    with caplog.at_level(logging.DEBUG):
        async with running(worker):
            done = await finished(service, job)
    log = await event_log(service, job.id)
    assert done.status == "failed", log
    assert done.error is not None
    assert done.error["code"] == "provider_error"
    assert done.error["stage"] == "plan"
    details = done.error["details"]
    assert (details["provider"], details["call"], details["status"]) == (
        "openai-chat",
        "chat.completions",
        500,
    )
    assert "model crashed" in done.error["message"]
    assert done.attempts == 2  # transient: the job was tried again, then gave up
    types = [e.type for e in await service.events(job.id)]
    assert "job.retry_scheduled" in types and types[-1] == "job.failed"
    # 2 attempts × (1 + 1 retry) calls, each with the key in its header only
    calls = local_service.calls("POST", "/v1/chat/completions")
    assert len(calls) == 4 and calls[0].headers["authorization"] == f"Bearer {KEY}"
    said = await _everything_said(service, storage, job.id)
    assert "***" in said and KEY not in said
    assert KEY not in caplog.text


async def test_with_fallback_builtin_the_builtin_planner_makes_the_stage(
    service: JobService, storage: Storage, user: User, worker: Worker
) -> None:
    request = make_request(
        script=None,
        prompt="How bees make honey",
        duration=6,
        backends={"plan": "openai-chat"},
        fallback={"plan": "builtin"},
    )
    job, _ = await service.create(user.id, request, None)
    async with running(worker):
        done = await finished(service, job)
    log = await event_log(service, job.id)
    assert done.status == "completed", log
    fallbacks = [e.payload for e in await service.events(job.id) if e.type == "stage.fallback"]
    assert len(fallbacks) == 1, log
    assert fallbacks[0]["provider"] == "openai-chat" and fallbacks[0]["backend"] == "builtin"
    assert fallbacks[0]["call"] == "chat.completions" and "HTTP 500" in fallbacks[0]["reason"]
    manifest = json.loads(await storage.get_bytes(artifact_key(job.id, "manifest.json")))
    plan = manifest["backends"]["plan"]
    assert plan["backend"] == "builtin" and plan["fallback_from"] == "openai-chat"
    assert KEY not in await _everything_said(service, storage, job.id)
