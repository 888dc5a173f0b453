"""Procedural motion graphics: the built-in visuals backend.

Every scene becomes a clip of animated background (by palette and motif), a
camera move, kinetic typography and, when the user supplied one, their photo
(Ken Burns) or video (cover-fitted, trimmed or looped).  No models, no GPU, no
network: everything is drawn with NumPy and Pillow and is deterministic for a
seed, a scene index and the scene's visual description.

Speed is a design constraint, not an afterthought: the whole pipeline must stay
within 1.5× of a plain x264 encode, which leaves this renderer a few
milliseconds per 1080p frame.  Hence:

- frames are drawn straight into yuv420p, the encoder's own format: an RGB
  frame costs a libswscale conversion that is dearer than encoding it (5.8 ms
  against 5.2 ms at 720p) and twice the bytes to upscale and copy;
- backgrounds are computed in RGB at a quarter of the frame's linear
  resolution, where a full-frame NumPy operation costs ~20 µs, converted to
  Y, U and V there, and upscaled in C: bilinear to half size, which is the
  chroma planes' size, then pixel-doubled for luma (`_upscale_into`).  Fields
  are mostly separable (a function of x plus a function of y), so they are
  built from 1-D arrays by broadcasting;
- colours come from lookup tables indexed by a scalar field, so the palette
  costs one gather per frame whatever its size;
- the camera move is applied analytically to the coordinates the field is
  evaluated at, which is free and never reveals an edge;
- text is rendered once per word into sprites, converted once to Y/U/V planes
  with alpha, and blended only inside each sprite's box (`media.yuv`).
"""

from __future__ import annotations

import hashlib
import math
import queue
import threading
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

import av
import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageOps, UnidentifiedImageError

from aiprod.production.media.frames import cover_box, cover_fit, hex_to_rgb, quarter_size
from aiprod.production.media.text import (
    RGB,
    balanced_width,
    line_height,
    luminance,
    render_text_sprite,
    sprite_padding,
    text_width,
    wrap_text,
)
from aiprod.production.media.video import mezzanine_writer
from aiprod.production.media.yuv import (
    PIX_FMT,
    RGB_TO_YUV,
    YUV_OFFSET,
    FramePool,
    Planes,
    PlaneSprite,
    planes_of,
    rgb_to_yuv,
    yuv_sprite,
)
from aiprod.production.models import CameraMove, Palette, QualityTier, Scene, VisualMotif
from aiprod.production.stages.base import ProgressFn
from aiprod.production.stages.visuals import SceneContext, VisualRenderer

F32 = NDArray[np.float32]
T = TypeVar("T")

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
_PREFETCH = 3
"""Frames drawn ahead of the encoder (on the helper thread)."""
_RING = _PREFETCH + 3
"""Frames in the renderer's pool: one drawn, `_PREFETCH` queued, one encoding, one spare."""
_RGB_TO_YUV32 = RGB_TO_YUV.astype(np.float32)
_YUV_ROUNDING = (YUV_OFFSET + 0.5).astype(np.float32)[:, None]
"""Offsets plus 0.5, so that the truncating cast to uint8 rounds."""
_LIGHT_PALETTE = 0.62  # mean luminance above which text is dark rather than white


def palette_colors(palette: Palette | list[str]) -> list[RGB]:
    """The RGB colours of a named or custom (#rrggbb list) palette, in palette order."""
    names = PALETTES[palette] if isinstance(palette, str) else tuple(palette)
    return [hex_to_rgb(c) for c in names]


def _by_luminance(colors: list[RGB]) -> F32:
    """Colours as float32 (k, 3), darkest first; layered motifs rely on the order."""
    return np.array(sorted(colors, key=luminance), dtype=np.float32)


def _smooth_lut(stops: F32, cyclic: bool, n: int = LUT_SIZE) -> F32:
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


def _ping_pong(colors: F32) -> F32:
    """c0 c1 … ck … c1: a cyclic sequence that visits each colour with no seam."""
    if len(colors) <= 2:
        return colors
    return np.concatenate([colors, colors[-2:0:-1]])


_ROUNDING_BIAS = np.float32(1.5 * 2**23)


def _lut_index(field: F32, scale: float, scratch: F32) -> NDArray[np.int32]:
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


def _seed_for(ctx_seed: int, scene: Scene) -> list[int]:
    """Entropy for one scene: the request seed, the scene index and its description.

    The description is hashed (not Python's salted `hash`) so that two scenes
    that say different things look different, and the same scene renders the
    same on every run and machine.
    """
    digest = hashlib.sha256(scene.visual.strip().lower().encode()).digest()
    return [ctx_seed, scene.index, int.from_bytes(digest[:8], "little")]


def _smoothstep(x: NDArray[np.float64]) -> NDArray[np.float64]:
    """0 below 0, 1 above 1, a smooth S in between (no visible band edges)."""
    c = np.clip(x, 0.0, 1.0)
    out: NDArray[np.float64] = c * c * (3.0 - 2.0 * c)
    return out


def _sign(rng: np.random.Generator) -> float:
    """±1 as a Python float (NumPy scalars would promote float32 fields to float64)."""
    return 1.0 if rng.random() < 0.5 else -1.0


def _f(x: float | np.floating[Any]) -> float:
    """A Python float, for the same reason as `_sign`."""
    return float(x)


