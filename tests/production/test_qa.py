"""ProbeQA on real files: a good production passes, each kind of defect is caught."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray
from scipy.ndimage import uniform_filter1d

from aiprod.production.backends.probe_qa import ProbeQA, coverage, scene_windows
from aiprod.production.backends.pyav_montage import PyAVMontage
from aiprod.production.media.audio import MIX_RATE, write_wav
from aiprod.production.media.loudness import normalize
from aiprod.production.media.video import VideoWriter, mezzanine_writer
from aiprod.production.models import (
    Narration,
    QAReport,
    RenderSpec,
    Scene,
    Storyboard,
    SubtitleCue,
    SubtitleStyle,
    WordTiming,
)
from aiprod.production.stages.montage import MontageInput
from aiprod.production.stages.qa import QAInput
from aiprod.production.subtitles import cues_from_narrations, to_srt

pytestmark = pytest.mark.slow

SPEC = RenderSpec(width=320, height=180, fps=25, quality="draft")
Frame = NDArray[np.uint8]
Painter = Callable[[int], Frame]


def moving(seed: int) -> Painter:
    rng = np.random.default_rng(seed)
    tile = rng.integers(40, 220, (SPEC.height, SPEC.width * 2, 3), dtype=np.uint8)

    def paint(k: int) -> Frame:
        s = (k * 3) % SPEC.width
        return np.ascontiguousarray(tile[:, s : s + SPEC.width])

    return paint


def still(k: int) -> Frame:
    del k
    x = np.arange(SPEC.width)[None, :, None]
    return np.broadcast_to((x * 0.6 + 40).astype(np.uint8), (SPEC.height, SPEC.width, 3)).copy()


def black(k: int) -> Frame:
    del k
    return np.zeros((SPEC.height, SPEC.width, 3), np.uint8)


def failed(report: QAReport) -> set[str]:
    return {c.name for c in report.failures}


# --- direct files: three 1 s scenes, all cuts --------------------------------------------

CUTS = Storyboard(
    title="qa",
    scenes=[Scene(index=i, duration=1.0, transition="cut") for i in range(3)],
)


def program_audio(seconds: float, lufs: float = -14.0) -> NDArray[np.float32]:
    """Noise low-passed to ~3 kHz: like speech and music, nearly all of its energy
    is below the AAC encoder's cutoff (white noise would lose ~1.7 LU there)."""
    rng = np.random.default_rng(0)
    noise = rng.standard_normal((round(seconds * MIX_RATE), 2))
    noise = uniform_filter1d(noise, size=8, axis=0).astype(np.float32)
    return normalize(noise, MIX_RATE, target=lufs)


def write_program(
    path: Path,
    painters: list[Painter],
    *,
    size: tuple[int, int] = (SPEC.width, SPEC.height),
    audio: bool = True,
    faststart: bool = True,
    lufs: float = -14.0,
) -> Path:
    """An output file as a montage would write it, one painter per 1 s scene."""
    w, h = size
    with VideoWriter(
        path,
        w,
        h,
        SPEC.fps,
        {"preset": "veryfast", "crf": "23"},
        faststart=faststart,
        audio_rate=MIX_RATE if audio else None,
    ) as writer:
        if audio:
            writer.write_audio(program_audio(len(painters), lufs), MIX_RATE)
        for paint in painters:
            for k in range(SPEC.fps):
                frame = paint(k)
                if frame.shape[:2] != (h, w):
                    frame = np.ascontiguousarray(frame[:h, :w])
                writer.write(frame)
    return path


def qa_input(video: Path, *, storyboard: Storyboard = CUTS, **kw: object) -> QAInput:
    args: dict[str, object] = {
        "video": video,
        "storyboard": storyboard,
        "spec": SPEC,
        "cues": [],
        "narration_spans": [],
        "subtitles_expected": False,
    }
    args.update(kw)
    return QAInput(**args)  # type: ignore[arg-type]


GOOD = [moving(1), moving(2), moving(3)]


