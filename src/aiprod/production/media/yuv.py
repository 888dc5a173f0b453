"""yuv420p frames as NumPy planes: the pixel format the encoder takes.

The visuals renderer draws into yuv420p frames and the montage composes them
without ever going through RGB: a 720p RGB -> yuv420p conversion in libswscale
costs more than encoding the frame with x264's ultrafast preset (measured 5.8 ms
against 5.2 ms), and an RGB frame is twice the bytes.  Everything here works on
the Y, U and V planes of :class:`av.VideoFrame`s directly.  Colours are BT.601
limited range and untagged, with the matrix libswscale's default RGB conversion
uses, so frames from here and frames converted from RGB mix freely.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import av
import numpy as np
from numpy.typing import NDArray

Plane = NDArray[np.uint8]
Planes = tuple[Plane, Plane, Plane]

PIX_FMT = "yuv420p"
BAND_ROWS = 32
"""Rows per band in the crossfade: the uint16 intermediates stay in cache."""


def planes_of(frame: av.VideoFrame, *, writable: bool = False) -> Planes:
    """Views (no copy) of the Y, U and V planes of a yuv420p frame, padding cut off.

    Read-only unless `writable`: write only frames you own (`FramePool` frames, a
    fresh ``reformat`` result), never a decoder's frame, which the decoder may still use as a
    reference picture for the frames after it.
    """
    views = []
    for p in frame.planes:
        view = np.frombuffer(memoryview(p), np.uint8).reshape(p.height, p.line_size)
        view = view[:, : p.width]
        view.flags.writeable = writable
        views.append(view)
    return views[0], views[1], views[2]


class FramePool:
    """yuv420p frames that the renderer draws into and the montage composes into,
    used in turn, so that no full-size buffer is allocated per frame.

    The encoder has copied a frame's pixels by the time ``VideoWriter.write_frame``
    returns (libavcodec hands it to x264, which copies its input picture), so a pool
    frame is free again once the next frame has been taken; a pool of two keeps one
    frame of margin.
    """

    def __init__(self, width: int, height: int, size: int = 2) -> None:
        self.width, self.height = width, height
        self._frames = [av.VideoFrame(width, height, PIX_FMT) for _ in range(size)]
        self._planes = [planes_of(f, writable=True) for f in self._frames]
        self._next = 0
        # Scratch for 16-bit intermediates: rows for the crossfade, a chroma plane
        # for the slide.
        self.acc = np.empty((BAND_ROWS, width), np.uint16)
        self.tmp = np.empty((BAND_ROWS, width), np.uint16)
        self.chroma = np.empty(self._planes[0][1].shape, np.uint16)

    def take(self) -> tuple[av.VideoFrame, Planes]:
        k = self._next
        self._next = (k + 1) % len(self._frames)
        return self._frames[k], self._planes[k]

    def writable(self, frame: av.VideoFrame) -> tuple[av.VideoFrame, Planes]:
        """`frame` and its planes if the pool owns it, else a pool frame holding a copy."""
        for f, planes in zip(self._frames, self._planes, strict=True):
            if frame is f:
                return f, planes
        out, planes = self.take()
        for dst, src in zip(planes, planes_of(frame), strict=True):
            np.copyto(dst, src)
        return out, planes


# BT.601 limited range, the matrix libswscale uses by default for rgb24 -> yuv420p
# (and so the one the encoder applied to the RGB montage's frames): rows Y, U, V.
RGB_TO_YUV = (
    np.array(
        [
            [65.481, 128.553, 24.966],
            [-37.797, -74.203, 112.0],
            [112.0, -93.786, -18.214],
        ],
        dtype=np.float64,
    )
    / 255.0
)
YUV_OFFSET = np.array([16.0, 128.0, 128.0])


@dataclass(frozen=True)
class PlaneSprite:
    """One plane of a text sprite (a subtitle, a word), ready to blend: ``plane[y0:y1, x0:x1] =
    (pre + plane * inv) / 255`` with ``pre = value * alpha + 128`` and ``inv = 255 -
    alpha``, clipped to the plane and trimmed to where alpha > 0, with scratch for
    the 16-bit intermediates (so a blend allocates nothing)."""

    y0: int
    x0: int
    pre: NDArray[np.uint16]
    inv: NDArray[np.uint16]
    acc: NDArray[np.uint16]
    tmp: NDArray[np.uint16]

    @classmethod
    def make(
        cls,
        value: NDArray[np.float64],
        alpha: NDArray[np.float64],
        x: int,
        y: int,
        shape: tuple[int, int],
    ) -> PlaneSprite | None:
        """`value` (0..255) and straight `alpha` (0..255) at (x, y) on a plane of
        `shape` (rows, columns)."""
        ph, pw = shape
        h, w = alpha.shape
        x0, y0, x1, y1 = max(0, x), max(0, y), min(pw, x + w), min(ph, y + h)
        if x0 >= x1 or y0 >= y1:
            return None
        a = np.rint(alpha[y0 - y : y1 - y, x0 - x : x1 - x])
        v = value[y0 - y : y1 - y, x0 - x : x1 - x]
        rows, cols = np.flatnonzero(a.any(axis=1)), np.flatnonzero(a.any(axis=0))
        if rows.size == 0:
            return None
        r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
        a, v = a[r0:r1, c0:c1], v[r0:r1, c0:c1]
        pre = np.rint(np.clip(v, 0.0, 255.0) * a + 128.0).astype(np.uint16)
        inv = (255.0 - a).astype(np.uint16)
        return cls(
            y0=y0 + int(r0),
            x0=x0 + int(c0),
            pre=pre,
            inv=inv,
            acc=np.empty_like(pre),
            tmp=np.empty_like(pre),
        )

    def blend(self, plane: Plane, *, dy: int = 0, opacity: float = 1.0) -> None:
        """Blend into `plane`, `dy` rows further down than made (clipped at the
        bottom), with the sprite's alpha scaled by `opacity` (0..1)."""
        h, w = self.pre.shape
        y0 = self.y0 + dy
        rows = min(h, plane.shape[0] - y0)
        if rows <= 0 or y0 < 0 or opacity <= 0.0:
            return
        dst = plane[y0 : y0 + rows, self.x0 : self.x0 + w]
        if opacity < 1.0:  # a fading sprite: rare, so float maths on the fly
            a = (255.0 - self.inv[:rows]).astype(np.float32) * np.float32(opacity)
            mixed = dst * (np.float32(255.0) - a)
            mixed += (self.pre[:rows].astype(np.float32) - np.float32(128.0)) * np.float32(opacity)
            mixed *= np.float32(1.0 / 255.0)
            np.rint(mixed, out=mixed)
            np.copyto(dst, mixed, casting="unsafe")
            return
        acc, tmp = self.acc[:rows], self.tmp[:rows]
        pre, inv = self.pre[:rows], self.inv[:rows]
        np.multiply(dst, inv, out=acc)
        acc += pre
        np.right_shift(acc, 8, out=tmp)  # exact rounding of /255, as in text.blend
        acc += tmp
        acc >>= 8
        np.copyto(dst, acc, casting="unsafe")


