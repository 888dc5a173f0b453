"""HTTP API fixtures: a real app (lifespan, migrations, storage) per test, on
SQLite and on PostgreSQL, driven in-process through httpx's ASGI transport.

PostgreSQL: one throwaway database per test session, created through the
``test`` database (``AIPROD_TEST_PG_URL`` overrides where that is), emptied
between tests and dropped at the end.  Unreachable → the PostgreSQL half is
skipped, or fails when ``CI=true`` so CI cannot silently lose it.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher
from sqlalchemy import text

import aiprod.identity.models
import aiprod.jobs.models  # noqa: F401  (register tables for TRUNCATE)
from aiprod.api.app import create_app
from aiprod.db.base import Base
from aiprod.db.engine import Database
from aiprod.db.migrate import upgrade_async
from aiprod.identity import passwords
from aiprod.identity.models import User
from aiprod.identity.service import IdentityService
from aiprod.jobs.service import JobService
from aiprod.production.models import Storyboard
from aiprod.settings import Settings
from aiprod.storage.store import Storage

PG_ADMIN_URL = os.environ.get("AIPROD_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
PASSWORD = "correct horse battery"
WORKER = "test-worker"


# ----------------------------------------------------------------- database


def _pg_unavailable(reason: str) -> None:
    message = f"PostgreSQL at {PG_ADMIN_URL} is unreachable ({reason})"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message}; CI=true requires the PostgreSQL tests", pytrace=False)
    pytest.skip(f"{message}; PostgreSQL tests skipped")


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A fresh database for this session; its SQLAlchemy URL."""
    try:
        import asyncpg
    except ImportError:
        _pg_unavailable("asyncpg is not installed")
    name = f"aiprod_api_{secrets.token_hex(6)}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(PG_ADMIN_URL, timeout=5)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    try:
        asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        _pg_unavailable(f"{type(exc).__name__}: {exc}")
    server = PG_ADMIN_URL.removeprefix("postgresql://").rsplit("/", 1)[0]
    try:
        yield f"postgresql+asyncpg://{server}/{name}"
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'api.db'}"
    url: str = request.getfixturevalue("pg_database")
    return url


async def _empty(url: str) -> None:
    """PostgreSQL's database outlives a test: start each one with no rows (before
    the app starts, so an embedded worker's first heartbeat is not wiped)."""
    if not url.startswith("postgresql"):
        return
    await upgrade_async(url)
    db = Database(url)
    try:
        tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
        async with db.transaction() as s:
            await s.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    finally:
        await db.dispose()


# -------------------------------------------------------------------- speed


