"""Cost estimate, budget cap and the fast-track rule.

Built-in backends cost compute time: the estimate predicts CPU seconds per stage
from the work it has to do (frames × megapixels, seconds of audio) with
coefficients measured by ``bench/render.py`` on a 2-core machine, and prices them
at ``compute_price_per_hour``.  Remote backends cost their published unit price
(characters, tokens, seconds of output), configurable per deployment.

A budget cap first tries cheaper settings (quality tier, then resolution, then
frame rate) and refuses only when even the cheapest render does not fit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pydantic import BaseModel, Field

from aiprod.errors import Invalid
from aiprod.production import backends
from aiprod.production.backends.planner import pacing
from aiprod.production.models import (
    STAGES,
    ProductionRequest,
    QualityTier,
    RenderSpec,
    Resolution,
    Storyboard,
    render_spec,
)
from aiprod.production.presets import PRESETS

# CPU seconds per unit of work for the built-in backends, measured per stage
# (cost.json's cpu_seconds) on a 30 s 720p30 production on a 2-core machine.
_VISUALS_S_PER_MPFRAME = 0.015  # procedural render + mezzanine encode
_MONTAGE_S_PER_MPFRAME: dict[QualityTier, float] = {
    "draft": 0.020,  # decode + compose + libx264 veryfast
    "standard": 0.039,  # ... medium
    "premium": 0.071,  # ... slow
}
_NARRATE_S_PER_AUDIO_S = 0.04
_MUSIC_S_PER_AUDIO_S = 0.033
_QA_S_PER_VIDEO_S = 0.08
_PLAN_S = 0.05
# A chat planner's call: the instructions and the JSON schema it sends (about
# 370 + 290 tokens, measured on the openai-chat planner's requests at
# characters / 4), and per scene the JSON around the narration it gets back.
CHAT_PROMPT_TOKENS = 650
CHAT_TOKENS_PER_SCENE = 60
CHAT_TOKENS_PER_WORD = 1.4
CHARS_PER_WORD = 5.8  # English prose: 4.7 letters, the space and punctuation

DEFAULT_PRICES: dict[str, dict[str, float]] = {
    # Remote backends: USD per unit, as published by the providers; override per
    # deployment with AIPROD_PRICES.
    "openai-chat": {"1k_tokens": 0.0006},
    "openai-speech": {"1k_chars": 0.015},
    "elevenlabs": {"1k_chars": 0.18},
    "openai-images": {"image": 0.04},
    "replicate-video": {"second": 0.05},
}
BUILTIN_UNIT = "cpu_second"

_WORD = re.compile(r"\w+")


class StageCost(BaseModel):
    stage: str
    backend: str
    unit: str
    units: float
    unit_price: float
    cost: float
    seconds: float = Field(description="Predicted wall time of the stage on this machine.")


class CostEstimate(BaseModel):
    currency: str = "USD"
    stages: list[StageCost]
    total: float
    seconds: float = Field(description="Predicted wall time of the render, all stages.")
    duration: float = Field(
        0.0,
        description="Seconds of video the estimate assumes: the storyboard's once planned, a "
        "script's reading time, else the requested (or the preset's) duration.",
    )
    spec: RenderSpec
    downgrades: list[str] = Field(default_factory=list)

    def stage_seconds(self) -> dict[str, float]:
        return {s.stage: s.seconds for s in self.stages}


class BudgetExceeded(Invalid, ValueError):
    """Even the cheapest downgrade of the request costs more than its budget (422)."""

    def __init__(self, needed: float, budget: float) -> None:
        super().__init__(
            f"the cheapest render costs ${needed:.6f}, above the budget of ${budget:.6f}",
            "budget_exceeded",
            details={"needed": needed, "budget": budget},
        )
        self.needed = needed
        self.budget = budget


@dataclass(frozen=True)
class PriceTable:
    compute_price_per_hour: float
    prices: dict[str, dict[str, float]]

    @classmethod
    def default(
        cls,
        compute_price_per_hour: float = 0.12,
        overrides: dict[str, dict[str, float]] | None = None,
    ) -> PriceTable:
        prices = {k: dict(v) for k, v in DEFAULT_PRICES.items()}
        for backend, units in (overrides or {}).items():
            prices.setdefault(backend, {}).update(units)
        return cls(compute_price_per_hour, prices)

    def unit_price(self, backend: str, unit: str) -> float:
        if unit == BUILTIN_UNIT and unit not in self.prices.get(backend, {}):
            return self.compute_price_per_hour / 3600.0
        try:
            return self.prices[backend][unit]
        except KeyError:
            raise ValueError(f"no price for backend {backend!r} per {unit!r}") from None


def _narration(request: ProductionRequest, storyboard: Storyboard | None) -> tuple[int, int]:
    """Characters and words the narrator will read."""
    if storyboard is not None:
        text = " ".join(s.narration for s in storyboard.scenes)
    elif request.script is not None:
        text = request.script
    else:
        # A prompt's narration is sized to the target as the planners size it.
        words = pacing(request, request.voice.rate).words
        return round(words * CHARS_PER_WORD), words
    return len(text), len(_WORD.findall(text))


def _content_scenes(request: ProductionRequest, storyboard: Storyboard | None) -> int:
    if storyboard is not None:
        return sum(1 for s in storyboard.scenes if s.kind == "content")
    return pacing(request, request.voice.rate).scenes


def estimate(
    request: ProductionRequest,
    spec: RenderSpec,
    prices: PriceTable,
    storyboard: Storyboard | None = None,
) -> CostEstimate:
    """Predict cost and wall time per stage, before anything runs."""
    chars, words = _narration(request, storyboard)
    scenes = _content_scenes(request, storyboard)
    speech = words * 60.0 / request.voice.rate
    duration = _video_seconds(request, storyboard, speech)
    frames = spec.frames(duration)
    mp_frames = frames * spec.width * spec.height / 1e6
    source = len(request.prompt or request.script or "") / 4
    tokens = (
        CHAT_PROMPT_TOKENS + source + words * CHAT_TOKENS_PER_WORD + scenes * CHAT_TOKENS_PER_SCENE
    )
    work: dict[str, tuple[float, dict[str, float]]] = {
        # stage: (predicted built-in CPU seconds, remote units by unit name)
        "plan": (_PLAN_S, {"1k_tokens": tokens / 1000}),
        "narrate": (speech * _NARRATE_S_PER_AUDIO_S, {"1k_chars": chars / 1000}),
        "visuals": (
            mp_frames * _VISUALS_S_PER_MPFRAME,
            {"image": scenes, "second": duration},
        ),
        "music": (
            duration * _MUSIC_S_PER_AUDIO_S if request.music else 0.0,
            {"second": duration if request.music else 0.0},
        ),
        "montage": (mp_frames * _MONTAGE_S_PER_MPFRAME[spec.quality], {}),
        "qa": (duration * _QA_S_PER_VIDEO_S, {}),
    }
    stages = []
    for stage in STAGES:
        backend = request.backends.get(stage) or backends.DEFAULTS[stage]
        cpu, remote_units = work[stage]
        unit, units = BUILTIN_UNIT, cpu
        for name, amount in remote_units.items():
            if name in prices.prices.get(backend, {}):
                unit, units = name, amount
                break
        price = prices.unit_price(backend, unit)
        stages.append(
            StageCost(
                stage=stage,
                backend=backend,
                unit=unit,
                units=round(units, 6),
                unit_price=price,
                cost=round(units * price, 8),
                seconds=round(cpu, 3),
            )
        )
    return CostEstimate(
        stages=stages,
        total=round(sum(s.cost for s in stages), 8),
        seconds=round(sum(s.seconds for s in stages), 3),
        duration=round(duration, 3),
        spec=spec,
    )


SCRIPT_SPEECH_FACTOR = 1.1
SCRIPT_PAUSE_PER_SENTENCE = 0.75
"""A script's video is its reading time, stretched a little, plus a pause per
sentence: within 10 % of the built-in planner's storyboards for scripts of 2,
5 and 20 sentences (4.0 / 21.9 / 108.9 s)."""
_SENTENCE = re.compile(r"[^.!?…]+[.!?…]+|[^.!?…]+$")


def _video_seconds(
    request: ProductionRequest, storyboard: Storyboard | None, speech: float
) -> float:
    """The video's length: the storyboard's once planned; a script's reading
    time with its pauses unless a duration is asked; else the target."""
    if storyboard is not None:
        return storyboard.duration
    if request.script is not None and request.duration is None:
        sentences = len([m for m in _SENTENCE.findall(request.script) if m.strip()])
        return max(1.0, speech * SCRIPT_SPEECH_FACTOR + SCRIPT_PAUSE_PER_SENTENCE * sentences)
    return request.target_duration


_QUALITY_STEPS: tuple[QualityTier, ...] = ("premium", "standard", "draft")
_RESOLUTION_STEPS: tuple[Resolution, ...] = ("1080p", "720p", "480p")


def requested_spec(request: ProductionRequest) -> RenderSpec:
    return render_spec(
        request.aspect, request.resolution, request.fps, PRESETS[request.preset].quality
    )


def fit_budget(
    request: ProductionRequest,
    prices: PriceTable,
    storyboard: Storyboard | None = None,
    spec: RenderSpec | None = None,
) -> CostEstimate:
    """The estimate at the requested settings, or at the first cheaper settings
    that fit the budget (recorded in ``downgrades``).  Raises BudgetExceeded."""
    spec = spec or requested_spec(request)
    first = estimate(request, spec, prices, storyboard)
    if request.budget is None or first.total <= request.budget:
        return first
    quality, resolution, fps = spec.quality, request.resolution, spec.fps
    notes: list[str] = []
    candidates: list[tuple[QualityTier, Resolution, int, str]] = []
    for q in _QUALITY_STEPS[_QUALITY_STEPS.index(quality) + 1 :]:
        candidates.append((q, resolution, fps, f"quality {quality}→{q}"))
        quality = q
    for r in _RESOLUTION_STEPS[_RESOLUTION_STEPS.index(resolution) + 1 :]:
        candidates.append((quality, r, fps, f"resolution {resolution}→{r}"))
        resolution = r
    if fps > 24:
        candidates.append((quality, resolution, 24, f"fps {fps}→24"))
    cheapest = first
    for q, r, f, note in candidates:
        notes.append(note)
        cand = render_spec(request.aspect, r, f, q)  # type: ignore[arg-type]
        cheapest = estimate(request, cand, prices, storyboard)
        if cheapest.total <= request.budget:
            cheapest.downgrades = list(notes)
            return cheapest
    raise BudgetExceeded(cheapest.total, request.budget)


def complexity(request: ProductionRequest, storyboard: Storyboard | None = None) -> float:
    """A 0..1 score of how much can go wrong: length, scenes, user media, pixels, text."""
    duration = storyboard.duration if storyboard is not None else request.target_duration
    scenes = len(storyboard.scenes) if storyboard is not None else max(1, round(duration / 7))
    text = request.script or request.prompt or ""
    pixels = {"480p": 0.0, "720p": 0.5, "1080p": 1.0}[request.resolution]
    score = (
        0.30 * min(1.0, duration / 120)
        + 0.25 * min(1.0, scenes / 12)
        + 0.20 * min(1.0, len(request.media) / 4)
        + 0.15 * pixels
        + 0.10 * min(1.0, len(text) / 2000)
    )
    return round(min(1.0, score), 4)


def is_fast_track(request: ProductionRequest, storyboard: Storyboard | None = None) -> bool:
    """Simple requests (complexity < 0.3, ≤ 30 s, ≤ 3 scenes) take the fastest path."""
    duration = storyboard.duration if storyboard is not None else request.target_duration
    scenes = len(storyboard.scenes) if storyboard is not None else max(1, round(duration / 7))
    return complexity(request, storyboard) < 0.3 and duration <= 30 and scenes <= 3


def fast_track(request: ProductionRequest) -> ProductionRequest:
    """The request as the fast track runs it: the quick_social preset's draft
    encode, no review gate; the duration is pinned so the preset change keeps it."""
    update: dict[str, object] = {"preset": "quick_social", "review": False}
    if request.script is None:  # a script without a duration keeps its natural length
        update["duration"] = request.target_duration
    return request.model_copy(update=update)
