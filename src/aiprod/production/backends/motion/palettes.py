"""Colour for the motion renderer: the named palettes, colour tables and luminance tests.

Every procedural background colours its pixels by looking a scalar field up in
a planar table built here (`smooth_lut`, indexed by `lut_index`), so the
palette costs one gather per frame whatever its size.  Whether a palette is
light is asked both by the backgrounds (softer vignette, fainter glows) and by
the renderer (dark text), so that test lives here with the palette data, and
neither side has to import the other.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from aiprod.production.media.frames import hex_to_rgb
from aiprod.production.media.text import RGB, luminance
from aiprod.production.models import Palette

F32 = NDArray[np.float32]

PALETTES: dict[str, tuple[str, ...]] = {
    "sunset": ("#2b1055", "#7a1f5c", "#d7385e", "#f67e4b", "#fcd36b"),
    "ocean": ("#03254c", "#0a4d7a", "#1187a8", "#3cc4c9", "#a8ecf0"),
    "forest": ("#0b2616", "#1d4d2b", "#3f7d3a", "#8cb369", "#e0d59c"),
    "mono": ("#101114", "#34363b", "#6a6c72", "#a9abb1", "#e8e9ec"),
    "neon": ("#0a0221", "#3a0ca3", "#f72585", "#4cc9f0", "#b8f35a"),
    "pastel": ("#f7d6e0", "#cde7f0", "#d9f2d0", "#f9e9b8", "#e3d5f5"),
    "corporate": ("#0b1f3a", "#1f4e79", "#2e86c1", "#aab7c4", "#f2f4f7"),
}
"""The named palettes of `models.Palette`, as 5 colours each."""

LUT_SIZE = 1024  # power of two: indices wrap with a bit mask
_LIGHT_PALETTE = 0.62  # mean luminance above which text is dark rather than white


def palette_colors(palette: Palette | list[str]) -> list[RGB]:
    """The RGB colours of a named or custom (#rrggbb list) palette, in palette order."""
    names = PALETTES[palette] if isinstance(palette, str) else tuple(palette)
    return [hex_to_rgb(c) for c in names]


def by_luminance(colors: list[RGB]) -> F32:
    """Colours as float32 (k, 3), darkest first; layered motifs rely on the order."""
    return np.array(sorted(colors, key=luminance), dtype=np.float32)


def lift(colors: F32, amount: float) -> F32:
    """Colours mixed `amount` (0..1) of the way towards the lightest one: a paler
    variant of a palette, same order (used to set neighbouring scenes apart)."""
    if amount <= 0:
        return colors
    out: F32 = (colors + (colors[-1] - colors) * np.float32(amount)).astype(np.float32)
    return out


def smooth_lut(stops: F32, cyclic: bool, n: int = LUT_SIZE) -> F32:
    """A planar (3, n) colour table through `stops` with smoothstep easing between them.

    Cyclic tables wrap from the last stop back to the first, so an ever-growing
    index (a drifting gradient) never jumps.  Tables and frame buffers are planar
    (channel first) because NumPy is ~10× slower on a trailing axis of length 3.
    """
    k = len(stops)
    segments = k if cyclic else k - 1
    pos = np.arange(n, dtype=np.float64) * (segments / n if cyclic else segments / (n - 1))
    i0 = np.minimum(np.floor(pos).astype(np.intp), segments - 1)
    frac = pos - i0
    w = (frac * frac * (3 - 2 * frac))[:, None]
    a = stops[i0 % k].astype(np.float64)
    b = stops[(i0 + 1) % k].astype(np.float64)
    lut: F32 = np.ascontiguousarray((a + (b - a) * w).T, dtype=np.float32)
    return lut


def ping_pong(colors: F32) -> F32:
    """c0 c1 … ck … c1: a cyclic sequence that visits each colour with no seam."""
    if len(colors) <= 2:
        return colors
    return np.concatenate([colors, colors[-2:0:-1]])


_ROUNDING_BIAS = np.float32(1.5 * 2**23)


def lut_index(field: F32, scale: float, scratch: F32) -> NDArray[np.int32]:
    """Round ``field * scale`` to integers wrapped into 0..LUT_SIZE-1, in `scratch`.

    Adding 1.5·2²³ to a float32 leaves round(x) in the low mantissa bits, so the
    index is a multiply, an add and a bit mask: ~10× cheaper than
    ``astype(int)`` and right for negative values too (|x| < 2²²).  The result
    is a view of `scratch` (no allocation).
    """
    np.multiply(field, np.float32(scale), out=scratch)
    scratch += _ROUNDING_BIAS
    idx = scratch.view(np.int32)
    idx &= LUT_SIZE - 1
    return idx


def is_light(colors: F32) -> bool:
    """Whether a palette is light overall (pastel): it gets dark text, a lighter
    vignette and fainter glows."""
    lum = [luminance((int(c[0]), int(c[1]), int(c[2]))) for c in colors]
    return float(np.mean(lum)) > _LIGHT_PALETTE


def text_is_dark(colors: F32) -> bool:
    """Light palettes (pastel) get dark text; everything else white."""
    return is_light(colors)
