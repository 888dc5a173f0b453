"""HTTP API fixtures: a real app (lifespan, migrations, storage) per test, on
SQLite and on PostgreSQL (``database_url`` from tests/conftest.py), driven
in-process through httpx's ASGI transport.  ``Api`` also holds the services,
to set up state the way a worker would.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from aiprod.api.app import create_app
from aiprod.db.engine import Database
from aiprod.identity.models import User
from aiprod.identity.service import IdentityService
from aiprod.jobs.service import JobService
from aiprod.production.models import Storyboard
from aiprod.settings import Settings
from aiprod.storage.store import Storage
from tests.conftest import base_settings, empty_postgres

PASSWORD = "correct horse battery"
WORKER = "test-worker"


async def _empty(url: str) -> None:
    """PostgreSQL's database outlives a test: start each app with no rows (before
    it starts, so an embedded worker's first heartbeat is not wiped)."""
    if url.startswith("postgresql"):
        await empty_postgres(url)


# ---------------------------------------------------------------------- app


@pytest.fixture
def api_settings(tmp_path: Path, database_url: str) -> Settings:
    return base_settings(
        tmp_path,
        database_url,
        max_body_bytes=64 * 1024,
        page_size_max=50,
        api_key_rotation_check_seconds=0,  # tests run rotation explicitly
        retention_check_seconds=0,  # and retention
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
