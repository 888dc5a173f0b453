"""Stage 2, narrate: scene text becomes speech with word timings.

Holds the Narrator Protocol that backends implement, and the stage's body
(`run`, called by the Pipeline): narrate each scene through the stage cache,
then pace the scenes to the measured speech (`fit_to_narration`, with the
NARRATION_* spacing that montage and qa place the speech by) and meet a
requested duration (`speedup_needed`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel

from aiprod.production.models import Narration, ProductionRequest, Storyboard, Voice
from aiprod.production.stages import plan
from aiprod.production.stages.base import Backend
from aiprod.production.stages.context import StageContext, write_json

NARRATION_LEAD = 0.3  # seconds from a scene's start to its narration
NARRATION_GAP = 0.4  # at least this much silence between two scenes' narration
NARRATION_TAIL = 0.3  # screen time after a scene's narration ends
MIN_SCENE_SECONDS = 1.0
DURATION_TOLERANCE = 0.10
"""A production ends within ±10 % of its requested duration (checked by QA)."""
MAX_SPEEDUP = 1.25
RATE_MAX = 400  # Voice.rate's bound


class VoiceInfo(BaseModel):
    """One voice, described the same way whatever engine speaks it."""

    name: str
    language: str
    gender: str = ""
    description: str = ""
    engine: str = ""  # the narrator backend that speaks it: "espeak", "hibari", ...
    sample_rate: int = 0  # Hz of the WAV it writes; 0 when the backend does not say
    licence: str = ""  # of the voice's data (model weights, voice files)
    any_language: bool = False
    """Whether the voice also reads text of other languages (with its own
    language's rules): eSpeak voices do, so a French scene voice in an English
    production is a choice; a neural voice reads only the language it learnt."""


class Narrator(Backend, Protocol):
    def narrate(self, text: str, voice: Voice, language: str, out: Path) -> Narration:
        """Write a mono 16-bit PCM WAV to `out`; return its length and word timings.

        Word timings are in seconds from the start of the file.  Empty text yields
        a short silent file with no words.
        """
        ...

    def voices(self) -> list[VoiceInfo]: ...

    # Optional: ``release()`` frees what the backend holds between narrations
    # (the narrate stage calls it when it is done).


def run(ctx: StageContext, storyboard: Storyboard) -> tuple[Storyboard, list[Narration]]:
    """Narrate every scene, fit each scene to its speech, and honour the
    requested duration (`fit_to_narration`, `speedup_needed`)."""
    ctx.emit("narrate", "started", 0.0)
    narrator: Narrator = ctx.backend("narrate")
    out, hits = _narrate_all(ctx, narrator, storyboard, 1.0)
    target = requested_duration(ctx.request)
    fitted = fit_to_narration(storyboard, out, ctx.request.breath, target)
    factor = speedup_needed(fitted, out, target)
    if factor > 1.0:
        out, hits = _narrate_all(ctx, narrator, storyboard, factor)
        fitted = fit_to_narration(storyboard, out, ctx.request.breath, target)
        ctx.made_by.setdefault("narrate", {})["rate_factor"] = f"{factor:.3f}"
    release = getattr(narrator, "release", None)
    if callable(release):  # e.g. the neural model: the renders that follow need the room
        release()
    plan.save(ctx, fitted)
    write_json(
        ctx.work / "narration.json",
        [
            x.model_copy(update={"path": x.path.relative_to(ctx.outdir)}).model_dump(mode="json")
            for x in out
        ],
    )
    ctx.finish("narrate", units=len(out), cached=hits)
    return fitted, out


def _narrate_all(
    ctx: StageContext, narrator: Narrator, storyboard: Storyboard, rate_factor: float
) -> tuple[list[Narration], int]:
    """Each scene's narration through the stage cache, its voice's rate scaled
    by `rate_factor`; (narrations, cache hits).  Progress is reported on the
    first pass only, so it never goes backwards."""
    out: list[Narration] = []
    n = len(storyboard.scenes)
    hits = 0
    for i, scene in enumerate(storyboard.scenes):
        voice = scene.voice or ctx.request.voice
        if rate_factor != 1.0:
            voice = voice.model_copy(
                update={"rate": min(RATE_MAX, round(voice.rate * rate_factor))}
            )
        wav = ctx.work / "narration" / f"scene_{i:03d}.wav"
        meta = wav.with_suffix(".json")

        def make(
            tmp: Path, text: str = scene.narration, voice: Any = voice, name: str = wav.name
        ) -> None:
            nar = narrator.narrate(text, voice, storyboard.language, tmp / name)
            (tmp / Path(name).with_suffix(".json")).write_text(nar.model_dump_json())

        hits += ctx.cached(
            "narrate",
            narrator,
            {"text": scene.narration, "voice": voice, "language": storyboard.language},
            [wav, meta],
            make,
        )
        nar = Narration.model_validate_json(meta.read_text())
        out.append(nar.model_copy(update={"path": wav}))
        if rate_factor == 1.0:
            ctx.emit("narrate", "progress", (i + 1) / n)
    return out, hits


def load(ctx: StageContext) -> tuple[Storyboard, list[Narration]]:
    """The fitted storyboard and the narrations an earlier run left."""
    sb = plan.load(ctx)
    raw = json.loads((ctx.work / "narration.json").read_text())
    items = [Narration.model_validate(x) for x in raw]
    return sb, [n.model_copy(update={"path": ctx.outdir / n.path}) for n in items]


def requested_duration(request: ProductionRequest) -> float | None:
    """The duration a production must meet (± `DURATION_TOLERANCE`): the one
    asked for.  Without one, a production runs as long as its speech (the
    preset's default length only sizes the plan): padding a thin prompt out to
    a default length would be dead air."""
    return request.duration


def _speech_end(nar: Narration) -> float:
    return nar.words[-1].end if nar.words else 0.0


def fit_to_narration(
    storyboard: Storyboard,
    narrations: list[Narration],
    breath: float = NARRATION_GAP,
    target: float | None = None,
) -> Storyboard:
    """Scene lengths from the measured speech, in both directions.

    A narrated scene lasts its lead, its speech and a `breath` of silence
    before the next scene's voice (at least `NARRATION_TAIL` after the last
    word, and room for its transition); scenes without narration (title and
    end cards) keep their planned length.  Only the scene whose speech changed
    changes, so editing one scene never invalidates the others' clips.

    When a `target` duration is given and the speech falls short of it by
    more than half the tolerance, the missing time is shared out as longer
    breaths (the user asked for that length); a production that is too long
    is the narrate stage's to fix by speaking faster (`speedup_needed`).
    """
    scenes = []
    for i, (scene, nar) in enumerate(zip(storyboard.scenes, narrations, strict=True)):
        speech = _speech_end(nar)
        if not speech:
            scenes.append(scene)
            continue
        overlap = storyboard.overlap_after(i)
        need = speech + max(NARRATION_LEAD + NARRATION_TAIL, overlap + breath)
        floor = max(MIN_SCENE_SECONDS, 2 * scene.transition_duration + 0.05)
        scenes.append(scene.model_copy(update={"duration": round(max(floor, need), 3)}))
    fitted = storyboard.model_copy(update={"scenes": scenes})
    if target is None:
        return fitted
    short = target * (1 - DURATION_TOLERANCE / 2) - fitted.duration
    spoken = [i for i, nar in enumerate(narrations) if _speech_end(nar)]
    if short > 0 and spoken:
        extra = short / len(spoken)
        for i in spoken:
            sc = fitted.scenes[i]
            fitted.scenes[i] = sc.model_copy(
                update={"duration": round(min(120.0, sc.duration + extra), 3)}
            )
    return fitted


def speedup_needed(fitted: Storyboard, narrations: list[Narration], target: float | None) -> float:
    """How much faster the voices must speak for `fitted` to end within the
    tolerance of `target` (1.0: no need), at most `MAX_SPEEDUP` (beyond that
    speech stops sounding natural; QA then reports the overrun)."""
    if target is None or fitted.duration <= target * (1 + DURATION_TOLERANCE):
        return 1.0
    speech = sum(_speech_end(n) for n in narrations)
    if speech <= 0:
        return 1.0
    fixed = fitted.duration - speech
    room = target * (1 + DURATION_TOLERANCE / 2) - fixed
    if room <= 0:
        return MAX_SPEEDUP
    return min(MAX_SPEEDUP, max(1.0, speech / room))
