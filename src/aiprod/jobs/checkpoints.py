"""A worker's stage checkpoints: the files of a finished stage go to storage,
then a checkpoint row records them; a later worker brings them back.

Apart from the worker's run loop because it is the part a crash tests: what
survives a dead worker is exactly what :meth:`CheckpointFiles.save` recorded,
and :meth:`CheckpointFiles.restore` trusts only files that are still stored
and still match their recorded SHA-256.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import uuid
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from aiprod.jobs.artifacts import artifact_key
from aiprod.jobs.service import JobService
from aiprod.jobs.uploads.fetch import strip_local_paths
from aiprod.production.cache import file_digest
from aiprod.production.models import STAGES
from aiprod.storage.store import ArtifactNotFound, Storage

log = logging.getLogger("aiprod.worker")

TRANSFER_CONCURRENCY = 8
"""Uploads or downloads in flight per job (object stores reward parallelism)."""

STORYBOARD_STAGES = frozenset({"plan", "narrate"})
STORYBOARD = "storyboard.json"
"""Exempt from the hash check on restore: the job row's storyboard is the
authority, which the worker hands the pipeline and which it writes over this
file (an edit wins).  After a re-render the stored file is the narrate stage's
fitted version while only the plan's checkpoint (with the plan's hash) is kept."""
"""Stages after which storyboard.json is the production's current plan: it is
copied into the job row so that edits and re-renders work from the database."""


def _safe_name(name: str) -> bool:
    """Checkpoint names come from the database; never let one point outside the
    scratch folder."""
    p = PurePosixPath(name)
    return bool(name) and not p.is_absolute() and ".." not in p.parts and "\\" not in name


def _digest_and_size(path: Path) -> tuple[str, int, int]:
    """SHA-256, size and CRC-32 in one read: the CRC lets an export write the
    file into a ZIP (whose headers need it up front) without reading it twice."""
    sha, crc, size = hashlib.sha256(), 0, 0
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            sha.update(chunk)
            crc = zlib.crc32(chunk, crc)
            size += len(chunk)
    return sha.hexdigest(), size, crc


@dataclass
class Restored:
    """What :meth:`CheckpointFiles.restore` brought back."""

    stages: set[str]
    """Every stage with a checkpoint row (done or not)."""
    done: list[str] = field(default_factory=list)
    """The unbroken run of stages from the start whose files are all back."""
    artifacts: dict[str, dict[str, Any]] = field(default_factory=dict)
    """name → checkpoint entry, of the files of the `done` stages."""
    stage_names: dict[str, list[str]] = field(default_factory=dict)
    """stage → names of its files, for the `done` stages."""


class CheckpointFiles:
    """Moves one worker's checkpointed files between scratch folders and storage."""

    def __init__(self, service: JobService, storage: Storage, worker_id: str) -> None:
        self.service = service
        self.storage = storage
        self.worker_id = worker_id

    async def save(
        self, job_id: uuid.UUID, outdir: Path, stage: str, files: Sequence[Path]
    ) -> list[dict[str, Any]]:
        """Upload a finished stage's `files` (relative to `outdir`), then record
        its checkpoint (with the storyboard when the stage made the plan).
        Returns the recorded entries.  Raises LeaseLost if the job is no longer ours."""
        limit = asyncio.Semaphore(TRANSFER_CONCURRENCY)

        async def upload(rel: Path) -> dict[str, Any]:
            name = rel.as_posix()
            path = outdir / rel
            key = artifact_key(job_id, name)
            async with limit:
                digest, size, crc = await asyncio.to_thread(_digest_and_size, path)
                await self.storage.put_file(key, path)
            return {"name": name, "key": key, "sha256": digest, "bytes": size, "crc32": crc}

        artifacts = list(await asyncio.gather(*(upload(f) for f in files)))
        storyboard = None
        if stage in STORYBOARD_STAGES:
            text = await asyncio.to_thread((outdir / "storyboard.json").read_text)
            storyboard = strip_local_paths(json.loads(text))
        await self.service.save_checkpoint(
            job_id, self.worker_id, stage, artifacts, storyboard=storyboard
        )
        return artifacts

    async def restore(self, job_id: uuid.UUID, outdir: Path, redo_from: str | None) -> Restored:
        """Download the checkpointed stages into `outdir` and write
        ``work/state.json`` for the pipeline to resume from.

        Only an unbroken run of stages from the start counts as done, and it
        ends before `redo_from`, the stage the last attempt failed in: a QA
        failure is checkpointed (its report is an output), yet a retry must
        check again rather than replay the stored verdict.  A stage
        whose stored files are missing or do not match their recorded hash is
        redone (with the stage cache that is cheap), and so is every stage after
        it; storage that cannot be reached at all is an error (retried later).
        A later stage may rewrite an earlier stage's file (narrate rewrites
        storyboard.json), so each name is fetched in its latest version.
        """
        rows = {c.stage: c.artifacts for c in await self.service.checkpoints(job_id)}
        result = Restored(stages=set(rows))
        prefix: list[str] = []
        for stage in STAGES:
            if stage not in rows or stage == redo_from:
                break
            prefix.append(stage)
        latest: dict[str, int] = {}
        for i, stage in enumerate(prefix):
            for a in rows[stage]:
                latest[str(a.get("name", ""))] = i
        limit = asyncio.Semaphore(TRANSFER_CONCURRENCY)

        async def fetch(a: dict[str, Any]) -> bool:
            name = str(a.get("name", ""))
            if not _safe_name(name):
                return False
            path = outdir / name
            async with limit:
                try:
                    await self.storage.get_to_file(str(a["key"]), path)
                except ArtifactNotFound:
                    return False
                digest = await asyncio.to_thread(file_digest, path)
            if digest != a.get("sha256") and name != STORYBOARD:
                return False
            result.artifacts[name] = a
            return True

        done = result.done
        for i, stage in enumerate(prefix):
            mine = [a for a in rows[stage] if latest.get(str(a.get("name", ""))) == i]
            if not all(await asyncio.gather(*(fetch(a) for a in mine))):
                log.warning(
                    "job %s: stored files of the %s checkpoint are missing or altered; "
                    "redoing it and the stages after it",
                    job_id,
                    stage,
                )
                break
            done.append(stage)
        # A stage whose files a broken later stage was to bring is not complete.
        while done and not all(
            _safe_name(str(a.get("name", ""))) and (outdir / str(a["name"])).is_file()
            for a in rows[done[-1]]
        ):
            done.pop()
        for name in list(result.artifacts):
            if latest.get(name, len(done)) >= len(done):
                del result.artifacts[name]
        for stage in done:
            result.stage_names[stage] = [str(a["name"]) for a in rows[stage]]
        state = outdir / "work" / "state.json"
        state.parent.mkdir(parents=True, exist_ok=True)
        await asyncio.to_thread(state.write_text, json.dumps({"done": done}))
        if done:
            log.info("job %s: resuming after %s", job_id, done[-1])
        return result


__all__ = ["STORYBOARD_STAGES", "TRANSFER_CONCURRENCY", "CheckpointFiles", "Restored"]
