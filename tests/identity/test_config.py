"""Fail-closed settings, and the upgrade path for logins made before 0002_identity."""

from __future__ import annotations

import asyncio
import os
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError
from sqlalchemy import select, text

from aiprod.db import migrate
from aiprod.db.engine import Database
from aiprod.identity import tokens
from aiprod.identity.audit import AuditContext
from aiprod.identity.models import AuthSession
from aiprod.identity.service import IdentityService
from aiprod.settings import Settings
from tests.jobs.conftest import db_url, pg_database  # noqa: F401  (fixtures)


@pytest.mark.parametrize(
    "changes",
    [
        {"secret_key": "too-short"},
        {"api_key_secret": "x" * 31},
        {"previous_secret_keys": ["y" * 40, "short"]},
        {"api_key_grace_seconds": -1},
        {"login_account_free_failures": 0},
    ],
    ids=["signing-key", "api-key-secret", "previous-key", "grace", "free-failures"],
)
def test_weak_settings_refuse_to_load(changes: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        Settings(_env_file=None, **changes)  # type: ignore[arg-type]


def test_secret_files_must_be_private(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, data_dir=tmp_path)
    key = tokens.signing_key(settings)
    assert len(key) >= 32
    path = tmp_path / "secret.key"
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    os.chmod(path, 0o644)
    with pytest.raises(tokens.InsecureConfiguration, match="readable by others"):
        tokens.signing_key(settings)


def test_key_ids_are_stable_and_distinct() -> None:
    a, b = "a" * 40, "b" * 40
    assert tokens.signing_key_id(a) == tokens.signing_key_id(a) != tokens.signing_key_id(b)
    assert a not in tokens.signing_key_id(a)


def test_existing_refresh_tokens_become_sessions(db_url: str, tmp_path: Path) -> None:  # noqa: F811
    """A login made before the upgrade keeps working: its refresh-token family
    becomes a session, and revoked families stay revoked."""
    migrate.downgrade(db_url, "0001")
    user_id, live, dead = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    refresh = tokens.new_refresh_token()
    now = datetime.now(UTC)

    async def seed() -> None:
        db = Database(db_url)
        try:
            async with db.transaction() as s:
                await s.execute(
                    text(
                        "INSERT INTO users (id, email, password_hash, role, is_active, "
                        "created_at, updated_at) VALUES (:id, 'old@example.com', NULL, 'user', "
                        ":t, :now, :now)"
                    ),
                    {"id": _uuid(db_url, user_id), "t": True, "now": _ts(db_url, now)},
                )
                for family, digest, revoked in (
                    (live, tokens.token_hash(refresh), None),
                    (dead, "0" * 64, _ts(db_url, now)),
                ):
                    await s.execute(
                        text(
                            "INSERT INTO refresh_tokens (id, user_id, family_id, token_hash, "
                            "created_at, expires_at, used_at, revoked_at) VALUES "
                            "(:id, :u, :f, :h, :c, :e, NULL, :r)"
                        ),
                        {
                            "id": _uuid(db_url, uuid.uuid4()),
                            "u": _uuid(db_url, user_id),
                            "f": _uuid(db_url, family),
                            "h": digest,
                            "c": _ts(db_url, now),
                            "e": _ts(db_url, now + timedelta(days=7)),
                            "r": revoked,
                        },
                    )
        finally:
            await db.dispose()

    asyncio.run(seed())
    migrate.upgrade(db_url)

    async def check() -> None:
        db = Database(db_url)
        settings = Settings(
            _env_file=None, data_dir=tmp_path, database_url=db_url, secret_key="k" * 40
        )
        try:
            async with db.session() as s:
                sessions = {x.id: x for x in (await s.execute(select(AuthSession))).scalars()}
            assert set(sessions) == {live, dead}
            assert sessions[live].revoked_at is None and sessions[live].user_id == user_id
            assert sessions[dead].revoked_reason == "migrated"
            pair = await IdentityService(db, settings).sessions.refresh(refresh, AuditContext())
            assert pair.session_id == live
        finally:
            await db.dispose()

    asyncio.run(check())


def _uuid(url: str, value: uuid.UUID) -> object:
    return value.hex if url.startswith("sqlite") else value


def _ts(url: str, value: datetime) -> object:
    return value.replace(tzinfo=None).isoformat(sep=" ") if url.startswith("sqlite") else value
