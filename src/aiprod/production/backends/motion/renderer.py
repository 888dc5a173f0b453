"""The motion renderer itself: `MotionRenderer`, and the frame loop that composes layers.

`MotionRenderer` seeds a scene, picks its base layer (a procedural background
or the user's media), lays out its text, and yields yuv420p frames; `render`
encodes them while a helper thread draws ahead (`_prefetch`).  Backgrounds are
drawn small and upscaled into the frame's planes here (`_upscale_into`).
"""

from __future__ import annotations

import hashlib
import queue
import threading
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar, cast

import av
import numpy as np
from numpy.typing import NDArray
from PIL import Image

from aiprod.production.backends.motion.backgrounds import MOTIFS, Background, Camera
from aiprod.production.backends.motion.media import KenBurns, LoopedVideo, MediaLayer
from aiprod.production.backends.motion.palettes import (
    F32,
    by_luminance,
    palette_colors,
    text_is_dark,
)
from aiprod.production.backends.motion.text import TextLayer, fit_size
from aiprod.production.media.frames import quarter_size
from aiprod.production.media.text import RGB, line_height, wrap_text
from aiprod.production.media.video import mezzanine_writer
from aiprod.production.media.yuv import PIX_FMT, FramePool, Planes, planes_of
from aiprod.production.models import Scene, VisualMotif
from aiprod.production.stages.base import ProgressFn
from aiprod.production.stages.visuals import SceneContext, VisualRenderer

T = TypeVar("T")

_PREFETCH = 3
"""Frames drawn ahead of the encoder (on the helper thread)."""
_RING = _PREFETCH + 3
"""Frames in the renderer's pool: one drawn, `_PREFETCH` queued, one encoding, one spare."""


def _seed_for(ctx_seed: int, scene: Scene) -> list[int]:
    """Entropy for one scene: the request seed, the scene index and its description.

    The description is hashed (not Python's salted `hash`) so that two scenes
    that say different things look different, and the same scene renders the
    same on every run and machine.
    """
    digest = hashlib.sha256(scene.visual.strip().lower().encode()).digest()
    return [ctx_seed, scene.index, int.from_bytes(digest[:8], "little")]