def test_a_clean_file_passes_every_check(tmp_path: Path) -> None:
    report = ProbeQA().check(qa_input(write_program(tmp_path / "v.mp4", GOOD)))
    assert report.passed, report.failures
    names = {c.name for c in report.checks}
    assert {
        "duration",
        "resolution",
        "fps",
        "video_codec",
        "audio_present",
        "audio_codec",
        "audio_length",
        "loudness",
        "no_black_scenes",
        "no_frozen_scenes",
        "faststart",
    } <= names
    assert all(c.measured and c.expected for c in report.checks)
    informational = {c.name for c in report.checks if not c.blocking}
    assert informational == {"audio_format"}  # (no narration spans given here)
    assert next(c for c in report.checks if c.name == "true_peak").blocking


def test_black_scene_fails(tmp_path: Path) -> None:
    report = ProbeQA().check(qa_input(write_program(tmp_path / "v.mp4", [GOOD[0], black, GOOD[2]])))
    assert not report.passed
    assert "no_black_scenes" in failed(report)
    check = next(c for c in report.checks if c.name == "no_black_scenes")
    assert "black scenes [1]" in check.measured


def test_frozen_scene_fails(tmp_path: Path) -> None:
    report = ProbeQA().check(qa_input(write_program(tmp_path / "v.mp4", [GOOD[0], GOOD[1], still])))
    assert failed(report) == {"no_frozen_scenes"}
    check = next(c for c in report.checks if c.name == "no_frozen_scenes")
    assert "frozen scenes [2]" in check.measured


def test_wrong_size_fails(tmp_path: Path) -> None:
    video = write_program(tmp_path / "v.mp4", GOOD, size=(256, 144))
    report = ProbeQA().check(qa_input(video))
    assert failed(report) == {"resolution"}
    check = next(c for c in report.checks if c.name == "resolution")
    assert (check.measured, check.expected) == ("256x144", "320x180")


def test_missing_audio_fails(tmp_path: Path) -> None:
    report = ProbeQA().check(qa_input(write_program(tmp_path / "v.mp4", GOOD, audio=False)))
    assert failed(report) == {"audio_present", "loudness"}


def test_quiet_audio_fails_loudness(tmp_path: Path) -> None:
    report = ProbeQA().check(qa_input(write_program(tmp_path / "v.mp4", GOOD, lufs=-20.0)))
    assert failed(report) == {"loudness"}


def test_index_at_the_end_fails_faststart(tmp_path: Path) -> None:
    report = ProbeQA().check(qa_input(write_program(tmp_path / "v.mp4", GOOD, faststart=False)))
    assert failed(report) == {"faststart"}


def test_wrong_duration_fails(tmp_path: Path) -> None:
    longer = Storyboard(
        title="qa", scenes=[Scene(index=i, duration=1.2, transition="cut") for i in range(3)]
    )
    report = ProbeQA().check(qa_input(write_program(tmp_path / "v.mp4", GOOD), storyboard=longer))
    assert "duration" in failed(report)


def test_unreadable_file_fails_cleanly(tmp_path: Path) -> None:
    bad = tmp_path / "v.mp4"
    bad.write_bytes(b"not a video at all" * 100)
    report = ProbeQA().check(qa_input(bad))
    assert not report.passed
    assert failed(report) == {"readable"}


def test_subtitles_missing_or_short_fail(tmp_path: Path) -> None:
    video = write_program(tmp_path / "v.mp4", GOOD)
    spans = [(0.5, 2.5)]
    report = ProbeQA().check(qa_input(video, narration_spans=spans, subtitles_expected=True))
    assert failed(report) == {"subtitles_file"}
    (tmp_path / "subtitles.srt").write_text(
        to_srt([SubtitleCue(start=0.5, end=1.5, text="half of it")])
    )
    report = ProbeQA().check(qa_input(video, narration_spans=spans, subtitles_expected=True))
    assert failed(report) == {"subtitle_coverage"}
    (tmp_path / "subtitles.srt").write_text(
        to_srt(
            [
                SubtitleCue(start=0.4, end=1.5, text="all"),
                SubtitleCue(start=1.5, end=2.4, text="of it"),
            ]
        )
    )
    report = ProbeQA().check(qa_input(video, narration_spans=spans, subtitles_expected=True))
    assert report.passed, report.failures


