"""The montage: scene clips, narration, music and subtitles become the final MP4.

Size (~660 lines): one timeline — frame arithmetic, transitions, the audio
mix and subtitle burn-in share its integer frame counts; the reusable media
helpers already live in ``production/media/``.

Design constraints, and how they are met:

* **Memory.**  A 1080p frame is 6 MB; a 30 s production has 900 of them.  Clips
  are therefore decoded as streams, one frame at a time, with at most the two
  clips of a transition open at once.  The only whole-programme buffer is the
  audio mix (30 s of 48 kHz stereo float is 11 MB).
* **One timeline.**  Frame counts are integers: scene i has
  ``spec.frames(duration)`` frames and overlaps the next by
  ``spec.frames(transition_duration)``.  The audio is made exactly as long as
  the resulting frame count, so picture and sound end together.
* **Broadcast-style audio.**  Narration is brought to a fixed speech level,
  music to a bed a few LU under it, the music ducks ~11 dB under speech with a
  smooth envelope (look-ahead so it is already down when a word starts), and
  the sum is normalised to -14 LUFS with true peaks under -1 dBTP, measured on
  the encoded AAC (what players decode), not only on the mix.
* **Same encoder everywhere.**  Encoding goes through :class:`VideoWriter` with
  :func:`final_options`, like the rest of the engine.
* **No colour conversions.**  The mezzanines decode to yuv420p, which is what the
  encoder takes: frames that need nothing go straight from decoder to encoder, and
  transitions and subtitles work on the Y, U and V planes (see the composition
  section).  Only the poster and thumbnails are converted to RGB.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import numpy as np
from av.video.reformatter import ColorRange
from numpy.typing import NDArray
from PIL import Image
from scipy.ndimage import maximum_filter1d

from aiprod.production.media.audio import MIX_RATE, read_wav, resample
from aiprod.production.media.frames import hex_to_rgb
from aiprod.production.media.loudness import integrated_loudness, normalize, true_peak_db
from aiprod.production.media.memory import release_memory
from aiprod.production.media.text import blend, render_text_sprite, sprite_padding
from aiprod.production.media.video import Frame, VideoWriter, final_options
from aiprod.production.media.yuv import (
    BAND_ROWS,
    PIX_FMT,
    FramePool,
    Plane,
    Planes,
    PlaneSprite,
    planes_of,
    yuv_sprite,
)
from aiprod.production.models import (
    Narration,
    RenderSpec,
    Storyboard,
    SubtitleCue,
    SubtitleStyle,
    Transition,
)
from aiprod.production.stages.base import ProgressFn
from aiprod.production.stages.montage import MontageInput, MontageOutput
from aiprod.production.subtitles import MAX_LINE_CHARS, line_chars_for, to_srt, to_vtt

Audio = NDArray[np.float32]

TARGET_LUFS = -14.0
PEAK_CEILING_DB = -1.0
"""True peak of the encoded track (dBTP), as streaming platforms ask."""
AAC_HEADROOM_DB = 0.5
"""The mix's ceiling sits this far under `PEAK_CEILING_DB`: AAC lifts peaks."""
AAC_PEAK_PASSES = 3
SPEECH_LUFS = -16.0
"""Level the narration bus is brought to before mixing (stereo-summed)."""
MUSIC_BED_LUFS = -20.0
"""Level of the music bed where nobody speaks: present but under the voice."""
DUCK_DB = 11.0
"""How far the music drops under speech."""
BOX_RGBA = (0, 0, 0, 150)
"""Translucent black behind subtitles: readable on any picture, hides little."""
THUMB_WIDTH = 320
JPEG_QUALITY = 90


# --- timeline -----------------------------------------------------------------------