@pytest.fixture(autouse=True)
def _cheap_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Argon2 at production cost takes ~0.3 s a hash on this machine; these tests
    exercise the HTTP layer, not the KDF, so they use minimal parameters."""
    cheap = PasswordHash((Argon2Hasher(time_cost=1, memory_cost=1024, parallelism=1),))
    monkeypatch.setattr(passwords, "_hasher", cheap)


# ---------------------------------------------------------------------- app


@pytest.fixture
def api_settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(
        _env_file=None,
        data_dir=tmp_path / "data",
        database_url=database_url,
        secret_key="test-signing-key-" + "x" * 32,
        workers=0,
        max_body_bytes=64 * 1024,
        page_size_max=50,
        api_key_rotation_check_seconds=0,  # tests run rotation explicitly
    )


@dataclass
class Api:
    """A running app, a client for it, and its services for setting up state the
    way a worker would."""

    app: FastAPI
    client: httpx.AsyncClient

    @property
    def settings(self) -> Settings:
        settings: Settings = self.app.state.settings
        return settings

    @property
    def jobs(self) -> JobService:
        jobs: JobService = self.app.state.jobs
        return jobs

    @property
    def identity(self) -> IdentityService:
        identity: IdentityService = self.app.state.identity
        return identity

    @property
    def storage(self) -> Storage:
        storage: Storage = self.app.state.storage
        return storage

    @property
    def db(self) -> Database:
        db: Database = self.app.state.db
        return db

    async def user(self, role: str = "user", email: str | None = None) -> User:
        email = email or f"{role}-{uuid.uuid4().hex[:8]}@example.com"
        return await self.identity.create_user(email, PASSWORD, role=role)

    async def login(self, email: str, password: str = PASSWORD) -> dict[str, Any]:
        r = await self.client.post("/v1/auth/login", json={"email": email, "password": password})
        assert r.status_code == 200, r.text
        tokens: dict[str, Any] = r.json()
        return tokens

    async def headers(self, user: User) -> dict[str, str]:
        tokens = await self.login(user.email)
        return {"Authorization": f"Bearer {tokens['access_token']}"}

    async def account(self, role: str = "user") -> tuple[User, dict[str, str]]:
        user = await self.user(role)
        return user, await self.headers(user)

    async def submit(self, headers: dict[str, str], **body: Any) -> dict[str, Any]:
        payload = {"prompt": "How honeybees turn nectar into honey", **body}
        r = await self.client.post("/v1/productions", json=payload, headers=headers)
        assert r.status_code == 202, r.text
        job: dict[str, Any] = r.json()["job"]
        return job

    # --- acting as a worker -------------------------------------------------

    async def claim(self, job_id: str) -> None:
        job = await self.jobs.claim(WORKER)
        assert job is not None and str(job.id) == job_id, "expected to claim this job"

    async def to_review(self, job_id: str, sb: Storyboard | None = None) -> None:
        """Run the job to its review gate: claim, plan, pause."""
        await self.claim(job_id)
        plan = (sb or storyboard()).model_dump(mode="json")
        await self.jobs.save_checkpoint(uuid.UUID(job_id), WORKER, "plan", [], storyboard=plan)
        await self.jobs.pause_for_review(uuid.UUID(job_id), WORKER)

    async def complete(
        self,
        job_id: str,
        files: dict[str, bytes] | None = None,
        extra: list[dict[str, Any]] | None = None,
    ) -> list[dict[str, Any]]:
        """Run the job to completion, storing `files` as its montage artifacts."""
        jid = uuid.UUID(job_id)
        await self.claim(job_id)
        plan = storyboard().model_dump(mode="json")
        await self.jobs.save_checkpoint(jid, WORKER, "plan", [], storyboard=plan)
        artifacts: list[dict[str, Any]] = []
        for name, data in (files or {}).items():
            key = f"jobs/{jid}/{name}"
            await self.storage.put_bytes(key, data)
            artifacts.append(
                {"name": name, "key": key, "sha256": _sha256(data), "bytes": len(data)}
            )
        await self.jobs.save_checkpoint(jid, WORKER, "montage", [*artifacts, *(extra or [])])
        qa = {
            "passed": True,
            "checks": [
                {"name": "duration", "passed": True, "blocking": True},
                {"name": "loudness", "passed": False, "blocking": False},
            ],
        }
        await self.jobs.complete(jid, WORKER, qa, [a["name"] for a in artifacts])
        return artifacts

    async def fail(self, job_id: str) -> None:
        await self.claim(job_id)
        await self.jobs.fail(
            uuid.UUID(job_id), WORKER, "narrate", "tts_failed", "voice crashed", transient=False
        )


def _sha256(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def storyboard(scenes: int = 3, title: str = "Honeybees") -> Storyboard:
    return Storyboard.model_validate(
        {
            "title": title,
            "scenes": [
                {
                    "index": i,
                    "narration": f"Scene {i}: bees at work.",
                    "visual": "a hive in sunlight",
                    "duration": 5.0,
                }
                for i in range(scenes)
            ],
        }
    )


@asynccontextmanager
async def running(settings: Settings, *, embedded_worker: bool | None = None) -> AsyncIterator[Api]:
    """Start the app (lifespan included), yield a client, shut it down."""
    await _empty(settings.sqlalchemy_url)
    app = create_app(settings, embedded_worker=embedded_worker)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://aiprod.test") as client:
            yield Api(app, client)


@pytest.fixture
async def api(api_settings: Settings) -> AsyncIterator[Api]:
    async with running(api_settings) as a:
        yield a
