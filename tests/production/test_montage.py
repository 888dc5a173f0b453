"""PyAVMontage on tiny synthetic productions: streams, transitions, subtitles, audio."""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from av.video.frame import PictureType
from numpy.typing import NDArray
from PIL import Image

from aiprod.production.backends.pyav_montage import (
    PyAVMontage,
    SubtitleBurner,
    Timeline,
    ducking_gain,
    slide,
    slide_shift,
    subtitle_zone,
    timeline_frames,
)
from aiprod.production.media.audio import MIX_RATE, write_wav
from aiprod.production.media.loudness import integrated_loudness, true_peak_db
from aiprod.production.media.probe import decode_audio, iter_frames, probe
from aiprod.production.media.text import line_height
from aiprod.production.media.video import VideoWriter, mezzanine_writer
from aiprod.production.media.yuv import FramePool, Planes, PlaneSprite, planes_of
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
from aiprod.production.subtitles import MAX_LINE_CHARS, line_chars_for, parse_srt, parse_vtt

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


@dataclass(frozen=True)
class Sent:
    format: str
    size: tuple[int, int]
    y: Frame
    u: Frame
    v: Frame

    @property
    def planes(self) -> Planes:
        return self.y, self.u, self.v


@pytest.fixture(scope="module")
def render_run(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[MontageOutput, list[float], Path, list[Sent]]:
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
    sent: list[Sent] = []
    write_frame = VideoWriter.write_frame

    def spy(writer: VideoWriter, frame: av.VideoFrame) -> None:
        planes = planes_of(frame)
        sent.append(
            Sent(frame.format.name, (frame.width, frame.height), *(p.copy() for p in planes))
        )
        write_frame(writer, frame)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(VideoWriter, "write_frame", spy)
        out = PyAVMontage().assemble(inp, tmp / "out", seen.append)
    return out, seen, tmp, sent


@pytest.fixture(scope="module")
def rendered(
    render_run: tuple[MontageOutput, list[float], Path, list[Sent]],
) -> tuple[MontageOutput, list[float], Path]:
    return render_run[:3]


@pytest.fixture(scope="module")
def sent(render_run: tuple[MontageOutput, list[float], Path, list[Sent]]) -> list[Sent]:
    """Every frame as handed to the encoder (planes copied at the time)."""
    return render_run[3]


def decode_planes(path: Path) -> list[Planes]:
    with av.open(str(path)) as container:
        return [
            tuple(p.copy() for p in planes_of(f))  # type: ignore[misc]
            for f in container.decode(video=0)
        ]


@pytest.fixture(scope="module")
def sources(render_run: tuple[MontageOutput, list[float], Path, list[Sent]]) -> list[list[Planes]]:
    """The decoded frames of each mezzanine clip, as Y, U, V planes."""
    tmp = render_run[2]
    return [decode_planes(tmp / f"c{i}.mp4") for i in range(4)]


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
    assert true_peak_db(audio, rate) <= -1.0  # measured on the decoded AAC, as players hear it
    mono = audio.mean(axis=1)

    def seg(a: float, b: float) -> NDArray[np.float32]:
        return np.asarray(mono[round(a * rate) : round(b * rate)], dtype=np.float32)

    # Speech (440 Hz) sits at 0.4..1.3 s on the timeline; the music is held
    # down a second after it, then comes back up.
    assert _tone_db(seg(0.6, 1.1), VOICE_HZ) > _tone_db(seg(3.3, 3.75), VOICE_HZ) + 30
    ducked = _tone_db(seg(0.6, 1.1), MUSIC_HZ)
    held = _tone_db(seg(1.5, 2.2), MUSIC_HZ)
    free = _tone_db(seg(3.3, 3.75), MUSIC_HZ)
    assert held - ducked < 4.0  # (the limiter also works while speech plays)
    assert 8.0 <= free - ducked <= 14.0


def test_ducking_envelope_is_smooth_and_leads_speech() -> None:
    n = MIX_RATE * 6
    speech = np.zeros(n, np.float32)
    speech[MIX_RATE : 2 * MIX_RATE] = 0.3
    gain = ducking_gain(speech)
    db = 20 * np.log10(gain)
    assert db[MIX_RATE // 2] > -0.5  # far from speech: no ducking
    assert db[MIX_RATE + MIX_RATE // 2] == pytest.approx(-11.0, abs=0.5)
    assert db[MIX_RATE] < -3.0  # already going down when speech starts (look-ahead)
    assert db[round(2.5 * MIX_RATE)] < -10.0  # held through a breath after the line
    assert db[round(5.9 * MIX_RATE)] > -1.5  # recovered after release
    assert np.abs(np.diff(db)).max() < 0.05  # no steps: a click-free envelope


def test_music_stays_down_between_close_lines() -> None:
    """Two lines 0.8 s apart: the music does not swell up in the pause between them."""
    speech = np.zeros(MIX_RATE * 5, np.float32)
    speech[MIX_RATE : 2 * MIX_RATE] = 0.3
    speech[round(2.8 * MIX_RATE) : round(3.8 * MIX_RATE)] = 0.3
    db = 20 * np.log10(ducking_gain(speech))
    pause = db[2 * MIX_RATE : round(2.8 * MIX_RATE)]
    assert pause.max() < -9.0, pause.max()


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
    got = [f.to_ndarray(format="rgb24") for f in timeline_frames([clip], tl, SPEC)]
    assert len(got) == 25
    assert np.array_equal(got[-1], got[14])
    assert np.abs(got[-1].astype(int) - RED).max() < 8
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
    landscape = "Have you ever wondered how honeybees make\nhoney from the nectar of flowers?"
    vertical = "Have you ever wondered how\nhoneybees make their honey?"  # 28-character lines
    text = vertical if line_chars_for(width, height) < MAX_LINE_CHARS else landscape
    style = SubtitleStyle(box=False)
    burner = SubtitleBurner([SubtitleCue(start=0.0, end=1.0, text=text)], style, width, height)
    frame = np.zeros((height, width, 3), np.uint8)
    burner.burn(frame, 0.5)
    rows = np.flatnonzero(frame.max(axis=(1, 2)) > 128)  # text pixels (not the shadow)
    cols = np.flatnonzero(frame.max(axis=(0, 2)) > 128)
    assert rows.size and cols.size
    assert rows.max() - rows.min() < 2.2 * line_height(burner.font_px)
    zone = subtitle_zone(width, height)
    assert rows.max() > height * 0.7  # at the bottom ...
    assert rows.max() <= zone.bottom + 0.3 * burner.font_px  # ... above the platform's UI
    assert cols.min() >= zone.left
    assert cols.max() < zone.left + zone.width
    # Nothing is drawn outside the cue.
    later = np.zeros_like(frame)
    burner.burn(later, 1.0)
    assert not later.any()


def test_vertical_subtitles_keep_out_of_the_platform_ui() -> None:
    """9:16: out of the bottom 20 % (captions, navigation) and the right 15 %
    (buttons), with larger text than a landscape frame of the same width."""
    zone = subtitle_zone(1080, 1920)
    assert zone.bottom <= 0.8 * 1920 and zone.left + zone.width <= 0.85 * 1080
    assert zone.top >= 0.12 * 1920
    vertical = SubtitleBurner([], SubtitleStyle(), 1080, 1920)
    landscape = SubtitleBurner([], SubtitleStyle(), 1080, 608)
    assert vertical.font_px > landscape.font_px


def test_word_by_word_highlight_follows_the_spoken_word() -> None:
    words = [
        WordTiming(text="Keep", start=0.0, end=0.3),
        WordTiming(text="a", start=0.35, end=0.4),
        WordTiming(text="bedtime.", start=0.5, end=1.0),
    ]
    cue = SubtitleCue(start=0.0, end=1.2, text="Keep a bedtime.", words=words)
    style = SubtitleStyle(box=False, highlight=True, highlight_color="#ffd400")
    burner = SubtitleBurner([cue], style, 640, 360)

    def yellow_columns(t: float) -> NDArray[np.intp]:
        frame = np.zeros((360, 640, 3), np.uint8)
        burner.burn(frame, t)
        r, g, b = (frame[..., c].astype(int) for c in range(3))
        return np.flatnonzero(((r > 200) & (g > 170) & (b < 90)).any(axis=0))

    first, last = yellow_columns(0.1), yellow_columns(0.7)
    assert first.size and last.size
    assert first.max() < last.min()  # the highlight moved right, to "bedtime."
    plain = SubtitleBurner([cue], SubtitleStyle(box=False), 640, 360)
    frame = np.zeros((360, 640, 3), np.uint8)
    plain.burn(frame, 0.1)
    r, g, b = (frame[..., c].astype(int) for c in range(3))
    assert not ((r > 200) & (g > 170) & (b < 90)).any()  # white text, no highlight


# --- the YUV path -----------------------------------------------------------------------

# Frames 20..29 crossfade, 40..49 slide; the cue covers frames 53..62.
TRANSITIONS = set(range(20, 30)) | set(range(40, 50))
CUE_FRAMES = set(range(53, 63))


def source_of(k: int) -> tuple[int, int]:
    """(clip, frame in clip) shown alone at output frame k, outside transitions."""
    starts = [0, 20, 40, 70]
    i = max(i for i, s in enumerate(starts) if s <= k)
    return i, k - starts[i]


def test_untouched_frames_reach_the_encoder_as_decoded(
    sent: list[Sent], sources: list[list[Planes]]
) -> None:
    assert len(sent) == 95
    assert all(f.format == "yuv420p" and f.size == (320, 180) for f in sent)
    plain = [k for k in range(95) if k not in TRANSITIONS | CUE_FRAMES]
    assert len(plain) == 65
    for k in plain:
        i, j = source_of(k)
        for got, want in zip(sent[k].planes, sources[i][j], strict=True):
            assert np.array_equal(got, want), k


def test_the_encoder_chooses_its_own_frame_types(
    rendered: tuple[MontageOutput, list[float], Path],
) -> None:
    # The mezzanines are all P frames (ultrafast: no B-frames); decoded frames keep
    # that picture type, which libx264 would obey if it were passed on.
    out, _, tmp = rendered
    with av.open(str(tmp / "c3.mp4")) as c:
        assert {PictureType(f.pict_type).name for f in c.decode(video=0)} == {"I", "P"}
    with av.open(str(out.video)) as c:
        types = [PictureType(f.pict_type).name for f in c.decode(video=0)]
    # B-frames among the passed-through frames, not only the composed ones.
    assert "B" in types[1:20]
    assert "B" in types[71:95]


def test_crossfade_blends_the_planes(sent: list[Sent], sources: list[list[Planes]]) -> None:
    for k in range(20, 30):
        alpha = (k - 20 + 1) / 11
        w = round(alpha * 256)
        a, b = sources[0][k], sources[1][k - 20]
        for got, pa, pb in zip(sent[k].planes, a, b, strict=True):
            want = (pa.astype(np.uint32) * (256 - w) + pb.astype(np.uint32) * w + 128) >> 8
            assert np.array_equal(got, want), k
            mix = (1 - alpha) * pa.astype(float) + alpha * pb.astype(float)
            assert np.abs(got - mix).max() <= 1.0
    # The midpoint is the average of both clips.
    mid = sent[25]  # alpha = 6/11
    for got, pa, pb in zip(mid.planes, sources[0][25], sources[1][5], strict=True):
        assert float(got.mean()) == pytest.approx((5 * pa.mean() + 6 * pb.mean()) / 11, abs=1)


def test_slide_shifts_the_planes(sent: list[Sent], sources: list[list[Planes]]) -> None:
    shifts = []
    for k in range(40, 50):
        s = slide_shift(320, (k - 40 + 1) / 11)
        shifts.append(s)
        a, b = sources[1][k - 20][0], sources[2][k - 40][0]
        y = sent[k].y
        assert np.array_equal(y[:, : 320 - s], a[:, s:]), k
        assert np.array_equal(y[:, 320 - s :], b[:, :s]), k
    assert all(a < b for a, b in itertools.pairwise(shifts))
    assert any(s % 2 for s in shifts)  # odd shifts (half a chroma sample) occur


@pytest.mark.parametrize("shift", [0, 1, 2, 5, 6, 13, 15, 16])
def test_slide_chroma_is_what_subsampling_the_rgb_slide_gives(shift: int) -> None:
    """Chroma of an RGB slide, subsampled 2x2, equals the planes' slide: on frames
    whose chroma is nearest-upsampled (as the decoder's RGB was), a luma shift s
    moves each chroma row by s/2 samples, averaging neighbours when s is odd."""
    rng = np.random.default_rng(shift)
    w, h = 16, 4
    a = tuple(
        rng.integers(0, 256, (h // (1 + (k > 0)), w // (1 + (k > 0))), np.uint8) for k in range(3)
    )
    b = tuple(
        rng.integers(0, 256, (h // (1 + (k > 0)), w // (1 + (k > 0))), np.uint8) for k in range(3)
    )
    out = tuple(np.zeros_like(p) for p in a)
    pool = FramePool(w, h)
    # progress that gives this shift
    progress = next(p / 1000 for p in range(1001) if slide_shift(w, p / 1000) == shift)
    slide(out, a, b, progress, pool)  # type: ignore[arg-type]
    for k in (1, 2):
        full_a = np.repeat(np.repeat(a[k], 2, axis=1), 2, axis=0).astype(int)
        full_b = np.repeat(np.repeat(b[k], 2, axis=1), 2, axis=0).astype(int)
        moved = np.concatenate([full_a[:, shift:], full_b[:, :shift]], axis=1)
        sub = (moved.reshape(h // 2, 2, w // 2, 2).sum(axis=(1, 3)) + 2) // 4
        assert np.array_equal(out[k], sub), k
    assert np.array_equal(out[0], np.concatenate([a[0][:, shift:], b[0][:, :shift]], axis=1))


def test_subtitles_are_blended_into_the_planes_only_during_the_cue(
    sent: list[Sent], sources: list[list[Planes]]
) -> None:
    for k in sorted(CUE_FRAMES):
        i, j = source_of(k)
        src = sources[i][j]
        y_diff = np.abs(sent[k].y.astype(int) - src[0])
        rows = np.flatnonzero(y_diff.max(axis=1) > 0)
        assert (y_diff > 60).sum() > 150, k  # text (and its box) drawn
        assert rows.min() >= 110, k  # at the bottom only
        for c in (1, 2):
            diff = np.abs(sent[k].planes[c].astype(int) - src[c])
            assert np.flatnonzero(diff.max(axis=1) > 0).min() >= 55, k
    for k in (51, 52, 63, 64):
        i, j = source_of(k)
        assert all(np.array_equal(g, w) for g, w in zip(sent[k].planes, sources[i][j], strict=True))


def _gradient(w: int, h: int) -> Frame:
    x = np.arange(w)[None, :]
    y = np.arange(h)[:, None]
    r = np.broadcast_to(40 + x * 160 // w, (h, w))
    g = np.broadcast_to(60 + y * 120 // h, (h, w))
    b = np.broadcast_to(200 - (x + y) * 120 // (w + h), (h, w))
    return np.stack([r, g, b], axis=2).astype(np.uint8)


@pytest.mark.parametrize(
    "style",
    [
        SubtitleStyle(),
        SubtitleStyle(box=False),
        SubtitleStyle(box=False, color="#101010", position="top"),
    ],
)
def test_yuv_subtitles_match_the_rgb_path(style: SubtitleStyle) -> None:
    """Blending the converted sprite into Y/U/V gives what blending in RGB and then
    converting to yuv420p (libswscale, as the encoder did) gives, within rounding."""
    w, h = 640, 360
    cue = SubtitleCue(start=0.0, end=1.0, text="Bees turn nectar into honey")
    src = av.VideoFrame.from_ndarray(_gradient(w, h), format="rgb24").reformat(format="yuv420p")
    rgb = np.asarray(src.to_ndarray(format="rgb24"), np.uint8)
    SubtitleBurner([cue], style, w, h).burn(rgb, 0.5)
    old = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
    new, planes = FramePool(w, h).writable(src)
    SubtitleBurner([cue], style, w, h).burn_planes(planes, 0.5)
    assert not np.array_equal(planes[0], planes_of(src)[0])  # it drew something
    for got, want in zip(planes_of(new), planes_of(old), strict=True):
        diff = np.abs(got.astype(int) - want)
        assert diff.max() <= 5  # a chroma sample on a thin glyph edge may round once more
        assert (diff > 2).mean() < 0.001
    back = np.abs(new.to_ndarray(format="rgb24").astype(int) - old.to_ndarray(format="rgb24"))
    assert back.mean() < 1.5
    assert np.percentile(back, 99.9) <= 4


def test_sprite_planes_are_converted_once_per_cue(monkeypatch: pytest.MonkeyPatch) -> None:
    cues = [
        SubtitleCue(start=0.0, end=1.0, text="One"),
        SubtitleCue(start=1.0, end=2.0, text="Two"),
    ]
    burner = SubtitleBurner(cues, SubtitleStyle(), 320, 180)
    pool = FramePool(320, 180)
    _, planes = pool.take()
    for p in planes:
        p[...] = 128
    calls: list[int] = []
    convert = burner._yuv_sprite

    def counting(k: int, word: int = -1) -> list[tuple[int, PlaneSprite]]:
        calls.append(k)
        return convert(k, word)

    monkeypatch.setattr(burner, "_yuv_sprite", counting)
    for t in (0.1, 0.5, 0.9, 1.1, 1.5):
        burner.burn_planes(planes, t)
    assert calls == [0, 0, 0, 1, 1]
    assert set(burner._yuv) == {(1, -1)}  # the first cue's planes were dropped when it ended
    assert len(burner._yuv[(1, -1)]) == 3


def test_writer_encodes_video_frames_as_given(tmp_path: Path) -> None:
    """write_frame: a yuv420p frame goes in untouched (bit-exact through lossless
    x264), with its timestamps and picture type replaced; other frames are converted
    as `write` converts RGB."""
    rng = np.random.default_rng(0)
    w, h = 64, 48
    frames = []
    for k in range(6):
        vf = av.VideoFrame(w, h, "yuv420p")
        for p in planes_of(vf, writable=True):
            p[...] = rng.integers(16, 236, p.shape, np.uint8)
        vf.pts, vf.time_base, vf.pict_type = (
            1000 * k,
            Fraction(1, 15360),
            PictureType.P,
        )
        frames.append(vf)
    rgb = frames[5].reformat(format="rgb24")
    want = [tuple(p.copy() for p in planes_of(f)) for f in frames[:5]]
    want.append(planes_of(rgb.reformat(format="yuv420p")))  # the encoder's conversion
    path = tmp_path / "x.mp4"
    with VideoWriter(path, w, h, 25, {"preset": "ultrafast", "qp": "0"}) as writer:
        for vf in frames[:4]:
            writer.write_frame(vf)
        writer.write(frames[4])  # write() takes VideoFrames too
        writer.write_frame(rgb)  # other formats are converted
    got = decode_planes(path)
    assert len(got) == 6
    for k in range(6):
        assert all(np.array_equal(g, x) for g, x in zip(got[k], want[k], strict=True)), k
    info = probe(path)
    assert info.video_frames == 6
    assert info.duration == pytest.approx(6 / 25, abs=0.02)


def test_clips_of_another_size_or_format_are_converted(tmp_path: Path) -> None:
    path = tmp_path / "small.mp4"
    with VideoWriter(path, 160, 90, SPEC.fps, {"preset": "ultrafast", "crf": "12"}) as w:
        for _ in range(15):
            w.write(np.full((90, 160, 3), RED, np.uint8))
    sb = Storyboard(title="s", scenes=[Scene(index=0, duration=0.6, transition="cut")])
    got = list(timeline_frames([path], Timeline.build(sb, SPEC), SPEC))
    assert len(got) == 15
    for f in got:
        assert (f.format.name, f.width, f.height) == ("yuv420p", 320, 180)
        assert np.abs(f.to_ndarray(format="rgb24").astype(int) - RED).max() < 8


def test_decoder_frames_are_read_only(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "c.mp4", 0.6, solid(BLUE))
    sb = Storyboard(title="s", scenes=[Scene(index=0, duration=0.6, transition="cut")])
    frame = next(iter(timeline_frames([clip], Timeline.build(sb, SPEC), SPEC)))
    with pytest.raises(ValueError, match="read-only"):
        planes_of(frame)[0][0, 0] = 0
    copy, planes = FramePool(SPEC.width, SPEC.height).writable(frame)
    assert copy is not frame
    planes[0][0, 0] = 0  # the copy is the montage's to draw on


def test_an_audio_failure_fails_the_montage_and_leaves_no_video(tmp_path: Path) -> None:
    # The audio is made on a thread while frames are encoded; its error still
    # surfaces, after the thread is done with the writer.
    sb = Storyboard(title="s", scenes=[Scene(index=0, duration=1.0, transition="cut")])
    clip = write_clip(tmp_path / "c.mp4", 1.0, moving)
    missing = Narration(path=tmp_path / "missing.wav", sample_rate=VOICE_RATE, duration=1.0)
    inp = MontageInput(
        storyboard=sb,
        clips=[clip],
        narrations=[missing],
        music=None,
        spec=SPEC,
        subtitles=SubtitleStyle(),
        cues=[],
    )
    with pytest.raises(OSError):
        PyAVMontage().assemble(inp, tmp_path / "out", lambda _p: None)
    assert not (tmp_path / "out" / "video.mp4").exists()