def test_coverage_and_scene_windows() -> None:
    cues = [SubtitleCue(start=0, end=1, text="a"), SubtitleCue(start=0.5, end=2, text="b")]
    assert coverage((0.0, 2.0), cues) == pytest.approx(1.0)  # overlaps are not double counted
    assert coverage((1.0, 3.0), cues) == pytest.approx(0.5)
    assert coverage((5.0, 6.0), cues) == 0.0
    sb = Storyboard(
        title="w",
        scenes=[
            Scene(index=0, duration=2.0, transition="crossfade", transition_duration=0.5),
            Scene(index=1, duration=2.0, transition="cut"),
        ],
    )
    assert scene_windows(sb) == [(0.0, 1.5), (2.0, 3.5)]


# --- a real montage ---------------------------------------------------------------------


def voice(path: Path, words: list[tuple[str, float, float]], total: float) -> Narration:
    rate = 22_050
    x = np.zeros(round(total * rate), np.float32)
    for _, a, b in words:
        t = np.arange(round((b - a) * rate)) / rate
        x[round(a * rate) : round(a * rate) + t.size] = 0.3 * np.sin(2 * np.pi * 300 * t)
    write_wav(path, x, rate)
    timings = [WordTiming(text=w, start=a, end=b) for w, a, b in words]
    return Narration(path=path, sample_rate=rate, duration=total, words=timings)


def test_montage_output_passes_qa(tmp_path: Path) -> None:
    sb = Storyboard(
        title="qa",
        scenes=[
            Scene(index=0, duration=1.6, transition="crossfade", transition_duration=0.3),
            Scene(index=1, duration=1.6, transition="slide", transition_duration=0.3),
            Scene(index=2, duration=1.4, transition="cut"),
        ],
    )
    clips = []
    for i, scene in enumerate(sb.scenes):
        path = tmp_path / f"c{i}.mp4"
        paint = moving(10 + i)
        with mezzanine_writer(path, SPEC) as w:
            for k in range(SPEC.frames(scene.duration)):
                w.write(paint(k))
        clips.append(path)
    narrations = [
        voice(tmp_path / "n0.wav", [("Bees", 0.0, 0.3), ("fly.", 0.35, 0.8)], 1.0),
        voice(tmp_path / "n1.wav", [("Flowers", 0.0, 0.5), ("bloom,", 0.55, 0.9)], 1.0),
        voice(tmp_path / "n2.wav", [("honey", 0.0, 0.4), ("flows.", 0.45, 0.9)], 1.0),
    ]
    lead = 0.3
    cues = cues_from_narrations(sb, narrations, lead)
    spans = [
        (s + lead + n.words[0].start, s + lead + n.words[-1].end)
        for s, n in zip(sb.starts(), narrations, strict=True)
    ]
    out = PyAVMontage().assemble(
        MontageInput(
            storyboard=sb,
            clips=clips,
            narrations=narrations,
            music=None,
            spec=SPEC,
            subtitles=SubtitleStyle(),
            cues=cues,
            narration_lead=lead,
        ),
        tmp_path / "out",
        lambda _p: None,
    )
    report = ProbeQA().check(
        QAInput(
            video=out.video,
            storyboard=sb,
            spec=SPEC,
            cues=cues,
            narration_spans=spans,
            subtitles_expected=True,
        )
    )
    assert report.passed, report.failures
    assert {"subtitles_file", "subtitle_coverage"} <= {c.name for c in report.checks}


def test_the_file_is_checked_against_the_requested_duration(tmp_path: Path) -> None:
    """A production asked for 8 s that came out as long as the storyboard fails
    QA (the storyboard alone would have passed it), and passes when asked for
    its own length; the voice's share of the runtime is reported, not blocking."""
    video = write_program(tmp_path / "v.mp4", GOOD)
    length = CUTS.duration
    far = ProbeQA().check(qa_input(video, requested_duration=length * 3))
    check = next(c for c in far.checks if c.name == "requested_duration")
    assert not far.passed and check.blocking and not check.passed
    near = ProbeQA().check(
        qa_input(video, requested_duration=length * 1.05, narration_spans=[(0.2, 0.4)])
    )
    assert near.passed, near.failures
    coverage = next(c for c in near.checks if c.name == "narration_coverage")
    assert not coverage.passed and not coverage.blocking
