"""Procedural icons: simple vector shapes drawn once per scene with Pillow.

Each icon is drawn as a white mask on a 100×100 design grid at four times the
requested size and reduced with a box filter (anti-aliasing), then coloured
into an RGBA sprite that the text layer blends like a word.  No assets are
downloaded or shipped: every shape is a handful of ellipses, polygons and
lines, so it reads as a pictogram rather than an illustration.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageDraw

from aiprod.production.media.text import RGB

Draw = ImageDraw.ImageDraw
_SS = 4  # supersampling factor


def _cup(d: Draw, s: float) -> None:
    d.rounded_rectangle(_b(s, 22, 38, 70, 84), radius=10 * s, fill=255)
    d.ellipse(_b(s, 60, 46, 86, 72), outline=255, width=round(7 * s))
    for x in (34, 46, 58):  # steam
        d.arc(_b(s, x - 6, 10, x + 6, 34), 270, 90, fill=255, width=round(4 * s))


def _moon(d: Draw, s: float) -> None:
    d.ellipse(_b(s, 14, 14, 86, 86), fill=255)
    d.ellipse(_b(s, 34, 4, 100, 70), fill=0)


def _coin(d: Draw, s: float) -> None:
    d.ellipse(_b(s, 10, 10, 90, 90), fill=255)
    d.ellipse(_b(s, 20, 20, 80, 80), fill=0)
    d.ellipse(_b(s, 25, 25, 75, 75), fill=255)
    d.rectangle(_b(s, 46, 30, 54, 70), fill=0)
    d.arc(_b(s, 36, 34, 64, 52), 90, 360, fill=0, width=round(6 * s))
    d.arc(_b(s, 36, 48, 64, 66), 270, 180, fill=0, width=round(6 * s))


def _flower(d: Draw, s: float) -> None:
    for k in range(6):
        a = k * math.pi / 3
        cx, cy = 50 + 24 * math.cos(a), 50 + 24 * math.sin(a)
        d.ellipse(_b(s, cx - 17, cy - 17, cx + 17, cy + 17), fill=255)
    d.ellipse(_b(s, 37, 37, 63, 63), fill=0)
    d.ellipse(_b(s, 41, 41, 59, 59), fill=255)


def _hexagon(d: Draw, s: float) -> None:
    for cx, cy in ((50, 30), (30, 64), (70, 64)):
        d.polygon(_poly(s, cx, cy, 19, 6, math.pi / 6), outline=255, width=round(6 * s))


def _chip(d: Draw, s: float) -> None:
    d.rounded_rectangle(_b(s, 24, 24, 76, 76), radius=6 * s, fill=255)
    d.rectangle(_b(s, 36, 36, 64, 64), fill=0)
    for k in range(4):
        p = 32 + k * 12
        for a, b in ((p, 10), (p, 82)):
            d.rectangle(_b(s, a - 3, b, a + 3, b + 8), fill=255)
            d.rectangle(_b(s, b, a - 3, b + 8, a + 3), fill=255)


def _heart(d: Draw, s: float) -> None:
    d.ellipse(_b(s, 12, 18, 52, 58), fill=255)
    d.ellipse(_b(s, 48, 18, 88, 58), fill=255)
    d.polygon([_p(s, 14, 46), _p(s, 86, 46), _p(s, 50, 88)], fill=255)


def _plane(d: Draw, s: float) -> None:
    d.polygon([_p(s, 46, 8), _p(s, 54, 8), _p(s, 56, 92), _p(s, 44, 92)], fill=255)
    d.ellipse(_b(s, 44, 4, 56, 20), fill=255)
    d.polygon([_p(s, 8, 56), _p(s, 50, 34), _p(s, 92, 56), _p(s, 92, 62), _p(s, 8, 62)], fill=255)
    d.polygon([_p(s, 32, 90), _p(s, 50, 78), _p(s, 68, 90), _p(s, 68, 94), _p(s, 32, 94)], fill=255)


def _bowl(d: Draw, s: float) -> None:
    d.chord(_b(s, 12, 20, 88, 88), 0, 180, fill=255)
    d.rectangle(_b(s, 8, 52, 92, 58), fill=255)
    for x in (36, 50, 64):
        d.arc(_b(s, x - 6, 14, x + 6, 44), 270, 90, fill=255, width=round(4 * s))


def _note(d: Draw, s: float) -> None:
    d.ellipse(_b(s, 14, 66, 40, 88), fill=255)
    d.ellipse(_b(s, 58, 58, 84, 80), fill=255)
    d.rectangle(_b(s, 33, 18, 40, 78), fill=255)
    d.rectangle(_b(s, 77, 10, 84, 70), fill=255)
    d.polygon([_p(s, 33, 18), _p(s, 84, 10), _p(s, 84, 24), _p(s, 33, 32)], fill=255)


def _drop(d: Draw, s: float) -> None:
    d.ellipse(_b(s, 22, 40, 78, 94), fill=255)
    d.polygon([_p(s, 50, 4), _p(s, 24, 58), _p(s, 76, 58)], fill=255)


def _flame(d: Draw, s: float) -> None:
    d.ellipse(_b(s, 20, 40, 80, 94), fill=255)
    d.polygon([_p(s, 56, 4), _p(s, 20, 62), _p(s, 80, 62), _p(s, 74, 30)], fill=255)
    d.ellipse(_b(s, 38, 62, 62, 90), fill=0)


def _clock(d: Draw, s: float) -> None:
    d.ellipse(_b(s, 8, 8, 92, 92), fill=255)
    d.ellipse(_b(s, 16, 16, 84, 84), fill=0)
    d.line([_p(s, 50, 50), _p(s, 50, 26)], fill=255, width=round(7 * s))
    d.line([_p(s, 50, 50), _p(s, 68, 60)], fill=255, width=round(7 * s))
    d.ellipse(_b(s, 45, 45, 55, 55), fill=255)


def _bulb(d: Draw, s: float) -> None:
    d.ellipse(_b(s, 22, 6, 78, 62), fill=255)
    d.polygon([_p(s, 30, 48), _p(s, 70, 48), _p(s, 62, 72), _p(s, 38, 72)], fill=255)
    for y in (76, 86):
        d.rounded_rectangle(_b(s, 38, y, 62, y + 6), radius=3 * s, fill=255)


def _warning(d: Draw, s: float) -> None:
    d.polygon([_p(s, 50, 6), _p(s, 94, 88), _p(s, 6, 88)], fill=255)
    d.polygon([_p(s, 46, 34), _p(s, 54, 34), _p(s, 52, 64), _p(s, 48, 64)], fill=0)
    d.ellipse(_b(s, 45, 70, 55, 80), fill=0)


def _sun(d: Draw, s: float) -> None:
    d.ellipse(_b(s, 28, 28, 72, 72), fill=255)
    for k in range(8):
        a = k * math.pi / 4
        d.line(
            [_p(s, 50 + 30 * math.cos(a), 50 + 30 * math.sin(a)),
             _p(s, 50 + 44 * math.cos(a), 50 + 44 * math.sin(a))],
            fill=255,
            width=round(7 * s),
        )  # fmt: skip


def _chart(d: Draw, s: float) -> None:
    for k, top in enumerate((62, 46, 30)):
        x = 14 + k * 26
        d.rectangle(_b(s, x, top, x + 18, 88), fill=255)
    d.line(
        [_p(s, 10, 50), _p(s, 40, 30), _p(s, 56, 40), _p(s, 86, 10)], fill=255, width=round(5 * s)
    )
    d.polygon([_p(s, 90, 6), _p(s, 72, 8), _p(s, 88, 24)], fill=255)


def _book(d: Draw, s: float) -> None:
    d.polygon([_p(s, 6, 22), _p(s, 48, 28), _p(s, 48, 88), _p(s, 6, 80)], fill=255)
    d.polygon([_p(s, 94, 22), _p(s, 52, 28), _p(s, 52, 88), _p(s, 94, 80)], fill=255)


def _star(d: Draw, s: float) -> None:
    pts = []
    for k in range(10):
        r = 46 if k % 2 == 0 else 19
        a = -math.pi / 2 + k * math.pi / 5
        pts.append(_p(s, 50 + r * math.cos(a), 54 + r * math.sin(a)))
    d.polygon(pts, fill=255)


def _snowflake(d: Draw, s: float) -> None:
    for k in range(3):
        a = k * math.pi / 3
        dx, dy = 42 * math.cos(a), 42 * math.sin(a)
        d.line([_p(s, 50 - dx, 50 - dy), _p(s, 50 + dx, 50 + dy)], fill=255, width=round(6 * s))
    d.ellipse(_b(s, 40, 40, 60, 60), fill=255)


def _bubble(d: Draw, s: float) -> None:
    d.rounded_rectangle(_b(s, 6, 12, 94, 70), radius=16 * s, fill=255)
    d.polygon([_p(s, 22, 64), _p(s, 44, 64), _p(s, 18, 90)], fill=255)


def _lock(d: Draw, s: float) -> None:
    d.arc(_b(s, 28, 8, 72, 56), 180, 360, fill=255, width=round(8 * s))
    d.rectangle(_b(s, 28, 30, 36, 46), fill=255)
    d.rectangle(_b(s, 64, 30, 72, 46), fill=255)
    d.rounded_rectangle(_b(s, 18, 42, 82, 92), radius=8 * s, fill=255)
    d.ellipse(_b(s, 43, 56, 57, 70), fill=0)


def _house(d: Draw, s: float) -> None:
    d.polygon([_p(s, 50, 8), _p(s, 94, 48), _p(s, 6, 48)], fill=255)
    d.rectangle(_b(s, 18, 46, 82, 92), fill=255)
    d.rectangle(_b(s, 42, 62, 58, 92), fill=0)


def _b(s: float, x0: float, y0: float, x1: float, y1: float) -> tuple[float, float, float, float]:
    return (x0 * s, y0 * s, x1 * s, y1 * s)


def _p(s: float, x: float, y: float) -> tuple[float, float]:
    return (x * s, y * s)


def _poly(
    s: float, cx: float, cy: float, r: float, n: int, rot: float
) -> list[tuple[float, float]]:
    return [
        _p(
            s,
            cx + r * math.cos(rot + k * 2 * math.pi / n),
            cy + r * math.sin(rot + k * 2 * math.pi / n),
        )
        for k in range(n)
    ]


ICONS: dict[str, Callable[[Draw, float], None]] = {
    "cup": _cup, "moon": _moon, "coin": _coin, "flower": _flower, "hexagon": _hexagon,
    "chip": _chip, "heart": _heart, "plane": _plane, "bowl": _bowl, "note": _note,
    "drop": _drop, "flame": _flame, "clock": _clock, "bulb": _bulb, "warning": _warning,
    "sun": _sun, "chart": _chart, "book": _book, "star": _star, "snowflake": _snowflake,
    "bubble": _bubble, "lock": _lock, "house": _house,
}  # fmt: skip
"""Icon name → drawing function on a 100-unit grid scaled by `s`."""


def icon_mask(name: str, size: int) -> NDArray[np.uint8]:
    """The icon as an anti-aliased 8-bit mask, `size` pixels square."""
    big = size * _SS
    mask = Image.new("L", (big, big), 0)
    ICONS[name](ImageDraw.Draw(mask), big / 100.0)
    return np.asarray(mask.reduce(_SS), dtype=np.uint8)


def icon_sprite(name: str, size: int, color: RGB, opacity: float = 1.0) -> NDArray[np.uint8]:
    """The icon as a straight-alpha RGBA sprite (size, size, 4) in `color`."""
    mask = icon_mask(name, size)
    out = np.zeros((*mask.shape, 4), np.uint8)
    out[..., :3] = color
    out[..., 3] = np.rint(mask.astype(np.float32) * opacity).astype(np.uint8)
    return out
