"""The blocking ``glyphs`` QA check: text drawn into the picture has glyphs."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from aiprod.production.backends.probe_qa import ProbeQA, drawn_text, glyphs_check
from aiprod.production.media.text import font_index
from aiprod.production.media.video import VideoWriter
from aiprod.production.models import RenderSpec, Scene, Storyboard, SubtitleCue
from aiprod.production.stages.qa import QAInput

SPEC = RenderSpec(width=160, height=96, fps=24, quality="draft")
CJK = "中"  # no shipped font has it (asserted below)


def board(title: str = "Café crème", on_screen: str = "Zażółć gęślą jaźń") -> Storyboard:
    return Storyboard(
        title=title,
        language="fr",
        scenes=[
            Scene(index=0, kind="title", duration=1.0, on_screen_text="Ελληνικά · Русский"),
            Scene(index=1, duration=1.0, on_screen_text=on_screen, transition="cut"),
        ],
    )


def inp(storyboard: Storyboard, cues: list[SubtitleCue], *, burned: bool) -> QAInput:
    return QAInput(
        video=Path("unused.mp4"),
        storyboard=storyboard,
        spec=SPEC,
        cues=cues,
        narration_spans=[],
        subtitles_expected=bool(cues),
        subtitles_burned_in=burned,
    )


def test_the_test_character_is_not_covered() -> None:
    assert font_index(CJK) is None


def test_european_text_everywhere_passes() -> None:
    cues = [SubtitleCue(start=0.0, end=1.0, text="Où est l'été ? — « ça » coûte 5 €")]
    check = glyphs_check(inp(board(), cues, burned=True))
    assert check.passed
    assert check.blocking


def test_a_character_without_glyph_fails_and_is_named() -> None:
    check = glyphs_check(inp(board(on_screen=f"Tokyo {CJK}"), [], burned=False))
    assert not check.passed
    assert check.blocking
    assert CJK in check.measured
    assert "U+4E2D" in check.measured
    assert "scene 1" in check.measured


def test_title_is_checked() -> None:
    check = glyphs_check(inp(board(title=f"Le {CJK}"), [], burned=False))
    assert not check.passed
    assert "title" in check.measured


def test_cues_count_only_when_burned_in() -> None:
    cues = [SubtitleCue(start=0.0, end=1.0, text=f"subtitle {CJK}")]
    assert glyphs_check(inp(board(), cues, burned=False)).passed  # the player draws them
    failed = glyphs_check(inp(board(), cues, burned=True))
    assert not failed.passed
    assert "cue 0" in failed.measured
    places = [where for where, _ in drawn_text(inp(board(), cues, burned=True))]
    assert places == ["title", "scene 0", "scene 1", "cue 0"]


def test_probe_qa_reports_the_glyphs_check(tmp_path: Path) -> None:
    video = tmp_path / "v.mp4"
    rng = np.random.default_rng(0)
    with VideoWriter(video, SPEC.width, SPEC.height, SPEC.fps, {"preset": "veryfast"}) as w:
        for _ in range(2 * SPEC.fps):
            w.write(rng.integers(0, 255, (SPEC.height, SPEC.width, 3), dtype=np.uint8))
    report = ProbeQA().check(replace(inp(board(on_screen=CJK), [], burned=False), video=video))
    glyphs = [c for c in report.checks if c.name == "glyphs"]
    assert len(glyphs) == 1
    assert not glyphs[0].passed
    assert "glyphs" in {c.name for c in report.failures}
