"""Text sprites for video frames: wrap, render once, blend many times.

Drawing text with FreeType for every frame is far too slow for a 1080p30 budget
of a few milliseconds, and text rarely changes between frames.  So text is
rendered once into an RGBA *sprite* (straight, not premultiplied, alpha) and
alpha-blended into each frame only inside the sprite's bounding box.  The
visuals renderer uses these helpers for on-screen titles and the montage for
burned-in subtitles, so both look the same.

The font is the FreeType font that ships inside Pillow
(``ImageFont.load_default(size=...)``): no system fonts are needed, so renders
are identical on every machine.  Font objects are cached and shared, and a
FreeType face must not be used by two threads at once, so every call into the
font goes through one lock (text is laid out once per scene, so it never
contends in practice).

Geometry of a sprite: the text block (lines of ``line_height(size_px)`` pixels,
each as wide as its advance) starts at ``(pad, pad)`` with
``pad = sprite_padding(size_px, shadow=..., box=...)``.  The padding holds the
shadow's blur and offset, the box's margin and glyph overhangs, so a caller who
wants the text itself at (x, y) blends the sprite at (x - pad, y - pad).
"""

from __future__ import annotations

import threading
from functools import lru_cache
from typing import Literal

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageDraw, ImageFilter, ImageFont

Align = Literal["left", "center", "right"]
RGB = tuple[int, int, int]
RGBA = tuple[int, int, int, int]

MIN_FONT_PX = 6
_FONT_LOCK = threading.RLock()


@lru_cache(maxsize=64)
def load_font(size_px: int) -> ImageFont.FreeTypeFont:
    """Pillow's bundled FreeType font at `size_px` (cached: loading costs ~1 ms)."""
    with _FONT_LOCK:
        font = ImageFont.load_default(size=max(MIN_FONT_PX, int(size_px)))
    if not isinstance(font, ImageFont.FreeTypeFont):  # Pillow built without FreeType
        raise RuntimeError("Pillow was built without FreeType; text rendering needs it")
    return font


def line_height(size_px: int) -> int:
    """Distance between baselines of consecutive lines (ascent + descent + leading)."""
    font = load_font(size_px)
    with _FONT_LOCK:
        ascent, descent = font.getmetrics()
    return round((ascent + descent) * 1.12)


def shadow_geometry(size_px: int) -> tuple[int, float]:
    """(offset, blur radius) of the drop shadow for text of `size_px`.

    Both scale with the text so the shadow reads the same at 480p and 1080p.
    """
    return max(1, round(size_px / 22)), max(1.0, size_px / 16)


def box_margin(size_px: int) -> int:
    """Space between the text and the edge of its background box."""
    return max(2, round(size_px * 0.35))


def sprite_padding(size_px: int, *, shadow: bool = True, box: RGBA | None = None) -> int:
    """Offset of the text block inside a sprite from `render_text_sprite`."""
    pad = max(2, round(size_px * 0.12))  # glyph overhang (italic-ish tails, 'j', accents)
    if shadow:
        offset, radius = shadow_geometry(size_px)
        pad = max(pad, offset + int(np.ceil(radius * 2.5)))
    if box is not None:
        pad = max(pad, box_margin(size_px))
    return pad


def text_width(text: str, size_px: int) -> float:
    """Advance width of one line of `text` in pixels."""
    font = load_font(size_px)
    with _FONT_LOCK:
        return float(font.getlength(text))


def wrap_text(text: str, size_px: int, max_width: int) -> list[str]:
    """Greedy word wrap of `text` to lines at most `max_width` pixels wide.

    Explicit newlines are kept.  A single word wider than the limit is split
    between characters rather than overflowing the frame.  Blank input gives [].
    """
    font = load_font(size_px)
    max_width = max(1, max_width)
    with _FONT_LOCK:
        return _wrap(text, font, max_width)


def _wrap(text: str, font: ImageFont.FreeTypeFont, max_width: int) -> list[str]:
    lines: list[str] = []
    for paragraph in text.splitlines():
        current = ""
        for word in paragraph.split():
            candidate = f"{current} {word}" if current else word
            if font.getlength(candidate) <= max_width:
                current = candidate
                continue
            if current:
                lines.append(current)
                current = ""
            while font.getlength(word) > max_width and len(word) > 1:
                cut = _fit_chars(word, font, max_width)
                lines.append(word[:cut])
                word = word[cut:]
            current = word
        if current:
            lines.append(current)
    return lines


def balanced_width(text: str, size_px: int, max_width: int) -> int:
    """The narrowest width that wraps `text` into as few lines as `max_width` does.

    Wrapping greedily to `max_width` can leave a lone word on the last line;
    wrapping to this width instead gives lines of similar length (as titles
    are set by hand), without adding a line.
    """
    lines = wrap_text(text, size_px, max_width)
    if len(lines) <= 1:
        return max_width
    lo, hi = max_width // len(lines), max_width
    while lo < hi:
        mid = (lo + hi) // 2
        if len(wrap_text(text, size_px, mid)) <= len(lines):
            hi = mid
        else:
            lo = mid + 1
    return hi


