"""Stage 5, montage: clips, narration, music and subtitles become the final MP4.

Holds the Montage Protocol that backends implement with its input and output
types, and the stage's body (`run`, called by the Pipeline): place the
subtitle cues on the final timeline and assemble the deliverables (video,
poster, subtitles, thumbnails) through the stage cache.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from aiprod.production.cache import file_digest
from aiprod.production.models import (
    Narration,
    RenderSpec,
    Storyboard,
    SubtitleCue,
    SubtitleStyle,
)
from aiprod.production.stages.base import Backend, ProgressFn
from aiprod.production.stages.context import StageContext
from aiprod.production.stages.narrate import NARRATION_LEAD
from aiprod.production.subtitles import cues_from_narrations, line_chars_for


@dataclass(frozen=True)
class MontageInput:
    storyboard: Storyboard
    clips: list[Path]  # one mezzanine clip per scene, in order
    narrations: list[Narration]  # one per scene, in order
    music: Path | None  # 48 kHz stereo WAV as long as the storyboard, or None
    spec: RenderSpec
    subtitles: SubtitleStyle
    cues: list[SubtitleCue]  # on the final timeline
    narration_lead: float = 0.3  # seconds from a scene's start to its narration


@dataclass
class MontageOutput:
    video: Path
    srt: Path | None
    vtt: Path | None
    poster: Path
    thumbnails: list[Path] = field(default_factory=list)
    loudness_lufs: float = 0.0


class Montage(Backend, Protocol):
    def assemble(self, inp: MontageInput, outdir: Path, progress: ProgressFn) -> MontageOutput:
        """Write video.mp4 (H.264/AAC, faststart), subtitles.srt/.vtt, poster.jpg and
        thumbnails into `outdir`."""
        ...


def subtitle_cues(
    ctx: StageContext, storyboard: Storyboard, narrations: list[Narration]
) -> list[SubtitleCue]:
    """The subtitle cues on the final timeline (none when subtitles are off)."""
    if not ctx.request.subtitles.enabled:
        return []
    line_chars = line_chars_for(ctx.spec.width, ctx.spec.height)
    return cues_from_narrations(storyboard, narrations, NARRATION_LEAD, line_chars)


def outputs(ctx: StageContext, storyboard: Storyboard) -> MontageOutput:
    """Where the montage's deliverables lie in the output folder."""
    subs = ctx.request.subtitles.enabled
    return MontageOutput(
        video=ctx.outdir / "video.mp4",
        srt=ctx.outdir / "subtitles.srt" if subs else None,
        vtt=ctx.outdir / "subtitles.vtt" if subs else None,
        poster=ctx.outdir / "poster.jpg",
        thumbnails=[
            ctx.outdir / "thumbs" / f"thumb_{i:03d}.jpg" for i in range(len(storyboard.scenes))
        ],
    )


def run(
    ctx: StageContext,
    storyboard: Storyboard,
    clips: list[Path],
    narrations: list[Narration],
    music: Path | None,
) -> tuple[MontageOutput, list[SubtitleCue]]:
    """Assemble the deliverables (or take them from the cache)."""
    ctx.emit("montage", "started", 0.0)
    montage: Montage = ctx.backend("montage")
    subs = ctx.request.subtitles
    cues = subtitle_cues(ctx, storyboard, narrations)
    names = ["video.mp4", "poster.jpg"]
    if subs.enabled:
        names += ["subtitles.srt", "subtitles.vtt"]
    names += [f"thumb_{i:03d}.jpg" for i in range(len(storyboard.scenes))]
    targets = [ctx.outdir / (f"thumbs/{n}" if n.startswith("thumb_") else n) for n in names]
    inputs = {
        "clips": [file_digest(c) for c in clips],
        "narrations": [file_digest(x.path) for x in narrations],
        "music": file_digest(music) if music else None,
        "storyboard": storyboard.model_dump(
            mode="json", exclude={"scenes": {"__all__": {"media"}}}
        ),
        "spec": ctx.spec,
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
            spec=ctx.spec,
            subtitles=subs,
            cues=cues,
            narration_lead=NARRATION_LEAD,
        )
        result["out"] = montage.assemble(inp, tmp, lambda f: ctx.emit("montage", "progress", f))

    hit = ctx.cached("montage", montage, inputs, targets, make)
    out = outputs(ctx, storyboard)
    if "out" in result:
        out.loudness_lufs = result["out"].loudness_lufs
    ctx.finish("montage", units=1, cached=int(hit))
    return out, cues
