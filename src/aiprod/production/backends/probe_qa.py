"""QA on the real output file: what a viewer (or a platform's ingest) would notice.

Every check reads the finished MP4 (and its subtitle sidecar) rather than the
intermediate data, so a bug anywhere upstream — a renderer writing black frames,
a muxer dropping audio, an encoder setting lost — is caught before delivery.

Blocking checks are the ones that make a video wrong or unplayable somewhere:
duration, size, frame rate, codecs, audio present and as long as the picture,
black or frozen scenes, loudness, subtitle coverage, faststart, and ``glyphs``:
every character of the text drawn into the picture (the title, each scene's
on-screen text, burned-in subtitle cues) has a glyph in the shipped fonts, so
nothing was rendered as an empty box.  Two checks
are informational, because they describe something the montage aims for but
that a player will not reject and that the AAC encoder can legitimately move a
little:

* ``true_peak``: the montage limits the mix to -1 dBTP before encoding; AAC
  reconstruction can overshoot by a few tenths of a dB, which is harmless.
* ``audio_format``: 48 kHz stereo is our house format, but any AAC rate/layout
  plays everywhere.
"""

from __future__ import annotations

import itertools
import math
import statistics
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from aiprod.production.media.loudness import integrated_loudness, true_peak_db
from aiprod.production.media.probe import ProbeInfo, decode_audio, frames_at, probe
from aiprod.production.media.text import missing_glyphs
from aiprod.production.models import QACheck, QAReport, Storyboard, SubtitleCue
from aiprod.production.stages.narrate import DURATION_TOLERANCE as REQUEST_TOLERANCE
from aiprod.production.stages.qa import QAInput
from aiprod.production.subtitles import parse_srt

DURATION_TOLERANCE = 0.05  # fraction of the storyboard's duration
NARRATION_COVERAGE = 0.85
"""Share of the runtime the voice should fill (informational: cards are silent)."""
AV_LENGTH_TOLERANCE_S = 0.1
LOUDNESS_TOLERANCE_LU = 1.0
PEAK_CEILING_DB = -1.0
BLACK_LUMA = 8.0
"""Mean luma (0..255) under which a frame counts as black.  Encoded black decodes
to ~0-2; a deliberately dark scene with any visible content is well above 8."""
FREEZE_DIFF = 0.25
"""Mean absolute difference (0..255, at analysis size) under which two frames are
the same picture.  x264 reproduces a static picture exactly between keyframes (0.0)
and within ~1 across one; real motion, even a slow pan, gives several units."""
COVERAGE = 0.9
BLACK_SAMPLES = 3
FREEZE_SAMPLES = 6
ANALYSIS_WIDTH = 160


def _check(
    name: str, passed: bool, measured: str, expected: str, *, blocking: bool = True
) -> QACheck:
    return QACheck(
        name=name, passed=passed, blocking=blocking, measured=measured, expected=expected
    )


def scene_windows(storyboard: Storyboard) -> list[tuple[float, float]]:
    """(start, end) in seconds of the part of each scene no transition touches
    (the whole scene if transitions cover all of it)."""
    starts = storyboard.starts()
    out = []
    for i, scene in enumerate(storyboard.scenes):
        lo = starts[i] + (storyboard.overlap_after(i - 1) if i > 0 else 0.0)
        hi = starts[i] + scene.duration - storyboard.overlap_after(i)
        if hi - lo < 1e-6:
            lo, hi = starts[i], starts[i] + scene.duration
        out.append((lo, hi))
    return out


def _spread(lo: float, hi: float, count: int, fps: float, last: int) -> list[int]:
    """``count`` distinct frame indices evenly inside [lo, hi)."""
    first, final = math.ceil(lo * fps), max(math.ceil(lo * fps), math.ceil(hi * fps) - 1)
    final = min(final, last)
    first = min(first, final)
    picks = np.linspace(first, final, count)
    return sorted({round(float(p)) for p in picks})


def _luma(frame: NDArray[np.uint8]) -> float:
    rgb = frame.reshape(-1, 3).astype(np.float64)
    return float((rgb @ np.array([0.299, 0.587, 0.114])).mean())


def _diff(a: NDArray[np.uint8], b: NDArray[np.uint8]) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def coverage(span: tuple[float, float], cues: list[SubtitleCue]) -> float:
    """Fraction of ``span`` during which some cue is on screen."""
    s, e = span
    if e <= s:
        return 1.0
    pieces = sorted((max(s, c.start), min(e, c.end)) for c in cues if c.end > s and c.start < e)
    covered, reach = 0.0, s
    for a, b in pieces:
        a = max(a, reach)
        if b > a:
            covered += b - a
            reach = b
    return covered / (e - s)


