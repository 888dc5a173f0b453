"""One production's export: what is gathered, and the three forms it takes.

:func:`gather` reads the job, its whole event log, its artifacts (with their
stored sizes: one LIST of the job's folder) and the provenance files
(cost.json, manifest.json).  From that:

* :func:`document` — the JSON export (:class:`~aiprod.exports.schemas.ProductionExport`);
* :func:`scene_table` / :func:`event_table` — the CSVs: one row per scene
  (timings, narration, voice, backends, costs) and one per event;
* :func:`members` — the ZIP's files: ``production.json``, ``scenes.csv``,
  ``events.csv``, every deliverable artifact (video, subtitles, poster,
  thumbnails, storyboard, QA, cost, manifest, credits; not the ``work/``
  intermediates) and ``SHA256SUMS`` listing every one of them with the hash
  recorded when it was stored, which is the manifest's hash for the files the
  manifest lists.

Scene costs are an allocation of the stages' actual costs (cost.json), which
are per stage, not per scene: narration by the scene's share of narration
characters, visuals and every other stage (plan, music, montage, qa) by its
share of the scenes' total duration.  The rows add up to ``actual_total``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from aiprod.exports.archive import Member
from aiprod.exports.schemas import (
    FORMAT,
    VERSION,
    ExportedEvent,
    ExportedFile,
    ExportedJob,
)
from aiprod.exports.writers import csv_bytes, json_bytes
from aiprod.jobs.artifacts import Artifact, Artifacts
from aiprod.jobs.models import Job, JobEvent
from aiprod.jobs.schemas import JobError, JobStatus
from aiprod.jobs.service import JobService
from aiprod.production.cost import CostEstimate
from aiprod.production.models import ProductionRequest, Storyboard
from aiprod.storage.store import ArtifactNotFound, Storage

log = logging.getLogger("aiprod.exports")

INTERMEDIATE = "work/"
MAX_PROVENANCE_BYTES = 32 << 20
"""cost.json and manifest.json are read whole; larger ones are not ours."""
EVENT_PAGE = 1000

SCENE_COLUMNS = (
    "scene",
    "kind",
    "start_seconds",
    "end_seconds",
    "duration_seconds",
    "transition",
    "transition_seconds",
    "narration",
    "visual",
    "on_screen_text",
    "voice",
    "media",
    "narrate_backend",
    "visuals_backend",
    "narrate_cost_usd",
    "visuals_cost_usd",
    "other_cost_usd",
    "total_cost_usd",
)
EVENT_COLUMNS = ("seq", "type", "created_at", "status", "stage", "progress", "payload")


@dataclass
class ProductionData:
    """What an export of one production is made from."""

    job: Job
    events: list[JobEvent]
    artifacts: list[Artifact]
    stored: dict[str, int]
    """Artifact name → size in storage, for the artifacts still stored."""
    cost: dict[str, Any] | None
    manifest: dict[str, Any] | None

    @property
    def storyboard(self) -> Storyboard | None:
        if self.job.storyboard is None:
            return None
        try:
            return Storyboard.model_validate(self.job.storyboard)
        except ValueError:
            return None

    def archived(self, art: Artifact) -> bool:
        return not art.name.startswith(INTERMEDIATE) and art.name in self.stored


async def gather(job: Job, jobs: JobService, storage: Storage) -> ProductionData:
    events: list[JobEvent] = []
    while True:
        page = await jobs.events(job.id, events[-1].seq if events else 0, EVENT_PAGE)
        events += page
        if len(page) < EVENT_PAGE:
            break
    artifacts = await Artifacts(jobs, storage).listing(job)
    sizes = {o.key: o.size for o in await storage.listing(f"jobs/{job.id}/")}
    stored = {a.name: sizes[a.key] for a in artifacts if a.key in sizes}
    by_name = {a.name: a for a in artifacts}
    return ProductionData(
        job=job,
        events=events,
        artifacts=artifacts,
        stored=stored,
        cost=await _provenance(storage, by_name.get("cost.json"), stored),
        manifest=await _provenance(storage, by_name.get("manifest.json"), stored),
    )


async def _provenance(
    storage: Storage, art: Artifact | None, stored: dict[str, int]
) -> dict[str, Any] | None:
    if art is None or stored.get(art.name, MAX_PROVENANCE_BYTES + 1) > MAX_PROVENANCE_BYTES:
        return None
    try:
        data = json.loads(await storage.get_bytes(art.key))
    except (ArtifactNotFound, ValueError):
        log.warning("%s: unreadable, left out of the export", art.key)
        return None
    return data if isinstance(data, dict) else None


# ------------------------------------------------------------------ JSON


def document(data: ProductionData) -> dict[str, Any]:
    """The JSON export, ready for :func:`~aiprod.exports.writers.json_bytes`."""
    job = data.job
    exported_job = ExportedJob(
        id=job.id,
        owner_id=job.owner_id,
        status=cast(JobStatus, job.status),  # one of them, by the state machine
        stage=job.stage,
        progress=job.progress,
        title=job.title,
        fast_track=job.fast_track,
        review=job.review,
        approved=job.approved,
        attempts=job.attempts,
        failed_stage=job.failed_stage,
        error=JobError.model_validate(job.error) if job.error else None,
        estimate=CostEstimate.model_validate(job.estimate),
        created_at=job.created_at,
        updated_at=job.updated_at,
        completed_at=job.completed_at,
    )
    files = [
        ExportedFile(
            name=a.name,
            stage=a.stage,
            bytes=a.bytes,
            sha256=a.sha256,
            content_type=a.content_type,
            archived_as=a.name if data.archived(a) else None,
        ).model_dump(mode="json")
        for a in data.artifacts
    ]
    return {
        "format": FORMAT,
        "version": VERSION,
        "as_of": exported_job.model_dump(mode="json")["updated_at"],
        "job": exported_job.model_dump(mode="json"),
        "request": job.request,
        "storyboard": job.storyboard,
        "qa": job.qa,
        "cost": data.cost,
        "manifest": data.manifest,
        "events": [
            ExportedEvent(
                seq=e.seq, type=e.type, created_at=e.created_at, payload=e.payload
            ).model_dump(mode="json")
            for e in data.events
        ],
        "files": files,
    }


# ------------------------------------------------------------------ CSV


def _stage_backends(data: ProductionData) -> dict[str, str]:
    found: dict[str, str] = {}
    try:
        for s in CostEstimate.model_validate(data.job.estimate).stages:
            found[s.stage] = s.backend
    except ValueError:
        pass
    for row in (data.cost or {}).get("actual", []):
        if isinstance(row, dict) and isinstance(row.get("backend"), str):
            found[str(row.get("stage"))] = row["backend"]
    return found


def _stage_costs(data: ProductionData) -> dict[str, float] | None:
    if data.cost is None:
        return None
    costs: dict[str, float] = {}
    for row in data.cost.get("actual", []):
        if isinstance(row, dict) and isinstance(row.get("cost"), int | float):
            stage = str(row.get("stage"))
            costs[stage] = costs.get(stage, 0.0) + float(row["cost"])
    return costs


def _share(part: float, whole: float, count: int) -> float:
    return part / whole if whole > 0 else 1.0 / count


def scene_table(data: ProductionData) -> tuple[tuple[str, ...], list[list[Any]]]:
    """One row per scene of the current storyboard (none before planning)."""
    sb = data.storyboard
    if sb is None:
        return SCENE_COLUMNS, []
    try:
        request_voice = ProductionRequest.model_validate(data.job.request).voice.name
    except ValueError:
        request_voice = ""
    backends = _stage_backends(data)
    costs = _stage_costs(data)
    chars = sum(len(s.narration) for s in sb.scenes)
    seconds = sum(s.duration for s in sb.scenes)
    n = len(sb.scenes)
    rows: list[list[Any]] = []
    for scene, start in zip(sb.scenes, sb.starts(), strict=True):
        media = scene.media
        source = ""
        if media is not None:
            source = f"upload:{media.media_id}" if media.media_id else Path(str(media.file)).name
        if costs is None:
            narrate = visuals = other = total = None
        else:
            by_time = _share(scene.duration, seconds, n)
            narrate = costs.get("narrate", 0.0) * _share(len(scene.narration), chars, n)
            visuals = costs.get("visuals", 0.0) * by_time
            rest = sum(v for k, v in costs.items() if k not in ("narrate", "visuals"))
            other = rest * by_time
            total = narrate + visuals + other
        rows.append(
            [
                scene.index,
                scene.kind,
                round(start, 3),
                round(start + scene.duration, 3),
                scene.duration,
                scene.transition,
                scene.transition_duration,
                scene.narration,
                scene.visual,
                scene.on_screen_text,
                scene.voice.name if scene.voice is not None else request_voice,
                source,
                backends.get("narrate", ""),
                backends.get("visuals", ""),
                narrate,
                visuals,
                other,
                total,
            ]
        )
    return SCENE_COLUMNS, rows


def event_table(data: ProductionData) -> tuple[tuple[str, ...], list[list[Any]]]:
    """One row per event; `payload` holds the fields beyond status, stage and progress."""
    rows = []
    for e in data.events:
        payload = dict(e.payload)
        status, stage, progress = (payload.pop(k, None) for k in ("status", "stage", "progress"))
        rows.append([e.seq, e.type, e.created_at, status, stage, progress, payload])
    return EVENT_COLUMNS, rows


# ------------------------------------------------------------------ ZIP


def _stored_member(storage: Storage, art: Artifact, size: int, name: str) -> Member:
    async def read(start: int, end: int) -> AsyncIterator[bytes]:
        async for chunk in storage.stream(art.key, start, end):
            yield chunk

    same = size == art.bytes and bool(art.sha256)
    return Member(
        name=name,
        size=size,
        read=read,
        digest=f"{art.sha256}:{size}" if same else f"{art.key}:{size}:unverified",
        crc32=art.crc32 if same else None,
    )


def members(
    data: ProductionData, storage: Storage, prefix: str = "", *, checksums: bool = True
) -> list[Member]:
    """The ZIP's files for this production, under `prefix` (e.g. ``aiprod-<id>/``)."""
    out = [
        Member.of_bytes(prefix + "production.json", json_bytes(document(data))),
        Member.of_bytes(prefix + "scenes.csv", csv_bytes(*scene_table(data))),
        Member.of_bytes(prefix + "events.csv", csv_bytes(*event_table(data))),
    ]
    sums = [(m.digest, m.name) for m in out]
    for art in data.artifacts:
        if data.archived(art):
            size = data.stored[art.name]
            out.append(_stored_member(storage, art, size, prefix + art.name))
            if size == art.bytes and art.sha256:  # else its recorded hash is not its content's
                sums.append((art.sha256, prefix + art.name))
    if checksums:
        out.append(Member.of_bytes(prefix + "SHA256SUMS", sha256sums(sums, prefix)))
    return out


def sha256sums(entries: list[tuple[str, str]], prefix: str = "") -> bytes:
    """``sha256sum -c`` format, paths relative to the folder the file sits in."""
    return "".join(f"{digest}  {name.removeprefix(prefix)}\n" for digest, name in entries).encode()


__all__ = [
    "EVENT_COLUMNS",
    "SCENE_COLUMNS",
    "ProductionData",
    "document",
    "event_table",
    "gather",
    "members",
    "scene_table",
    "sha256sums",
]
