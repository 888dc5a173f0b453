"""The montage: scene clips, narration, music and subtitles become the final MP4.

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
  the sum is normalised to -14 LUFS with true peaks under -1 dBFS.
* **Same encoder everywhere.**  Encoding goes through :class:`VideoWriter` with
  :func:`final_options`, like the rest of the engine.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import numpy as np
from numpy.typing import NDArray
from PIL import Image
from scipy.ndimage import maximum_filter1d

from aiprod.production.media.audio import MIX_RATE, read_wav, resample
from aiprod.production.media.frames import hex_to_rgb
from aiprod.production.media.loudness import integrated_loudness, normalize
from aiprod.production.media.text import blend, render_text_sprite, sprite_padding
from aiprod.production.media.video import Frame, VideoWriter, final_options
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
from aiprod.production.subtitles import MAX_LINE_CHARS, to_srt, to_vtt

Audio = NDArray[np.float32]

TARGET_LUFS = -14.0
PEAK_CEILING_DB = -1.0
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


# --- clip decoding and composition ----------------------------------------------------


_BAND_ROWS = 64


class ClipReader:
    """Streams RGB frames of one clip at the spec size.

    If a clip is shorter than its scene (a renderer bug, or a rounding difference)
    the last frame is held rather than failing the whole production; a clip with no
    frames at all is an error.
    """

    def __init__(self, path: Path, width: int, height: int) -> None:
        self.path = path
        self.width, self.height = width, height
        self._container: Any = av.open(str(path))
        stream = self._container.streams.video[0]
        # Slice threads only: frame threading keeps several 1080p frames in flight
        # per decoder (~12 MB more each) and is no faster on intra-light
        # mezzanines, while the encoder is what needs the cores.
        stream.thread_type = "SLICE"
        self._frames: Iterator[Any] = iter(self._container.decode(stream))
        self._last: Any = None  # the last decoded av.VideoFrame
        self.held = 0

    def _rgb(self, vf: Any) -> Frame:
        """A fresh, writable RGB array (callers draw on it in place)."""
        if vf.width == self.width and vf.height == self.height:
            arr: Frame = vf.to_ndarray(format="rgb24")
        else:
            arr = vf.reformat(width=self.width, height=self.height, format="rgb24").to_ndarray()
        return arr if arr.flags.writeable else arr.copy()

    def next(self) -> Frame:
        try:
            vf = next(self._frames)
        except StopIteration:
            if self._last is None:
                raise ValueError(f"{self.path}: clip has no video frames") from None
            # Convert the decoded frame again rather than reuse the array handed
            # out last time: that one may have had subtitles drawn on it.
            self.held += 1
            return self._rgb(self._last)
        self._last = vf
        return self._rgb(vf)

    def close(self) -> None:
        self._container.close()


def crossfade(a: Frame, b: Frame, alpha: float) -> Frame:
    """``(1 - alpha) * a + alpha * b`` in 8-bit fixed point (exact to ±1).

    Works in bands of rows so the 16-bit intermediates stay small (and in cache)
    instead of costing two extra full frames at 1080p.
    """
    w = round(alpha * 256)
    out = np.empty_like(a)
    for r0 in range(0, a.shape[0], _BAND_ROWS):
        r1 = r0 + _BAND_ROWS
        acc = a[r0:r1].astype(np.uint16)
        acc *= 256 - w
        acc += b[r0:r1].astype(np.uint16) * np.uint16(w)
        acc += 128
        acc >>= 8
        out[r0:r1] = acc
    return out


def slide(a: Frame, b: Frame, progress: float) -> Frame:
    """The next scene pushes the current one out to the left, entering from the
    right.  Eased (smoothstep) so the move starts and ends gently."""
    width = a.shape[1]
    p = progress * progress * (3.0 - 2.0 * progress)
    shift = min(width, max(0, round(width * p)))
    out = np.empty_like(a)
    out[:, : width - shift] = a[:, shift:]
    out[:, width - shift :] = b[:, :shift]
    return out


def compose(kind: Transition, a: Frame, b: Frame, progress: float) -> Frame:
    if kind == "slide":
        return slide(a, b, progress)
    return crossfade(a, b, progress)


def timeline_frames(clips: Sequence[Path], tl: Timeline, spec: RenderSpec) -> Iterator[Frame]:
    """Every output frame, in order, composing transitions on the fly.

    At most two readers are open: the current scene's and, during its outgoing
    transition, the next one's (which then becomes current).
    """
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
                    yield compose(tl.transitions[i], a, b, (j + 1) / (o + 1))
            current.close()
            open_readers.remove(current)
            current = nxt
    finally:
        for reader in open_readers:
            reader.close()


# --- subtitles --------------------------------------------------------------------------


class SubtitleBurner:
    """Draws the active cue onto frames.

    Each cue's sprite is rendered once, when the cue first appears, and dropped
    when it ends, so only one or two sprites exist at a time however long the
    programme.  Text size is relative to the frame (4.5 % of the short side at
    size 1.0, ~49 px at 1080p), so the look is the same at every resolution.
    """

    def __init__(self, cues: Sequence[SubtitleCue], style: SubtitleStyle, width: int, height: int):
        self.cues = sorted(cues, key=lambda c: c.start)
        self.style = style
        self.width, self.height = width, height
        # 4.5 % of the short side, but never so big that a full subtitle line
        # (MAX_LINE_CHARS at ~0.52 em per character) would not fit in 90 % of
        # the width: on 9:16 video the height alone would give 86 px text at
        # 1080x1920 and wrap every cue to three or four lines.
        base = min(0.045 * min(width, height), 0.9 * width / (MAX_LINE_CHARS * 0.52))
        self.font_px = max(10, round(base * style.size))
        self.margin = round(height * 0.06)
        self._sprites: dict[int, tuple[NDArray[np.uint8], int, int]] = {}
        self._next = 0

    def _sprite(self, k: int) -> tuple[NDArray[np.uint8], int, int]:
        if k not in self._sprites:
            box = BOX_RGBA if self.style.box else None
            sprite = render_text_sprite(
                self.cues[k].text,
                self.font_px,
                hex_to_rgb(self.style.color),
                int(self.width * 0.9),
                shadow=True,
                box=box,
                align="center",
            )
            # Place the text block (not the sprite's padding) at the margin.
            pad = sprite_padding(self.font_px, shadow=True, box=box)
            sh, sw = sprite.shape[:2]
            x = (self.width - sw) // 2
            if self.style.position == "top":
                y = self.margin - pad
            else:
                y = self.height - self.margin - (sh - pad)
            self._sprites[k] = (sprite, x, y)
        return self._sprites[k]

    def active(self, t: float) -> list[int]:
        while self._next < len(self.cues) and self.cues[self._next].end <= t:
            self._sprites.pop(self._next, None)
            self._next += 1
        out = []
        for k in range(self._next, len(self.cues)):
            cue = self.cues[k]
            if cue.start > t:
                break
            if cue.end > t:
                out.append(k)
            else:
                self._sprites.pop(k, None)
        return out

    def burn(self, frame: Frame, t: float) -> None:
        for k in self.active(t):
            sprite, x, y = self._sprite(k)
            blend(frame, sprite, x, y)


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
    hold_s: float = 0.25,
    lookahead_s: float = 0.12,
    attack_s: float = 0.06,
    release_s: float = 0.4,
) -> NDArray[np.float64]:
    """Per-sample music gain from a speech sidechain.

    Speech is "on" in every 10 ms hop whose RMS exceeds ``threshold_db``; the on
    state is held across short pauses between words (``hold_s``) so the music
    does not pump, and starts ``lookahead_s`` early (offline, we can look ahead)
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
    """Narration + ducked music, normalised to -14 LUFS with peaks ≤ -1 dBFS."""
    speech = narration_bus(inp.narrations, inp.storyboard, inp.narration_lead, length)
    speech_st = _gain_to(np.repeat(speech[:, None], 2, axis=1), SPEECH_LUFS)
    if inp.music is not None:
        music = _gain_to(music_bus(inp.music, length), MUSIC_BED_LUFS)
        gain = ducking_gain(speech_st[:, 0])
        mix = speech_st + music * gain[:, None].astype(np.float32)
    else:
        mix = speech_st
    return normalize(mix, MIX_RATE, TARGET_LUFS, PEAK_CEILING_DB)