# --------------------------------------------------------------------------- camera


@dataclass(frozen=True)
class _Camera:
    """Zoom and horizontal pan as functions of scene time.

    Zoom is exponential in time so that it feels uniform; amplitudes grow with the
    scene length but are capped, so a long scene drifts rather than lurches.
    Pan is in frame heights (the unit of the procedural fields).
    """

    move: CameraMove
    duration: float

    @property
    def zoom_range(self) -> float:
        return 1.0 + min(0.3, 0.05 * self.duration)

    @property
    def pan_span(self) -> float:
        return min(0.8, 0.1 * self.duration)

    def at(self, t: float) -> tuple[float, float]:
        p = min(1.0, max(0.0, t / self.duration))
        if self.move == "zoom_in":
            return self.zoom_range**p, 0.0
        if self.move == "zoom_out":
            return self.zoom_range ** (1.0 - p), 0.0
        if self.move == "pan_right":  # the camera moves right: the world slides left
            return 1.0, self.pan_span * (p - 0.5)
        if self.move == "pan_left":
            return 1.0, -self.pan_span * (p - 0.5)
        return 1.0, 0.0


# ----------------------------------------------------------------------- backgrounds


class _Background:
    """A procedural animated field rendered at low resolution.

    Coordinates are in frame heights, centred: x ∈ ±aspect/2, y ∈ ±0.5 (y down).
    A subclass implements `field(t, zoom, pan)`, filling the planar float32
    buffer ``self.buf`` (3, lh, lw) with RGB in 0..255; this base class adds the
    vignette and the text scrim and hands back 8-bit Y, U and V planes.

    All per-frame maths writes into buffers allocated once here: a fresh
    half-megabyte array per operation costs more in page faults than the
    arithmetic itself (glibc maps large blocks afresh each time).
    """

    def __init__(
        self, rng: np.random.Generator, colors: F32, size: tuple[int, int], duration: float
    ) -> None:
        self.colors = colors  # darkest first
        self.lw, self.lh = size
        self.duration = duration
        self.xs = ((np.arange(self.lw) + 0.5 - self.lw / 2) / self.lh).astype(np.float32)
        self.ys = ((np.arange(self.lh) + 0.5 - self.lh / 2) / self.lh).astype(np.float32)
        half_w = max(float(self.xs[-1]), 1e-3)
        r2 = (self.xs[None, :] / half_w) ** 2 * 0.6 + (self.ys[:, None] / 0.5) ** 2 * 0.4
        # Light palettes get a lighter vignette: darkened pastel corners look grubby.
        self.light = _is_light(colors)
        strength = 0.14 if self.light else 0.32
        self.vignette: F32 = (1.0 - strength * np.clip(r2, 0, 1.5) ** 1.3).astype(np.float32)
        self.scrim: F32 | None = None
        self.scrim_light = False
        shape = (self.lh, self.lw)
        self.buf: F32 = np.zeros((3, *shape), np.float32)
        self.a: F32 = np.zeros(shape, np.float32)  # scratch planes
        self.b: F32 = np.zeros(shape, np.float32)
        self.c: F32 = np.zeros(shape, np.float32)
        self.yuv: F32 = np.zeros((3, self.lh * self.lw), np.float32)
        self.out8 = np.zeros((3, *shape), np.uint8)

    def set_scrim(self, box: tuple[float, float, float, float], light: bool) -> None:
        """A soft pool (over the box x0, y0, x1, y1, as fractions of the frame) behind
        the text that is darkened (or lightened, for dark text) while the text
        shows, so text stays readable over bright or busy backgrounds.  Smoothstep
        falloffs well outside the box keep it from reading as a rectangle."""
        x0, y0, x1, y1 = box
        fx = (np.arange(self.lw) + 0.5) / self.lw
        fy = (np.arange(self.lh) + 0.5) / self.lh
        mx = _smoothstep(np.minimum(fx - (x0 - 0.1), (x1 + 0.1) - fx) / 0.22)
        my = _smoothstep(np.minimum(fy - (y0 - 0.12), (y1 + 0.12) - fy) / 0.26)
        self.scrim = (my[:, None] * mx[None, :]).astype(np.float32)
        self.scrim_light = light

    def field(self, t: float, zoom: float, pan: float) -> None:
        raise NotImplementedError

    def render(
        self, t: float, zoom: float, pan: float, scrim: float, dim: float = 1.0
    ) -> NDArray[np.uint8]:
        """The low-resolution picture at time t as BT.601 limited-range Y, U, V planes
        (3, lh, lw) (scrim: text visibility 0..1).  Valid until the next call."""
        self.field(t, zoom, pan)
        buf, mult = self.buf, self.a
        np.multiply(self.vignette, np.float32(dim), out=mult)
        if self.scrim is not None and scrim > 0:
            lift = self.b
            np.multiply(
                self.scrim, np.float32((0.45 if self.scrim_light else 0.42) * scrim), out=lift
            )
            if self.scrim_light:  # mix towards white: buf·(1-lift) + 255·lift
                buf *= mult[None]
                np.subtract(1.0, lift, out=mult)
                buf *= mult[None]
                lift *= 255.0
                buf += lift[None]
            else:
                np.subtract(1.0, lift, out=lift)
                mult *= lift
                buf *= mult[None]
        else:
            buf *= mult[None]
        np.clip(buf, 0, 255, out=buf)
        np.matmul(_RGB_TO_YUV32, buf.reshape(3, -1), out=self.yuv)
        self.yuv += _YUV_ROUNDING
        np.copyto(self.out8.reshape(3, -1), self.yuv, casting="unsafe")
        return self.out8

    def world(self, zoom: float, pan: float, depth: float = 1.0) -> tuple[F32, F32]:
        """World coordinates seen by the camera, for a layer at parallax `depth`."""
        z = 1.0 + (zoom - 1.0) * depth
        return self.xs * np.float32(1.0 / z) + np.float32(pan * depth), self.ys * np.float32(
            1.0 / z
        )

    def take(self, lut: F32, field: F32, scale: float = LUT_SIZE) -> None:
        """Fill the buffer with colours from a planar LUT indexed by a scalar field
        (`field` is used as scratch and overwritten)."""
        idx = _lut_index(field, scale, field)
        np.take(lut, idx, axis=1, out=self.buf, mode="clip")


