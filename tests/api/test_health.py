"""Liveness, readiness, startup that fails closed, and the embedded worker."""

from __future__ import annotations

import asyncio
import shutil
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from aiprod.db.base import utcnow
from aiprod.identity.tokens import InsecureConfiguration
from aiprod.jobs.models import WorkerBeat
from aiprod.settings import Settings
from tests.api.conftest import Api, running


async def test_live(api: Api) -> None:
    r = await api.client.get("/health/live")
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}


async def test_ready_without_workers(api: Api) -> None:
    r = await api.client.get("/health/ready")
    assert r.status_code == 200, r.text
    assert r.json() == {
        "status": "ok",
        "checks": {"database": "ok", "storage": "ok", "worker": "not expected"},
    }


async def test_ready_names_broken_storage(api: Api) -> None:
    root = Path(api.settings.artifact_url)
    shutil.rmtree(root)
    root.write_text("a file where the artifact folder should be")
    r = await api.client.get("/health/ready")
    assert r.status_code == 503
    err = r.json()["error"]
    assert err["code"] == "unavailable"
    assert "storage" in err["message"]
    assert err["details"]["failing"] == ["storage"]
    assert err["details"]["checks"]["database"] == "ok"
    assert str(root) not in r.text  # no paths for unauthenticated callers


async def test_ready_names_a_missing_worker(api_settings: Settings) -> None:
    settings = api_settings.model_copy(update={"workers": 1, "heartbeat_seconds": 1.0})
    # Workers are expected (settings say so) but run elsewhere: none has beaten.
    async with running(settings, embedded_worker=False) as api:
        r = await api.client.get("/health/ready")
        assert r.status_code == 503
        err = r.json()["error"]
        assert err["message"] == "not ready: worker"
        assert err["details"]["checks"]["worker"] == "failed: no worker has reported"

        await api.jobs.beat("w1", "host", 1)
        r = await api.client.get("/health/ready")
        assert r.status_code == 200, r.text
        assert r.json()["checks"]["worker"] == "ok"

        async with api.db.transaction() as s:
            await s.execute(
                update(WorkerBeat).values(heartbeat_at=utcnow() - timedelta(seconds=10))
            )
        r = await api.client.get("/health/ready")
        assert r.status_code == 503
        assert "last heartbeat" in r.json()["error"]["details"]["checks"]["worker"]


async def test_both_failures_are_named(api_settings: Settings) -> None:
    settings = api_settings.model_copy(update={"workers": 2})
    async with running(settings, embedded_worker=False) as api:
        root = Path(api.settings.artifact_url)
        shutil.rmtree(root)
        root.write_text("x")
        r = await api.client.get("/health/ready")
        assert r.status_code == 503
        assert r.json()["error"]["message"] == "not ready: storage, worker"


async def test_health_needs_no_token_and_has_edge_headers(api: Api) -> None:
    r = await api.client.get("/health/ready")
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["cache-control"] == "no-store"
    assert len(r.headers["x-request-id"]) == 32


@pytest.mark.parametrize("key", ["too-short", "x" * 31])
async def test_weak_secret_stops_startup(api_settings: Settings, key: str) -> None:
    settings = api_settings.model_copy(update={"secret_key": key})
    with pytest.raises(InsecureConfiguration):
        async with running(settings):
            pytest.fail("the app started with a weak signing key")


async def test_world_readable_key_file_stops_startup(api_settings: Settings) -> None:
    settings = api_settings.model_copy(update={"secret_key": None})
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    keyfile = settings.data_dir / "secret.key"
    keyfile.write_text("k" * 64)
    keyfile.chmod(0o644)
    with pytest.raises(InsecureConfiguration):
        async with running(settings):
            pytest.fail("the app started with a world-readable key")
    keyfile.chmod(0o600)
    async with running(settings) as api:
        assert (await api.client.get("/health/live")).status_code == 200


async def test_embedded_worker_beats_and_stops(api_settings: Settings) -> None:
    settings = api_settings.model_copy(update={"workers": 1, "poll_seconds": 0.2})
    async with running(settings) as api:
        deadline = time.monotonic() + 10
        while True:
            r = await api.client.get("/health/ready")
            if r.status_code == 200 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)
        assert r.status_code == 200, r.text
        assert r.json()["checks"]["worker"] == "ok"
    # Shutting down with an idle worker ends (how fast: bench/worker.py).
