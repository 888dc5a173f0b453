"""Stage 5, montage: clips, narration, music and subtitles become the final MP4."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from aiprod.production.models import (
    Narration,
    RenderSpec,
    Storyboard,
    SubtitleCue,
    SubtitleStyle,
)
from aiprod.production.stages.base import Backend, ProgressFn


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
