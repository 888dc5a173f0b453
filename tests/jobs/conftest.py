"""Fixtures for the job platform: every database test runs on SQLite and
PostgreSQL (``db_url``, an empty database at head, from tests/conftest.py).

The helpers at the bottom (requests, waiting with a bounded timeout that prints
the job's event log) are shared by the job tests and the migration tests.
"""

from __future__ import annotations

import asyncio
import functools
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from aiprod.db.base import utcnow
from aiprod.db.engine import Database
from aiprod.identity import passwords
from aiprod.identity.models import User
from aiprod.jobs.models import Job
from aiprod.jobs.service import JobService
from aiprod.production.models import ProductionRequest
from aiprod.settings import Settings
from aiprod.storage.store import Storage
from tests.conftest import (  # noqa: F401  (fixtures other test modules import from here)
    base_settings,
    db_url,
    pg_database,
)

PASSWORD = "correct horse battery staple"

# Short scripts keep every render at a couple of seconds on a shared machine.
SCRIPT = "Honeybees leave the hive at dawn.\n\nBack home, the nectar becomes honey."  # ~6 s
LONG_SCRIPT = (  # ~7.5 s: a longer render gives the crash test time to kill mid-way
    "Honeybees leave the hive at dawn for flowers.\n\nAt home, their nectar becomes honey."
)


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:  # noqa: F811
    """Fast leases and polls so that the lifecycle plays out in seconds."""
    return base_settings(
        tmp_path,
        db_url,
        storage_url=str(tmp_path / "store"),
        lease_seconds=2,
        heartbeat_seconds=0.2,
        poll_seconds=0.05,
        retry_backoff_seconds=0.2,
        max_attempts=3,
        workers=1,
    )


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[Database]:  # noqa: F811
    database = Database(db_url)
    try:
        yield database
    finally:
        await database.dispose()


@pytest.fixture
def storage(settings: Settings) -> Storage:
    return Storage(settings.artifact_url)


@pytest.fixture
def service(db: Database, settings: Settings) -> JobService:
    return JobService(db, settings)


@pytest.fixture
async def user(db: Database, settings: Settings) -> User:
    return await new_user(db, settings)


@functools.cache
def _password_hash() -> str:
    return passwords.hash_password(PASSWORD)


async def new_user(db: Database, settings: Settings, role: str = "user") -> User:
    """A job owner.  Inserted directly with one Argon2 hash per session: hashing
    costs ~0.3 s, which adds up over a hundred tests that only need an owner id.
    (The crash test makes its user through IdentityService, as an operator would.)"""
    user = User(
        id=uuid.uuid4(),
        email=f"u{secrets.token_hex(4)}@example.com",
        password_hash=_password_hash(),
        role=role,
        is_active=True,
        created_at=utcnow(),
        updated_at=utcnow(),
    )
    async with db.transaction() as s:
        s.add(user)
    return user


# ------------------------------------------------------------------ helpers


def make_request(**changes: Any) -> ProductionRequest:
    """A tiny production: 480x480 (the smallest frame a request can ask for),
    24 fps, quick_social, no music, a ~5 s script."""
    base: dict[str, Any] = {
        "script": SCRIPT,
        "aspect": "1:1",
        "resolution": "480p",
        "fps": 24,
        "preset": "quick_social",
        "music": None,
    }
    base.update(changes)
    return ProductionRequest.model_validate(base)


def review_request(**changes: Any) -> ProductionRequest:
    """A request that keeps its review gate.  Fast-track requests skip review, and
    a script without a duration takes the preset's default length for that
    decision, so this uses brand_campaign (45 s default: not fast track); the
    script still sets the real length, a few seconds."""
    return make_request(preset="brand_campaign", review=True, **changes)


async def event_log(service: JobService, job_id: uuid.UUID) -> str:
    events = await service.events(job_id)
    return "\n".join(
        f"  {e.seq:3d} {e.type:24s} "
        + str({k: v for k, v in e.payload.items() if k not in ("artifacts", "error")})
        + (f" error={e.payload['error']}" if "error" in e.payload else "")
        for e in events
    )


async def event_types(service: JobService, job_id: uuid.UUID) -> list[str]:
    return [e.type for e in await service.events(job_id)]


async def wait_until(
    check: Callable[[], Awaitable[bool]],
    *,
    timeout: float,
    what: str,
    service: JobService | None = None,
    job_id: uuid.UUID | None = None,
    interval: float = 0.05,
) -> None:
    """Poll `check` until it holds; fail after `timeout` seconds with the job's log."""
    deadline = time.monotonic() + timeout
    while True:
        if await check():
            return
        if time.monotonic() > deadline:
            log = ""
            if service is not None and job_id is not None:
                log = "\nevents:\n" + await event_log(service, job_id)
            pytest.fail(f"timed out after {timeout:g}s waiting for {what}{log}")
        await asyncio.sleep(interval)


async def wait_status(
    service: JobService, job_id: uuid.UUID, statuses: set[str], timeout: float = 60
) -> Job:
    async def check() -> bool:
        return (await service.get(job_id, None)).status in statuses

    await wait_until(
        check,
        timeout=timeout,
        what=f"job {job_id} to become {' or '.join(sorted(statuses))}",
        service=service,
        job_id=job_id,
    )
    return await service.get(job_id, None)


async def expire_lease(db: Database, job_id: uuid.UUID) -> None:
    """What a dead worker looks like from the database: a lease in the past."""
    async with db.transaction() as s:
        await s.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(lease_expires_at=utcnow() - timedelta(minutes=5))
        )
