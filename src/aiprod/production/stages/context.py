"""What one production's stages share, and the plumbing every stage body uses.

The Pipeline (production/pipeline.py) owns one StageContext per production and
hands it to each stage's ``run`` (stages/<stage>.py).  It holds the output
folder, the request and the render spec, the stage cache with its hit/miss
counts per stage, which backend made what, and progress reporting.  Its
methods are the steps every stage repeats: announce progress (`emit`), look up
the stage's backend (`backend`), fill files through the cache (`cached`) and
close the stage (`finish`: checkpoint its files, record it in
``work/state.json``, report it complete).  Kept in one place so that a stage
module reads as what the stage does, not as how it is cached or reported.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from aiprod.production import backends
from aiprod.production.cache import StageCache, cache_key
from aiprod.production.media.memory import release_memory
from aiprod.production.models import ProductionRequest, RenderSpec

Status = Literal["started", "progress", "completed", "fallback"]


class Cancelled(Exception):
    """The caller asked the production to stop."""


@dataclass(frozen=True)
class ProgressEvent:
    stage: str
    status: Status
    fraction: float  # of this stage
    overall: float  # of the whole production, 0..1
    eta: float | None  # seconds left, None until it can be told
    cached: int = 0  # units of this stage served from the cache (on completion)
    units: int = 0  # units of this stage (on completion)
    detail: dict[str, str] = field(
        default_factory=dict
    )  # fallback: provider, backend, call, reason


ProgressCallback = Callable[[ProgressEvent], None]
StageDoneCallback = Callable[[str, list[Path]], None]
"""Called after a stage with the files (relative to the output folder) it made,
before the next stage starts: the job worker checkpoints them to storage."""

STAGE_FILES: dict[str, list[str]] = {
    "plan": ["storyboard.json"],
    "narrate": ["storyboard.json", "work/narration.json", "work/narration/*"],
    "visuals": ["work/clips/*.mp4", "work/clips/*.json", "credits.txt"],
    "music": ["work/music.wav"],
    "montage": ["video.mp4", "poster.jpg", "subtitles.srt", "subtitles.vtt", "thumbs/*"],
    "qa": ["qa.json", "cost.json", "manifest.json"],
}
"""The files each finished stage leaves in the output folder (glob patterns)."""


def link(src: Path, dst: Path) -> None:
    """Hard-link (or copy) a finished file; outputs are never modified in place."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.unlink(missing_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def write_json(path: Path, data: Any) -> None:
    """Write `data` as indented JSON, atomically (through a temporary file)."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False))
    os.replace(tmp, path)


@dataclass(eq=False)
class StageContext:
    request: ProductionRequest
    outdir: Path
    spec: RenderSpec  # refined by the Pipeline once the storyboard is known
    cache: StageCache | None
    weights: dict[str, float]  # each stage's share of the whole production's progress
    on_progress: ProgressCallback | None
    should_cancel: Callable[[], bool]
    on_stage_done: StageDoneCallback | None
    stats: dict[str, dict[str, int]] = field(default_factory=dict)  # cache hits/misses
    made_by: dict[str, dict[str, str]] = field(default_factory=dict)  # backend per stage
    done_weight: float = 0.0  # progress weight of the stages finished (or skipped)
    started: float = field(default_factory=time.monotonic)

    @property
    def work(self) -> Path:
        """Every intermediate, and the state file."""
        return self.outdir / "work"

    # ---------------------------------------------------------------- progress

    def emit(
        self,
        stage: str,
        status: Status,
        fraction: float,
        *,
        cached: int = 0,
        units: int = 0,
        detail: dict[str, str] | None = None,
    ) -> None:
        """Report progress of `stage`; raise Cancelled if the caller asked to stop."""
        if self.should_cancel():
            raise Cancelled(f"cancelled during {stage}")
        if self.on_progress is None:
            return
        total = sum(self.weights.values())
        overall = min(1.0, (self.done_weight + self.weights[stage] * fraction) / total)
        elapsed = time.monotonic() - self.started
        eta = elapsed / overall * (1 - overall) if overall > 0.02 else None
        self.on_progress(
            ProgressEvent(stage, status, fraction, overall, eta, cached, units, dict(detail or {}))
        )

    def skip(self, stage: str) -> None:
        """Count a stage done by an earlier run (its outputs are loaded) as progress."""
        self.done_weight += self.weights[stage]

    def backend(self, stage: str) -> Any:
        """The backend the request chose for `stage`, recorded for the manifest."""
        backend = backends.get(stage, self.request.backends.get(stage))
        self.made_by[stage] = {"backend": backend.name, "version": backend.version}
        return backend

    # -------------------------------------------------------------- state file

    @property
    def state_path(self) -> Path:
        return self.work / "state.json"

    def done_stages(self) -> list[str]:
        try:
            return list(json.loads(self.state_path.read_text())["done"])
        except (OSError, ValueError, KeyError):
            return []

    def mark_done(self, stage: str) -> None:
        done = self.done_stages()
        if stage not in done:
            done.append(stage)
        write_json(self.state_path, {"done": done})

    def stage_files(self, stage: str) -> list[Path]:
        """The files a finished stage leaves in the output folder (relative paths)."""
        found: list[Path] = []
        for pattern in STAGE_FILES[stage]:
            found += sorted(p.relative_to(self.outdir) for p in self.outdir.glob(pattern))
        return found

    def finish(self, stage: str, *, units: int, cached: int) -> None:
        """Close a stage: free memory, checkpoint its files, record it as done, and
        report it complete."""
        release_memory()
        if self.on_stage_done is not None:
            self.on_stage_done(stage, self.stage_files(stage))
        self.mark_done(stage)
        self.emit(stage, "completed", 1.0, units=units, cached=cached)
        self.done_weight += self.weights[stage]

    # ------------------------------------------------------------------- cache

    def cached(
        self,
        stage: str,
        backend: Any,
        inputs: dict[str, Any],
        targets: list[Path],
        make: Callable[[Path], None],
    ) -> bool:
        """Fill `targets` from the cache or by calling make(tmpdir) which must create
        files named like the targets there.  Returns True on a cache hit.

        Entries store files under position-based names, not the targets' names:
        the same unit of work (say, an empty narration) may serve scene 0 of one
        production and scene 3 of another."""
        key = cache_key(stage, backend.name, backend.version, inputs)
        stats = self.stats.setdefault(stage, {"hits": 0, "misses": 0})
        stored = [f"{i:03d}{t.suffix}" for i, t in enumerate(targets)]
        entry = self.cache.get(key) if self.cache else None
        if entry is not None and all((entry / name).exists() for name in stored):
            for name, t in zip(stored, targets, strict=True):
                link(entry / name, t)
            stats["hits"] += 1
            return True
        tmp = self.work / "tmp" / key[:16]
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        try:
            make(tmp)
            made = [tmp / t.name for t in targets]
            missing = [p.name for p in made if not p.exists()]
            if missing:
                raise RuntimeError(f"{stage} backend {backend.name} did not write {missing}")
            if self.cache is not None:
                neutral = [
                    m.rename(m.with_name(f"_{name}")) for m, name in zip(made, stored, strict=True)
                ]
                entry = self.cache.put(key, neutral, {"stage": stage}, names=stored)
                for name, t in zip(stored, targets, strict=True):
                    link(entry / name, t)
            else:
                for m, t in zip(made, targets, strict=True):
                    link(m, t)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        stats["misses"] += 1
        return False
