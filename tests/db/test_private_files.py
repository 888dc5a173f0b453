"""The data folder, the SQLite database and the artifact store are created
private (0700 folders, 0600 database files) whatever the umask, and ones an
older version left open to other users are tightened."""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from aiprod.api.app import create_app
from aiprod.db import migrate
from aiprod.settings import Settings
from aiprod.storage.store import Storage


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(autouse=True)
def permissive_umask() -> Iterator[None]:
    """The usual default umask (022): files would be world-readable."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def test_a_new_sqlite_database_is_private(tmp_path: Path) -> None:
    db = tmp_path / "data" / "nested" / "aiprod.db"
    migrate.upgrade(f"sqlite+aiosqlite:///{db}")
    assert mode(db) == 0o600
    assert mode(db.parent) == 0o700 and mode(db.parent.parent) == 0o700
    with sqlite3.connect(db) as conn:  # WAL mode: the companions appear on write
        conn.execute("CREATE TABLE probe (x)")
        assert mode(db.with_name("aiprod.db-wal")) == 0o600
        assert mode(db.with_name("aiprod.db-shm")) == 0o600


def test_an_open_database_and_folder_are_tightened(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    folder.mkdir(mode=0o755)
    db = folder / "aiprod.db"
    db.touch(mode=0o644)
    os.chmod(folder, 0o755)
    os.chmod(db, 0o644)
    migrate.upgrade(f"sqlite+aiosqlite:///{db}")
    assert mode(db) == 0o600 and mode(folder) == 0o700


def test_the_local_artifact_store_is_private(tmp_path: Path) -> None:
    Storage(str(tmp_path / "store" / "artifacts"))
    assert mode(tmp_path / "store" / "artifacts") == 0o700
    assert mode(tmp_path / "store") == 0o700


async def test_the_app_makes_its_data_folder_private(tmp_path: Path) -> None:
    data = tmp_path / "data"
    app = create_app(Settings(_env_file=None, data_dir=data, workers=0), embedded_worker=False)
    async with app.router.lifespan_context(app):
        pass
    assert mode(data) == 0o700
    assert {p.name: mode(p) for p in data.iterdir() if p.is_file() and "aiprod.db" in p.name}[
        "aiprod.db"
    ] == 0o600
    assert all(mode(p) & 0o077 == 0 for p in data.rglob("*")), {
        str(p.relative_to(data)): oct(mode(p)) for p in data.rglob("*")
    }


def test_a_database_in_a_shared_sticky_folder_leaves_the_folder_alone(tmp_path: Path) -> None:
    """`sqlite:////tmp/x.db` must not close /tmp to every other user: a sticky
    (shared) folder keeps its mode, the database file itself is private."""
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)
    url = f"sqlite+aiosqlite:///{shared / 'aiprod.db'}"
    migrate.upgrade(url)
    assert mode(shared) == 0o1777
    assert mode(shared / "aiprod.db") == 0o600
