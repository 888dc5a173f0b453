"""Text layers of the motion renderer: kinetic typography, accent bars, fitting, easing.

A `TextLayer` holds the scene's words as sprites already converted to Y/U/V
planes with alpha, and draws them into each frame as they fade and rise in,
hold, and fade out; `fit_size` picks a font size that fits the frame.  What
the text says and where it goes is decided by the renderer
(`MotionRenderer._text`); this module only lays it out and animates it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from aiprod.production.media.text import (
    RGB,
    balanced_width,
    line_height,
    render_text_sprite,
    sprite_padding,
    text_width,
    wrap_text,
)
from aiprod.production.media.yuv import Planes, PlaneSprite, rgb_to_yuv, yuv_sprite


@dataclass
class _Piece:
    """One sprite of animated text, as Y/U/V planes at its resting place, and when
    it comes and goes."""

    parts: list[tuple[int, PlaneSprite]]  # (plane index, sprite plane)
    start: float  # when its fade-in begins
    fade_in: float
    slide: int  # pixels it rises while fading in


class TextLayer:
    """Kinetic typography: pieces (words, lines) fade and slide in one after
    another, hold, and fade out together before the scene ends (unless `hold`).

    Sprites are rendered and converted to Y/U/V once; per frame a held word costs
    one 16-bit fixed-point blend inside its box.  Words rise by an even number of
    rows, so that their chroma (half the rows) moves by whole samples.
    """

    def __init__(self, fade_out: tuple[float, float] | None, size: tuple[int, int]) -> None:
        self.pieces: list[_Piece] = []
        self.fade_out = fade_out  # (start, end) or None to stay to the last frame
        self.size = size  # frame width, height
        self.bars: list[tuple[tuple[int, int, int, int], tuple[float, ...], float, float]] = []
        self.box: tuple[int, int, int, int] | None = None  # pixel bounds of all text

    def _grow_box(self, x0: int, y0: int, x1: int, y1: int) -> None:
        if self.box is None:
            self.box = (x0, y0, x1, y1)
        else:
            bx0, by0, bx1, by1 = self.box
            self.box = (min(bx0, x0), min(by0, y0), max(bx1, x1), max(by1, y1))

    def add_words(
        self,
        text: str,
        size: int,
        color: RGB,
        frame_w: int,
        top: int,
        max_width: int,
        start: float,
        stagger: float,
        fade_in: float,
        *,
        left: int = 0,
        align: str = "center",
        shear: float = 0.0,
    ) -> tuple[int, float]:
        """Lay out `text` wrapped, one piece per word, centred in the columns
        ``left .. left + frame_w`` (or flush left with ``align="left"``), slanted
        by `shear` (an italic feel: 0.2 leans the tops right by a fifth of the
        height).  Returns the block's bottom (pixels) and the time the last word
        has finished arriving."""
        lines = wrap_text(text, size, balanced_width(text, size, max_width))
        lh = line_height(size)
        pad = sprite_padding(size)
        space = text_width(" ", size)
        slide = max(2, round(lh * 0.35))
        t = start
        end = start
        for row, line in enumerate(lines):
            words = line.split(" ")
            widths = [text_width(w, size) for w in words]
            total = sum(widths) + space * (len(words) - 1)
            x = left + ((frame_w - total) / 2 if align == "center" else 0.0)
            y = top + row * lh
            for word, w in zip(words, widths, strict=True):
                if word:
                    sprite = render_text_sprite(word, size, color, max_width * 4)
                    if shear:
                        sprite = _shear(sprite, shear)
                    parts = yuv_sprite(sprite, round(x) - pad, y - pad, *self.size)
                    self.pieces.append(_Piece(parts, t, fade_in, slide))
                    self._grow_box(round(x), y, round(x + w), y + lh)
                    end = t + fade_in
                    t += stagger
                x += w + space
        return top + lh * len(lines), end

    def add_block(
        self,
        text: str,
        size: int,
        color: RGB,
        frame_w: int,
        top: int,
        max_width: int,
        start: float,
        fade_in: float,
    ) -> int:
        """A whole wrapped block as one piece (a subtitle line).  Returns its bottom."""
        sprite = render_text_sprite(text, size, color, balanced_width(text, size, max_width))
        sh, sw = int(sprite.shape[0]), int(sprite.shape[1])
        if sh <= 1:
            return top
        pad = sprite_padding(size)
        x = (frame_w - sw) // 2
        slide = max(2, round(line_height(size) * 0.25))
        parts = yuv_sprite(sprite, x, top - pad, *self.size)
        self.pieces.append(_Piece(parts, start, fade_in, slide))
        bottom = top + sh - 2 * pad
        self._grow_box(x + pad, top, x + sw - pad, bottom)
        return bottom

    def add_sprite(
        self, rgba: NDArray[np.uint8], x: int, y: int, start: float, fade_in: float
    ) -> None:
        """A picture (icon, badge, panel) at (x, y) that fades and rises in like a word."""
        h = int(rgba.shape[0])
        parts = yuv_sprite(rgba, x, y, *self.size)
        if not parts:
            return
        self.pieces.append(_Piece(parts, start, fade_in, max(2, round(h * 0.12))))
        shown = np.argwhere(rgba[..., 3] > 8)
        if shown.size:
            (r0, c0), (r1, c1) = shown.min(axis=0), shown.max(axis=0)
            self._grow_box(x + int(c0), y + int(r0), x + int(c1) + 1, y + int(r1) + 1)

    def add_bar(
        self, center: tuple[int, int], size: tuple[int, int], color: RGB, start: float, grow: float
    ) -> None:
        """An accent rule that grows outwards from its centre."""
        (cx, cy), (w, h) = center, size
        yuv = tuple(float(v) for v in rgb_to_yuv(np.array(color, dtype=np.float64)))
        self.bars.append(((cx, cy, w, h), yuv, start, grow))

    def fade(self, t: float) -> float:
        if self.fade_out is None:
            return 1.0
        start, end = self.fade_out
        if t <= start:
            return 1.0
        return max(0.0, (end - t) / max(1e-6, end - start))

    def envelope(self, t: float) -> float:
        """How visible the text is overall (0..1): drives the background scrim."""
        if not self.pieces:
            return 0.0
        first = self.pieces[0]
        arrive = min(1.0, max(0.0, (t - first.start) / max(1e-6, first.fade_in)))
        return arrive * self.fade(t)

    def draw(self, planes: Planes, t: float) -> None:
        """Draw the text as it is at time t into the (writable) planes of a frame."""
        out = self.fade(t)
        if out <= 0.0:
            return
        for (cx, cy, w, h), yuv, start, grow in self.bars:
            p = _ease_out(min(1.0, max(0.0, (t - start) / max(1e-6, grow))))
            half = round(w * p / 2)
            if half > 0:
                _fill(planes, (cx - half, cy - h // 2, cx + half, cy - h // 2 + h), yuv, out)
        for piece in self.pieces:
            if t < piece.start:
                continue
            p = min(1.0, (t - piece.start) / max(1e-6, piece.fade_in))
            e = _ease_out(p)
            opacity = e * out
            if opacity <= 0.003:
                continue
            half_dy = round((1.0 - e) * piece.slide / 2)
            shown = opacity if opacity < 0.997 else 1.0  # held text: no alpha rescale
            for k, part in piece.parts:
                part.blend(planes[k], dy=half_dy if k else 2 * half_dy, opacity=shown)


def _fill(
    planes: Planes, box: tuple[int, int, int, int], yuv: tuple[float, ...], opacity: float
) -> None:
    """A solid rectangle (luma pixels x0, y0, x1, y1, ends excluded) of colour `yuv`,
    mixed over what is there by `opacity`; chroma covers every sample it touches."""
    x0, y0, x1, y1 = box
    for k, plane in enumerate(planes):
        if k:
            bx0, by0, bx1, by1 = x0 // 2, y0 // 2, (x1 + 1) // 2, (y1 + 1) // 2
        else:
            bx0, by0, bx1, by1 = x0, y0, x1, y1
        region = plane[max(0, by0) : max(0, by1), max(0, bx0) : max(0, bx1)]
        if opacity >= 1.0:
            region[...] = round(yuv[k])
        else:
            mixed = region * np.float32(1.0 - opacity) + np.float32(yuv[k] * opacity)
            np.copyto(region, np.rint(mixed), casting="unsafe")


def _shear(sprite: NDArray[np.uint8], k: float) -> NDArray[np.uint8]:
    """Slant an RGBA sprite: row y moves right by k·(h − y), so the foot stays put."""
    h, w = int(sprite.shape[0]), int(sprite.shape[1])
    extra = math.ceil(abs(k) * h)
    img = Image.fromarray(sprite, "RGBA")
    out = img.transform(
        (w + extra, h), Image.Transform.AFFINE, (1, k, -k * h, 0, 1, 0), Image.Resampling.BICUBIC
    )
    return np.asarray(out, dtype=np.uint8)


def _ease_out(p: float) -> float:
    """Cubic ease-out: fast arrival, gentle settle."""
    return 1.0 - (1.0 - p) ** 3


def fit_size(text: str, size: int, max_width: int, max_height: int, min_size: int) -> int:
    """Shrink `size` until `text` fits: wrapped to `max_width` it is at most
    `max_height` tall, and no single word is wider than a line (it would have to
    be broken mid-word).  Never below `min_size`."""
    words = text.split()
    while size > min_size:
        tall = len(wrap_text(text, size, max_width)) * line_height(size)
        if tall <= max_height and all(text_width(w, size) <= max_width for w in words):
            return size
        size = max(min_size, int(size * 0.88))
    return size