class _Gradient(_Background):
    """A multi-stop gradient whose direction slowly rotates and whose stops drift,
    bent by two low-frequency sine warps, with two soft light pools wandering."""

    def __init__(
        self, rng: np.random.Generator, colors: F32, size: tuple[int, int], duration: float
    ) -> None:
        super().__init__(rng, colors, size, duration)
        self.lut = _smooth_lut(_ping_pong(colors), cyclic=True)
        self.angle0 = _f(rng.uniform(0, 2 * math.pi))
        self.spin = _sign(rng) * rng.uniform(0.05, 0.11)
        self.freq = _f(rng.uniform(0.32, 0.48))
        self.drift = _sign(rng) * rng.uniform(0.025, 0.05)
        self.offset = _f(rng.uniform(0, 1))
        self.warp = [_f(x) for x in rng.uniform(0.06, 0.12, 2)]
        self.warp_f = [_f(x) for x in rng.uniform(1.4, 2.6, 2)]
        self.warp_s = [_f(x) for x in rng.uniform(0.25, 0.5, 2)]
        self.warp_p = [_f(x) for x in rng.uniform(0, 2 * math.pi, 2)]
        self.pools = [tuple(_f(rng.uniform(lo, hi)) for lo, hi in _POOL_RANGES) for _ in range(2)]
        self.glow = [float(c) * 0.22 for c in colors[-1]]

    def field(self, t: float, zoom: float, pan: float) -> None:
        u, v = self.world(zoom, pan)
        th = self.angle0 + self.spin * t
        fu = u * np.float32(math.cos(th) * self.freq)
        fu += self.warp[1] * np.sin(self.warp_f[1] * u - self.warp_s[1] * t + self.warp_p[1])
        fu += np.float32(self.offset + self.drift * t)
        fv = v * np.float32(math.sin(th) * self.freq)
        fv += self.warp[0] * np.sin(self.warp_f[0] * v + self.warp_s[0] * t + self.warp_p[0])
        np.add(fv[:, None], fu[None, :], out=self.a)
        self.take(self.lut, self.a)
        light, tmp = self.a, self.b
        for i, (cx, cy, r, ph, speed) in enumerate(self.pools):
            px = cx + 0.35 * math.sin(speed * t + ph)
            py = cy + 0.2 * math.cos(0.7 * speed * t + ph)
            gx = np.exp(-(((u - np.float32(px)) * np.float32(1 / r)) ** 2))
            gy = np.exp(-(((v - np.float32(py)) * np.float32(1 / r)) ** 2))
            np.multiply(gy[:, None], gx[None, :], out=light if i == 0 else tmp)
            if i:
                light += tmp
        for c in range(3):
            np.multiply(light, np.float32(self.glow[c]), out=tmp)
            self.buf[c] += tmp


_POOL_RANGES = ((-0.6, 0.6), (-0.3, 0.3), (0.2, 0.4), (0.0, 2 * math.pi), (0.15, 0.3))
"""Light pools of the gradient: centre x, centre y, radius, phase, speed."""