class MotionRenderer:
    """Procedural motion-graphics backend for the visuals stage (see the package doc)."""

    name = "motion"
    version = "2"  # 2: drawn in yuv420p (text rises in whole chroma rows)

    def __init__(self, *, threaded: bool = True) -> None:
        self.threaded = threaded

    def render(self, scene: Scene, ctx: SceneContext, out: Path, progress: ProgressFn) -> None:
        """Write the scene's clip: exactly ``ctx.spec.frames(scene.duration)`` frames.

        Unreadable or missing user media raises ValueError before `out` is created.
        Frames are drawn on a helper thread while this one encodes: NumPy, Pillow
        and x264 all release the GIL, so drawing and encoding overlap.
        """
        total = ctx.spec.frames(scene.duration)
        frames = self.iter_frames(scene, ctx)
        step = max(1, total // 40)
        source = _prefetch(frames, depth=_PREFETCH) if self.threaded else frames
        try:
            with mezzanine_writer(out, ctx.spec) as writer:
                for i, frame in enumerate(source):
                    writer.write(frame)
                    if i % step == 0:
                        progress(i / total)
        finally:
            close = getattr(source, "close", None)
            if close is not None:
                close()
        progress(1.0)

    def iter_frames(self, scene: Scene, ctx: SceneContext) -> Iterator[av.VideoFrame]:
        """The scene's frames as yuv420p VideoFrames (BT.601 limited range, untagged,
        as the encoder takes them), without encoding.

        Setup (including opening user media, which raises ValueError if the file
        is missing or unreadable) happens in this call; frames are drawn lazily.
        Frames come from a small pool and are drawn over again: each is valid until
        ``_RING - 1`` more have been requested (copy what you keep).
        """
        spec = ctx.spec
        width, height = spec.width, spec.height
        rng = np.random.default_rng(_seed_for(ctx.seed, scene))
        colors = by_luminance(palette_colors(ctx.style.palette))
        media: MediaLayer | None = None
        background: Background | None = None
        if scene.media is not None:
            path = scene.media.path
            if scene.media.kind == "video":
                media = LoopedVideo(path, (width, height))
            else:
                media = KenBurns(
                    path, (width, height), scene.camera, scene.duration, spec.quality, rng
                )
        else:
            motif: VisualMotif = ctx.style.motif
            background = MOTIFS[motif](rng, colors, quarter_size(width, height), scene.duration)
        try:
            text, dim = self._text(scene, ctx, colors)
        except BaseException:
            if media is not None:
                media.close()
            raise
        if background is not None and text.box is not None:
            x0, y0, x1, y1 = text.box
            background.set_scrim(
                (x0 / width, y0 / height, x1 / width, y1 / height), light=text_is_dark(colors)
            )
        camera = Camera(scene.camera, scene.duration)
        return _frames(
            spec.frames(scene.duration),
            spec.fps,
            FramePool(width, height, size=_RING) if background is not None else None,
            media,
            background,
            camera,
            text,
            dim,
        )

    def _text(self, scene: Scene, ctx: SceneContext, colors: F32) -> tuple[TextLayer, float]:
        """The scene's typography and how much to dim the background under it."""
        w, h = ctx.spec.width, ctx.spec.height
        d = scene.duration
        short = min(w, h)
        fs = ctx.style.font_scale
        dark = text_is_dark(colors)
        color: RGB = (22, 22, 30) if dark else (255, 255, 255)
        accent_rgb = colors[-1] if not dark else colors[0]
        accent: RGB = (int(accent_rgb[0]), int(accent_rgb[1]), int(accent_rgb[2]))
        max_w = int(w * 0.84)
        min_size = max(8, round(short * 0.025))
        start = min(0.35, 0.12 * d)
        fade_in = min(0.45, 0.2 * d)
        out_end = d - min(0.2, 0.06 * d)
        out_start = out_end - min(0.5, 0.15 * d)
        on_screen = " ".join(scene.on_screen_text.split())

        if scene.kind in ("title", "end"):
            hold = scene.kind == "end"
            layer = TextLayer(None if hold else (out_start, out_end), (w, h))
            title = " ".join(ctx.title.split())
            if scene.kind == "title":
                primary, secondary = title, on_screen
                big = round(short * 0.12 * fs)
            else:
                primary, secondary = (on_screen, title) if on_screen else (title, "")
                big = round(short * 0.1 * fs)
            small = max(min_size, round(short * 0.05 * fs))
            big = fit_size(primary, big, max_w, int(h * 0.42), min_size)
            lh_big = line_height(big)
            n_big = max(1, len(wrap_text(primary, big, max_w)))
            gap = round(lh_big * 0.45)
            sub_h = len(wrap_text(secondary, small, max_w)) * line_height(small)
            block = n_big * lh_big + (gap * 2 + sub_h if secondary else 0)
            top = (h - block) // 2
            stagger = min(0.12, 0.3 * d / max(1, len(primary.split())))
            bottom, arrived = layer.add_words(
                primary, big, color, w, top, max_w, start, stagger, fade_in
            )
            bar_h = max(2, round(short * 0.006))
            if secondary:
                layer.add_bar((w // 2, bottom + gap), (round(w * 0.16), bar_h), accent, start, 0.6)
                layer.add_block(
                    secondary, small, color, w, bottom + 2 * gap, max_w, arrived * 0.8, fade_in
                )
            else:
                layer.add_bar((w // 2, bottom + gap), (round(w * 0.16), bar_h), accent, start, 0.6)
            return layer, 0.82

        layer = TextLayer((out_start, out_end), (w, h))
        if on_screen:
            size = round(short * 0.08 * fs)
            size = fit_size(on_screen, size, max_w, int(h * 0.5), min_size)
            lines = wrap_text(on_screen, size, max_w)
            block = len(lines) * line_height(size)
            top = int(h * 0.44 - block / 2)
            words = len(on_screen.split())
            stagger = min(0.14, 0.35 * d / max(1, words))
            layer.add_words(on_screen, size, color, w, top, max_w, start, stagger, fade_in)
        return layer, 1.0


def _frames(
    total: int,
    fps: int,
    pool: FramePool | None,
    media: MediaLayer | None,
    background: Background | None,
    camera: Camera,
    text: TextLayer,
    dim: float,
) -> Iterator[av.VideoFrame]:
    """Draw the frames: base layer (user media or procedural background), then text."""
    try:
        for i in range(total):
            t = i / fps
            if media is not None:
                # User media are RGB images: libswscale converts them (a fresh frame).
                image = av.VideoFrame.from_image(media.frame(t))  # type: ignore[no-untyped-call]
                frame = image.reformat(format=PIX_FMT)
                planes = planes_of(frame, writable=True)
            else:
                assert background is not None and pool is not None
                frame, planes = pool.take()
                zoom, pan = camera.at(t)
                _upscale_into(background.render(t, zoom, pan, text.envelope(t), dim), planes)
            text.draw(planes, t)
            yield frame
    finally:
        if media is not None:
            media.close()


def _upscale_into(low: NDArray[np.uint8], planes: Planes) -> None:
    """Upscale low-resolution Y, U, V planes (3, lh, lw) into a frame's planes.

    Each plane goes bilinearly (Pillow, in C) to half the frame's size, which is
    the chroma planes' size; luma is then pixel-doubled.  The 2x2 luma blocks are
    invisible on the soft, procedurally drawn content, and a bilinear 4x resize of
    luma would cost more than the rest of the frame.
    """
    y_plane = planes[0]
    ch, cw = planes[1].shape
    for k, plane in enumerate(planes):
        half = np.asarray(Image.fromarray(low[k], "L").resize((cw, ch), Image.Resampling.BILINEAR))
        if k:
            np.copyto(plane, half)
        elif y_plane.shape == (2 * ch, 2 * cw):
            # Pixel pairs as 16-bit words (v * 257 has v in both bytes): two strided
            # row copies instead of a 4-D broadcast, which is ~10x slower.
            pairs = y_plane.view(np.uint16)
            doubled = np.multiply(half, np.uint16(257), dtype=np.uint16)
            pairs[0::2] = doubled
            pairs[1::2] = doubled
        else:  # odd sizes: the last row or column is half a block
            h, w = y_plane.shape
            y_plane[...] = half.repeat(2, axis=0).repeat(2, axis=1)[:h, :w]


_DONE = object()


def _prefetch(items: Iterator[T], depth: int) -> Generator[T, None, None]:
    """Yield from `items`, which is advanced on a helper thread up to `depth` ahead.

    Exceptions raised by `items` are re-raised here, in order.  Closing this
    generator (or an exception in the consumer) stops the helper, which then
    closes `items` itself (a generator must be closed on the thread running it).
    """
    slots: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                slots.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for item in items:
                if not put(item):
                    return
            put(_DONE)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            put(_Failure(exc))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    helper = threading.Thread(target=work, name="motion-frames", daemon=True)
    helper.start()
    try:
        while True:
            item = slots.get()
            if item is _DONE:
                return
            if isinstance(item, _Failure):
                raise item.exc
            yield cast(T, item)
    finally:
        stop.set()
        helper.join()


@dataclass(frozen=True)
class _Failure:
    exc: BaseException


if TYPE_CHECKING:  # MotionRenderer must satisfy the stage's protocol (checked by mypy).
    _conforms: VisualRenderer = MotionRenderer()
