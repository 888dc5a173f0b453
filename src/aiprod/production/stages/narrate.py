"""Stage 2, narrate: scene text becomes speech with word timings.

Holds the Narrator Protocol that backends implement, and the stage's body
(`run`, called by the Pipeline): narrate each scene through the stage cache,
then lengthen the scenes whose speech does not fit (`fit_to_narration`, with
the NARRATION_* spacing that montage and qa place the speech by).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel

from aiprod.production.models import Narration, Storyboard, Voice
from aiprod.production.stages import plan
from aiprod.production.stages.base import Backend
from aiprod.production.stages.context import StageContext, write_json

NARRATION_LEAD = 0.3  # seconds from a scene's start to its narration
NARRATION_GAP = 0.4  # at least this much silence between two scenes' narration
NARRATION_TAIL = 0.3  # screen time after a scene's narration ends


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


def run(ctx: StageContext, storyboard: Storyboard) -> tuple[Storyboard, list[Narration]]:
    """Narrate every scene, then lengthen scenes whose speech does not fit."""
    ctx.emit("narrate", "started", 0.0)
    narrator: Narrator = ctx.backend("narrate")
    out: list[Narration] = []
    n = len(storyboard.scenes)
    hits = 0
    for i, scene in enumerate(storyboard.scenes):
        voice = scene.voice or ctx.request.voice
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
        ctx.emit("narrate", "progress", (i + 1) / n)
    storyboard = fit_to_narration(storyboard, out)
    plan.save(ctx, storyboard)
    write_json(
        ctx.work / "narration.json",
        [
            x.model_copy(update={"path": x.path.relative_to(ctx.outdir)}).model_dump(mode="json")
            for x in out
        ],
    )
    ctx.finish("narrate", units=n, cached=hits)
    return storyboard, out


def load(ctx: StageContext) -> tuple[Storyboard, list[Narration]]:
    """The fitted storyboard and the narrations an earlier run left."""
    sb = plan.load(ctx)
    raw = json.loads((ctx.work / "narration.json").read_text())
    items = [Narration.model_validate(x) for x in raw]
    return sb, [n.model_copy(update={"path": ctx.outdir / n.path}) for n in items]


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