def rgb_to_yuv(rgb: NDArray[np.floating[Any]]) -> NDArray[np.float64]:
    """RGB (..., 3) in 0..255 as BT.601 limited-range Y, U, V (..., 3), unrounded."""
    out: NDArray[np.float64] = rgb @ RGB_TO_YUV.T + YUV_OFFSET
    return out


def chroma_size(width: int, height: int) -> tuple[int, int]:
    """(width, height) of the U and V planes of a yuv420p frame."""
    return (width + 1) // 2, (height + 1) // 2


def yuv_sprite(
    sprite: NDArray[np.uint8], x: int, y: int, width: int, height: int
) -> list[tuple[int, PlaneSprite]]:
    """An RGBA sprite at (x, y) as (plane index, `PlaneSprite`) pairs for yuv420p frames
    of width x height.

    Luma is the sprite's BT.601 limited-range Y at full resolution.  Chroma is at
    half resolution on 2x2 blocks aligned with the frame's: the sprite is padded to
    even coordinates, block alpha is the mean alpha and block colour the
    alpha-weighted mean (premultiplied averaging), so blending it gives what
    blending in RGB and then subsampling gives, as the encoder did before.
    """
    rgba = sprite.astype(np.float64)
    alpha = rgba[..., 3]
    yuv = rgb_to_yuv(rgba[..., :3])
    out: list[tuple[int, PlaneSprite]] = []
    cw, ch = chroma_size(width, height)
    luma = PlaneSprite.make(yuv[..., 0], alpha, x, y, (height, width))
    if luma is not None:
        out.append((0, luma))
    # Pad to 2x2 blocks that line up with the chroma grid.
    px, py = x % 2, y % 2
    h, w = alpha.shape
    ph, pw = h + py + (h + py) % 2, w + px + (w + px) % 2
    a = np.zeros((ph, pw))
    a[py : py + h, px : px + w] = alpha
    blocks_a = a.reshape(ph // 2, 2, pw // 2, 2).sum(axis=(1, 3))  # 4 * mean alpha
    mean_a = blocks_a / 4.0
    for k in (1, 2):
        c = np.zeros((ph, pw))
        c[py : py + h, px : px + w] = yuv[..., k] * alpha
        blocks_c = c.reshape(ph // 2, 2, pw // 2, 2).sum(axis=(1, 3))
        value = np.divide(blocks_c, blocks_a, out=np.zeros_like(blocks_c), where=blocks_a > 0)
        ps = PlaneSprite.make(value, mean_a, (x - px) // 2, (y - py) // 2, (ch, cw))
        if ps is not None:
            out.append((k, ps))
    return out
