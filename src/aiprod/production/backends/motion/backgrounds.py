"""Procedural backgrounds of the motion renderer: the camera and the animated fields.

Size (~520 lines): the four motifs share the camera, the buffer pool and the
quarter-resolution YUV conversion; one module per motif would scatter that
shared discipline for ~100 lines each.

A `Background` draws one motif (gradient, particles, geometric, waves: see
`MOTIFS`) at a quarter of the frame's linear resolution, in planar float32
RGB, then adds the vignette and the text scrim and converts to 8-bit Y, U and
V planes for the renderer to upscale.  The `Camera` gives zoom and pan as
functions of time; backgrounds apply it analytically to the coordinates they
evaluate their field at, so a move is free and never reveals an edge.  All
per-frame work writes into buffers allocated once per scene (see
`Background`), which is what keeps a frame to a few milliseconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from aiprod.production.backends.motion.palettes import (
    F32,
    LUT_SIZE,
    is_light,
    lut_index,
    ping_pong,
    smooth_lut,
)
from aiprod.production.media.yuv import RGB_TO_YUV, YUV_OFFSET
from aiprod.production.models import CameraMove

_RGB_TO_YUV32 = RGB_TO_YUV.astype(np.float32)
_YUV_ROUNDING = (YUV_OFFSET + 0.5).astype(np.float32)[:, None]
"""Offsets plus 0.5, so that the truncating cast to uint8 rounds."""


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
class Camera:
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


class Background:
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
        self.light = is_light(colors)
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

    def set_scrim(
        self,
        box: tuple[float, float, float, float] | list[tuple[float, float, float, float]],
        light: bool,
        soft: float = 1.0,
    ) -> None:
        """A soft pool (over the box x0, y0, x1, y1, as fractions of the frame, or
        over each of several boxes) behind the text that is darkened (or
        lightened, for dark text) while the text shows, so text stays readable
        over bright or busy backgrounds.  Smoothstep falloffs well outside the box
        keep it from reading as a rectangle; a smaller `soft` gives firmer edges
        (the panels of a comparison)."""
        fx = (np.arange(self.lw) + 0.5) / self.lw
        fy = (np.arange(self.lh) + 0.5) / self.lh
        scrim = np.zeros((self.lh, self.lw), np.float32)
        for x0, y0, x1, y1 in box if isinstance(box, list) else [box]:
            mx = _smoothstep(
                np.minimum(fx - (x0 - 0.1 * soft), (x1 + 0.1 * soft) - fx) / (0.22 * soft)
            )
            my = _smoothstep(
                np.minimum(fy - (y0 - 0.12 * soft), (y1 + 0.12 * soft) - fy) / (0.26 * soft)
            )
            np.maximum(scrim, (my[:, None] * mx[None, :]).astype(np.float32), out=scrim)
        self.scrim = scrim
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
        idx = lut_index(field, scale, field)
        np.take(lut, idx, axis=1, out=self.buf, mode="clip")


class _Gradient(Background):
    """A multi-stop gradient whose direction slowly rotates and whose stops drift,
    bent by two low-frequency sine warps, with two soft light pools wandering."""

    def __init__(
        self, rng: np.random.Generator, colors: F32, size: tuple[int, int], duration: float
    ) -> None:
        super().__init__(rng, colors, size, duration)
        self.lut = smooth_lut(ping_pong(colors), cyclic=True)
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


class _Particles(Background):
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
        self.lut = smooth_lut(base, cyclic=False)
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


class _Geometric(Background):
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
        self.lut = smooth_lut(ping_pong(subdued), cyclic=True)
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


class _Waves(Background):
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


MOTIFS: dict[str, type[Background]] = {
    "gradient": _Gradient,
    "particles": _Particles,
    "geometric": _Geometric,
    "waves": _Waves,
}
