"""PyAVMontage on tiny synthetic productions: streams, transitions, subtitles, audio."""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray
from PIL import Image

from aiprod.production.backends.pyav_montage import (
    PyAVMontage,
    SubtitleBurner,
    Timeline,
    ducking_gain,
    timeline_frames,
)
from aiprod.production.media.audio import MIX_RATE, write_wav
from aiprod.production.media.loudness import integrated_loudness, true_peak_db
from aiprod.production.media.probe import decode_audio, iter_frames, probe
from aiprod.production.media.text import line_height
from aiprod.production.media.video import mezzanine_writer
from aiprod.production.models import (
    Narration,
    RenderSpec,
    Scene,
    Storyboard,
    SubtitleCue,
    SubtitleStyle,
    WordTiming,
)
from aiprod.production.stages.montage import MontageInput, MontageOutput
from aiprod.production.subtitles import parse_srt, parse_vtt

pytestmark = pytest.mark.slow

SPEC = RenderSpec(width=320, height=180, fps=25, quality="draft")
RED, BLUE, GREEN = (220, 30, 30), (30, 30, 220), (30, 200, 60)
VOICE_RATE = 22_050
VOICE_HZ, MUSIC_HZ = 440.0, 2000.0
CUE = SubtitleCue(start=2.1, end=2.5, text="Hello subtitles")

Frame = NDArray[np.uint8]


def write_clip(path: Path, seconds: float, make: Callable[[int], Frame]) -> Path:
    with mezzanine_writer(path, SPEC) as w:
        for k in range(SPEC.frames(seconds)):
            w.write(make(k))
    return path


def solid(rgb: tuple[int, int, int]) -> Callable[[int], Frame]:
    return lambda _k: np.full((SPEC.height, SPEC.width, 3), rgb, np.uint8)


def moving(k: int) -> Frame:
    x = np.arange(SPEC.width)[None, :, None]
    y = np.arange(SPEC.height)[:, None, None]
    return np.broadcast_to(((x * 2 + y + k * 9) % 256), (SPEC.height, SPEC.width, 3)).astype(
        np.uint8
    )


def voice_wav(path: Path, speech: tuple[float, float] | None, total: float) -> Narration:
    """A 'narration': a 440 Hz tone with soft edges during `speech`, silence elsewhere."""
    n = round(total * VOICE_RATE)
    x = np.zeros(n, np.float32)
    words: list[WordTiming] = []
    if speech is not None:
        a, b = (round(t * VOICE_RATE) for t in speech)
        t = np.arange(b - a) / VOICE_RATE
        env = np.minimum(1.0, np.minimum(t, t[::-1]) / 0.02)
        x[a:b] = 0.3 * np.sin(2 * np.pi * VOICE_HZ * t) * env
        words = [WordTiming(text="tone", start=speech[0], end=speech[1])]
    write_wav(path, x, VOICE_RATE)
    return Narration(path=path, sample_rate=VOICE_RATE, duration=total, words=words)


def music_wav(path: Path, seconds: float) -> Path:
    t = np.arange(round(seconds * MIX_RATE)) / MIX_RATE
    x = (0.2 * np.sin(2 * np.pi * MUSIC_HZ * t)).astype(np.float32)
    write_wav(path, np.stack([x, x], axis=1), MIX_RATE)
    return path


def storyboard() -> Storyboard:
    # Frames at 25 fps: scene 0 = 0..29, crossfade 20..29; scene 1 = 20..49, slide 40..49;
    # scene 2 = 40..69 then a cut; scene 3 = 70..94.  Total 95 frames = 3.8 s.
    return Storyboard(
        title="test",
        scenes=[
            Scene(index=0, duration=1.2, transition="crossfade", transition_duration=0.4),
            Scene(index=1, duration=1.2, transition="slide", transition_duration=0.4),
            Scene(index=2, duration=1.2, transition="cut"),
            Scene(index=3, duration=1.0, transition="cut"),
        ],
    )


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> tuple[MontageOutput, list[float], Path]:
    tmp = tmp_path_factory.mktemp("montage")
    sb = storyboard()
    clips = [
        write_clip(tmp / "c0.mp4", 1.2, solid(RED)),
        write_clip(tmp / "c1.mp4", 1.2, solid(BLUE)),
        write_clip(tmp / "c2.mp4", 1.2, solid(GREEN)),
        write_clip(tmp / "c3.mp4", 1.0, moving),
    ]
    narrations = [
        voice_wav(tmp / "n0.wav", (0.1, 1.0), 1.2),  # timeline 0.4..1.3 s
        voice_wav(tmp / "n1.wav", None, 0.3),
        voice_wav(tmp / "n2.wav", None, 0.3),
        voice_wav(tmp / "n3.wav", None, 0.3),
    ]
    inp = MontageInput(
        storyboard=sb,
        clips=clips,
        narrations=narrations,
        music=music_wav(tmp / "music.wav", sb.duration),
        spec=SPEC,
        subtitles=SubtitleStyle(),
        cues=[CUE],
        narration_lead=0.3,
    )
    seen: list[float] = []
    out = PyAVMontage().assemble(inp, tmp / "out", seen.append)
    return out, seen, tmp


