"""Migrations and the operator commands that manage the database, on SQLite and
PostgreSQL.

The schema the migrations build must be exactly the one the models declare
(Alembic's own comparison finds no difference); the migrations must go down
and up again cleanly; and the CLI commands that wrap them (`aiprod db`,
`aiprod users create`) must work and fail with clear messages.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, select
from sqlalchemy.engine import Connection
from typer.testing import CliRunner

import aiprod.identity.models
import aiprod.jobs.models  # noqa: F401  (register the tables on Base.metadata)
from aiprod.cli import app
from aiprod.db import migrate
from aiprod.db.base import Base, declared
from aiprod.db.engine import Database, make_engine
from aiprod.identity import passwords
from aiprod.identity.models import User
from tests.jobs.conftest import PASSWORD, db_url, pg_database  # noqa: F401  (fixtures)

TABLES = {
    "users",
    "refresh_tokens",
    "jobs",
    "job_events",
    "checkpoints",
    "workers",
    "auth_sessions",
    "api_keys",
    "external_identities",
    "login_throttle",
    "audit_events",
}
# Parallel branches (identity, events, …) each add a head off "0001" until the
# lead merges them; the database must be at all of them.
HEADS = frozenset(ScriptDirectory.from_config(migrate.alembic_config("sqlite://")).get_heads())


def _schema(url: str) -> tuple[set[str], list[Any], frozenset[str] | None]:
    """(tables, differences from the models, current heads; None: unversioned)."""

    def read(conn: Connection) -> tuple[set[str], list[Any], frozenset[str] | None]:
        ctx = MigrationContext.configure(
            conn, opts={"compare_type": True, "include_object": declared}
        )
        tables = set(inspect(conn).get_table_names())
        diffs = compare_metadata(ctx, Base.metadata) if tables >= TABLES else []
        heads = frozenset(ctx.get_current_heads())
        return tables, diffs, heads or None

    async def run() -> tuple[set[str], list[Any], frozenset[str] | None]:
        engine = make_engine(url)
        try:
            async with engine.connect() as conn:
                return await conn.run_sync(read)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def test_head_matches_the_models(db_url: str) -> None:  # noqa: F811
    tables, diffs, revision = _schema(db_url)
    assert tables >= TABLES
    assert diffs == []
    assert revision == HEADS
    assert len(HEADS) == 1  # branches are merged before they land


def test_migrations_go_down_and_up_again(db_url: str) -> None:  # noqa: F811
    migrate.downgrade(db_url, "base")
    tables, _, revision = _schema(db_url)
    assert not (TABLES & tables)
    assert revision is None
    migrate.upgrade(db_url)
    tables, diffs, revision = _schema(db_url)
    assert tables >= TABLES and diffs == [] and revision == HEADS
    migrate.upgrade(db_url)  # already at head: nothing to do, no error
    assert _schema(db_url)[2] == HEADS


# ----------------------------------------------------------------------- CLI


@pytest.fixture
def cli_env(db_url: str, tmp_path: Path) -> dict[str, str | None]:  # noqa: F811
    """The commands' environment: this test's database and data folder, and no
    AIPROD_* setting inherited from the shell (None unsets a variable)."""
    env: dict[str, str | None] = {k: None for k in os.environ if k.startswith("AIPROD_")}
    env.update(AIPROD_DATABASE_URL=db_url, AIPROD_DATA_DIR=str(tmp_path / "data"))
    return env


def invoke(env: dict[str, str | None], *args: str, stdin: str | None = None) -> Any:
    return CliRunner().invoke(app, list(args), env=env, input=stdin)


def users(url: str) -> dict[str, str]:
    async def run() -> dict[str, str]:
        db = Database(url)
        try:
            async with db.session() as s:
                return {u.email: u.role for u in (await s.execute(select(User))).scalars()}
        finally:
            await db.dispose()

    return asyncio.run(run())


def test_db_commands_downgrade_and_upgrade(cli_env: dict[str, str | None], db_url: str) -> None:  # noqa: F811
    result = invoke(cli_env, "db", "downgrade", "base")
    assert result.exit_code == 0, result.output
    assert _schema(db_url)[2] is None
    result = invoke(cli_env, "db", "upgrade")
    assert result.exit_code == 0, result.output
    assert "head" in result.output
    assert _schema(db_url)[2] == HEADS
    result = invoke(cli_env, "db", "upgrade", "no-such-revision")
    assert result.exit_code != 0
    assert "no-such-revision" in result.output


def test_users_create_reads_the_password_from_stdin(
    cli_env: dict[str, str | None],
    db_url: str,  # noqa: F811
) -> None:
    result = invoke(
        cli_env,
        "users",
        "create",
        "Admin@Example.com",
        "--admin",
        "--password-stdin",
        stdin=PASSWORD + "\n",
    )
    assert result.exit_code == 0, result.output
    assert users(db_url) == {"admin@example.com": "admin"}

    async def stored_hash() -> str | None:
        db = Database(db_url)
        try:
            async with db.session() as s:
                return (await s.execute(select(User.password_hash))).scalar_one()
        finally:
            await db.dispose()

    assert passwords.verify_password(PASSWORD, asyncio.run(stored_hash()))


def test_users_create_prompts_twice(cli_env: dict[str, str | None], db_url: str) -> None:  # noqa: F811
    result = invoke(
        cli_env,
        "users",
        "create",
        "viewer@example.com",
        "--role",
        "viewer",
        stdin=f"{PASSWORD}\n{PASSWORD}\n",
    )
    assert result.exit_code == 0, result.output
    assert result.output.count("Password") >= 1 and "Repeat" in result.output
    assert users(db_url) == {"viewer@example.com": "viewer"}


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        pytest.param(["--password-stdin"], "short\n", "at least 12 characters", id="weak"),
        pytest.param(["--password-stdin"], "\n", "no password", id="empty"),
        pytest.param(["--admin", "--role", "user"], "", "contradicts", id="admin-and-role"),
        pytest.param(["--role", "root"], "", "role must be one of", id="unknown-role"),
    ],
)
def test_users_create_refuses_bad_input(
    cli_env: dict[str, str | None],
    db_url: str,  # noqa: F811
    args: list[str],
    stdin: str,
    message: str,
) -> None:
    result = invoke(cli_env, "users", "create", "someone@example.com", *args, stdin=stdin)
    assert result.exit_code != 0
    assert message in result.output
    assert users(db_url) == {}


def test_users_create_refuses_an_existing_user(
    cli_env: dict[str, str | None],
    db_url: str,  # noqa: F811
) -> None:
    args = ("users", "create", "dup@example.com", "--password-stdin")
    assert invoke(cli_env, *args, stdin=PASSWORD + "\n").exit_code == 0
    result = invoke(cli_env, *args, stdin=PASSWORD + "\n")
    assert result.exit_code != 0
    assert "already exists" in result.output
    assert users(db_url) == {"dup@example.com": "user"}


def test_users_create_refuses_a_non_email(cli_env: dict[str, str | None]) -> None:
    result = invoke(cli_env, "users", "create", "not-an-email", "--password-stdin", stdin="x\n")
    assert result.exit_code != 0
    assert "not an email address" in result.output


def test_the_history_has_one_head() -> None:
    """Parallel branches must be merged before they land (see 0003_merge)."""
    assert len(HEADS) == 1, sorted(HEADS)
