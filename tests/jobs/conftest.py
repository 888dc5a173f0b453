"""Fixtures for the job platform: every database test runs on SQLite and PostgreSQL.

PostgreSQL: the server CI provides (``postgresql://postgres@127.0.0.1:5432/test``,
trust auth; ``TEST_PG_DSN`` overrides it) gets one throwaway database per test
session, ``test_<random>``, so that other test files or concurrent test runs
sharing the server never see our rows; it is dropped at the end.  Each test
starts from an empty schema: the fixture ends stray connections, migrates down
to base and up to head.  When the server cannot be reached the PostgreSQL half
of each test is skipped with the reason, except under ``CI=true``, where that
is a failure: CI must test both databases.

The helpers at the bottom (requests, waiting with a bounded timeout that prints
the job's event log) are shared by the job tests and the migration tests.
"""

from __future__ import annotations

import asyncio
import functools
import os
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update
from sqlalchemy.engine import make_url

from aiprod.db import migrate
from aiprod.db.base import utcnow
from aiprod.db.engine import Database
from aiprod.identity import passwords
from aiprod.identity.models import User
from aiprod.jobs.models import Job
from aiprod.jobs.service import JobService
from aiprod.production.models import ProductionRequest
from aiprod.settings import Settings
from aiprod.storage.store import Storage

PG_DSN = os.environ.get("TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
PASSWORD = "correct horse battery staple"

# Short scripts keep every render at a couple of seconds on a shared machine.
SCRIPT = "Honeybees leave the hive at dawn.\n\nBack home, the nectar becomes honey."  # ~6 s
LONG_SCRIPT = (  # ~7.5 s: a longer render gives the crash test time to kill mid-way
    "Honeybees leave the hive at dawn for flowers.\n\nAt home, their nectar becomes honey."
)


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


async def _pg_admin(sql: str, *args: Any) -> None:
    import asyncpg

    conn = await asyncio.wait_for(asyncpg.connect(PG_DSN), timeout=5)
    try:
        await conn.execute(sql, *args)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database for this session; yields its SQLAlchemy URL."""
    name = f"test_{secrets.token_hex(6)}"
    try:
        asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # no driver, no server, no permission: all mean the same
        reason = f"PostgreSQL is not reachable at {PG_DSN}: {type(exc).__name__}: {exc}"
        if _in_ci():
            pytest.fail(f"{reason} (CI=true: PostgreSQL tests are required)")
        pytest.skip(reason)
    url = make_url(PG_DSN).set(drivername="postgresql+asyncpg", database=name)
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def reset_postgres(url: str) -> None:
    """Empty schema at head: end connections a previous test leaked (a killed
    worker's, say) so that they cannot hold locks, then migrate down and up."""
    name = make_url(url).database
    asyncio.run(
        _pg_admin(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = $1 AND pid <> pg_backend_pid()",
            name,
        )
    )
    migrate.downgrade(url, "base")


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty database at the head revision, on each backend."""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'aiprod.db'}"
    else:
        url = request.getfixturevalue("pg_database")
        reset_postgres(url)
    migrate.upgrade(url)
    return url


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    """Fast leases and polls so that the lifecycle plays out in seconds."""
    return Settings(
        data_dir=tmp_path / "data",
        database_url=db_url,
        storage_url=str(tmp_path / "store"),
        lease_seconds=2,
        heartbeat_seconds=0.2,
        poll_seconds=0.05,
        retry_backoff_seconds=0.2,
        max_attempts=3,
        workers=1,
    )


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[Database]:
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
    """A tiny production: 480p, 24 fps, quick_social, no music, a ~5 s script."""
    base: dict[str, Any] = {
        "script": SCRIPT,
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
