"""Runs the stages in order, through the stage cache, reporting progress.

The output folder holds the deliverables (video.mp4, subtitles, poster,
thumbnails), the provenance files (storyboard.json, qa.json, cost.json,
manifest.json) and ``work/`` with every intermediate (narration WAVs, scene
clips, music) so that a person can inspect each piece and a resumed run can
start from the last finished stage (``work/state.json``).

Each stage is idempotent: run it twice and the second run is served by the
cache.  Changing one scene changes only that scene's cache keys, so only that
scene (and the montage that includes it) is made again.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from aiprod import __version__
from aiprod.production import backends
from aiprod.production.cache import StageCache, cache_key, file_digest
from aiprod.production.cost import (
    CostEstimate,
    PriceTable,
    fast_track,
    fit_budget,
    is_fast_track,
)
from aiprod.production.media.memory import release_memory
from aiprod.production.models import (
    STAGES,
    Narration,
    ProductionRequest,
    QAReport,
    RenderSpec,
    Storyboard,
    SubtitleCue,
)
from aiprod.production.stages.montage import MontageInput, MontageOutput
from aiprod.production.stages.qa import QAInput
from aiprod.production.stages.visuals import SceneContext
from aiprod.settings import Settings, get_settings

NARRATION_LEAD = 0.3  # seconds from a scene's start to its narration
NARRATION_GAP = 0.4  # at least this much silence between two scenes' narration
NARRATION_TAIL = 0.3  # screen time after a scene's narration ends


class Cancelled(Exception):
    """The caller asked the production to stop."""


class QAFailed(Exception):
    def __init__(self, report: QAReport) -> None:
        names = ", ".join(
            f"{c.name} ({c.measured}; expected {c.expected})" for c in report.failures
        )
        super().__init__(f"quality checks failed: {names}")
        self.report = report


@dataclass(frozen=True)
class ProgressEvent:
    stage: str
    status: Literal["started", "progress", "completed"]
    fraction: float  # of this stage
    overall: float  # of the whole production, 0..1
    eta: float | None  # seconds left, None until it can be told
    cached: int = 0  # units of this stage served from the cache (on completion)
    units: int = 0  # units of this stage (on completion)


ProgressCallback = Callable[[ProgressEvent], None]
StageDoneCallback = Callable[[str, list[Path]], None]
"""Called after a stage with the files (relative to the output folder) it made,
before the next stage starts: the job worker checkpoints them to storage."""


@dataclass
class ProductionResult:
    outdir: Path
    storyboard: Storyboard
    qa: QAReport
    cost: CostEstimate
    video: Path
    cache: dict[str, dict[str, int]] = field(default_factory=dict)


def _link(src: Path, dst: Path) -> None:
    """Hard-link (or copy) a finished file; outputs are never modified in place."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.unlink(missing_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


class _Ahead:
    """One unit of work started early on a helper thread: the music bed, which
    depends only on the storyboard, is composed while the visuals render, whose
    renderer and encoder leave part of the second core idle (measured at 720p:
    ~0.8 s of a 1 s composition hidden).

    The helper's CPU time is read from its own thread clock, so that cost.json
    charges it to the music stage rather than to the stage it overlapped.
    """

    def __init__(self, work: Callable[[], None], path: Path) -> None:
        self.path = path
        self._work = work
        self._error: BaseException | None = None
        self._cpu = 0.0
        self._thread = threading.Thread(target=self._run, name="music-ahead", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._work()
        except BaseException as exc:  # re-raised by `wait`, on the pipeline's thread
            self._error = exc
        finally:
            self._cpu = time.thread_time()

    def cpu_so_far(self) -> float:
        """CPU seconds the helper has used until now (running or finished)."""
        ident = self._thread.ident
        if self._thread.is_alive() and ident is not None:
            try:
                return time.clock_gettime(time.pthread_getcpuclockid(ident))
            except (AttributeError, OSError):  # no per-thread clocks, or it just ended
                pass
        self._thread.join()
        return self._cpu

    def wait(self) -> None:
        """Block until the work is done; raise what it raised."""
        self._thread.join()
        if self._error is not None:
            raise self._error

    def discard(self) -> None:
        """Let the helper finish and remove whatever it left unused."""
        self._thread.join()
        self.path.unlink(missing_ok=True)


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False))
    os.replace(tmp, path)