def drawn_text(inp: QAInput) -> list[tuple[str, str]]:
    """(where, text) of everything drawn into the picture: the title (title and
    end cards), each scene's on-screen text, and the cues when burned in."""
    out = [("title", inp.storyboard.title)]
    out += [(f"scene {s.index}", s.on_screen_text) for s in inp.storyboard.scenes]
    if inp.subtitles_burned_in:
        out += [(f"cue {k}", c.text) for k, c in enumerate(inp.cues)]
    return out


def glyphs_check(inp: QAInput) -> QACheck:
    """Blocking: no drawn character lacks a glyph (it would show as an empty box)."""
    missing: dict[str, list[str]] = {}
    for where, text in drawn_text(inp):
        for ch in sorted(missing_glyphs(text)):
            missing.setdefault(ch, []).append(where)
    if not missing:
        return _check("glyphs", True, "every character drawn", "a glyph for every character")
    named = "; ".join(
        f"{ch!r} U+{ord(ch):04X} in {', '.join(places[:3])}"
        + (f" and {len(places) - 3} more" if len(places) > 3 else "")
        for ch, places in sorted(missing.items())
    )
    return _check(
        "glyphs",
        False,
        f"no glyph for {len(missing)} character(s): {named}",
        "a glyph for every character",
    )