@dataclass(frozen=True)
class Timeline:
    """Integer frame layout of the programme.

    ``starts[i]`` is the first output frame of scene i, ``frames[i]`` its length and
    ``overlaps[i]`` how many of its last frames blend with the next scene's first.
    """

    frames: tuple[int, ...]
    overlaps: tuple[int, ...]
    starts: tuple[int, ...]
    transitions: tuple[Transition, ...]
    fps: int

    @property
    def total(self) -> int:
        return self.starts[-1] + self.frames[-1]

    def overlap_in(self, i: int) -> int:
        return self.overlaps[i - 1] if i > 0 else 0

    def middle(self, i: int) -> int:
        """A frame in the middle of the part of scene i that no transition touches."""
        lo = self.starts[i] + self.overlap_in(i)
        hi = self.starts[i] + self.frames[i] - self.overlaps[i]
        if hi <= lo:
            lo, hi = self.starts[i], self.starts[i] + self.frames[i]
        return (lo + hi - 1) // 2

    @classmethod
    def build(cls, storyboard: Storyboard, spec: RenderSpec) -> Timeline:
        """Lay scenes out; overlaps are clamped so no frame belongs to three scenes
        (the model allows a transition longer than the *next* scene)."""
        scenes = storyboard.scenes
        frames = [spec.frames(s.duration) for s in scenes]
        overlaps: list[int] = []
        for i in range(len(scenes)):
            seconds = storyboard.overlap_after(i)
            o = spec.frames(seconds) if seconds > 0 else 0
            if o:
                incoming = overlaps[i - 1] if i > 0 else 0
                o = max(0, min(o, frames[i] - incoming, frames[i + 1] // 2))
            overlaps.append(o)
        starts = [0]
        for i in range(len(scenes) - 1):
            starts.append(starts[-1] + frames[i] - overlaps[i])
        return cls(
            frames=tuple(frames),
            overlaps=tuple(overlaps),
            starts=tuple(starts),
            transitions=tuple(s.transition for s in scenes),
            fps=spec.fps,
        )


# --- clip decoding and composition (YUV 4:2:0) ---------------------------------------
#
# The encoder wants yuv420p and the mezzanines decode to yuv420p, so the montage never
# goes through RGB: a frame that needs nothing (no transition, no subtitle) goes from
# the decoder to the encoder untouched, and transitions and subtitles are computed on
# the Y, U and V planes.  Both are affine in the pixel values, like the BT.601
# RGB -> YUV matrix, so the result equals the old RGB compositing up to rounding
# (and chroma subsampling, which the encoder applied to the RGB result anyway).

# AVColorSpace values (frame.colorspace) the encoder's BT.601 conversion agrees with:
# unspecified (what the mezzanine writer makes), BT.470BG and SMPTE 170M.
_TV_COLORSPACES = frozenset({2, 5, 6})
_UNSPECIFIED_COLORSPACE = 2
_UNSPECIFIED = int(ColorRange.UNSPECIFIED)
_FULL_RANGE = int(ColorRange.JPEG)


def conforms(frame: av.VideoFrame, width: int, height: int) -> bool:
    """True if `frame` can go to the final encoder as it is: yuv420p, the spec size,
    BT.601 (or untagged) limited range, as the encoder's own RGB conversion makes."""
    return (
        frame.format.name == PIX_FMT
        and frame.width == width
        and frame.height == height
        and int(frame.colorspace) in _TV_COLORSPACES
        and int(frame.color_range) != _FULL_RANGE
    )


def conform(frame: av.VideoFrame, width: int, height: int) -> av.VideoFrame:
    """A frame that does not `conforms`, made into one the way the RGB montage did:
    scaled and converted to RGB as its tags say, then to BT.601 limited yuv420p."""
    rgb = frame.reformat(
        width=width,
        height=height,
        format="rgb24",
        src_color_range=_FULL_RANGE if int(frame.color_range) == _FULL_RANGE else None,
    )
    out = rgb.reformat(format=PIX_FMT)
    out.colorspace = _UNSPECIFIED_COLORSPACE
    out.color_range = _UNSPECIFIED
    return out


class ClipReader:
    """Streams the frames of one clip as yuv420p :class:`av.VideoFrame`s at the spec size.

    The frames are the decoder's own: read them, never write to them (see
    `planes_of`).  If a clip is shorter than its scene (a renderer bug, or a
    rounding difference) the last frame is held rather than failing the whole
    production; a clip with no frames at all is an error.
    """

    def __init__(self, path: Path, width: int, height: int) -> None:
        self.path = path
        self.width, self.height = width, height
        self._container: Any = av.open(str(path))
        stream = self._container.streams.video[0]
        # Two frame threads decode ahead, on the core x264 leaves idle, while this
        # thread composes and feeds the encoder (slice threads do nothing for a
        # one-slice mezzanine).  Measured at 1080p: ~4 % less wall time than one
        # thread, for a frame or two more in flight; more threads gained nothing.
        stream.thread_type = "FRAME"
        stream.codec_context.thread_count = 2
        self._frames: Iterator[av.VideoFrame] = iter(self._container.decode(stream))
        self._last: av.VideoFrame | None = None
        self.held = 0

    def next(self) -> av.VideoFrame:
        try:
            frame = next(self._frames)
        except StopIteration:
            if self._last is None:
                raise ValueError(f"{self.path}: clip has no video frames") from None
            self.held += 1
            return self._last  # nobody writes to it, so it can be shown again
        if not conforms(frame, self.width, self.height):
            frame = conform(frame, self.width, self.height)
        self._last = frame
        return frame

    def close(self) -> None:
        self._container.close()


def crossfade(out: Planes, a: Planes, b: Planes, alpha: float, pool: FramePool) -> None:
    """``out = (1 - alpha) * a + alpha * b`` on every plane, in 8-bit fixed point
    (exact to ±1).  Works in bands of rows so the 16-bit intermediates stay small
    and in cache; the scratch rows are the pool's, so nothing is allocated."""
    w = round(alpha * 256)
    wa, wb = np.uint16(256 - w), np.uint16(w)
    for o, pa, pb in zip(out, a, b, strict=True):
        rows, cols = o.shape
        for r0 in range(0, rows, BAND_ROWS):
            r1 = min(rows, r0 + BAND_ROWS)
            acc = pool.acc[: r1 - r0, :cols]
            tmp = pool.tmp[: r1 - r0, :cols]
            np.multiply(pa[r0:r1], wa, out=acc)
            np.multiply(pb[r0:r1], wb, out=tmp)
            acc += tmp
            acc += 128
            acc >>= 8
            np.copyto(o[r0:r1], acc, casting="unsafe")


def slide_shift(width: int, progress: float) -> int:
    """How far (luma pixels) the slide has moved at `progress`; eased (smoothstep)
    so the move starts and ends gently."""
    p = progress * progress * (3.0 - 2.0 * progress)
    return min(width, max(0, round(width * p)))


def _slide_chroma_half(o: Plane, a: Plane, b: Plane, k: int, acc: NDArray[np.uint16]) -> None:
    """Chroma of a slide by an odd luma shift ``2k + 1``: each output sample covers
    two luma columns that came from neighbouring chroma samples, so it is their
    (rounded) mean; at the seam, one from each scene.  This is what subsampling the
    RGB slide gave, since the RGB frames had each chroma sample on two columns."""
    cw = o.shape[1]
    na = cw - k - 1  # samples wholly from the outgoing scene; then the seam; then k
    for dst, src, n, start in ((o[:, :na], a, na, k), (o[:, cw - k :], b, k, 0)):
        part = acc[:, :n]
        np.add(
            src[:, start : start + n], src[:, start + 1 : start + 1 + n], out=part, dtype=np.uint16
        )
        part += 1
        part >>= 1
        np.copyto(dst, part, casting="unsafe")
    seam = acc[:, 0]
    np.add(a[:, cw - 1], b[:, 0], out=seam, dtype=np.uint16)
    seam += 1
    seam >>= 1
    np.copyto(o[:, na], seam, casting="unsafe")


def slide(out: Planes, a: Planes, b: Planes, progress: float, pool: FramePool) -> None:
    """The next scene pushes the current one out to the left, entering from the
    right.  Luma moves by whole pixels as in RGB; chroma by half as much, which for
    an odd shift falls between samples (see `_slide_chroma_half`)."""
    width = out[0].shape[1]
    shift = slide_shift(width, progress)
    if width % 2:  # no frame size makes this, but keep chroma on whole samples if so
        shift -= shift % 2
    for k, (o, pa, pb) in enumerate(zip(out, a, b, strict=True)):
        if k > 0 and shift % 2:
            _slide_chroma_half(o, pa, pb, shift // 2, pool.chroma)
            continue
        s = shift if k == 0 else shift // 2
        cols = o.shape[1]
        o[:, : cols - s] = pa[:, s:]
        o[:, cols - s :] = pb[:, :s]


def compose(
    kind: Transition, a: av.VideoFrame, b: av.VideoFrame, progress: float, pool: FramePool
) -> av.VideoFrame:
    """A pool frame showing transition `kind` between `a` and `b` at `progress`."""
    frame, out = pool.take()
    if kind == "slide":
        slide(out, planes_of(a), planes_of(b), progress, pool)
    else:
        crossfade(out, planes_of(a), planes_of(b), progress, pool)
    return frame


def timeline_frames(
    clips: Sequence[Path], tl: Timeline, spec: RenderSpec, pool: FramePool | None = None
) -> Iterator[av.VideoFrame]:
    """Every output frame, in order, as yuv420p at the spec size, composing
    transitions on the fly.

    Outside transitions a frame is the decoder's own (read-only: take a writable copy
    with ``pool.writable``); a transition frame is a `pool` frame, valid until the
    pool comes round to it again.  At most two readers are open: the current scene's
    and, during its outgoing transition, the next one's (which then becomes current).
    """
    if pool is None:
        pool = FramePool(spec.width, spec.height)
    open_readers: list[ClipReader] = []
    try:
        current: ClipReader | None = None
        for i in range(len(tl.frames)):
            if current is None:
                current = ClipReader(clips[i], spec.width, spec.height)
                open_readers.append(current)
            solo = tl.frames[i] - tl.overlap_in(i) - tl.overlaps[i]
            for _ in range(solo):
                yield current.next()
            o = tl.overlaps[i]
            nxt: ClipReader | None = None
            if o:
                nxt = ClipReader(clips[i + 1], spec.width, spec.height)
                open_readers.append(nxt)
                for j in range(o):
                    a, b = current.next(), nxt.next()
                    yield compose(tl.transitions[i], a, b, (j + 1) / (o + 1), pool)
            current.close()
            open_readers.remove(current)
            current = nxt
            release_memory()
    finally:
        for reader in open_readers:
            reader.close()


# --- subtitles --------------------------------------------------------------------------


@dataclass(frozen=True)
class Zone:
    """Where subtitles may sit: `left`..`left + width`, text block between
    `top` (position top) and `bottom` (position bottom)."""

    left: int
    width: int
    top: int
    bottom: int


def subtitle_zone(width: int, height: int, position: str = "bottom") -> Zone:
    """The subtitle area of a frame, inside the platforms' safe zones.

    On vertical video TikTok, Reels and Shorts draw their own captions,
    buttons and navigation over the bottom ~20 %, the top ~12 % and a column
    of buttons down the right ~15 %: subtitles stay out of all three.  Square
    video keeps a 7 % margin, landscape the broadcast 6 % and 90 % width."""
    if height >= 1.5 * width:  # 9:16
        left, right = round(width * 0.06), round(width * 0.84)
        return Zone(left, right - left, round(height * 0.13), round(height * 0.78))
    if height >= width:  # 1:1
        return Zone(
            round(width * 0.07), round(width * 0.86), round(height * 0.07), round(height * 0.93)
        )
    return Zone(round(width * 0.05), round(width * 0.9), round(height * 0.06), round(height * 0.94))


class SubtitleBurner:
    """Draws the active cue onto frames: yuv420p planes (`burn_planes`, the montage)
    or RGB arrays (`burn`).

    Each cue's sprite is rendered once, when the cue first appears, and dropped
    when it ends, so only one or two sprites exist at a time however long the
    programme.  Text size is relative to the frame (4.5 % of the short side at
    size 1.0, ~49 px at 1080p), so the look is the same at every resolution.
    """

    def __init__(self, cues: Sequence[SubtitleCue], style: SubtitleStyle, width: int, height: int):
        self.cues = sorted(cues, key=lambda c: c.start)
        self.style = style
        self.width, self.height = width, height
        self.zone = subtitle_zone(width, height, style.position)
        # 4.5 % of the short side (6 % on vertical video, read on a phone), but
        # never so big that a full subtitle line (at ~0.56 em per character of
        # Noto Sans) would not fit the safe zone's width.
        chars = line_chars_for(width, height)
        share = 0.06 if chars < MAX_LINE_CHARS else 0.045
        base = min(share * min(width, height), self.zone.width / (chars * 0.56))
        self.font_px = max(10, round(base * style.size))
        self.highlight = hex_to_rgb(style.highlight_color) if style.highlight else None
        # Sprites by (cue, highlighted word or -1); the current cue's only.
        self._sprites: dict[tuple[int, int], tuple[NDArray[np.uint8], int, int]] = {}
        self._yuv: dict[tuple[int, int], list[tuple[int, PlaneSprite]]] = {}
        self._next = 0

    def _word(self, k: int, t: float) -> int:
        """Index of the word of cue k being spoken at `t` (the last one started),
        or -1 without highlight or word timings."""
        if self.highlight is None or not self.cues[k].words:
            return -1
        spoken = [i for i, w in enumerate(self.cues[k].words) if w.start <= t]
        return spoken[-1] if spoken else 0

    def _sprite(self, k: int, word: int = -1) -> tuple[NDArray[np.uint8], int, int]:
        key = (k, word)
        if key not in self._sprites:
            self._drop(k)  # one look of a cue alive at a time
            box = BOX_RGBA if self.style.box else None
            sprite = render_text_sprite(
                self.cues[k].text,
                self.font_px,
                hex_to_rgb(self.style.color),
                self.zone.width,
                shadow=True,
                box=box,
                align="center",
                highlight=(word, self.highlight) if word >= 0 and self.highlight else None,
            )
            # Place the text block (not the sprite's padding) inside the zone.
            pad = sprite_padding(self.font_px, shadow=True, box=box)
            sh, sw = sprite.shape[:2]
            x = self.zone.left + (self.zone.width - sw) // 2
            if self.style.position == "top":
                y = self.zone.top - pad
            else:
                y = self.zone.bottom - (sh - pad)
            self._sprites[key] = (sprite, x, y)
        return self._sprites[key]

    def _yuv_sprite(self, k: int, word: int = -1) -> list[tuple[int, PlaneSprite]]:
        """Cue k's sprite converted once to Y/U/V planes and alpha (see `yuv_sprite`)."""
        key = (k, word)
        if key not in self._yuv:
            sprite, x, y = self._sprite(k, word)
            self._yuv[key] = yuv_sprite(sprite, x, y, self.width, self.height)
        return self._yuv[key]

    def _drop(self, k: int) -> None:
        """Forget every look of cue k (RGB and YUV)."""
        for cache in (self._sprites, self._yuv):
            for key in [x for x in cache if x[0] == k]:
                del cache[key]

    def active(self, t: float) -> list[int]:
        while self._next < len(self.cues) and self.cues[self._next].end <= t:
            self._drop(self._next)
            self._next += 1
        out = []
        for k in range(self._next, len(self.cues)):
            cue = self.cues[k]
            if cue.start > t:
                break
            if cue.end > t:
                out.append(k)
            else:
                self._drop(k)
        return out

    def burn(self, frame: Frame, t: float) -> None:
        """Blend the cues active at `t` into an RGB `frame` in place."""
        for k in self.active(t):
            sprite, x, y = self._sprite(k, self._word(k, t))
            blend(frame, sprite, x, y)

    def burn_planes(self, planes: Planes, t: float) -> None:
        """Blend the cues active at `t` into the (writable) planes of a yuv420p frame,
        only inside each sprite's bounding box."""
        for k in self.active(t):
            for index, part in self._yuv_sprite(k, self._word(k, t)):
                part.blend(planes[index])


# --- audio ------------------------------------------------------------------------------


def _mono(data: Audio) -> Audio:
    return data if data.ndim == 1 else np.asarray(data.mean(axis=1), dtype=np.float32)


def _gain_to(samples: Audio, target: float) -> Audio:
    """Scale to ``target`` LUFS, or return unchanged if there is nothing to measure."""
    loud = integrated_loudness(samples, MIX_RATE)
    if not math.isfinite(loud):
        return samples
    return samples * np.float32(10.0 ** ((target - loud) / 20.0))


def narration_bus(
    narrations: Sequence[Narration], storyboard: Storyboard, lead: float, length: int
) -> Audio:
    """Mono narration on the timeline: narration i starts at ``starts()[i] + lead``."""
    bus = np.zeros(length, dtype=np.float32)
    for start, narration in zip(storyboard.starts(), narrations, strict=False):
        data, rate = read_wav(narration.path)
        voice = resample(_mono(data), rate, MIX_RATE)
        pos = max(0, round((start + lead) * MIX_RATE))
        if pos >= length:
            continue
        part = voice[: length - pos]
        bus[pos : pos + part.size] += part
    return bus


def music_bus(path: Path, length: int) -> Audio:
    """The music as 48 kHz stereo, cut or padded with silence to ``length``."""
    data, rate = read_wav(path)
    data = resample(data, rate, MIX_RATE)
    if data.ndim == 1:
        data = np.repeat(data[:, None], 2, axis=1)
    elif data.shape[1] != 2:
        data = np.repeat(_mono(data)[:, None], 2, axis=1)
    out = np.zeros((length, 2), dtype=np.float32)
    n = min(length, data.shape[0])
    out[:n] = data[:n]
    return out


def ducking_gain(
    speech: Audio,
    rate: int = MIX_RATE,
    *,
    depth_db: float = DUCK_DB,
    threshold_db: float = -40.0,
    hold_s: float = 1.0,
    lookahead_s: float = 0.12,
    attack_s: float = 0.06,
    release_s: float = 0.6,
) -> NDArray[np.float64]:
    """Per-sample music gain from a speech sidechain.

    Speech is "on" in every 10 ms hop whose RMS exceeds ``threshold_db``; the on
    state is held across the pauses between words and between close sentences
    (``hold_s``), so the music stays down between lines instead of swelling up
    in every breath, and starts ``lookahead_s`` early (offline, we can look ahead)
    so the first syllable is not masked.  The gain in dB then follows the target
    with one-pole smoothing, faster down (attack) than up (release).
    """
    hop = max(1, rate // 100)
    n = speech.shape[0]
    hops = -(-n // hop)
    padded = np.zeros(hops * hop, dtype=np.float64)
    padded[:n] = speech
    rms = np.sqrt((padded.reshape(hops, hop) ** 2).mean(axis=1))
    on = (20.0 * np.log10(np.maximum(rms, 1e-10)) > threshold_db).astype(np.float64)
    back, fwd = round(hold_s * 100), round(lookahead_s * 100)
    # Window [k - back, k + fwd]: on if speech anywhere in it.
    size = back + fwd + 1
    on = maximum_filter1d(on, size=size, origin=back - size // 2)
    target = -depth_db * on
    down = 1.0 - math.exp(-0.01 / attack_s)
    up = 1.0 - math.exp(-0.01 / release_s)
    env = np.empty(hops)
    g = 0.0
    for k, tgt in enumerate(target.tolist()):
        g += (tgt - g) * (down if tgt < g else up)
        env[k] = g
    centers = (np.arange(hops) + 0.5) * hop
    db = np.interp(np.arange(n), centers, env)
    return np.asarray(10.0 ** (db / 20.0), dtype=np.float64)


def mix_audio(inp: MontageInput, length: int) -> Audio:
    """Narration + ducked music, normalised to -14 LUFS with true peaks ≤ -1.5 dBTP."""
    speech = narration_bus(inp.narrations, inp.storyboard, inp.narration_lead, length)
    mix = _gain_to(np.repeat(speech[:, None], 2, axis=1), SPEECH_LUFS)
    del speech
    if inp.music is not None:
        music = _gain_to(music_bus(inp.music, length), MUSIC_BED_LUFS)
        music *= ducking_gain(mix[:, 0]).astype(np.float32)[:, None]
        mix = mix + music
        del music
    # Only the mix is alive while it is normalised: this runs alongside the video
    # encoder, so its peak adds to the encoder's.
    return normalize(mix, MIX_RATE, TARGET_LUFS, PEAK_CEILING_DB - AAC_HEADROOM_DB)


# --- images -------------------------------------------------------------------------


def save_jpeg(frame: Frame, path: Path, width: int | None = None) -> Path:
    img = Image.fromarray(frame)
    if width is not None and img.width != width:
        height = max(2, round(img.height * width / img.width))
        img = img.resize((width, height), Image.Resampling.LANCZOS)
    img.save(path, format="JPEG", quality=JPEG_QUALITY, optimize=True)
    return path


# --- backend ------------------------------------------------------------------------


def _audio_track(inp: MontageInput, samples: int, writer: VideoWriter) -> tuple[float, list[Any]]:
    """The programme's audio as (integrated loudness, encoded AAC packets).

    The true-peak ceiling holds for what a player decodes, not only for the mix:
    AAC's quantisation can lift peaks by up to ~1 dB, so the encoded track is
    decoded and measured, and encoded again a little quieter when it overshoots
    (the mix is limited with `AAC_HEADROOM_DB` to spare, so that is rare)."""
    mix = mix_audio(inp, samples)
    packets = writer.encode_audio(mix, MIX_RATE)
    for _ in range(AAC_PEAK_PASSES):
        peak = true_peak_db(writer.decode_audio(packets), MIX_RATE)
        if peak <= PEAK_CEILING_DB - 0.05:
            break
        mix *= np.float32(10.0 ** ((PEAK_CEILING_DB - 0.15 - peak) / 20.0))
        packets = writer.encode_audio(mix, MIX_RATE)
    return integrated_loudness(mix, MIX_RATE), packets


def _mux_audio(writer: VideoWriter, job: Future[tuple[float, list[Any]]]) -> float:
    loudness, packets = job.result()
    writer.mux_audio(packets)
    release_memory()  # the mix's buffers, freed in the audio thread's arena
    return loudness


class PyAVMontage:
    """Montage backend: decode, compose, burn in, mix and encode with PyAV.

    Pictures stay in yuv420p from the mezzanine decoder to the final encoder."""

    name = "pyav"
    version = "2"  # 2: Noto fonts, true peak of the decoded AAC, ducking hold

    def assemble(self, inp: MontageInput, outdir: Path, progress: ProgressFn) -> MontageOutput:
        scenes = inp.storyboard.scenes
        if len(inp.clips) != len(scenes):
            raise ValueError(f"{len(inp.clips)} clips for {len(scenes)} scenes")
        if len(inp.narrations) not in (0, len(scenes)):
            raise ValueError(f"{len(inp.narrations)} narrations for {len(scenes)} scenes")
        outdir.mkdir(parents=True, exist_ok=True)
        spec = inp.spec
        tl = Timeline.build(inp.storyboard, spec)
        samples = tl.total * MIX_RATE // spec.fps

        srt = vtt = None
        if inp.subtitles.enabled:
            srt, vtt = outdir / "subtitles.srt", outdir / "subtitles.vtt"
            srt.write_text(to_srt(inp.cues), encoding="utf-8")
            vtt.write_text(to_vtt(inp.cues), encoding="utf-8")
        burner = (
            SubtitleBurner(inp.cues, inp.subtitles, spec.width, spec.height)
            if inp.subtitles.enabled and inp.subtitles.burn_in and inp.cues
            else None
        )

        content = next((i for i, s in enumerate(scenes) if s.kind == "content"), 0)
        poster_at = tl.middle(content)
        poster = outdir / "poster.jpg"
        thumbs_at = {tl.middle(i): i for i in range(len(scenes))}
        thumbs: dict[int, Path] = {}

        video = outdir / "video.mp4"
        every = max(1, tl.total // 200)
        loudness: float | None = None
        with (
            VideoWriter(
                video,
                spec.width,
                spec.height,
                spec.fps,
                final_options(spec),
                faststart=True,
                audio_rate=MIX_RATE,
                audio_channels=2,
            ) as writer,
            # Exits first: the audio thread is done before the writer closes.
            ThreadPoolExecutor(1, thread_name_prefix="montage-audio") as audio_thread,
        ):
            # The audio (mix, loudness, AAC) is made on a thread while the first
            # frames are encoded, on the core x264 leaves idle.  Its packets still
            # reach the muxer first, as if written before any frame: the writer
            # holds the video packets until then, and the muxer interleaves.
            writer.hold_video()
            audio = audio_thread.submit(_audio_track, inp, samples, writer)
            pool = FramePool(spec.width, spec.height)
            for index, frame in enumerate(timeline_frames(inp.clips, tl, spec, pool)):
                if index == poster_at or index in thumbs_at:
                    rgb: Frame = np.asarray(frame.to_ndarray(format="rgb24"), np.uint8)
                    if index == poster_at:
                        save_jpeg(rgb, poster)
                    if index in thumbs_at:
                        i = thumbs_at[index]
                        thumbs[i] = save_jpeg(rgb, outdir / f"thumb_{i:03d}.jpg", THUMB_WIDTH)
                t = index / spec.fps
                if burner is not None and burner.active(t):
                    frame, planes = pool.writable(frame)
                    burner.burn_planes(planes, t)
                # Frames nothing was drawn on go to the encoder as decoded.
                writer.write_frame(frame)
                if loudness is None and audio.done():
                    loudness = _mux_audio(writer, audio)
                if index % every == 0:
                    progress(index / tl.total)
            if loudness is None:
                loudness = _mux_audio(writer, audio)
        progress(1.0)
        return MontageOutput(
            video=video,
            srt=srt,
            vtt=vtt,
            poster=poster,
            thumbnails=[thumbs[i] for i in sorted(thumbs)],
            loudness_lufs=loudness,
        )
