"""The suite's shared fixtures, once for every domain.

* Services: ``unavailable`` is the one rule for a missing service: the test is
  skipped, except under ``CI=true``, where it fails (CI must not lose a half).
* PostgreSQL: one throwaway database per test process (``pg_database``), named
  for the xdist worker plus a random token, so parallel workers and other runs
  sharing the server never see each other's rows; migrated once, emptied
  (TRUNCATE) between tests, dropped at the end.  ``AIPROD_TEST_PG_URL`` (or the
  older ``TEST_PG_DSN``) says where the admin database is.
* SQLite: a database migrated once per process and copied for each test.
* ``database_url`` / ``db_url``: an empty database at the head revision, once on
  SQLite and once on PostgreSQL.  ``redis_url``: the shared Redis (tests use
  their own channel).  ``free_port`` for servers started by tests.
* Rate limits far above what a test does and no quotas (``AIPROD_RATE_LIMITS``,
  ``AIPROD_QUOTAS``, inherited by the servers tests start); the tests of
  limits and quotas set their own.
* Passwords are hashed with minimal Argon2 parameters in every test: hashing at
  production cost (~0.3 s) adds minutes over the suite and proves nothing the
  password tests do not prove with the cheap hasher (same code, same format).
* ``settings`` (a data folder of the test's own) and ``base_settings`` (what the
  app fixtures of each domain start from).
* ``aiprod serve`` started by a test runs one API process (``AIPROD_PROCESSES
  =1``) unless the test asks for more.
* Renders narrate the default voice with eSpeak NG (``AIPROD_NEURAL_NARRATION
  =false``, inherited by the servers tests start): the neural model costs ~1 s
  of CPU to load per job, which over the suite's renders is a minute of a
  2-core machine, and proves nothing its own tests (tests/production/
  test_neural.py, which name the neural voice) do not.

Under pytest-xdist (``make test`` runs ``-n``): every name above is per worker
(databases, ports, ``tmp_path``, event channels); the modules listed in
``ONE_WORKER_MODULES`` (module-scoped servers and renders) run
in one worker.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import socket
from pathlib import Path
from typing import Any, NoReturn

import pytest
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher
from sqlalchemy.engine import make_url

from aiprod.db import migrate
from aiprod.identity import passwords
from aiprod.settings import Settings

os.environ.setdefault("AIPROD_NEURAL_NARRATION", "false")
# One API process per `aiprod serve` a test starts (the default is one per
# core): the tests of several processes (tests/e2e/test_processes.py) ask.
os.environ.setdefault("AIPROD_PROCESSES", "1")
# The suite makes many calls quickly from one address, and its users submit
# many productions: rate limits stay on (every app runs the middleware) but
# far above what a test does; quotas are lifted.  Servers tests start inherit
# both.  Tests of the limits and quotas themselves pass tight ones explicitly.
_LIMITLESS = {"running": None, "per_day": None, "storage_bytes": None, "spend_month_usd": None}
os.environ.setdefault(
    "AIPROD_RATE_LIMITS",
    json.dumps(dict.fromkeys(("auth", "writes", "reads", "exports", "streams"), "100000/minute")),
)
os.environ.setdefault(
    "AIPROD_QUOTAS", json.dumps(dict.fromkeys(("admin", "user", "service", "viewer"), _LIMITLESS))
)

PG_ADMIN_URL = (
    os.environ.get("AIPROD_TEST_PG_URL")
    or os.environ.get("TEST_PG_DSN")
    or "postgresql://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("AIPROD_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
SECRET_KEY = "test-signing-key-" + "x" * 32
WORKER_ID = os.environ.get("PYTEST_XDIST_WORKER", "main")

# Rich sizes CLI tables to the terminal, which xdist workers do not have (80
# columns then); one width everywhere keeps the CLI tests' output the same.
os.environ.setdefault("COLUMNS", "120")

# Modules whose tests must run in one worker (``make test`` runs xdist with
# ``--dist loadgroup``; see `pytest_xdist_make_scheduler`), and why.
ONE_WORKER_MODULES = {
    "tests/events/test_cluster.py": "a module-scoped cluster of API and worker processes",
    "tests/storage/test_store.py": "a module-scoped S3 (moto) server",
    "tests/production/test_pipeline.py": "a module-scoped production, rendered once",
    "tests/production/test_montage.py": "module-scoped clips and montages",
    "tests/production/test_narrate.py": "module-scoped narrations",
    "tests/production/test_music.py": "renders cached per process (functools.cache)",
    "tests/e2e/browser/test_studio.py": "a module-scoped server, browser and renders",
    "tests/e2e/test_processes.py": "servers of several processes each",
}  # a new module-scoped fixture that is costly to make belongs here too


# ------------------------------------------------------------------ services


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def unavailable(message: str) -> NoReturn:
    """A service the test needs is missing: skip, or fail under ``CI=true``."""
    if in_ci():
        pytest.fail(f"{message}; CI=true requires these tests", pytrace=False)
    pytest.skip(message)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``--dist loadgroup`` that also keeps each of `ONE_WORKER_MODULES` on one
    worker.  (pytest 9.2 ignores the node-id suffix through which xdist 3.8
    passes ``xdist_group`` marks, pytest-xdist#1386, so the marks alone do not
    group; the module list works on either.)"""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadGroupScheduling

    class Scheduling(LoadGroupScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            if module in ONE_WORKER_MODULES:
                return module
            return str(super()._split_scope(nodeid))

    return Scheduling(config, log)


# ----------------------------------------------------------------- passwords

_CHEAP_HASHER = PasswordHash((Argon2Hasher(time_cost=1, memory_cost=1024, parallelism=1),))


@pytest.fixture(autouse=True)
def _cheap_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(passwords, "_hasher", _CHEAP_HASHER)


# ---------------------------------------------------------------- PostgreSQL


def _asyncpg_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def _pg_admin(sql: str) -> None:
    import asyncpg

    conn = await asyncio.wait_for(asyncpg.connect(PG_ADMIN_URL), timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


class _WorkerDatabase:
    """This process's PostgreSQL database, made on first use (so that fixtures
    imported into several modules still share it) and dropped at session end."""

    url: str | None = None
    name: str | None = None
    problem: str | None = None

    @classmethod
    def get(cls) -> str:
        if cls.url is not None:
            return cls.url
        if cls.problem is None:
            name = f"aiprod_test_{WORKER_ID}_{secrets.token_hex(4)}"
            try:
                asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
            except Exception as exc:  # no driver, no server, no permission: all the same
                cls.problem = f"PostgreSQL at {PG_ADMIN_URL} is unreachable: "
                cls.problem += f"{type(exc).__name__}: {exc}"
            else:
                cls.name = name
                url = make_url(PG_ADMIN_URL).set(drivername="postgresql+asyncpg", database=name)
                cls.url = url.render_as_string(hide_password=False)
                return cls.url
        unavailable(cls.problem)

    @classmethod
    def drop(cls) -> None:
        if cls.name is not None:
            asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{cls.name}" WITH (FORCE)'))
            cls.name = cls.url = None


def pytest_sessionfinish(session: pytest.Session) -> None:
    _WorkerDatabase.drop()


@pytest.fixture(scope="session")
def pg_database() -> str:
    """This worker's PostgreSQL database (SQLAlchemy URL); its state is whatever
    the last test left: use ``database_url`` for an empty one."""
    return _WorkerDatabase.get()


_HEADS: set[str] = set()


def _heads() -> set[str]:
    if not _HEADS:
        from alembic.script import ScriptDirectory

        _HEADS.update(ScriptDirectory.from_config(migrate.alembic_config("")).get_heads())
    return _HEADS


async def empty_postgres(url: str, *, end_connections: bool = False) -> None:
    """Make the database empty at head: TRUNCATE every table when the schema is
    at head (it is after the first test), else rebuild the schema and migrate
    (a migration test may have left it anywhere).  `end_connections` first ends
    connections a previous test leaked (a killed worker's, say), which could
    hold locks."""
    import asyncpg

    conn = await asyncio.wait_for(asyncpg.connect(_asyncpg_dsn(url)), timeout=10)
    try:
        if end_connections:
            await conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        revisions: set[str] = set()
        if await conn.fetchval("SELECT to_regclass('public.alembic_version')") is not None:
            revisions = {r[0] for r in await conn.fetch("SELECT version_num FROM alembic_version")}
        if revisions == _heads():
            await _delete_all_rows(conn)
            return
        await conn.execute("DROP SCHEMA public CASCADE")
        await conn.execute("CREATE SCHEMA public")
    finally:
        await conn.close()
    await migrate.upgrade_async(url)


async def _delete_all_rows(conn: Any) -> None:
    """Every table emptied, every sequence back at 1.  DELETE with triggers
    (foreign keys included) off for the transaction costs under a millisecond
    on a test's few rows; TRUNCATE, ~50 ms a time (it makes new files)."""
    tables = [
        r[0]
        for r in await conn.fetch(
            "SELECT tablename FROM pg_tables "
            "WHERE schemaname = 'public' AND tablename <> 'alembic_version'"
        )
    ]
    sequences = [
        r[0]
        for r in await conn.fetch(
            "SELECT sequencename FROM pg_sequences WHERE schemaname = 'public'"
        )
    ]
    async with conn.transaction():
        await conn.execute("SET LOCAL session_replication_role = replica")
        for table in tables:
            await conn.execute(f'DELETE FROM "{table}"')
        for sequence in sequences:
            await conn.execute(f'ALTER SEQUENCE "{sequence}" RESTART')


def reset_postgres(url: str) -> None:
    """`empty_postgres` for synchronous callers, ending leaked connections."""
    asyncio.run(empty_postgres(url, end_connections=True))


# -------------------------------------------------------------------- SQLite


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite database migrated to head once per worker, for copying."""
    path = tmp_path_factory.mktemp("sqlite-template") / "aiprod.db"
    migrate.upgrade(f"sqlite+aiosqlite:///{path}")
    return path


def copy_sqlite(template: Path, path: Path) -> str:
    """A copy of `template` at `path` (mode included); its SQLAlchemy URL."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal"):
        source = template.with_name(template.name + suffix)
        if source.exists():
            shutil.copy(source, path.with_name(path.name + suffix))
    return f"sqlite+aiosqlite:///{path}"


# ----------------------------------------------------------------- databases


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty database at the head revision, on each backend."""
    if request.param == "sqlite":
        return copy_sqlite(request.getfixturevalue("sqlite_template"), tmp_path / "aiprod.db")
    url: str = request.getfixturevalue("pg_database")
    reset_postgres(url)
    return url


@pytest.fixture
def db_url(database_url: str) -> str:
    """The same as ``database_url`` (the name the job and migration tests use)."""
    return database_url


# --------------------------------------------------------------------- Redis


def redis_ping(url: str) -> str | None:
    """None when Redis answers at `url`, else what went wrong."""
    import redis

    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
        client.ping()
        client.close()
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


@pytest.fixture(scope="session")
def redis_url() -> str:
    problem = redis_ping(REDIS_URL)
    if problem is not None:
        unavailable(f"Redis at {REDIS_URL} is unreachable ({problem})")
    return REDIS_URL


# ------------------------------------------------------------------ settings


def base_settings(tmp_path: Path, database_url: str, **changes: Any) -> Settings:
    """Settings with no .env file, the test's own data folder and database, a
    fixed signing key and no embedded worker; `changes` on top."""
    base: dict[str, Any] = {
        "data_dir": tmp_path / "data",
        "database_url": database_url,
        "secret_key": SECRET_KEY,
        "workers": 0,
    }
    base.update(changes)
    return Settings(_env_file=None, **base)  # type: ignore[call-arg]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """An isolated data folder (stage cache) per test."""
    return Settings(data_dir=tmp_path / "data")
