"""Folders and files that hold secrets are created private to this user.

The data folder holds the SQLite database (password hashes, webhook secrets,
refresh-token hashes), the signing key and every user's artifacts: 0700 for
folders and 0600 for the database file, whatever the process umask says.  A
folder or database an older version created readable by others is tightened
once, with a warning, rather than left open.  This module sits at the ground
(it imports nothing of AIPROD) because the database, the artifact store and
the API all create such paths.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
from pathlib import Path

log = logging.getLogger("aiprod.files")

DIR_MODE = 0o700
FILE_MODE = 0o600


def _tighten(path: Path, mode: int) -> None:
    info = path.stat()
    current = stat.S_IMODE(info.st_mode)
    if path.is_dir() and (current & stat.S_ISVTX or info.st_uid != os.geteuid()):
        # A shared folder (/tmp, sticky) or someone else's holds the file; it
        # is not ours to close: the file itself is made private instead.
        return
    if current & 0o077:
        os.chmod(path, current & ~0o077 | (mode & 0o700))
        log.warning("%s was accessible to other users (mode %o); now %o", path, current, mode)


def private_dir(path: Path) -> Path:
    """Create `path` (and missing parents) with mode 0700; tighten it if it exists
    and is this user's own (a sticky shared folder such as /tmp is left as it is)."""
    missing = []
    p = path
    while not p.exists():
        missing.append(p)
        p = p.parent
    for folder in reversed(missing):
        with contextlib.suppress(FileExistsError):  # another process made it just now
            folder.mkdir(mode=DIR_MODE)
        os.chmod(folder, DIR_MODE)  # mkdir's mode is filtered by the umask
    _tighten(path, DIR_MODE)
    return path


def private_file(path: Path) -> Path:
    """Make sure `path` exists with mode 0600 (created empty if missing)."""
    private_dir(path.parent)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        _tighten(path, FILE_MODE)
    else:
        os.close(fd)
    return path


def sqlite_path(url: str) -> Path | None:
    """The database file of a SQLite URL; None for other databases or memory."""
    if not url.startswith("sqlite"):
        return None
    path = url.split(":///", 1)[-1].split("?", 1)[0]
    return None if not path or path == ":memory:" else Path(path)


def private_sqlite(url: str) -> None:
    """The database file and its WAL/shared-memory companions, private.

    SQLite gives the ``-wal`` and ``-shm`` files the main file's mode, so a
    private main file keeps them private too; existing ones are tightened."""
    path = sqlite_path(url)
    if path is None:
        return
    private_file(path)
    for suffix in ("-wal", "-shm", "-journal"):
        companion = path.with_name(path.name + suffix)
        if companion.exists():
            _tighten(companion, FILE_MODE)
