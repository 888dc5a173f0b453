"""Text sprites for video frames: wrap, render once, blend many times.

Drawing text with FreeType for every frame is far too slow for a 1080p30 budget
of a few milliseconds, and text rarely changes between frames.  So text is
rendered once into an RGBA *sprite* (straight, not premultiplied, alpha) and
alpha-blended into each frame only inside the sprite's bounding box.  The
visuals renderer uses these helpers for on-screen titles and the montage for
burned-in subtitles, so both look the same.

Fonts ship inside the package (``media/fonts``, SIL OFL; see its README):
Noto Sans for Latin, Greek and Cyrillic with their punctuation and currency
signs, then Noto Sans Math and Noto Sans Symbols2 for arrows, operators and
symbols.  They form a fallback chain (`FONT_CHAIN`): each character is drawn
with the first font that has it, so a line is laid out as runs of one font
each, on a common baseline.  A character that no font has is drawn with the
primary font (its ``.notdef`` box) and reported by `missing_glyphs`, which the
``glyphs`` QA check uses to fail such a video instead of delivering empty boxes.
No system fonts are used and layout is FreeType's basic engine (no HarfBuzz),
so renders are identical on every machine.  Text is NFC-normalised first, so
a letter typed as base + combining accent is drawn as its precomposed glyph.

Font objects are cached and shared, and a FreeType face must not be used by
two threads at once, so every call into a font goes through one lock (text is
laid out once per scene, so it never contends in practice).  Widths and wraps
are cached too: layout (fitting, balancing) measures the same strings many
times.

Geometry of a sprite: the text block (lines of ``line_height(size_px)`` pixels,
each as wide as its advance) starts at ``(pad, pad)`` with
``pad = sprite_padding(size_px, shadow=..., box=...)``.  The padding holds the
shadow's blur and offset, the box's margin and glyph overhangs, so a caller who
wants the text itself at (x, y) blends the sprite at (x - pad, y - pad).
"""

from __future__ import annotations

import re
import struct
import threading
import unicodedata
from functools import lru_cache
from pathlib import Path
from typing import Literal

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageDraw, ImageFilter, ImageFont

Align = Literal["left", "center", "right"]
RGB = tuple[int, int, int]
RGBA = tuple[int, int, int, int]

MIN_FONT_PX = 6
FONT_DIR = Path(__file__).with_name("fonts")
FONT_CHAIN: tuple[str, ...] = (
    "NotoSans-Regular.ttf",
    "NotoSansMath-Regular.ttf",
    "NotoSansSymbols2-Regular.ttf",
)
"""Font files in `FONT_DIR`, in order of preference per character."""
_FONT_LOCK = threading.RLock()
_INVISIBLE = frozenset({"Cc", "Cf", "Zs", "Zl", "Zp"})


def _cmap(path: Path) -> frozenset[int]:
    """Code points the font at `path` maps to a glyph (its Unicode ``cmap``,
    formats 4 and 12: what every TrueType font carries).

    A few dozen lines of struct reading instead of a font library at run time;
    the tests check it against fontTools on the shipped fonts.
    """
    data = path.read_bytes()
    (num_tables,) = struct.unpack_from(">H", data, 4)
    cmap_at = None
    for i in range(num_tables):
        tag, _checksum, offset, _length = struct.unpack_from(">4sIII", data, 12 + 16 * i)
        if tag == b"cmap":
            cmap_at = offset
    if cmap_at is None:
        return frozenset()
    (count,) = struct.unpack_from(">H", data, cmap_at + 2)
    best: tuple[int, int] | None = None  # (preference, subtable offset)
    for i in range(count):
        platform, encoding, offset = struct.unpack_from(">HHI", data, cmap_at + 4 + 8 * i)
        (fmt,) = struct.unpack_from(">H", data, cmap_at + offset)
        unicode_table = platform == 0 or (platform == 3 and encoding in (1, 10))
        if unicode_table and fmt in (4, 12):
            rank = 2 if fmt == 12 else 1
            if best is None or rank > best[0]:
                best = (rank, cmap_at + offset)
    if best is None:
        return frozenset()
    at = best[1]
    points: set[int] = set()
    (fmt,) = struct.unpack_from(">H", data, at)
    if fmt == 12:
        (groups,) = struct.unpack_from(">I", data, at + 12)
        for g in range(groups):
            first, last, glyph = struct.unpack_from(">III", data, at + 16 + 12 * g)
            points.update(cp for cp in range(first, last + 1) if glyph + cp - first)
        return frozenset(points)
    (seg_x2,) = struct.unpack_from(">H", data, at + 6)
    n = seg_x2 // 2
    ends = struct.unpack_from(f">{n}H", data, at + 14)
    starts = struct.unpack_from(f">{n}H", data, at + 16 + seg_x2)
    deltas = struct.unpack_from(f">{n}h", data, at + 16 + 2 * seg_x2)
    range_at = at + 16 + 3 * seg_x2
    offsets = struct.unpack_from(f">{n}H", data, range_at)
    for k in range(n):
        lo, hi = starts[k], ends[k]
        if lo == 0xFFFF:
            continue
        for cp in range(lo, hi + 1):
            if offsets[k] == 0:
                glyph = (cp + deltas[k]) & 0xFFFF
            else:
                where = range_at + 2 * k + offsets[k] + 2 * (cp - lo)
                (glyph,) = struct.unpack_from(">H", data, where)
                glyph = (glyph + deltas[k]) & 0xFFFF if glyph else 0
            if glyph:
                points.add(cp)
    return frozenset(points)


