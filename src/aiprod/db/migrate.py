"""Apply or revert migrations programmatically (no alembic.ini needed)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config

from aiprod.private_files import private_sqlite


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    cfg.set_main_option("sqlalchemy.url", url)
    return cfg


def upgrade(url: str, revision: str = "heads") -> None:
    _prepare(url)
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(url), revision)


async def upgrade_async(url: str, revision: str = "heads") -> None:
    """For callers inside an event loop: Alembic's env runs its own loop."""
    await asyncio.to_thread(upgrade, url, revision)


def _prepare(url: str) -> None:
    private_sqlite(url)  # created 0600 in a 0700 folder before SQLite opens it
