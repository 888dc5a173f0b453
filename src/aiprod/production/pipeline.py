"""Runs the stages in order, through the stage cache, reporting progress.

The output folder holds the deliverables (video.mp4, subtitles, poster,
thumbnails), the provenance files (storyboard.json, qa.json, cost.json,
manifest.json) and ``work/`` with every intermediate (narration WAVs, scene
clips, music) so that a person can inspect each piece and a resumed run can
start from the last finished stage (``work/state.json``).

Each stage is idempotent: run it twice and the second run is served by the
cache.  Changing one scene changes only that scene's cache keys, so only that
scene (and the montage that includes it) is made again.

This module holds the sequencing only: which stage runs when, what is loaded
for a stage an earlier run finished, the budget fit once the storyboard is
known, and the time each stage took.  Each stage's body lives beside its
Protocol in ``stages/<stage>.py``, what they share (cache, progress, state
file) in ``stages/context.py``, and the cost.json/manifest.json writers in
``provenance.py``.  The names callers import from here (Cancelled,
ProgressEvent, fit_to_narration, ...) are re-exported from those modules.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar, cast, overload

from aiprod.production import backends, provenance, providers
from aiprod.production.cache import StageCache
from aiprod.production.cost import (
    CostEstimate,
    PriceTable,
    fast_track,
    fit_budget,
    is_fast_track,
)
from aiprod.production.models import (
    STAGES,
    Narration,
    ProductionRequest,
    QAReport,
    RenderSpec,
    Storyboard,
    SubtitleCue,
)
from aiprod.production.providers.client import ProviderError
from aiprod.production.providers.metering import Meter, open_meter
from aiprod.production.stages import montage, music, narrate, plan, qa, visuals
from aiprod.production.stages.context import (
    Cancelled,
    ProgressCallback,
    ProgressEvent,
    StageContext,
    StageDoneCallback,
)
from aiprod.production.stages.montage import MontageOutput
from aiprod.production.stages.music import Ahead
from aiprod.production.stages.narrate import (
    NARRATION_GAP,
    NARRATION_LEAD,
    NARRATION_TAIL,
    fit_to_narration,
)
from aiprod.settings import Settings, get_settings

__all__ = [
    "NARRATION_GAP",
    "NARRATION_LEAD",
    "NARRATION_TAIL",
    "Cancelled",
    "Pipeline",
    "ProductionResult",
    "ProgressCallback",
    "ProgressEvent",
    "QAFailed",
    "StageDoneCallback",
    "fit_to_narration",
    "run_production",
]

T = TypeVar("T")


class QAFailed(Exception):
    def __init__(self, report: QAReport) -> None:
        names = ", ".join(
            f"{c.name} ({c.measured}; expected {c.expected})" for c in report.failures
        )
        super().__init__(f"quality checks failed: {names}")
        self.report = report


@dataclass
class ProductionResult:
    outdir: Path
    storyboard: Storyboard
    qa: QAReport
    cost: CostEstimate
    video: Path
    cache: dict[str, dict[str, int]] = field(default_factory=dict)


class _OnContext(Generic[T]):
    """A Pipeline attribute kept on its StageContext, where the stages read it:
    setting it on the Pipeline (the CLI sets `on_progress`) reaches them."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, obj: None, owner: type) -> _OnContext[T]: ...
    @overload
    def __get__(self, obj: Pipeline, owner: type) -> T: ...
    def __get__(self, obj: Pipeline | None, owner: type) -> T | _OnContext[T]:
        if obj is None:
            return self
        return cast(T, getattr(obj.ctx, self.name))

    def __set__(self, obj: Pipeline, value: T) -> None:
        setattr(obj.ctx, self.name, value)