# --- images -------------------------------------------------------------------------


def save_jpeg(frame: Frame, path: Path, width: int | None = None) -> Path:
    img = Image.fromarray(frame)
    if width is not None and img.width != width:
        height = max(2, round(img.height * width / img.width))
        img = img.resize((width, height), Image.Resampling.LANCZOS)
    img.save(path, format="JPEG", quality=JPEG_QUALITY, optimize=True)
    return path


# --- backend ------------------------------------------------------------------------


class PyAVMontage:
    """Montage backend: decode, compose, burn in, mix and encode with PyAV."""

    name = "pyav"
    version = "1"

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

        mix = mix_audio(inp, samples)
        loudness = integrated_loudness(mix, MIX_RATE)

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
        with VideoWriter(
            video,
            spec.width,
            spec.height,
            spec.fps,
            final_options(spec),
            faststart=True,
            audio_rate=MIX_RATE,
            audio_channels=2,
        ) as writer:
            # Audio first: the muxer interleaves it as the video packets arrive.
            writer.write_audio(mix, MIX_RATE)
            del mix
            for index, frame in enumerate(timeline_frames(inp.clips, tl, spec)):
                if index == poster_at:
                    save_jpeg(frame, poster)
                if index in thumbs_at:
                    i = thumbs_at[index]
                    thumbs[i] = save_jpeg(frame, outdir / f"thumb_{i:03d}.jpg", THUMB_WIDTH)
                if burner is not None:
                    burner.burn(frame, index / spec.fps)
                writer.write(frame)
                if index % every == 0:
                    progress(index / tl.total)
        progress(1.0)
        return MontageOutput(
            video=video,
            srt=srt,
            vtt=vtt,
            poster=poster,
            thumbnails=[thumbs[i] for i in sorted(thumbs)],
            loudness_lufs=loudness,
        )
