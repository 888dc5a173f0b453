"""Fixtures for live progress: real sockets everywhere.

* ``live`` runs the real app under uvicorn on a free port inside the test's
  event loop (lifespan, migrations, bus, webhook dispatcher), so tests talk
  to it with real WebSocket/HTTP clients and can still reach its services.
* ``redis_url`` (tests/conftest.py) is the shared Redis; tests use their own
  channel (``make_settings`` draws one).
* ``RedisServer`` starts a private ``redis-server`` for tests that kill it.

Databases (``database_url``), password hashing and ``free_port`` come from
tests/conftest.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from tests.api.conftest import _empty
from tests.conftest import (  # noqa: F401  (names the tests import from here)
    REDIS_URL,
    base_settings,
    copy_sqlite,
    free_port,
    in_ci,
    unavailable,
)
from tests.conftest import redis_ping as _redis_ping
from websockets.asyncio.client import ClientConnection, connect

from aiprod.api.app import create_app
from aiprod.events.bus import EventBus
from aiprod.identity.models import User
from aiprod.identity.service import IdentityService
from aiprod.jobs.service import JobService
from aiprod.settings import Settings

PASSWORD = "correct horse battery"
WORKER = "test-worker"


# ------------------------------------------------------------------ redis


class RedisServer:
    """A private redis-server that a test may kill (never the shared one)."""

    def __init__(self, workdir: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            unavailable("redis-server is not installed")
        self.binary = binary
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while _redis_ping(self.url) is not None:
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.stop()
                pytest.fail(f"private redis-server on port {self.port} did not start")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = None


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis")
    server.start()
    try:
        yield server
    finally:
        server.stop()


# ------------------------------------------------------------ databases


@pytest.fixture
def sqlite_url(tmp_path: Path, sqlite_template: Path) -> str:
    """SQLite only (``database_url`` gives both): an empty database at head."""
    return copy_sqlite(sqlite_template, tmp_path / "events.db")


def make_settings(tmp_path: Path, database_url: str, **changes: Any) -> Settings:
    base: dict[str, Any] = {
        "storage_url": str(tmp_path / "store"),
        "events_channel": f"aiprod:test:{uuid.uuid4().hex[:12]}",
        "events_poll_seconds": 0.05,
        "events_reconcile_seconds": 0.5,
        "events_heartbeat_seconds": 5.0,
        "webhook_poll_seconds": 0.05,
        "webhook_retry_base_seconds": 0.1,
        "webhook_allow_private_networks": True,
    }
    base.update(changes)
    return base_settings(tmp_path, database_url, **base)


# ------------------------------------------------------------ live server


@dataclass
class Live:
    """A running app on a real port, and clients for it."""

    app: Any
    port: int
    http: httpx.AsyncClient
    tokens: dict[uuid.UUID, str] = field(default_factory=dict)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_base(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def settings(self) -> Settings:
        settings: Settings = self.app.state.settings
        return settings

    @property
    def jobs(self) -> JobService:
        jobs: JobService = self.app.state.jobs
        return jobs

    @property
    def bus(self) -> EventBus:
        bus: EventBus = self.app.state.events
        return bus

    @property
    def identity(self) -> IdentityService:
        identity: IdentityService = self.app.state.identity
        return identity

    async def account(self, role: str = "user") -> tuple[User, dict[str, str]]:
        email = f"{role}-{uuid.uuid4().hex[:8]}@example.com"
        user = await self.identity.create_user(email, PASSWORD, role=role)
        r = await self.http.post("/v1/auth/login", json={"email": email, "password": PASSWORD})
        assert r.status_code == 200, r.text
        token = r.json()["access_token"]
        self.tokens[user.id] = token
        return user, {"Authorization": f"Bearer {token}"}

    async def submit(self, headers: dict[str, str], **body: Any) -> str:
        payload = {"prompt": "How honeybees turn nectar into honey", **body}
        r = await self.http.post("/v1/productions", json=payload, headers=headers)
        assert r.status_code == 202, r.text
        return str(r.json()["job"]["id"])

    async def ticket(self, headers: dict[str, str]) -> str:
        r = await self.http.post("/v1/ws-ticket", headers=headers)
        assert r.status_code == 201, r.text
        return str(r.json()["ticket"])

    async def log(self, headers: dict[str, str], job_id: str) -> list[dict[str, Any]]:
        """The job's whole event log through the polling API."""
        items: list[dict[str, Any]] = []
        after = 0
        while True:
            r = await self.http.get(
                f"/v1/productions/{job_id}/events", params={"after": after}, headers=headers
            )
            assert r.status_code == 200, r.text
            page = r.json()
            items += page["items"]
            after = page["next_after"]
            if not page["has_more"]:
                return items


@contextlib.asynccontextmanager
async def serve(settings: Settings, **kwargs: Any) -> AsyncIterator[Live]:
    await _empty(settings.sqlalchemy_url)
    app = create_app(settings, **kwargs)
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", lifespan="on", ws="auto"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    deadline = time.monotonic() + 60
    while not server.started:
        if task.done():
            task.result()
            pytest.fail("the server stopped during startup")
        if time.monotonic() > deadline:
            pytest.fail("the server did not start within 60 s")
        await asyncio.sleep(0.02)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            yield Live(app, port, http)
    finally:
        app.state.events.begin_shutdown()
        server.should_exit = True
        try:
            await asyncio.wait_for(task, timeout=30)
        except TimeoutError:
            server.force_exit = True
            await asyncio.wait_for(task, timeout=10)


# ------------------------------------------------------------- WebSocket


async def ws_connect(url: str, **kwargs: Any) -> ClientConnection:
    return await asyncio.wait_for(connect(url, open_timeout=10, **kwargs), timeout=15)


async def recv(ws: ClientConnection, timeout: float = 10) -> dict[str, Any]:
    raw = await asyncio.wait_for(ws.recv(), timeout=timeout)
    data: dict[str, Any] = json.loads(raw)
    return data


async def collect(
    ws: ClientConnection,
    *,
    until: set[str] | None = None,
    count: int | None = None,
    timeout: float = 30,
    skip: frozenset[str] = frozenset({"heartbeat", "subscribed"}),
) -> list[dict[str, Any]]:
    """Messages (minus `skip`) until one of type `until` or `count` of them."""
    out: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            pytest.fail(
                f"timed out after {timeout:g}s; got {[(m.get('seq'), m['type']) for m in out]}"
            )
        msg = await recv(ws, timeout=left)
        if msg["type"] in skip:
            continue
        out.append(msg)
        if until is not None and msg["type"] in until:
            return out
        if count is not None and len(out) >= count:
            return out


def seqs(messages: list[dict[str, Any]]) -> list[int]:
    return [m["seq"] for m in messages if "seq" in m]