class Pipeline:
    request = _OnContext[ProductionRequest]()
    outdir = _OnContext[Path]()
    cache = _OnContext["StageCache | None"]()
    spec = _OnContext[RenderSpec]()  # refined by `run` once the storyboard is known
    stats = _OnContext[dict[str, dict[str, int]]]()  # cache hits/misses per stage
    made_by = _OnContext[dict[str, dict[str, str]]]()  # backend per stage
    on_progress = _OnContext["ProgressCallback | None"]()
    should_cancel = _OnContext[Callable[[], bool]]()
    on_stage_done = _OnContext["StageDoneCallback | None"]()

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
        if not resume:
            (outdir / "work" / "state.json").unlink(missing_ok=True)
        if cache is None and self.settings.cache_enabled:
            cache = StageCache(self.settings.stage_cache_dir, self.settings.cache_ttl_hours)
        self.prices = PriceTable.default(self.settings.compute_price_per_hour, self.settings.prices)
        for stage, name in request.backends.items():
            backends.check(stage, name, self.settings)
        self.fast_track = is_fast_track(request)
        if self.fast_track:
            request = fast_track(request)
        self.estimate = fit_budget(request, self.prices)
        self.meter = Meter(self.prices, request.budget)
        self._reserve()
        self.timings: dict[str, dict[str, float]] = {}
        self.fallbacks: dict[str, dict[str, str]] = {}  # stage: what failed, what made it
        self.ctx = StageContext(
            request=request,
            outdir=outdir,
            spec=self.estimate.spec,
            cache=cache,
            weights=self._stage_weights(self.estimate),
            on_progress=on_progress,
            should_cancel=should_cancel or (lambda: False),
            on_stage_done=on_stage_done,
        )

    @property
    def work(self) -> Path:
        return self.ctx.work

    def _reserve(self) -> None:
        """Set aside the built-in stages' estimated cost: paid calls get what is left."""
        self.meter.reserved = round(
            sum(s.cost for s in self.estimate.stages if s.backend not in backends.PROVIDERS), 8
        )

    def fallback_policy(self, stage: str) -> str:
        """``fail`` or ``builtin``: the request's choice, else the operator's."""
        return (
            self.request.fallback.get(stage)
            or self.settings.provider_fallback.get(stage)  # type: ignore[call-overload]
            or "fail"
        )

    def _fall_back(self, stage: str, exc: ProviderError) -> bool:
        """After a provider failed at `stage`: switch the stage to its built-in
        backend when the policy allows (recorded for the manifest and reported as
        a ``fallback`` progress event).  False: the failure stands."""
        chosen = self.request.backends.get(stage)
        if chosen not in backends.PROVIDERS or self.fallback_policy(stage) != "builtin":
            return False
        builtin = backends.DEFAULTS[stage]
        self.request = self.request.model_copy(
            update={"backends": {**self.request.backends, stage: builtin}}
        )
        detail = {
            "stage": stage,
            "provider": exc.provider,
            "backend": builtin,
            "call": exc.call,
            "reason": exc.reason,
        }
        self.fallbacks[stage] = detail
        self.ctx.emit(stage, "fallback", 0.0, detail=detail)
        return True

    @staticmethod
    def _stage_weights(est: CostEstimate) -> dict[str, float]:
        """Each stage's share of the progress bar: its estimated seconds."""
        secs = est.stage_seconds()
        total = sum(secs.values()) or 1.0
        return {s: max(secs.get(s, 0.0), 0.002 * total) for s in STAGES}

    def done_stages(self) -> list[str]:
        """The stages finished so far (``work/state.json``)."""
        return self.ctx.done_stages()

    def stage_files(self, stage: str) -> list[Path]:
        """The files a finished stage leaves in the output folder (relative paths)."""
        return self.ctx.stage_files(stage)

    # ------------------------------------------------------------------ stages

    def plan(self, storyboard: Storyboard | None = None) -> Storyboard:
        """Plan (or accept an edited storyboard) and save it."""
        return plan.run(self.ctx, storyboard)

    def narrate(self, storyboard: Storyboard) -> tuple[Storyboard, list[Narration]]:
        """Narrate every scene, then lengthen scenes whose speech does not fit."""
        return narrate.run(self.ctx, storyboard)

    def visuals(self, storyboard: Storyboard) -> list[Path]:
        return visuals.run(self.ctx, storyboard)

    def compose_ahead(self, storyboard: Storyboard) -> Ahead | None:
        """Start composing the music bed on a helper thread, unless there is no music
        or the cache already has it; `music` then takes the result."""
        return music.compose_ahead(self.ctx, storyboard)

    def music(self, storyboard: Storyboard, ahead: Ahead | None = None) -> Path | None:
        """Make (or take from the cache, or from `ahead`) the music bed."""
        return music.run(self.ctx, storyboard, ahead)

    def montage(
        self,
        storyboard: Storyboard,
        clips: list[Path],
        narrations: list[Narration],
        music: Path | None,
    ) -> tuple[MontageOutput, list[SubtitleCue]]:
        return montage.run(self.ctx, storyboard, clips, narrations, music)

    def qa(
        self, storyboard: Storyboard, narrations: list[Narration], cues: list[SubtitleCue]
    ) -> QAReport:
        return qa.run(self.ctx, storyboard, narrations, cues)

    def write_manifest(self, storyboard: Storyboard, report: QAReport) -> None:
        """List every file of the output with its hash and the backend that made it."""
        provenance.write_manifest(self.ctx, storyboard, report)

    # --------------------------------------------------------------------- run

    def run(
        self, storyboard: Storyboard | None = None, stop_after: str | None = None
    ) -> ProductionResult | None:
        """Run the stages not yet done (see ``work/state.json``), loading the
        outputs of those that are.  Returns None when stopped after `stop_after`
        (the review gate).  Raises QAFailed (after writing the report), Cancelled,
        ProviderError (a remote service failed and the stage may not fall back),
        BudgetExceeded (a paid call would pass the budget)."""
        with open_meter(self.meter), providers.use_settings(self.settings):
            return self._run(storyboard, stop_after)

    def _run(
        self, storyboard: Storyboard | None, stop_after: str | None
    ) -> ProductionResult | None:
        ctx = self.ctx
        done = set(self.done_stages())
        timings: dict[str, float] = {}
        cpu: dict[str, float] = {}

        def step(stage: str, fn: Callable[[], Any], load: Callable[[], Any]) -> Any:
            if stage in done:
                ctx.skip(stage)
                return load()
            t0, c0 = time.monotonic(), time.process_time()
            self.meter.stage = stage
            try:
                value = fn()
            except ProviderError as exc:
                if not self._fall_back(stage, exc):
                    raise
                value = fn()
                ctx.made_by[stage]["fallback_from"] = exc.provider
                ctx.made_by[stage]["fallback_reason"] = f"{exc.call}: {exc.reason}"
            timings[stage] = round(time.monotonic() - t0, 3)
            cpu[stage] = round(time.process_time() - c0, 3)
            return value

        def load_plan() -> Storyboard:
            if storyboard is not None:  # an edit made after planning wins
                plan.save(ctx, storyboard)
                return storyboard
            return plan.load(ctx)

        sb = step("plan", lambda: self.plan(storyboard), load_plan)
        self.estimate = fit_budget(self.request, self.prices, sb, self.spec)
        self.spec = self.estimate.spec
        self._reserve()
        if stop_after == "plan":
            return None
        sb, narrations = step("narrate", lambda: self.narrate(sb), lambda: narrate.load(ctx))
        ahead = self.compose_ahead(sb) if not {"visuals", "music"} & done else None
        try:
            clips = step("visuals", lambda: self.visuals(sb), lambda: visuals.load(ctx, sb))
        except BaseException:
            if ahead is not None:
                ahead.discard()
            raise
        carried = ahead.cpu_so_far() if ahead is not None else 0.0
        if "visuals" in cpu:  # the music helper's CPU so far belongs to music, not visuals
            cpu["visuals"] = round(max(0.0, cpu["visuals"] - carried), 3)
        bed = step("music", lambda: self.music(sb, ahead), lambda: music.load(ctx))
        if "music" in cpu:
            cpu["music"] = round(cpu["music"] + carried, 3)
        out, cues = step(
            "montage",
            lambda: self.montage(sb, clips, narrations, bed),
            lambda: (montage.outputs(ctx, sb), montage.subtitle_cues(ctx, sb, narrations)),
        )
        if "qa" in done:
            report = qa.load(ctx)
        else:
            report = step("qa", lambda: self.qa(sb, narrations, cues), lambda: None)
            provenance.write_cost(
                ctx,
                self.estimate,
                self.prices,
                wall=timings,
                cpu=cpu,
                fast_track=self.fast_track,
                charges=self.meter.charges,
            )
            self.write_manifest(sb, report)
            ctx.finish("qa", units=1, cached=0)
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
