"""A production's files: which may be served, where they are stored, their type.

The rules live here rather than in the routes so that every reader of a job's
files (the download route, the listing, exports) applies the same ones:

* Only files recorded by the job's checkpoints exist for the API; a later
  stage's entry replaces an earlier one of the same name (a re-render's
  montage writes a new ``video.mp4``).
* A row is served only when its name is a plain relative name and its key is
  exactly ``jobs/<job id>/<name>``: the API never reads a key that a database
  row merely names, so a forged or corrupted checkpoint cannot reach another
  job's files or leave the job's folder.
"""

from __future__ import annotations

import logging
import posixpath
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from aiprod import errors, http_ranges
from aiprod.errors import NotFound
from aiprod.jobs.models import Job
from aiprod.jobs.service import JobService
from aiprod.storage.store import ArtifactNotFound, Storage

log = logging.getLogger("aiprod.jobs.artifacts")

CONTENT_TYPES: dict[str, str] = {
    ".mp4": "video/mp4",
    ".srt": "application/x-subrip",
    ".vtt": "text/vtt; charset=utf-8",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".json": "application/json",
    ".wav": "audio/wav",
    ".txt": "text/plain; charset=utf-8",
}

_UNSAFE_FILENAME = re.compile(r"[^A-Za-z0-9._-]")


def artifact_key(job_id: uuid.UUID, name: str) -> str:
    """Where an output file of a job lives in storage (workers write it there)."""
    return f"jobs/{job_id}/{name}"


def content_type(name: str) -> str:
    return CONTENT_TYPES.get(posixpath.splitext(name)[1].lower(), "application/octet-stream")


def safe_artifact_name(name: str) -> bool:
    """A relative name with no empty, '.' or '..' segment: never a way out of
    the job's folder, whatever a checkpoint row says."""
    if not name or name.startswith("/") or "\\" in name or "\x00" in name:
        return False
    return all(part not in ("", ".", "..") for part in name.split("/"))


def download_filename(name: str) -> str:
    """The file name to suggest for a download (`Content-Disposition`): the last
    segment, reduced to characters that need no quoting."""
    return _UNSAFE_FILENAME.sub("_", name.rsplit("/", 1)[-1]) or "artifact"


@dataclass(frozen=True)
class Artifact:
    """One file a job's checkpoints record and the API may serve."""

    name: str
    stage: str
    key: str
    bytes: int
    sha256: str
    crc32: int | None = None
    """Recorded by workers since exports began (None on older rows: computed when needed)."""

    @property
    def content_type(self) -> str:
        return content_type(self.name)

    @property
    def filename(self) -> str:
        return download_filename(self.name)


def _artifact(job: Job, stage: str, row: dict[str, Any]) -> Artifact | None:
    name, key = row.get("name"), row.get("key")
    if not isinstance(name, str) or not isinstance(key, str):
        return None
    if not safe_artifact_name(name) or key != artifact_key(job.id, name):
        log.warning("job %s: ignoring artifact %r with key %r", job.id, name, key)
        return None
    sha, crc = row.get("sha256"), row.get("crc32")
    return Artifact(
        name=name,
        stage=stage,
        key=key,
        bytes=int(row.get("bytes", 0)),
        sha256=sha if isinstance(sha, str) else "",
        crc32=crc if isinstance(crc, int) and 0 <= crc < 2**32 else None,
    )


class Artifacts:
    """Lists, finds and streams the files of a job (one per request: it holds
    only the services it reads through)."""

    def __init__(self, jobs: JobService, storage: Storage) -> None:
        self.jobs = jobs
        self.storage = storage

    async def index(self, job: Job) -> dict[str, Artifact]:
        """name → artifact, from the job's checkpoints in order (later wins)."""
        found: dict[str, Artifact] = {}
        for cp in await self.jobs.checkpoints(job.id):
            for row in cp.artifacts:
                art = _artifact(job, cp.stage, row)
                if art is not None:
                    found[art.name] = art
        return found

    async def listing(self, job: Job) -> list[Artifact]:
        """Every servable file of the job, by name."""
        return [a for _, a in sorted((await self.index(job)).items())]

    async def find(self, job: Job, name: str) -> Artifact:
        """The file called `name`; NotFound for any name the checkpoints do not list."""
        art = (await self.index(job)).get(name) if safe_artifact_name(name) else None
        if art is None:
            raise NotFound(f"artifact {name!r} not found for production {job.id}")
        return art

    async def size(self, job: Job, art: Artifact) -> int:
        """Its stored size; NotFound when storage lost a file the job lists."""
        try:
            return await self.storage.size(art.key)
        except ArtifactNotFound:
            log.error("job %s: artifact %s is listed but missing from storage", job.id, art.key)
            raise NotFound(f"artifact {art.name!r} is no longer stored") from None

    def stream(self, art: Artifact, start: int, end: int) -> AsyncIterator[bytes]:
        """Bytes ``[start, end)`` of the stored file."""
        return self.storage.stream(art.key, start, end)


__all__ = [
    "CONTENT_TYPES",
    "Artifact",
    "Artifacts",
    "artifact_key",
    "content_type",
    "download_filename",
    "safe_artifact_name",
]


def byte_span(range_: str | None, size: int, what: str) -> tuple[int, int, int, dict[str, str]]:
    """Status, start, end and extra headers for serving `size` bytes under an
    optional single `Range` (206 with Content-Range; the whole body otherwise).
    A range outside the body raises errors.Unsatisfiable (416, naming `what`:
    "the file", "the export")."""
    if range_ is None:
        return 200, 0, size, {}
    try:
        span = http_ranges.parse_range(range_, size)
    except http_ranges.Unsatisfiable:
        shown = range_ if len(range_) <= 60 else range_[:60] + "…"
        raise errors.Unsatisfiable(
            f"range {shown!r} is outside {what} ({size} bytes)",
            headers={"Content-Range": f"bytes */{size}", "Accept-Ranges": "bytes"},
        ) from None
    if span is None:
        return 200, 0, size, {}
    start, end = span
    return 206, start, end, {"Content-Range": f"bytes {start}-{end - 1}/{size}"}