def _fit_chars(word: str, font: ImageFont.FreeTypeFont, max_width: int) -> int:
    """Largest prefix length (≥ 1) of `word` that fits in `max_width`."""
    lo, hi = 1, len(word)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if font.getlength(word[:mid]) <= max_width:
            lo = mid
        else:
            hi = mid - 1
    return lo


def luminance(color: RGB) -> float:
    """Relative luminance 0..1 (Rec. 709 weights on gamma-encoded values; good enough
    to decide between a dark and a light shadow)."""
    r, g, b = color
    return (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255.0


def render_text_sprite(
    text: str,
    size_px: int,
    color: RGB,
    max_width: int,
    *,
    shadow: bool = True,
    box: RGBA | None = None,
    align: Align = "center",
) -> NDArray[np.uint8]:
    """Render `text` wrapped to `max_width` as an RGBA sprite of shape (h, w, 4).

    - `size_px`: font size in pixels (the em size; a line is ``line_height`` tall).
    - `color`: text colour.  The shadow is dark under light text and light under
      dark text, so the text stays readable on any background.
    - `box`: optional (r, g, b, a) rounded box behind the text (subtitle style).
    - `align`: horizontal alignment of the lines inside the block.

    Alpha is straight (not premultiplied).  Empty text gives a (1, 1, 4)
    transparent sprite so callers need no special case.  The text block starts
    at ``sprite_padding(size_px, shadow=shadow, box=box)`` from the top-left.
    """
    lines = wrap_text(text, size_px, max_width)
    if not lines:
        return np.zeros((1, 1, 4), np.uint8)
    font = load_font(size_px)
    pad = sprite_padding(size_px, shadow=shadow, box=box)
    lh = line_height(size_px)
    widths = [text_width(line, size_px) for line in lines]
    block_w = int(np.ceil(max(widths)))
    block_h = lh * len(lines)
    size = (block_w + 2 * pad, block_h + 2 * pad)

    mask = Image.new("L", size, 0)
    draw = ImageDraw.Draw(mask)
    for i, (line, w) in enumerate(zip(lines, widths, strict=True)):
        if align == "left":
            x = 0.0
        elif align == "right":
            x = block_w - w
        else:
            x = (block_w - w) / 2
        with _FONT_LOCK:
            draw.text((pad + round(x), pad + i * lh), line, font=font, fill=255, anchor="la")

    canvas = Image.new("RGBA", size, (0, 0, 0, 0))
    if box is not None:
        m = box_margin(size_px)
        ImageDraw.Draw(canvas).rounded_rectangle(
            (pad - m, pad - m, pad + block_w + m - 1, pad + block_h + m - 1),
            radius=max(1, m // 2),
            fill=box,
        )
    if shadow:
        offset, radius = shadow_geometry(size_px)
        dark = luminance(color) >= 0.5
        shade: RGB = (0, 0, 0) if dark else (255, 255, 255)
        strength = 0.8 if dark else 0.65
        blurred = mask.filter(ImageFilter.GaussianBlur(radius))
        # A slightly dilated blur keeps the halo dense right at the glyph edges.
        halo = blurred.point(lambda v: min(255, int(v * 2.2 * strength)))
        shifted = Image.new("L", size, 0)
        shifted.paste(halo, (offset, offset))
        layer = Image.new("RGBA", size, (*shade, 0))
        layer.putalpha(shifted)
        canvas = Image.alpha_composite(canvas, layer)
    fill = Image.new("RGBA", size, (*color, 0))
    fill.putalpha(mask)
    canvas = Image.alpha_composite(canvas, fill)
    return np.asarray(canvas, dtype=np.uint8).copy()


def blend(
    frame: NDArray[np.uint8],
    sprite: NDArray[np.uint8],
    x: int,
    y: int,
    opacity: float = 1.0,
) -> None:
    """Alpha-blend an RGBA `sprite` into an RGB `frame` (H, W, 3) in place.

    The sprite's top-left corner goes to (x, y); parts outside the frame are
    clipped, so a sprite may hang over any edge.  `opacity` (0..1) scales the
    sprite's alpha, for fades.  Integer maths (uint16, exact /255 rounding) on
    the overlapping region only: cost is proportional to the sprite, not to the
    frame.
    """
    if opacity <= 0.0:
        return
    fh, fw = frame.shape[:2]
    sh, sw = sprite.shape[:2]
    x0, y0 = max(0, x), max(0, y)
    x1, y1 = min(fw, x + sw), min(fh, y + sh)
    if x0 >= x1 or y0 >= y1:
        return
    src = sprite[y0 - y : y1 - y, x0 - x : x1 - x]
    dst = frame[y0:y1, x0:x1]
    alpha = src[..., 3:4].astype(np.uint16)
    if opacity < 1.0:
        alpha *= np.uint16(round(min(opacity, 1.0) * 256))
        alpha >>= 8
    acc = src[..., :3] * alpha
    acc += dst * (255 - alpha)
    acc += 128
    acc += acc >> 8
    acc >>= 8
    dst[...] = acc