@pytest.fixture(scope="module")
def frames(rendered: tuple[MontageOutput, list[float], Path]) -> list[Frame]:
    return [f.astype(np.int16) for f in iter_frames(rendered[0].video)]


def test_output_probes_to_the_spec(rendered: tuple[MontageOutput, list[float], Path]) -> None:
    out, progress, _ = rendered
    info = probe(out.video)
    assert (info.width, info.height, info.fps) == (320, 180, 25.0)
    assert info.video_frames == 95
    assert info.duration == pytest.approx(3.8, abs=0.05)
    assert info.video_codec == "h264"
    assert info.audio_codec == "aac"
    assert (info.audio_rate, info.audio_channels) == (48_000, 2)
    assert info.faststart
    assert abs(info.audio_duration - info.video_duration) <= 1024 / 48_000
    audio, rate = decode_audio(out.video)
    assert abs(audio.shape[0] / rate - 3.8) <= 1024 / 48_000
    # Progress is a fraction of frames, rising to exactly 1.
    assert progress[-1] == 1.0
    assert progress == sorted(progress)
    assert all(0.0 <= p <= 1.0 for p in progress)


def test_artifacts(rendered: tuple[MontageOutput, list[float], Path]) -> None:
    out, _, _ = rendered
    assert out.srt is not None
    assert out.vtt is not None
    assert parse_srt(out.srt.read_text()) == [CUE]
    assert parse_vtt(out.vtt.read_text()) == [CUE]
    with Image.open(out.poster) as poster:
        assert poster.format == "JPEG"
        assert poster.size == (320, 180)
        # First content scene is scene 0 (red); the poster is taken in its middle.
        r, _g, b = np.asarray(poster).reshape(-1, 3).mean(axis=0)
        assert r > 150 > b
    assert [p.name for p in out.thumbnails] == [f"thumb_{i:03d}.jpg" for i in range(4)]
    colours = []
    for thumb in out.thumbnails:
        with Image.open(thumb) as im:
            assert im.size == (320, 180)
            colours.append(np.asarray(im).reshape(-1, 3).mean(axis=0))
    assert colours[1][2] > 150  # scene 1 thumbnail is blue, not a transition frame
    assert colours[2][1] > 150  # scene 2 is green


def test_crossfade_frames_blend_both_clips(frames: list[Frame]) -> None:
    red = [float(f[..., 0].mean()) for f in frames[20:30]]
    blue = [float(f[..., 2].mean()) for f in frames[20:30]]
    assert frames[19][..., 0].mean() > 200  # still pure scene 0
    assert frames[30][..., 2].mean() > 200  # pure scene 1
    assert all(a > b for a, b in itertools.pairwise(red))
    assert all(a < b for a, b in itertools.pairwise(blue))
    mid = frames[25]  # alpha = 6/11
    assert mid[..., 0].mean() == pytest.approx(220 * 5 / 11 + 30 * 6 / 11, abs=8)
    assert mid[..., 2].mean() == pytest.approx(30 * 5 / 11 + 220 * 6 / 11, abs=8)
    assert mid.std(axis=(0, 1)).max() < 4  # a uniform mix, not a split picture


def test_slide_pushes_the_next_scene_in_from_the_right(frames: list[Frame]) -> None:
    edges = []
    for f in frames[40:50]:
        green_cols = f[:, :, 1].mean(axis=0) > 115  # green (200) vs blue (30)
        assert green_cols[-1], "next scene enters at the right edge"
        assert not green_cols[0], "current scene is still at the left edge"
        edges.append(int(np.argmax(green_cols)))
    assert all(a > b for a, b in itertools.pairwise(edges))  # moves left every frame
    assert edges[0] > 250
    assert edges[-1] < 70


def test_subtitles_burn_in_only_during_cues(frames: list[Frame]) -> None:
    band = slice(120, 180)  # bottom third, where bottom subtitles go

    def text_pixels(k: int) -> int:
        diff = np.abs(frames[k][band] - np.array(GREEN, np.int16)).max(axis=2)
        return int((diff > 60).sum())

    # Cue 2.1..2.5 s = frames 53..62 (frame k shows at k/25 s); scene 2 is plain green.
    for k in (53, 57, 62):
        assert text_pixels(k) > 150, k
    for k in (51, 52, 63, 64, 68):
        assert text_pixels(k) < 10, k
    # Top of the frame is untouched while the cue shows.
    top = np.abs(frames[57][:60] - np.array(GREEN, np.int16)).max(axis=2)
    assert int((top > 60).sum()) == 0


def _tone_db(x: NDArray[np.float32], freq: float) -> float:
    window = np.hanning(x.size)
    spectrum = np.abs(np.fft.rfft(x * window))
    k = round(freq * x.size / MIX_RATE)
    return 20 * math.log10(float(spectrum[k - 2 : k + 3].max()) + 1e-12)