@lru_cache(maxsize=1)
def _coverage() -> tuple[frozenset[int], ...]:
    """Each chain font's code points, read once."""
    return tuple(_cmap(FONT_DIR / name) for name in FONT_CHAIN)


@lru_cache(maxsize=4096)
def font_index(char: str) -> int | None:
    """Position in `FONT_CHAIN` of the first font that can draw `char`, or None."""
    cp = ord(char)
    for i, points in enumerate(_coverage()):
        if cp in points:
            return i
    return None


def _invisible(char: str) -> bool:
    return (
        unicodedata.category(char) in _INVISIBLE
        or 0xFE00 <= ord(char) <= 0xFE0F  # variation selectors
    )


def missing_glyphs(text: str) -> set[str]:
    """Characters of `text` that no font of the chain can draw (after NFC
    normalisation), ignoring whitespace and control/format characters."""
    return {
        ch
        for ch in set(unicodedata.normalize("NFC", text))
        if not _invisible(ch) and font_index(ch) is None
    }


@lru_cache(maxsize=64)
def _fonts(size_px: int) -> tuple[ImageFont.FreeTypeFont, ...]:
    """The chain's fonts at `size_px` (cached: loading costs ~1 ms each)."""
    size = max(MIN_FONT_PX, int(size_px))
    with _FONT_LOCK:
        return tuple(
            ImageFont.truetype(str(FONT_DIR / name), size, layout_engine=ImageFont.Layout.BASIC)
            for name in FONT_CHAIN
        )


def load_font(size_px: int) -> ImageFont.FreeTypeFont:
    """The primary font (Noto Sans Regular) at `size_px`, cached.  Its metrics set
    the line height and baseline; `runs` says which font draws each character."""
    return _fonts(size_px)[0]


@lru_cache(maxsize=4096)
def runs(text: str) -> tuple[tuple[int, str], ...]:
    """`text` (NFC) split into (font index in `FONT_CHAIN`, substring) runs.

    Spaces are the primary font's (symbol fonts have wide ones); controls,
    format characters and combining marks stay in the run they follow;
    characters no font has go to the primary font (drawn as its ``.notdef`` box,
    and reported by `missing_glyphs`).
    """
    out: list[tuple[int, str]] = []
    current, start = 0, 0
    text = unicodedata.normalize("NFC", text)
    for i, ch in enumerate(text):
        if (_invisible(ch) and not ch.isspace()) or (i and unicodedata.combining(ch)):
            continue
        index = font_index(ch)
        if index is None:
            index = 0
        if index != current:
            if i > start:
                out.append((current, text[start:i]))
            current, start = index, i
    if len(text) > start:
        out.append((current, text[start:]))
    return tuple(out)


def line_height(size_px: int) -> int:
    """Distance between baselines of consecutive lines (ascent + descent + leading)."""
    font = load_font(size_px)
    with _FONT_LOCK:
        ascent, descent = font.getmetrics()
    return round((ascent + descent) * 1.12)


def _ascent(size_px: int) -> int:
    font = load_font(size_px)
    with _FONT_LOCK:
        return int(font.getmetrics()[0])


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


@lru_cache(maxsize=16384)
def text_width(text: str, size_px: int) -> float:
    """Advance width of one line of `text` in pixels (the sum of its runs)."""
    fonts = _fonts(size_px)
    with _FONT_LOCK:
        return float(sum(fonts[i].getlength(part) for i, part in runs(text)))


