"""Stage 6, qa: technical checks on the real output file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from aiprod.production.models import QAReport, RenderSpec, Storyboard, SubtitleCue
from aiprod.production.stages.base import Backend


@dataclass(frozen=True)
class QAInput:
    video: Path
    storyboard: Storyboard
    spec: RenderSpec
    cues: list[SubtitleCue]
    narration_spans: list[tuple[float, float]]  # (start, end) of speech on the timeline
    subtitles_expected: bool
    target_lufs: float = -14.0


class QualityChecker(Backend, Protocol):
    def check(self, inp: QAInput) -> QAReport: ...
