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
from aiprod.production.backends.motion.cards import Composed, Ink, compose
from aiprod.production.backends.motion.layouts import choose_layout
from aiprod.production.backends.motion.media import KenBurns, LoopedVideo, MediaLayer
from aiprod.production.backends.motion.palettes import (
    F32,
    by_luminance,
    lift,
    palette_colors,
    text_is_dark,
)
from aiprod.production.backends.motion.text import TextLayer
from aiprod.production.backends.motion.vocabulary import choose_look
from aiprod.production.media.frames import quarter_size
from aiprod.production.media.text import RGB
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
    version = "3"  # 3: looks and layouts chosen from the scene text

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
        look = choose_look(scene, ctx.style, explicit=scene.style is not None)
        colors = lift(by_luminance(palette_colors(look.palette)), look.lift)
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
            motif: VisualMotif = look.motif
            background = MOTIFS[motif](rng, colors, quarter_size(width, height), scene.duration)
        try:
            composed = self.compose(scene, ctx, colors, look.icon)
        except BaseException:
            if media is not None:
                media.close()
            raise
        text, dim = composed.layer, composed.dim
        if background is not None and composed.scrims:
            background.set_scrim(
                composed.scrims,
                light=text_is_dark(colors),
                soft=0.35 if choose_layout(scene).kind == "comparison" else 1.0,
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

    def compose(self, scene: Scene, ctx: SceneContext, colors: F32, icon: str | None) -> Composed:
        """The scene's typography: its layout (`layouts.choose_layout`) drawn by `cards`."""
        dark = text_is_dark(colors)
        accent_rgb = colors[-1] if not dark else colors[0]
        accent: RGB = (int(accent_rgb[0]), int(accent_rgb[1]), int(accent_rgb[2]))
        base = colors[0] if not dark else colors[-1]
        ink = Ink(
            text=(22, 22, 30) if dark else (255, 255, 255),
            accent=accent,
            on_accent=(int(base[0]), int(base[1]), int(base[2])),
        )
        size = (ctx.spec.width, ctx.spec.height)
        layout = choose_layout(scene)
        return compose(
            layout,
            size,
            ink,
            ctx.title,
            icon,
            ctx.style.font_scale,
            scene.duration,
            ctx.credits,
            captions=ctx.captions,
        )


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
