"""Stage 6, qa: technical checks on the real output file.

Holds the QualityChecker Protocol that backends implement with its input type,
and the stage's body (`run`, called by the Pipeline), which checks the video
against the storyboard and writes ``qa.json``.  The Pipeline closes this stage
itself, after writing the provenance files (see production/provenance.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from aiprod.production.models import Narration, QAReport, RenderSpec, Storyboard, SubtitleCue
from aiprod.production.stages.base import Backend
from aiprod.production.stages.context import StageContext, write_json
from aiprod.production.stages.narrate import NARRATION_LEAD, requested_duration


@dataclass(frozen=True)
class QAInput:
    video: Path
    storyboard: Storyboard
    spec: RenderSpec
    cues: list[SubtitleCue]
    narration_spans: list[tuple[float, float]]  # (start, end) of speech on the timeline
    subtitles_expected: bool
    target_lufs: float = -14.0
    subtitles_burned_in: bool = False  # cue text is drawn into the picture (fonts matter)
    requested_duration: float | None = None  # what the user asked for (± DURATION_TOLERANCE)


class QualityChecker(Backend, Protocol):
    def check(self, inp: QAInput) -> QAReport: ...


def run(
    ctx: StageContext,
    storyboard: Storyboard,
    narrations: list[Narration],
    cues: list[SubtitleCue],
) -> QAReport:
    """Check the video and write the report; does not finish the stage."""
    ctx.emit("qa", "started", 0.0)
    checker: QualityChecker = ctx.backend("qa")
    starts = storyboard.starts()
    spans = [
        (
            starts[i] + NARRATION_LEAD + n.words[0].start,
            starts[i] + NARRATION_LEAD + n.words[-1].end,
        )
        for i, n in enumerate(narrations)
        if n.words
    ]
    report = checker.check(
        QAInput(
            video=ctx.outdir / "video.mp4",
            storyboard=storyboard,
            spec=ctx.spec,
            cues=cues,
            narration_spans=spans,
            subtitles_expected=ctx.request.subtitles.enabled,
            subtitles_burned_in=ctx.request.subtitles.enabled and ctx.request.subtitles.burn_in,
            requested_duration=requested_duration(ctx.request),
        )
    )
    write_json(ctx.outdir / "qa.json", report.model_dump(mode="json"))
    ctx.stats["qa"] = {"hits": 0, "misses": 1}
    return report


def load(ctx: StageContext) -> QAReport:
    """The report an earlier run wrote."""
    return QAReport.model_validate_json((ctx.outdir / "qa.json").read_text())