def wrap_text(text: str, size_px: int, max_width: int) -> list[str]:
    """Greedy word wrap of `text` to lines at most `max_width` pixels wide.

    Explicit newlines are kept.  A single word wider than the limit is split
    between characters rather than overflowing the frame.  Blank input gives [].
    """
    return list(_wrap(unicodedata.normalize("NFC", text), size_px, max(1, max_width)))


@lru_cache(maxsize=4096)
def _wrap(text: str, size_px: int, max_width: int) -> tuple[str, ...]:
    lines: list[str] = []
    for paragraph in text.splitlines():
        current = ""
        for word in paragraph.split():
            candidate = f"{current} {word}" if current else word
            if text_width(candidate, size_px) <= max_width:
                current = candidate
                continue
            if current:
                lines.append(current)
                current = ""
            while text_width(word, size_px) > max_width and len(word) > 1:
                cut = _fit_chars(word, size_px, max_width)
                lines.append(word[:cut])
                word = word[cut:]
            current = word
        if current:
            lines.append(current)
    return tuple(lines)


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


def _fit_chars(word: str, size_px: int, max_width: int) -> int:
    """Largest prefix length (≥ 1) of `word` that fits in `max_width`."""
    lo, hi = 1, len(word)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if text_width(word[:mid], size_px) <= max_width:
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
    highlight: tuple[int, RGB] | None = None,
) -> NDArray[np.uint8]:
    """Render `text` wrapped to `max_width` as an RGBA sprite of shape (h, w, 4).

    - `size_px`: font size in pixels (the em size; a line is ``line_height`` tall).
    - `color`: text colour.  The shadow is dark under light text and light under
      dark text, so the text stays readable on any background.
    - `box`: optional (r, g, b, a) rounded box behind the text (subtitle style).
    - `align`: horizontal alignment of the lines inside the block.
    - `highlight`: (word index, colour): that whitespace-separated word of
      `text` is drawn in its own colour (word-by-word subtitles).

    Alpha is straight (not premultiplied).  Empty text gives a (1, 1, 4)
    transparent sprite so callers need no special case.  The text block starts
    at ``sprite_padding(size_px, shadow=shadow, box=box)`` from the top-left.
    """
    lines = wrap_text(text, size_px, max_width)
    if not lines:
        return np.zeros((1, 1, 4), np.uint8)
    fonts = _fonts(size_px)
    ascent = _ascent(size_px)
    pad = sprite_padding(size_px, shadow=shadow, box=box)
    lh = line_height(size_px)
    widths = [text_width(line, size_px) for line in lines]
    block_w = int(np.ceil(max(widths)))
    block_h = lh * len(lines)
    size = (block_w + 2 * pad, block_h + 2 * pad)

    mask = Image.new("L", size, 0)
    draw = ImageDraw.Draw(mask)
    marked = Image.new("L", size, 0) if highlight is not None else None
    words = unicodedata.normalize("NFC", text).split()
    word, left = -1, ""  # the word of `text` the next token belongs to, and what is left of it
    for i, (line, w) in enumerate(zip(lines, widths, strict=True)):
        if align == "left":
            x = 0.0
        elif align == "right":
            x = block_w - w
        else:
            x = (block_w - w) / 2
        # Runs of each font share the primary font's baseline.
        baseline = pad + i * lh + ascent
        x += pad
        start = x
        with _FONT_LOCK:
            for index, part in runs(line):
                font = fonts[index]
                draw.text((round(x), baseline), part, font=font, fill=255, anchor="ls")
                x += font.getlength(part)
        if marked is None or highlight is None:
            continue
        for token in re.finditer(r"\S+", line):
            if not left:  # a token starts a new word unless a long word was split
                word += 1
                left = words[word] if word < len(words) else token.group()
            left = left[len(token.group()) :]
            if word == highlight[0]:
                at = start + text_width(line[: token.start()], size_px)
                with _FONT_LOCK:
                    for index, part in runs(token.group()):
                        ImageDraw.Draw(marked).text(
                            (round(at), baseline), part, font=fonts[index], fill=255, anchor="ls"
                        )
                        at += fonts[index].getlength(part)

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
    if marked is not None and highlight is not None:
        accent = Image.new("RGBA", size, (*highlight[1], 0))
        accent.putalpha(marked)
        canvas = Image.alpha_composite(canvas, accent)
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