class Pipeline:
    def __init__(
        self,
        request: ProductionRequest,
        outdir: Path,
        *,
        settings: Settings | None = None,
        cache: StageCache | None = None,
        on_progress: ProgressCallback | None = None,
        should_cancel: Callable[[], bool] | None = None,
        on_stage_done: StageDoneCallback | None = None,
        resume: bool = False,
    ) -> None:
        self.settings = settings or get_settings()
        self.on_stage_done = on_stage_done
        if not resume:
            (outdir / "work" / "state.json").unlink(missing_ok=True)
        self.request = request
        self.outdir = outdir
        self.work = outdir / "work"
        self.cache = cache
        if cache is None and self.settings.cache_enabled:
            self.cache = StageCache(self.settings.stage_cache_dir, self.settings.cache_ttl_hours)
        self.on_progress = on_progress
        self.should_cancel = should_cancel or (lambda: False)
        self.prices = PriceTable.default(self.settings.compute_price_per_hour, self.settings.prices)
        for stage, name in request.backends.items():
            backends.check(stage, name)
        self.fast_track = is_fast_track(request)
        if self.fast_track:
            request = self.request = fast_track(request)
        self.estimate = fit_budget(request, self.prices)
        self.spec: RenderSpec = self.estimate.spec
        self.stats: dict[str, dict[str, int]] = {}
        self.timings: dict[str, dict[str, float]] = {}
        self.made_by: dict[str, dict[str, str]] = {}
        self._weights = self._stage_weights(self.estimate)
        self._done_weight = 0.0
        self._started = time.monotonic()

    # ---------------------------------------------------------------- progress

    @staticmethod
    def _stage_weights(est: CostEstimate) -> dict[str, float]:
        secs = est.stage_seconds()
        total = sum(secs.values()) or 1.0
        return {s: max(secs.get(s, 0.0), 0.002 * total) for s in STAGES}

    def _emit(self, stage: str, status: str, fraction: float, **extra: int) -> None:
        if self.should_cancel():
            raise Cancelled(f"cancelled during {stage}")
        if self.on_progress is None:
            return
        total = sum(self._weights.values())
        overall = min(1.0, (self._done_weight + self._weights[stage] * fraction) / total)
        elapsed = time.monotonic() - self._started
        eta = elapsed / overall * (1 - overall) if overall > 0.02 else None
        self.on_progress(
            ProgressEvent(stage, status, fraction, overall, eta, **extra)  # type: ignore[arg-type]
        )

    def _backend(self, stage: str) -> Any:
        backend = backends.get(stage, self.request.backends.get(stage))
        self.made_by[stage] = {"backend": backend.name, "version": backend.version}
        return backend

    # ------------------------------------------------------------- state file

    @property
    def _state_path(self) -> Path:
        return self.work / "state.json"

    def done_stages(self) -> list[str]:
        try:
            return list(json.loads(self._state_path.read_text())["done"])
        except (OSError, ValueError, KeyError):
            return []

    def _mark_done(self, stage: str) -> None:
        done = self.done_stages()
        if stage not in done:
            done.append(stage)
        _write_json(self._state_path, {"done": done})

    # ------------------------------------------------------------------ cache

    def _cached(
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
                _link(entry / name, t)
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
                    _link(entry / name, t)
            else:
                for m, t in zip(made, targets, strict=True):
                    _link(m, t)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        stats["misses"] += 1
        return False

    # ------------------------------------------------------------------ stages

    def plan(self, storyboard: Storyboard | None = None) -> Storyboard:
        """Plan (or accept an edited storyboard) and save it."""
        self._emit("plan", "started", 0.0)
        planner = self._backend("plan")
        if storyboard is None:
            storyboard = planner.plan(self.request)
        else:
            self.made_by["plan"] = {"backend": "user-edit", "version": "1"}
        self.outdir.mkdir(parents=True, exist_ok=True)
        self.work.mkdir(parents=True, exist_ok=True)
        _write_json(self.outdir / "storyboard.json", storyboard.model_dump(mode="json"))
        self.stats["plan"] = {"hits": 0, "misses": 1}
        self._finish("plan", units=1, cached=0)
        return storyboard

    def _finish(self, stage: str, *, units: int, cached: int) -> None:
        release_memory()
        if self.on_stage_done is not None:
            self.on_stage_done(stage, self.stage_files(stage))
        self._mark_done(stage)
        self._emit(stage, "completed", 1.0, units=units, cached=cached)
        self._done_weight += self._weights[stage]

    def stage_files(self, stage: str) -> list[Path]:
        """The files a finished stage leaves in the output folder (relative paths)."""
        patterns = {
            "plan": ["storyboard.json"],
            "narrate": ["storyboard.json", "work/narration.json", "work/narration/*"],
            "visuals": ["work/clips/*.mp4"],
            "music": ["work/music.wav"],
            "montage": ["video.mp4", "poster.jpg", "subtitles.srt", "subtitles.vtt", "thumbs/*"],
            "qa": ["qa.json", "cost.json", "manifest.json"],
        }[stage]
        found: list[Path] = []
        for pattern in patterns:
            found += sorted(p.relative_to(self.outdir) for p in self.outdir.glob(pattern))
        return found

    def narrate(self, storyboard: Storyboard) -> tuple[Storyboard, list[Narration]]:
        """Narrate every scene, then lengthen scenes whose speech does not fit."""
        self._emit("narrate", "started", 0.0)
        narrator = self._backend("narrate")
        out: list[Narration] = []
        n = len(storyboard.scenes)
        hits = 0
        for i, scene in enumerate(storyboard.scenes):
            voice = scene.voice or self.request.voice
            wav = self.work / "narration" / f"scene_{i:03d}.wav"
            meta = wav.with_suffix(".json")

            def make(
                tmp: Path, text: str = scene.narration, voice: Any = voice, name: str = wav.name
            ) -> None:
                nar = narrator.narrate(text, voice, storyboard.language, tmp / name)
                (tmp / Path(name).with_suffix(".json")).write_text(nar.model_dump_json())

            hits += self._cached(
                "narrate",
                narrator,
                {"text": scene.narration, "voice": voice, "language": storyboard.language},
                [wav, meta],
                make,
            )
            nar = Narration.model_validate_json(meta.read_text())
            out.append(nar.model_copy(update={"path": wav}))
            self._emit("narrate", "progress", (i + 1) / n)
        storyboard = fit_to_narration(storyboard, out)
        _write_json(self.outdir / "storyboard.json", storyboard.model_dump(mode="json"))
        _write_json(
            self.work / "narration.json",
            [
                x.model_copy(update={"path": x.path.relative_to(self.outdir)}).model_dump(
                    mode="json"
                )
                for x in out
            ],
        )
        self._finish("narrate", units=n, cached=hits)
        return storyboard, out

    def visuals(self, storyboard: Storyboard) -> list[Path]:
        self._emit("visuals", "started", 0.0)
        renderer = self._backend("visuals")
        clips: list[Path] = []
        n = len(storyboard.scenes)
        hits = 0
        for i, scene in enumerate(storyboard.scenes):
            ctx = SceneContext(
                spec=self.spec,
                style=scene.style or self.request.style,
                title=storyboard.title,
                scene_count=n,
                seed=storyboard.seed,
            )
            clip = self.work / "clips" / f"scene_{i:03d}.mp4"
            inputs = {
                "scene": scene.model_dump(mode="json", exclude={"narration", "voice", "media"}),
                "media": (
                    {"sha256": file_digest(scene.media.path), "suffix": scene.media.path.suffix}
                    if scene.media
                    else None
                ),
                "spec": self.spec,
                "style": ctx.style,
                "seed": ctx.seed,
                # Only cards show the production's title.
                "title": ctx.title if scene.kind != "content" else None,
            }

            def make(
                tmp: Path,
                scene: Any = scene,
                ctx: SceneContext = ctx,
                i: int = i,
                name: str = clip.name,
            ) -> None:
                def progress(f: float) -> None:
                    self._emit("visuals", "progress", (i + f) / n)

                renderer.render(scene, ctx, tmp / name, progress)

            hits += self._cached("visuals", renderer, inputs, [clip], make)
            clips.append(clip)
            self._emit("visuals", "progress", (i + 1) / n)
        self._finish("visuals", units=n, cached=hits)
        return clips

    def _music_inputs(self, storyboard: Storyboard) -> dict[str, Any]:
        return {
            "mood": self.request.music,
            "duration": storyboard.duration,
            "seed": storyboard.seed,
        }

    def compose_ahead(self, storyboard: Storyboard) -> _Ahead | None:
        """Start composing the music bed on a helper thread, unless there is no music
        or the cache already has it; `music` then takes the result."""
        mood = self.request.music
        if mood is None:
            return None
        composer = self._backend("music")
        key = cache_key("music", composer.name, composer.version, self._music_inputs(storyboard))
        if self.cache is not None and self.cache.get(key) is not None:
            return None
        path = self.work / "tmp" / "music-ahead.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        duration, seed = storyboard.duration, storyboard.seed
        return _Ahead(lambda: composer.compose(mood, duration, seed, path), path)

    def music(self, storyboard: Storyboard, ahead: _Ahead | None = None) -> Path | None:
        """Make (or take from the cache, or from `ahead`) the music bed."""
        self._emit("music", "started", 0.0)
        if self.request.music is None:
            self.stats["music"] = {"hits": 0, "misses": 0}
            self._finish("music", units=0, cached=0)
            return None
        composer = self._backend("music")
        wav = self.work / "music.wav"
        mood, duration, seed = self.request.music, storyboard.duration, storyboard.seed

        def make(tmp: Path) -> None:
            if ahead is None:
                composer.compose(mood, duration, seed, tmp / wav.name)
                return
            ahead.wait()
            os.replace(ahead.path, tmp / wav.name)

        try:
            hit = self._cached("music", composer, self._music_inputs(storyboard), [wav], make)
        finally:
            if ahead is not None:
                ahead.discard()
        self._finish("music", units=1, cached=int(hit))
        return wav

    def montage(
        self,
        storyboard: Storyboard,
        clips: list[Path],
        narrations: list[Narration],
        music: Path | None,
    ) -> tuple[MontageOutput, list[SubtitleCue]]:
        self._emit("montage", "started", 0.0)
        montage = self._backend("montage")
        subs = self.request.subtitles
        cues = self._cues(storyboard, narrations)
        names = ["video.mp4", "poster.jpg"]
        if subs.enabled:
            names += ["subtitles.srt", "subtitles.vtt"]
        names += [f"thumb_{i:03d}.jpg" for i in range(len(storyboard.scenes))]
        targets = [self.outdir / (f"thumbs/{n}" if n.startswith("thumb_") else n) for n in names]
        inputs = {
            "clips": [file_digest(c) for c in clips],
            "narrations": [file_digest(x.path) for x in narrations],
            "music": file_digest(music) if music else None,
            "storyboard": storyboard.model_dump(
                mode="json", exclude={"scenes": {"__all__": {"media"}}}
            ),
            "spec": self.spec,
            "subtitles": subs,
            "cues": cues,
            "lead": NARRATION_LEAD,
        }
        result: dict[str, MontageOutput] = {}

        def make(tmp: Path) -> None:
            inp = MontageInput(
                storyboard=storyboard,
                clips=clips,
                narrations=narrations,
                music=music,
                spec=self.spec,
                subtitles=subs,
                cues=cues,
                narration_lead=NARRATION_LEAD,
            )
            result["out"] = montage.assemble(
                inp, tmp, lambda f: self._emit("montage", "progress", f)
            )

        hit = self._cached("montage", montage, inputs, targets, make)
        out = self._montage_output(storyboard)
        if "out" in result:
            out.loudness_lufs = result["out"].loudness_lufs
        self._finish("montage", units=1, cached=int(hit))
        return out, cues

    def qa(
        self, storyboard: Storyboard, narrations: list[Narration], cues: list[SubtitleCue]
    ) -> QAReport:
        self._emit("qa", "started", 0.0)
        checker = self._backend("qa")
        starts = storyboard.starts()
        spans = [
            (
                starts[i] + NARRATION_LEAD + n.words[0].start,
                starts[i] + NARRATION_LEAD + n.words[-1].end,
            )
            for i, n in enumerate(narrations)
            if n.words
        ]
        report: QAReport = checker.check(
            QAInput(
                video=self.outdir / "video.mp4",
                storyboard=storyboard,
                spec=self.spec,
                cues=cues,
                narration_spans=spans,
                subtitles_expected=self.request.subtitles.enabled,
            )
        )
        _write_json(self.outdir / "qa.json", report.model_dump(mode="json"))
        self.stats["qa"] = {"hits": 0, "misses": 1}
        return report

    # --------------------------------------------------------------------- run

    def run(
        self, storyboard: Storyboard | None = None, stop_after: str | None = None
    ) -> ProductionResult | None:
        """Run the stages not yet done (see ``work/state.json``), loading the
        outputs of those that are.  Returns None when stopped after `stop_after`
        (the review gate).  Raises QAFailed (after writing the report), Cancelled."""
        done = set(self.done_stages())
        timings: dict[str, float] = {}
        cpu: dict[str, float] = {}

        def step(stage: str, fn: Callable[[], Any], load: Callable[[], Any]) -> Any:
            if stage in done:
                self._done_weight += self._weights[stage]
                return load()
            t0, c0 = time.monotonic(), time.process_time()
            value = fn()
            timings[stage] = round(time.monotonic() - t0, 3)
            cpu[stage] = round(time.process_time() - c0, 3)
            return value

        def load_plan() -> Storyboard:
            if storyboard is not None:  # an edit made after planning wins
                _write_json(self.outdir / "storyboard.json", storyboard.model_dump(mode="json"))
                return storyboard
            return Storyboard.model_validate_json((self.outdir / "storyboard.json").read_text())

        sb = step("plan", lambda: self.plan(storyboard), load_plan)
        self.estimate = fit_budget(self.request, self.prices, sb, self.spec)
        self.spec = self.estimate.spec
        if stop_after == "plan":
            return None
        sb, narrations = step("narrate", lambda: self.narrate(sb), self._load_narrations)
        ahead = self.compose_ahead(sb) if not {"visuals", "music"} & done else None
        try:
            clips = step(
                "visuals",
                lambda: self.visuals(sb),
                lambda: [self.work / "clips" / f"scene_{i:03d}.mp4" for i in range(len(sb.scenes))],
            )
        except BaseException:
            if ahead is not None:
                ahead.discard()
            raise
        carried = ahead.cpu_so_far() if ahead is not None else 0.0
        if "visuals" in cpu:  # the music helper's CPU so far belongs to music, not visuals
            cpu["visuals"] = round(max(0.0, cpu["visuals"] - carried), 3)
        music = step(
            "music",
            lambda: self.music(sb, ahead),
            lambda: self.work / "music.wav" if self.request.music else None,
        )
        if "music" in cpu:
            cpu["music"] = round(cpu["music"] + carried, 3)
        out, cues = step(
            "montage",
            lambda: self.montage(sb, clips, narrations, music),
            lambda: (self._montage_output(sb), self._cues(sb, narrations)),
        )
        if "qa" in done:
            report = QAReport.model_validate_json((self.outdir / "qa.json").read_text())
        else:
            report = step("qa", lambda: self.qa(sb, narrations, cues), lambda: None)
            self._write_cost(timings, cpu)
            self.write_manifest(sb, report)
            self._finish("qa", units=1, cached=0)
        if not report.passed:
            raise QAFailed(report)
        return ProductionResult(
            outdir=self.outdir,
            storyboard=sb,
            qa=report,
            cost=self.estimate,
            video=out.video,
            cache=self.stats,
        )

    def _load_narrations(self) -> tuple[Storyboard, list[Narration]]:
        sb = Storyboard.model_validate_json((self.outdir / "storyboard.json").read_text())
        raw = json.loads((self.work / "narration.json").read_text())
        items = [Narration.model_validate(x) for x in raw]
        return sb, [n.model_copy(update={"path": self.outdir / n.path}) for n in items]

    def _cues(self, sb: Storyboard, narrations: list[Narration]) -> list[SubtitleCue]:
        from aiprod.production.subtitles import cues_from_narrations

        if not self.request.subtitles.enabled:
            return []
        return cues_from_narrations(sb, narrations, NARRATION_LEAD)

    def _montage_output(self, sb: Storyboard) -> MontageOutput:
        subs = self.request.subtitles.enabled
        return MontageOutput(
            video=self.outdir / "video.mp4",
            srt=self.outdir / "subtitles.srt" if subs else None,
            vtt=self.outdir / "subtitles.vtt" if subs else None,
            poster=self.outdir / "poster.jpg",
            thumbnails=[
                self.outdir / "thumbs" / f"thumb_{i:03d}.jpg" for i in range(len(sb.scenes))
            ],
        )

    def _write_cost(self, wall: dict[str, float], cpu: dict[str, float]) -> None:
        est = self.estimate
        actual: list[dict[str, Any]] = []
        for s in est.stages:
            spent = cpu.get(s.stage, 0.0) * self.prices.unit_price(s.backend, "cpu_second")
            actual.append(
                {
                    "stage": s.stage,
                    "wall_seconds": wall.get(s.stage, 0.0),
                    "cpu_seconds": cpu.get(s.stage, 0.0),
                    "cost": round(spent if s.unit == "cpu_second" else s.cost, 8),
                    "cache": self.stats.get(s.stage, {}),
                }
            )
        _write_json(
            self.outdir / "cost.json",
            {
                "estimate": est.model_dump(mode="json"),
                "actual": actual,
                "actual_total": round(sum(a["cost"] for a in actual), 8),
                "budget": self.request.budget,
                "fast_track": self.fast_track,
            },
        )

    def write_manifest(self, storyboard: Storyboard, report: QAReport) -> None:
        """List every file of the output with its hash and the backend that made it."""
        stage_of = {
            "narration": "narrate",
            "clips": "visuals",
            "music.wav": "music",
            "video.mp4": "montage",
            "poster.jpg": "montage",
            "subtitles.srt": "montage",
            "subtitles.vtt": "montage",
            "thumbs": "montage",
            "storyboard.json": "plan",
            "qa.json": "qa",
        }
        assets = []
        for path in sorted(self.outdir.rglob("*")):
            rel = path.relative_to(self.outdir)
            if (
                not path.is_file()
                or rel.name == "manifest.json"
                or rel.parts[:2] == ("work", "tmp")
            ):
                continue
            top = rel.parts[1] if rel.parts[0] == "work" and len(rel.parts) > 1 else rel.parts[0]
            stage = stage_of.get(top)
            assets.append(
                {
                    "path": rel.as_posix(),
                    "bytes": path.stat().st_size,
                    "sha256": file_digest(path),
                    "stage": stage,
                    "made_by": self.made_by.get(stage) if stage else {"backend": "aiprod"},
                }
            )
        media = [
            {
                "scene": s.index,
                "source": str(s.media.path),
                "sha256": file_digest(s.media.path),
                "license": s.media.license,
            }
            for s in storyboard.scenes
            if s.media is not None
        ]
        _write_json(
            self.outdir / "manifest.json",
            {
                "aiprod": __version__,
                "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "title": storyboard.title,
                "request": self.request.model_dump(mode="json"),
                "spec": self.spec.model_dump(mode="json"),
                "backends": self.made_by,
                "qa_passed": report.passed,
                "assets": assets,
                "user_media": media,
            },
        )


def fit_to_narration(storyboard: Storyboard, narrations: list[Narration]) -> Storyboard:
    """Lengthen scenes whose narration (plus lead, gap and transition) does not fit.

    Only the scene that needs more time changes, so editing one scene never
    invalidates the cached clips of the others.
    """
    scenes = []
    for i, (scene, nar) in enumerate(zip(storyboard.scenes, narrations, strict=True)):
        overlap = storyboard.overlap_after(i)
        speech = nar.words[-1].end if nar.words else 0.0
        need = (
            speech + max(NARRATION_LEAD + NARRATION_TAIL, overlap + NARRATION_GAP) if speech else 0
        )
        duration = round(max(scene.duration, need), 3)
        scenes.append(scene.model_copy(update={"duration": duration}))
    return storyboard.model_copy(update={"scenes": scenes})


def run_production(
    request: ProductionRequest,
    outdir: Path,
    *,
    settings: Settings | None = None,
    on_progress: ProgressCallback | None = None,
    storyboard: Storyboard | None = None,
) -> ProductionResult:
    """Make one production from start to finish (the CLI's and tests' entry point)."""
    result = Pipeline(request, outdir, settings=settings, on_progress=on_progress).run(storyboard)
    assert result is not None  # no stop_after: runs to the end
    return result
