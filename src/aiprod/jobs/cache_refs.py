"""Which stage-cache entries each production used, so that deleting one removes
the entries no other production uses.

The stage cache (:mod:`aiprod.production.cache`) is shared and content-addressed:
two productions asking for the same narration of the same words share one
entry, and entries expire by TTL.  The engine knows nothing of jobs, so the
worker hands the pipeline a :class:`JobCache`, which marks every entry the job
reads or writes with two empty files:

* ``<entry>/.used-by/<job id>`` — who uses the entry (the reverse index), and
* ``refs/<job id>/<key>`` — what the job used (the forward index),

and :func:`release` (run when a production is deleted) removes the job's marks
and every entry whose ``.used-by`` is then empty.  Entries made before this
existed carry no marks and are left to their TTL, like the entries of other
hosts' caches (each host's cache is a folder of its own).

Marking and releasing take a lock on ``<root>/.refs.lock`` (shared to mark,
exclusive to release), so an entry is either seen as used by a job that
is about to read it, or is gone before that job's lookup (a miss: the stage
is made again).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from aiprod.production.cache import StageCache

USED_BY = ".used-by"
REFS = "refs"
LOCK = ".refs.lock"


@contextlib.contextmanager
def _locked(root: Path, exclusive: bool) -> Iterator[None]:
    root.mkdir(parents=True, exist_ok=True)
    fd = os.open(root / LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)  # closing drops the lock


class JobCache(StageCache):
    """The stage cache as one job sees it: every entry it touches is marked."""

    def __init__(self, root: Path, ttl_hours: float, job_id: uuid.UUID) -> None:
        super().__init__(root, ttl_hours)
        self.job = str(job_id)

    def get(self, key: str) -> Path | None:
        with _locked(self.root, exclusive=False):
            entry = super().get(key)
            if entry is None:
                return None
            try:
                self._mark(entry, key)
            except FileNotFoundError:
                return None  # removed under our feet (TTL by another reader): a miss
            return entry

    def put(
        self,
        key: str,
        files: Sequence[Path],
        info: Mapping[str, Any] | None = None,
        names: Sequence[str] | None = None,
    ) -> Path:
        with _locked(self.root, exclusive=False):
            entry = super().put(key, files, info, names)
            self._mark(entry, key)
            return entry

    def _mark(self, entry: Path, key: str) -> None:
        users = entry / USED_BY
        users.mkdir(exist_ok=True)  # never parents: a vanished entry stays vanished
        (users / self.job).touch()
        refs = self.root / REFS / self.job
        refs.mkdir(parents=True, exist_ok=True)
        (refs / key).touch()


def entries_used_by(root: Path, job_id: uuid.UUID) -> list[str]:
    """The cache keys a job's marks name (sorted)."""
    refs = root / REFS / str(job_id)
    try:
        return sorted(p.name for p in refs.iterdir())
    except FileNotFoundError:
        return []


def release(root: Path, job_id: uuid.UUID) -> int:
    """Forget that `job_id` used its entries; remove those no other job uses.
    Returns how many entries were removed.  Idempotent (a deletion that a crash
    interrupted is finished by running it again)."""
    job = str(job_id)
    if not (root / REFS / job).exists():
        return 0
    removed = 0
    with _locked(root, exclusive=True):
        for key in entries_used_by(root, job_id):
            if len(key) < 2 or "/" in key or key.startswith("."):
                continue
            entry = root / key[:2] / key
            users = entry / USED_BY
            (users / job).unlink(missing_ok=True)
            try:
                still_used = any(users.iterdir())
            except FileNotFoundError:
                continue  # expired and pruned already
            if not still_used:
                # Renamed first: nobody can find a half-deleted entry.
                doomed = root / "tmp" / f"{key}.released.{uuid.uuid4().hex}"
                doomed.parent.mkdir(parents=True, exist_ok=True)
                try:
                    entry.rename(doomed)
                except FileNotFoundError:
                    continue
                shutil.rmtree(doomed, ignore_errors=True)
                removed += 1
        shutil.rmtree(root / REFS / job, ignore_errors=True)
    return removed


__all__ = ["JobCache", "entries_used_by", "release"]
