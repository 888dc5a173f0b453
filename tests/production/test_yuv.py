"""Sprites blended on yuv420p planes against the same blend done in RGB."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray

from aiprod.production.media.text import blend, render_text_sprite
from aiprod.production.media.yuv import FramePool, Planes, rgb_to_yuv, yuv_sprite

W, H = 96, 64


def background() -> NDArray[np.uint8]:
    """A colourful RGB picture that is constant on 2x2 blocks, so that 4:2:0
    subsampling loses nothing and only the blend itself can differ."""
    rng = np.random.default_rng(5)
    low = rng.integers(0, 256, (H // 2, W // 2, 3), dtype=np.uint8)
    out: NDArray[np.uint8] = low.repeat(2, axis=0).repeat(2, axis=1)
    return out


def to_planes(rgb: NDArray[np.uint8]) -> Planes:
    """The ideal 4:2:0 picture: BT.601 limited range, chroma the mean of each 2x2
    block (libswscale's own subsampling filter reaches further, so differs at
    sharp colour edges by up to ~16 levels)."""
    yuv = rgb_to_yuv(rgb.astype(np.float64))
    chroma = yuv[..., 1:].reshape(H // 2, 2, W // 2, 2, 2).mean(axis=(1, 3))
    as8 = [np.rint(p).astype(np.uint8) for p in (yuv[..., 0], chroma[..., 0], chroma[..., 1])]
    return as8[0], as8[1], as8[2]


@pytest.mark.parametrize(("opacity", "dy"), [(1.0, 0), (0.55, 0), (1.0, 6), (0.3, 4)])
@pytest.mark.parametrize(("x", "y"), [(7, 5), (8, 10)])
def test_sprite_blend_matches_rgb_blend(opacity: float, dy: int, x: int, y: int) -> None:
    base = background()
    sprite = render_text_sprite("Match", 24, (255, 230, 120), 1000)
    in_rgb = base.copy()
    blend(in_rgb, sprite, x, y + dy, opacity)
    want = to_planes(in_rgb)

    pool = FramePool(W, H)
    _, planes = pool.take()
    for dst, src in zip(planes, to_planes(base), strict=True):
        np.copyto(dst, src)
    for k, part in yuv_sprite(sprite, x, y, W, H):
        part.blend(planes[k], dy=dy if k == 0 else dy // 2, opacity=opacity)
    for k, (got, exp) in enumerate(zip(planes, want, strict=True)):
        diff = np.abs(got.astype(int) - exp.astype(int))
        assert diff.max() <= 2, (k, diff.max())
    assert not np.array_equal(planes[0], to_planes(base)[0])  # it drew something


def test_sprite_pushed_past_the_bottom_is_clipped() -> None:
    sprite = np.zeros((10, 10, 4), np.uint8)
    sprite[...] = (255, 255, 255, 255)
    _, planes = FramePool(W, H).take()
    for p in planes:
        p[...] = 16
    parts = yuv_sprite(sprite, 20, H - 12, W, H)
    for k, part in parts:
        part.blend(planes[k], dy=6 if k == 0 else 3)
    white = round(rgb_to_yuv(np.array([255.0, 255.0, 255.0]))[0])
    rows = np.flatnonzero((planes[0] == white).any(axis=1))
    assert rows.tolist() == list(range(H - 6, H))  # 4 of the 10 rows fell off the frame
    for k, part in parts:  # pushed right off: nothing drawn, nothing raised
        part.blend(planes[k], dy=40 if k == 0 else 20)
    # Fully transparent: no change at all.
    before = [p.copy() for p in planes]
    for k, part in yuv_sprite(sprite, 50, 10, W, H):
        part.blend(planes[k], opacity=0.0)
    assert all(np.array_equal(a, b) for a, b in zip(planes, before, strict=True))