class _Particles(_Background):
    """Bokeh: soft glowing discs drifting upwards in three parallax layers over a
    dark gradient.  Near discs are bigger, softer, fainter and move more with the
    camera than far ones, which is what sells the depth.

    The discs of a layer are computed together as one (n, box, box) stack with
    sub-pixel centres (so slow drift does not step at the low resolution), then
    added into the buffer patch by patch.
    """

    LAYERS = (  # (depth, count per unit area, radius range, intensity, speed)
        (0.35, 9.0, (0.006, 0.012), 0.95, 0.02),
        (0.65, 5.0, (0.016, 0.03), 0.6, 0.035),
        (1.0, 2.2, (0.04, 0.075), 0.32, 0.055),
    )

    def __init__(
        self, rng: np.random.Generator, colors: F32, size: tuple[int, int], duration: float
    ) -> None:
        super().__init__(rng, colors, size, duration)
        dark = colors[: max(2, len(colors) // 2)]
        # Bokeh wants a dark backdrop; a light palette keeps its own light colours
        # and gets fainter discs instead, or they would all clip to white.
        shade = (0.97, 0.97, 0.97) if self.light else (0.55, 0.75, 0.9)
        base = np.stack([dark[0] * shade[0], dark[-1] * shade[1], dark[0] * shade[2]])
        base = base.astype(np.float32)
        glow = 0.3 if self.light else 1.0
        self.lut = _smooth_lut(base, cyclic=False)
        self.swirl_p = _f(rng.uniform(0, 2 * math.pi))
        aspect = self.lw / self.lh
        # The field wraps: wide enough for the view, the pan and the zoom-out.
        self.field_w = aspect * 1.35 + 1.0
        self.field_h = 1.5
        bright = colors[len(colors) // 2 :]
        self.layers: list[dict[str, Any]] = []
        for depth, density, (r0, r1), intensity, speed in self.LAYERS:
            n = max(3, int(density * self.field_w * self.field_h))
            col = bright[rng.integers(0, len(bright), n)] * 0.8 + 255.0 * 0.2
            self.layers.append(
                {
                    "depth": depth,
                    "x": rng.uniform(0, self.field_w, n),
                    "y": rng.uniform(0, self.field_h, n),
                    "vx": rng.normal(0, speed * 0.35, n),
                    "vy": -rng.uniform(0.4, 1.0, n) * speed,
                    "r": rng.uniform(r0, r1, n),
                    "gain": (col * intensity * glow).astype(np.float32)[:, :, None, None],
                    "tw_f": rng.uniform(0.6, 1.8, n),
                    "tw_p": rng.uniform(0, 2 * math.pi, n),
                }
            )

    def field(self, t: float, zoom: float, pan: float) -> None:
        u, v = self.world(zoom, pan, depth=0.2)
        fv = v * np.float32(0.85)
        fv += np.float32(0.5)
        fu = 0.08 * np.sin(1.3 * u + np.float32(0.15 * t + self.swirl_p))
        np.add(fv[:, None], fu[None, :], out=self.a)
        np.clip(self.a, 0.0, 1.0, out=self.a)
        self.take(self.lut, self.a, LUT_SIZE - 1)
        for layer in self.layers:
            self._draw_layer(layer, t, zoom, pan)

    def _draw_layer(self, layer: dict[str, Any], t: float, zoom: float, pan: float) -> None:
        depth: float = layer["depth"]
        z = 1.0 + (zoom - 1.0) * depth
        fw, fh = self.field_w, self.field_h
        x = (layer["x"] + layer["vx"] * t - pan * depth) % fw - fw / 2
        y = (layer["y"] + layer["vy"] * t) % fh - fh / 2
        px = x * z * self.lh + self.lw / 2
        py = y * z * self.lh + self.lh / 2
        lw, lh = self.lw, self.lh
        radius = np.maximum(layer["r"] * z * lh, 0.6)
        reach = float(radius.max()) * 1.7 + 1.5
        visible = (px > -reach) & (px < lw + reach) & (py > -reach) & (py < lh + reach)
        if not visible.any():
            return
        px, py, radius = px[visible], py[visible], radius[visible]
        twinkle = 0.78 + 0.22 * np.sin(layer["tw_f"][visible] * t + layer["tw_p"][visible])
        gain = layer["gain"][visible]
        box = math.ceil(2 * reach) + 1
        ox = np.floor(px - reach).astype(np.intp)
        oy = np.floor(py - reach).astype(np.intp)
        grid = np.arange(box, dtype=np.float32) + 0.5
        dx = grid[None, :] - (px - ox).astype(np.float32)[:, None]
        dy = grid[None, :] - (py - oy).astype(np.float32)[:, None]
        d2 = dy[:, :, None] ** 2 + dx[:, None, :] ** 2
        r = radius.astype(np.float32)[:, None, None]
        d = np.sqrt(d2)
        disc = np.clip((r - d) / np.maximum(r * 0.18, 0.6) + 0.5, 0.0, 1.0)
        prof = (0.72 * disc + 0.38 * np.exp(-d2 / (r * r * 1.1))) * twinkle.astype(np.float32)[
            :, None, None
        ]
        buf = self.buf
        for i in range(len(px)):
            x0, y0 = int(ox[i]), int(oy[i])
            cx0, cy0 = max(0, -x0), max(0, -y0)
            cx1, cy1 = min(box, lw - x0), min(box, lh - y0)
            if cx0 >= cx1 or cy0 >= cy1:
                continue
            patch = prof[i, cy0:cy1, cx0:cx1]
            buf[:, y0 + cy0 : y0 + cy1, x0 + cx0 : x0 + cx1] += patch[None] * gain[i]


class _Geometric(_Background):
    """Translucent regular polygons (filled, outlined or both) rotating and drifting
    at different parallax depths over a subdued gradient.

    Each polygon is an exact signed distance (max over its edges' half-planes,
    each an outer sum of two 1-D arrays), evaluated only inside its bounding
    box, which gives anti-aliased edges for a few vector operations per side.
    """

    def __init__(
        self, rng: np.random.Generator, colors: F32, size: tuple[int, int], duration: float
    ) -> None:
        super().__init__(rng, colors, size, duration)
        subdued = colors * 0.55 + colors[0] * 0.45
        self.lut = _smooth_lut(_ping_pong(subdued), cyclic=True)
        self.angle = _f(rng.uniform(0, 2 * math.pi))
        self.offset = _f(rng.uniform(0, 1))
        self.drift = _sign(rng) * rng.uniform(0.015, 0.03)
        aspect = self.lw / self.lh
        count = 5 + int(aspect > 1.2) + int(rng.integers(0, 2))
        picks = colors[1:] if len(colors) > 2 else colors
        self.shapes: list[dict[str, Any]] = []
        for i in range(count):
            style = ("fill", "both", "outline")[int(rng.choice(3, p=[0.35, 0.4, 0.25]))]
            color = picks[rng.integers(0, len(picks))]
            self.shapes.append(
                {
                    "n": int(rng.integers(3, 7)),
                    "cx": (i + rng.uniform(0.1, 0.9)) / count * aspect * 1.1 - aspect * 0.55,
                    "cy": _f(rng.uniform(-0.38, 0.38)),
                    "vx": _f(rng.normal(0, 0.015)),
                    "vy": _f(rng.normal(0, 0.012)),
                    "r": _f(rng.uniform(0.1, 0.3)),
                    "rot": _f(rng.uniform(0, 2 * math.pi)),
                    "spin": _sign(rng) * rng.uniform(0.08, 0.3),
                    "depth": _f(rng.uniform(0.5, 1.0)),
                    "color": color.astype(np.float32)[:, None, None],
                    "fill": 0.0 if style == "outline" else _f(rng.uniform(0.16, 0.34)),
                    "line": 0.0 if style == "fill" else _f(rng.uniform(0.45, 0.75)),
                    "pulse": _f(rng.uniform(0, 2 * math.pi)),
                }
            )
        self.shapes.sort(key=lambda s: float(s["depth"]))  # far first

    def field(self, t: float, zoom: float, pan: float) -> None:
        u, v = self.world(zoom, pan, depth=0.3)
        th = self.angle + 0.03 * t
        fu = u * np.float32(0.35 * math.cos(th))
        fu += np.float32(self.offset + self.drift * t)
        fv = v * np.float32(0.35 * math.sin(th))
        np.add(fv[:, None], fu[None, :], out=self.a)
        self.take(self.lut, self.a)
        for shape in self.shapes:
            self._draw(shape, t, zoom, pan)

    def _draw(self, s: dict[str, Any], t: float, zoom: float, pan: float) -> None:
        depth: float = s["depth"]
        z = 1.0 + (zoom - 1.0) * depth
        cx = (s["cx"] + s["vx"] * t - pan * depth) * z
        cy = (s["cy"] + s["vy"] * t) * z
        breathe = 1.0 + 0.04 * math.sin(0.9 * t + s["pulse"])
        radius = s["r"] * z * breathe * self.lh  # low-res pixels
        px = cx * self.lh + self.lw / 2
        py = cy * self.lh + self.lh / 2
        reach = radius + 2.0
        x0, x1 = max(0, int(px - reach)), min(self.lw, math.ceil(px + reach))
        y0, y1 = max(0, int(py - reach)), min(self.lh, math.ceil(py + reach))
        if x0 >= x1 or y0 >= y1:
            return
        gx = np.arange(x0, x1, dtype=np.float32) + np.float32(0.5 - px)
        gy = np.arange(y0, y1, dtype=np.float32) + np.float32(0.5 - py)
        n: int = s["n"]
        rot = s["rot"] + s["spin"] * t
        dist = self.b[: y1 - y0, : x1 - x0]
        side = self.c[: y1 - y0, : x1 - x0]
        for k in range(n):
            phi = rot + (2 * k + 1) * math.pi / n
            col = gx * np.float32(math.cos(phi))
            row = gy * np.float32(math.sin(phi))
            if k == 0:
                np.add(row[:, None], col[None, :], out=dist)
            else:
                np.add(row[:, None], col[None, :], out=side)
                np.maximum(dist, side, out=dist)
        dist -= np.float32(radius * math.cos(math.pi / n))  # minus the apothem
        alpha = self.a[: y1 - y0, : x1 - x0]
        alpha.fill(0.0)
        if s["fill"] > 0:  # coverage of a 1-pixel-wide anti-aliased edge
            np.subtract(0.5, dist, out=side)
            np.clip(side, 0.0, 1.0, out=side)
            side *= np.float32(s["fill"])
            alpha += side
        if s["line"] > 0:
            half = max(0.6, self.lh * 0.004)
            np.abs(dist, out=side)
            np.subtract(np.float32(half + 0.5), side, out=side)
            np.clip(side, 0.0, 1.0, out=side)
            side *= np.float32(s["line"])
            alpha += side
            np.minimum(alpha, 1.0, out=alpha)
        region = self.buf[:, y0:y1, x0:x1]
        region += (s["color"] - region) * alpha[None]


class _Waves(_Background):
    """Layered sine bands, like hills or swell, each a palette colour with a soft
    edge and a light crest; nearer (lower) layers move more with the camera.

    Colour is looked up from the (soft) count of layers a pixel lies under, so
    the cost is a few 2-D operations per layer plus one gather, whatever the
    palette.
    """

    def __init__(
        self, rng: np.random.Generator, colors: F32, size: tuple[int, int], duration: float
    ) -> None:
        super().__init__(rng, colors, size, duration)
        self.k = len(colors) - 1
        stops = colors.astype(np.float32)
        pos = np.linspace(0, self.k, LUT_SIZE)
        i0 = np.minimum(np.floor(pos).astype(np.intp), self.k - 1)
        frac = (pos - i0)[:, None]
        self.lut: F32 = np.ascontiguousarray(
            (stops[i0] + (stops[i0 + 1] - stops[i0]) * frac).T, dtype=np.float32
        )
        self.shade: F32 = np.zeros((self.lh, self.lw), np.float32)
        self.layers: list[dict[str, float]] = []
        for i in range(self.k):
            self.layers.append(
                {
                    "base": -0.22 + 0.62 * (i + 0.5) / self.k + _f(rng.uniform(-0.03, 0.03)),
                    "a1": _f(rng.uniform(0.025, 0.06)),
                    "f1": _f(rng.uniform(2.0, 4.5)),
                    "s1": _sign(rng) * rng.uniform(0.3, 0.7),
                    "p1": _f(rng.uniform(0, 2 * math.pi)),
                    "a2": _f(rng.uniform(0.008, 0.022)),
                    "f2": _f(rng.uniform(6.0, 10.0)),
                    "s2": _sign(rng) * rng.uniform(0.5, 1.1),
                    "p2": _f(rng.uniform(0, 2 * math.pi)),
                    "depth": 0.35 + 0.65 * (i + 1) / self.k,
                }
            )

    def field(self, t: float, zoom: float, pan: float) -> None:
        soft = np.float32(1.0 / 1.3)  # edge width ≈ 1.3 low-res pixels
        crest_w = np.float32(1.0 / max(1.0, self.lh * 0.012))
        ys_px = (self.ys * np.float32(self.lh))[:, None]
        acc, below, tmp, shade = self.a, self.b, self.c, self.shade
        acc.fill(0.0)
        shade.fill(1.0)
        for ly in self.layers:
            u, _ = self.world(zoom, pan, depth=ly["depth"])
            z = 1.0 + (zoom - 1.0) * ly["depth"]
            edge = ly["a1"] * np.sin(ly["f1"] * u + np.float32(ly["s1"] * t + ly["p1"]))
            edge += ly["a2"] * np.sin(ly["f2"] * u + np.float32(ly["s2"] * t + ly["p2"]))
            edge += np.float32(ly["base"])
            edge *= np.float32(z * self.lh)
            np.subtract(ys_px, edge[None, :], out=below)  # pixels below this layer's edge
            np.multiply(below, soft, out=tmp)
            tmp += np.float32(0.5)
            np.clip(tmp, 0.0, 1.0, out=tmp)
            acc += tmp
            below *= crest_w  # a light crest along the edge
            np.square(below, out=below)
            np.negative(below, out=below)
            np.exp(below, out=below)
            below *= np.float32(0.22)
            shade += below
        self.take(self.lut, acc, (LUT_SIZE - 1) / self.k)
        self.buf *= shade[None]


_MOTIFS: dict[str, type[_Background]] = {
    "gradient": _Gradient,
    "particles": _Particles,
    "geometric": _Geometric,
    "waves": _Waves,
}


# --------------------------------------------------------------------- user media


class _MediaLayer:
    """A full-resolution base layer from a user file."""

    def frame(self, t: float) -> Image.Image:
        """The RGB image (frame size) at scene time t; read it, never draw on it
        (it may be shared with later calls)."""
        raise NotImplementedError

    def close(self) -> None:
        """Release file handles (no-op by default)."""


class _KenBurns(_MediaLayer):
    """A still image with a slow pan or zoom (the "Ken Burns effect").

    The image is cover-fitted once, with Lanczos, to the frame size times the
    maximum zoom.  A pan then needs no resampling at all (an integer crop of
    that image, so it stays pin-sharp and costs ~1 ms), and a zoom resamples
    the visible window to the frame with a bilinear filter each frame.  For the
    draft tier above 720p the zoom is resampled at half size and pixel-doubled,
    trading sharpness for a 3× cheaper frame.
    """

    def __init__(
        self,
        path: Path,
        size: tuple[int, int],
        move: CameraMove,
        duration: float,
        quality: QualityTier,
        rng: np.random.Generator,
    ) -> None:
        self.w, self.h = size
        self.duration = duration
        self.move: CameraMove = move
        self.zmax = 1.08 if move == "static" else 1.18
        self.bw = math.ceil(self.w * self.zmax)
        self.bh = math.ceil(self.h * self.zmax)
        source = _open_image(path, (self.bw, self.bh))
        self.base = cover_fit(source, self.bw, self.bh)
        # Zooms home in on a point a little off centre, chosen per scene.
        self.focus = (rng.uniform(-0.3, 0.3), rng.uniform(-0.3, 0.3))
        # Draft above 720p: zoom at half size from a half-size copy of the base
        # (a downscale by ~2 each frame would cost as much as the full frame).
        self.half: Image.Image | None = None
        if quality == "draft" and self.w * self.h > 1280 * 720:
            self.half = self.base.reduce(2)

    def frame(self, t: float) -> Image.Image:
        p = min(1.0, max(0.0, t / self.duration))
        if self.move in ("pan_left", "pan_right"):
            frac = p if self.move == "pan_right" else 1.0 - p
            x = round((self.bw - self.w) * frac)
            y = (self.bh - self.h) // 2
            return self.base.crop((x, y, x + self.w, y + self.h))
        # zoom_out runs zoom_in backwards; static is a gentle zoom in.
        q = 1.0 - p if self.move == "zoom_out" else p
        scale = self.zmax**q  # 1: whole base visible … zmax: 1:1 pixels
        ww, wh = self.bw / scale, self.bh / scale
        slack_x, slack_y = (self.bw - ww) / 2, (self.bh - wh) / 2
        cx = self.bw / 2 + self.focus[0] * slack_x
        cy = self.bh / 2 + self.focus[1] * slack_y
        box = (cx - ww / 2, cy - wh / 2, cx + ww / 2, cy + wh / 2)
        if self.half is not None:
            sx, sy = self.half.width / self.bw, self.half.height / self.bh
            small = self.half.resize(
                ((self.w + 1) // 2, (self.h + 1) // 2),
                Image.Resampling.BILINEAR,
                box=(box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy),
            )
            return small.resize((self.w, self.h), Image.Resampling.NEAREST)
        return self.base.resize((self.w, self.h), Image.Resampling.BILINEAR, box=box)


def _open_image(path: Path, target: tuple[int, int]) -> Image.Image:
    """Load a user image as RGB, honouring EXIF rotation; ValueError if unusable."""
    if not path.is_file():
        raise ValueError(f"media file not found: {path}")
    try:
        with Image.open(path) as raw:
            raw.draft("RGB", target)  # JPEG: decode at a reduced scale when large
            img = ImageOps.exif_transpose(raw)
            img.load()
            if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
                rgba = img.convert("RGBA")
                flat = Image.new("RGB", rgba.size, (0, 0, 0))
                flat.paste(rgba, mask=rgba.getchannel("A"))
                return flat
            return img.convert("RGB")
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError, SyntaxError) as exc:
        raise ValueError(f"cannot read image {path}: {exc}") from exc


class _LoopedVideo(_MediaLayer):
    """A user video, cover-fitted to the frame, trimmed to the scene or looped.

    Source frames are chosen by timestamp, so a 24 or 60 fps clip plays at its
    own speed in a 30 fps scene.  When the clip ends before the scene does it
    restarts right after its last frame has had its full duration, so the loop
    has no gap or repeated frame.  Frames are decoded as needed and converted
    only when shown: the cover-fit window is cut from the decoded picture first
    and only that is scaled (by swscale, in C), so a 4:3 source does not pay for
    scaling the quarter that would be cropped away.
    """

    def __init__(self, path: Path, size: tuple[int, int]) -> None:
        if not path.is_file():
            raise ValueError(f"media file not found: {path}")
        self.path = path
        self.w, self.h = size
        self.container: Any = None
        self.frames: Any = None
        self.offset = 0.0  # scene time at which the current pass started
        self.index = 0  # frames read in the current pass
        self.first_time: float | None = None
        self.rate: Fraction | None = None
        self.current: tuple[float, Any] | None = None  # (pass-local time, av frame)
        self.pending: tuple[float, Any] | None = None
        self.last_gap: float | None = None
        self.shown: Image.Image | None = None
        self._open()
        self.pending = self._read()
        if self.pending is None:
            self.close()
            raise ValueError(f"video has no decodable frames: {path}")

    def _open(self) -> None:
        self.close()
        try:
            self.container = av.open(str(self.path))
            if not self.container.streams.video:
                raise ValueError(f"media file has no video stream: {self.path}")
            stream = self.container.streams.video[0]
            stream.thread_type = "AUTO"
            self.rate = stream.average_rate or stream.guessed_rate
            self.frames = self.container.decode(stream)
        except ValueError:
            self.close()
            raise
        except (av.error.FFmpegError, OSError) as exc:
            self.close()
            raise ValueError(f"cannot read video {self.path}: {exc}") from exc
        self.index = 0
        self.first_time = None

    def _read(self) -> tuple[float, Any] | None:
        """Next decoded frame with its time from the start of the pass, or None."""
        try:
            frame = next(self.frames)
        except StopIteration:
            return None
        except (av.error.FFmpegError, OSError) as exc:
            raise ValueError(f"cannot decode video {self.path}: {exc}") from exc
        t = frame.time
        if t is None:
            t = self.index / float(self.rate) if self.rate else self.index / 30.0
        if self.first_time is None:
            self.first_time = t
        self.index += 1
        return max(0.0, t - self.first_time), frame

    def _frame_duration(self) -> float:
        if self.last_gap is not None and self.last_gap > 0:
            return self.last_gap
        if self.rate:
            return 1.0 / float(self.rate)
        return 1.0 / 30.0

    def frame(self, t: float) -> Image.Image:
        eps = 1e-6
        while True:
            if self.pending is None:
                self.pending = self._read()
                if self.pending is None:  # end of the clip: loop once the last frame is done
                    assert self.current is not None
                    end = self.current[0] + max(1e-3, self._frame_duration())
                    if t - self.offset < end - eps:
                        break
                    self.offset += end
                    self._open()
                    self.pending = self._read()
                    if self.pending is None:
                        raise ValueError(f"video has no decodable frames: {self.path}")
                    continue
            if self.current is None or self.pending[0] <= t - self.offset + eps:
                if self.current is not None and self.pending[0] > self.current[0]:
                    self.last_gap = self.pending[0] - self.current[0]
                self.current, self.pending = self.pending, None
                self.shown = None
                continue
            break
        if self.shown is None:
            assert self.current is not None
            self.shown = Image.fromarray(self._convert(self.current[1]), "RGB")
        return self.shown

    def _convert(self, frame: Any) -> NDArray[np.uint8]:
        """A decoded frame cover-fitted to the output size, as RGB."""
        fw, fh = int(frame.width), int(frame.height)
        x0, y0, x1, y1 = (round(v) for v in cover_box(fw, fh, self.w, self.h))
        if (x0, y0, x1, y1) == (0, 0, fw, fh):
            rgb: NDArray[np.uint8] = frame.reformat(
                width=self.w, height=self.h, format="rgb24", interpolation="BILINEAR"
            ).to_ndarray()
            return rgb
        crop = np.ascontiguousarray(frame.to_ndarray(format="rgb24")[y0:y1, x0:x1])
        if crop.shape[:2] == (self.h, self.w):
            return crop
        scaled = (
            av.VideoFrame.from_ndarray(crop, format="rgb24")
            .reformat(width=self.w, height=self.h, format="rgb24", interpolation="BILINEAR")
            .to_ndarray()
        )
        return np.asarray(scaled, dtype=np.uint8)

    def close(self) -> None:
        if self.container is not None:
            self.container.close()
            self.container = None


# -------------------------------------------------------------------------- text


@dataclass
class _Piece:
    """One sprite of animated text, as Y/U/V planes at its resting place, and when
    it comes and goes."""

    parts: list[tuple[int, PlaneSprite]]  # (plane index, sprite plane)
    start: float  # when its fade-in begins
    fade_in: float
    slide: int  # pixels it rises while fading in


class _TextLayer:
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
    ) -> tuple[int, float]:
        """Lay out `text` centred and wrapped, one piece per word.  Returns the
        block's bottom (pixels) and the time the last word has finished arriving."""
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
            x = (frame_w - total) / 2
            y = top + row * lh
            for word, w in zip(words, widths, strict=True):
                if word:
                    sprite = render_text_sprite(word, size, color, max_width * 4)
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


def _ease_out(p: float) -> float:
    """Cubic ease-out: fast arrival, gentle settle."""
    return 1.0 - (1.0 - p) ** 3


def _fit_size(text: str, size: int, max_width: int, max_height: int, min_size: int) -> int:
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


# ---------------------------------------------------------------------- renderer


class MotionRenderer:
    """Procedural motion-graphics backend for the visuals stage (see module doc)."""

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
        colors = _by_luminance(palette_colors(ctx.style.palette))
        media: _MediaLayer | None = None
        background: _Background | None = None
        if scene.media is not None:
            path = scene.media.path
            if scene.media.kind == "video":
                media = _LoopedVideo(path, (width, height))
            else:
                media = _KenBurns(
                    path, (width, height), scene.camera, scene.duration, spec.quality, rng
                )
        else:
            motif: VisualMotif = ctx.style.motif
            background = _MOTIFS[motif](rng, colors, quarter_size(width, height), scene.duration)
        try:
            text, dim = self._text(scene, ctx, colors)
        except BaseException:
            if media is not None:
                media.close()
            raise
        if background is not None and text.box is not None:
            x0, y0, x1, y1 = text.box
            background.set_scrim(
                (x0 / width, y0 / height, x1 / width, y1 / height), light=_text_is_dark(colors)
            )
        camera = _Camera(scene.camera, scene.duration)
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

    def _text(self, scene: Scene, ctx: SceneContext, colors: F32) -> tuple[_TextLayer, float]:
        """The scene's typography and how much to dim the background under it."""
        w, h = ctx.spec.width, ctx.spec.height
        d = scene.duration
        short = min(w, h)
        fs = ctx.style.font_scale
        dark = _text_is_dark(colors)
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
            layer = _TextLayer(None if hold else (out_start, out_end), (w, h))
            title = " ".join(ctx.title.split())
            if scene.kind == "title":
                primary, secondary = title, on_screen
                big = round(short * 0.12 * fs)
            else:
                primary, secondary = (on_screen, title) if on_screen else (title, "")
                big = round(short * 0.1 * fs)
            small = max(min_size, round(short * 0.05 * fs))
            big = _fit_size(primary, big, max_w, int(h * 0.42), min_size)
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

        layer = _TextLayer((out_start, out_end), (w, h))
        if on_screen:
            size = round(short * 0.08 * fs)
            size = _fit_size(on_screen, size, max_w, int(h * 0.5), min_size)
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
    media: _MediaLayer | None,
    background: _Background | None,
    camera: _Camera,
    text: _TextLayer,
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


def _is_light(colors: F32) -> bool:
    """Whether a palette is light overall (pastel): it gets dark text, a lighter
    vignette and fainter glows."""
    lum = [luminance((int(c[0]), int(c[1]), int(c[2]))) for c in colors]
    return float(np.mean(lum)) > _LIGHT_PALETTE


def _text_is_dark(colors: F32) -> bool:
    """Light palettes (pastel) get dark text; everything else white."""
    return _is_light(colors)


__all__ = ["PALETTES", "MotionRenderer", "palette_colors"]


if TYPE_CHECKING:  # MotionRenderer must satisfy the stage's protocol (checked by mypy).
    _conforms: VisualRenderer = MotionRenderer()