def test_audio_is_normalised_and_music_ducks_under_speech(
    rendered: tuple[MontageOutput, list[float], Path],
) -> None:
    out, _, _ = rendered
    audio, rate = decode_audio(out.video)
    assert rate == MIX_RATE
    assert integrated_loudness(audio, rate) == pytest.approx(-14.0, abs=1.0)
    assert out.loudness_lufs == pytest.approx(-14.0, abs=0.5)
    assert true_peak_db(audio, rate) <= -0.5  # AAC may overshoot the -1 dBFS ceiling a little
    mono = audio.mean(axis=1)

    def seg(a: float, b: float) -> NDArray[np.float32]:
        return np.asarray(mono[round(a * rate) : round(b * rate)], dtype=np.float32)

    # Speech (440 Hz) sits at 0.4..1.3 s on the timeline.
    assert _tone_db(seg(0.6, 1.1), VOICE_HZ) > _tone_db(seg(2.8, 3.3), VOICE_HZ) + 30
    ducked = _tone_db(seg(0.6, 1.1), MUSIC_HZ)
    free = _tone_db(seg(2.8, 3.3), MUSIC_HZ)
    assert 8.0 <= free - ducked <= 14.0


def test_ducking_envelope_is_smooth_and_leads_speech() -> None:
    n = MIX_RATE * 4
    speech = np.zeros(n, np.float32)
    speech[MIX_RATE : 2 * MIX_RATE] = 0.3
    gain = ducking_gain(speech)
    db = 20 * np.log10(gain)
    assert db[MIX_RATE // 2] > -0.5  # far from speech: no ducking
    assert db[MIX_RATE + MIX_RATE // 2] == pytest.approx(-11.0, abs=0.5)
    assert db[MIX_RATE] < -3.0  # already going down when speech starts (look-ahead)
    assert db[round(3.9 * MIX_RATE)] > -1.5  # recovered after release
    assert np.abs(np.diff(db)).max() < 0.05  # no steps: a click-free envelope


def test_clips_are_streamed_two_at_a_time(tmp_path: Path) -> None:
    if not Path("/proc/self/fd").exists():
        pytest.skip("needs /proc to count open files")
    scenes = [
        Scene(index=i, duration=1.0, transition="crossfade", transition_duration=0.2)
        for i in range(6)
    ]
    sb = Storyboard(title="s", scenes=scenes)
    clips = [write_clip(tmp_path / f"c{i}.mp4", 1.0, moving) for i in range(6)]
    tl = Timeline.build(sb, SPEC)

    def open_clips() -> int:
        fds = os.listdir("/proc/self/fd")
        targets = []
        for fd in fds:
            try:
                targets.append(os.readlink(f"/proc/self/fd/{fd}"))
            except OSError:
                continue
        return sum(1 for t in targets if t.startswith(str(tmp_path)))

    most = 0
    count = 0
    for _ in timeline_frames(clips, tl, SPEC):
        most = max(most, open_clips())
        count += 1
    assert count == tl.total == round(sb.duration * SPEC.fps)
    assert most == 2
    assert open_clips() == 0


def test_short_clip_holds_its_last_frame_and_mismatched_inputs_fail(tmp_path: Path) -> None:
    sb = Storyboard(title="s", scenes=[Scene(index=0, duration=1.0, transition="cut")])
    clip = write_clip(tmp_path / "c.mp4", 0.6, solid(RED))  # 15 of 25 frames
    tl = Timeline.build(sb, SPEC)
    got = list(timeline_frames([clip], tl, SPEC))
    assert len(got) == 25
    assert np.array_equal(got[-1], got[14])
    inp = MontageInput(
        storyboard=sb,
        clips=[clip, clip],
        narrations=[],
        music=None,
        spec=SPEC,
        subtitles=SubtitleStyle(),
        cues=[],
    )
    with pytest.raises(ValueError, match="clips"):
        PyAVMontage().assemble(inp, tmp_path / "out", lambda _p: None)


@pytest.mark.parametrize(("width", "height"), [(854, 480), (480, 854), (480, 480), (1080, 1920)])
def test_a_full_two_line_cue_stays_two_lines_at_any_aspect(width: int, height: int) -> None:
    text = "Have you ever wondered how honeybees make\nhoney from the nectar of flowers?"
    style = SubtitleStyle(box=False)
    burner = SubtitleBurner([SubtitleCue(start=0.0, end=1.0, text=text)], style, width, height)
    frame = np.zeros((height, width, 3), np.uint8)
    burner.burn(frame, 0.5)
    rows = np.flatnonzero(frame.max(axis=(1, 2)) > 128)  # text pixels (not the shadow)
    cols = np.flatnonzero(frame.max(axis=(0, 2)) > 128)
    assert rows.size and cols.size
    assert rows.max() - rows.min() < 2.2 * line_height(burner.font_px)
    assert rows.max() > height * 0.8  # at the bottom
    assert cols.min() > 0
    assert cols.max() < width - 1
    # Nothing is drawn outside the cue.
    later = np.zeros_like(frame)
    burner.burn(later, 1.0)
    assert not later.any()