class ProbeQA:
    """QualityChecker that probes and decodes the delivered file."""

    name = "probe"
    version = "2"  # 2: requested duration, coverage, glyphs, blocking true peak

    def check(self, inp: QAInput) -> QAReport:
        try:
            info = probe(inp.video)
        except Exception as exc:  # any demuxer error means the file is unusable
            checks = [_check("readable", False, f"{type(exc).__name__}: {exc}", "a media file")]
            return QAReport(passed=False, checks=checks)
        checks = [_check("readable", True, info.path.name, "a media file")]
        checks += self._container(inp, info)
        checks.append(glyphs_check(inp))
        if info.has_video:
            checks += self._pictures(inp, info)
        checks += self._audio(inp, info)
        if inp.subtitles_expected:
            checks += self._subtitles(inp)
        return QAReport(passed=not any(c.blocking and not c.passed for c in checks), checks=checks)

    # -- container and streams ------------------------------------------------------

    def _container(self, inp: QAInput, info: ProbeInfo) -> list[QACheck]:
        spec, want = inp.spec, inp.storyboard.duration
        checks = [
            _check(
                "duration",
                abs(info.duration - want) <= DURATION_TOLERANCE * want,
                f"{info.duration:.2f} s",
                f"{want:.2f} s ± {DURATION_TOLERANCE:.0%}",
            ),
            _check("video_present", info.has_video, str(info.has_video), "True"),
        ]
        if inp.requested_duration is not None:
            asked = inp.requested_duration
            checks.append(
                _check(
                    "requested_duration",
                    abs(info.duration - asked) <= REQUEST_TOLERANCE * asked,
                    f"{info.duration:.2f} s",
                    f"{asked:.2f} s ± {REQUEST_TOLERANCE:.0%}",
                )
            )
        if inp.narration_spans and info.duration > 0:
            spoken = sum(b - a for a, b in inp.narration_spans)
            checks.append(
                _check(
                    "narration_coverage",
                    spoken >= NARRATION_COVERAGE * info.duration,
                    f"{spoken / info.duration:.0%} of the runtime",
                    f"≥ {NARRATION_COVERAGE:.0%} (title and end cards are silent)",
                    blocking=False,
                )
            )
        if info.has_video:
            checks += [
                _check(
                    "resolution",
                    (info.width, info.height) == (spec.width, spec.height),
                    f"{info.width}x{info.height}",
                    f"{spec.width}x{spec.height}",
                ),
                _check(
                    "fps",
                    abs(info.fps - spec.fps) < 0.01,
                    f"{info.fps:.3f}",
                    f"{spec.fps}",
                ),
                _check("video_codec", info.video_codec == "h264", info.video_codec, "h264"),
            ]
        checks.append(_check("faststart", info.faststart, str(info.faststart), "moov before mdat"))
        return checks

    # -- pictures --------------------------------------------------------------------

    def _pictures(self, inp: QAInput, info: ProbeInfo) -> list[QACheck]:
        fps = info.fps or float(inp.spec.fps)
        last = max(0, info.video_frames - 1)
        black_at: list[list[int]] = []
        freeze_at: list[list[int]] = []
        for lo, hi in scene_windows(inp.storyboard):
            quarter = (hi - lo) / 4
            black_at.append(_spread(lo + quarter, hi - quarter, BLACK_SAMPLES, fps, last))
            freeze_at.append(_spread(lo, hi, FREEZE_SAMPLES, fps, last))
        wanted = {i for group in black_at + freeze_at for i in group}
        frames = frames_at(inp.video, wanted, max_width=ANALYSIS_WIDTH)

        lumas: list[float] = []
        black: list[int] = []
        for scene, idx in enumerate(black_at):
            values = [_luma(frames[i]) for i in idx if i in frames]
            luma = statistics.median(values) if values else 0.0
            lumas.append(luma)
            if luma < BLACK_LUMA:
                black.append(scene)
        darkest = min(range(len(lumas)), key=lumas.__getitem__)
        motion: list[float] = []
        frozen: list[int] = []
        for scene, idx in enumerate(freeze_at):
            seq = [frames[i] for i in idx if i in frames]
            if len(seq) < 2:
                motion.append(math.nan)
                continue
            # Median over consecutive pairs: a keyframe boundary inside a still
            # scene makes one pair differ a little; it must not hide the freeze.
            change = statistics.median(_diff(a, b) for a, b in itertools.pairwise(seq))
            motion.append(change)
            if change < FREEZE_DIFF:
                frozen.append(scene)
        tested = [k for k, m in enumerate(motion) if not math.isnan(m)]
        stillest = min(tested, key=motion.__getitem__, default=-1)
        return [
            _check(
                "no_black_scenes",
                not black,
                (f"black scenes {black}; " if black else "")
                + f"darkest scene {darkest}: mean luma {lumas[darkest]:.1f}",
                f"mean luma ≥ {BLACK_LUMA:g} mid-scene",
            ),
            _check(
                "no_frozen_scenes",
                not frozen,
                (f"frozen scenes {frozen}; " if frozen else "")
                + (
                    f"stillest scene {stillest}: change {motion[stillest]:.2f}"
                    if tested
                    else "no scene long enough to test"
                ),
                f"median frame change ≥ {FREEZE_DIFF:g}",
            ),
        ]

    # -- audio ---------------------------------------------------------------------------

    def _audio(self, inp: QAInput, info: ProbeInfo) -> list[QACheck]:
        checks = [_check("audio_present", info.has_audio, str(info.has_audio), "True")]
        if not info.has_audio:
            checks.append(_check("loudness", False, "no audio", f"{inp.target_lufs:g} ± 1 LUFS"))
            return checks
        video_len = info.video_duration or info.duration
        checks += [
            _check("audio_codec", info.audio_codec == "aac", info.audio_codec, "aac"),
            _check(
                "audio_length",
                abs(info.audio_duration - video_len) <= AV_LENGTH_TOLERANCE_S,
                f"audio {info.audio_duration:.3f} s, video {video_len:.3f} s",
                f"equal ± {AV_LENGTH_TOLERANCE_S:g} s",
            ),
            _check(
                "audio_format",
                (info.audio_rate, info.audio_channels) == (48_000, 2),
                f"{info.audio_rate} Hz, {info.audio_channels} ch",
                "48000 Hz, 2 ch",
                blocking=False,
            ),
        ]
        samples, rate = decode_audio(inp.video)
        loud = integrated_loudness(samples, rate)
        peak = true_peak_db(samples, rate)
        checks += [
            _check(
                "loudness",
                math.isfinite(loud) and abs(loud - inp.target_lufs) <= LOUDNESS_TOLERANCE_LU,
                f"{loud:.2f} LUFS",
                f"{inp.target_lufs:g} ± {LOUDNESS_TOLERANCE_LU:g} LUFS",
            ),
            _check(
                "true_peak",
                peak <= PEAK_CEILING_DB,
                f"{peak:.2f} dBTP",
                f"≤ {PEAK_CEILING_DB:g} dBTP (decoded AAC)",
            ),
        ]
        return checks

    # -- subtitles -----------------------------------------------------------------------

    @staticmethod
    def sidecar(video: Path) -> Path | None:
        """The SRT next to the video: ``<name>.srt`` or the montage's ``subtitles.srt``."""
        for candidate in (video.with_suffix(".srt"), video.parent / "subtitles.srt"):
            if candidate.is_file():
                return candidate
        return None

    def _subtitles(self, inp: QAInput) -> list[QACheck]:
        path = self.sidecar(inp.video)
        if path is None:
            return [_check("subtitles_file", False, "missing", "an .srt next to the video")]
        try:
            cues = parse_srt(path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            return [_check("subtitles_file", False, f"unreadable: {exc}", "valid SRT")]
        checks = [_check("subtitles_file", True, f"{path.name}: {len(cues)} cues", "valid SRT")]
        spans = [s for s in inp.narration_spans if s[1] > s[0]]
        if spans:
            fractions = [coverage(s, cues) for s in spans]
            worst = min(range(len(spans)), key=fractions.__getitem__)
            a, b = spans[worst]
            checks.append(
                _check(
                    "subtitle_coverage",
                    fractions[worst] >= COVERAGE,
                    f"worst span {a:.2f}-{b:.2f} s covered {fractions[worst]:.0%}",
                    f"every narration span ≥ {COVERAGE:.0%} covered",
                )
            )
        return checks
