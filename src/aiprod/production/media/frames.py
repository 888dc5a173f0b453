"""Frame geometry helpers shared by the renderers: cover-fit, cropping, fast upscaling.

Cover-fit ("fill the frame, crop the overflow, keep the aspect ratio") is how
user photos and videos are placed in a frame of another shape: letterboxing
would look like a mistake in a finished video.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray
from PIL import Image

Frame = NDArray[np.uint8]  # (height, width, 3) RGB


def hex_to_rgb(color: str) -> tuple[int, int, int]:
    """'#rrggbb' → (r, g, b)."""
    c = color.lstrip("#")
    if len(c) != 6:
        raise ValueError(f"expected #rrggbb, got {color!r}")
    return int(c[0:2], 16), int(c[2:4], 16), int(c[4:6], 16)


def cover_size(src_w: int, src_h: int, dst_w: int, dst_h: int) -> tuple[int, int]:
    """Smallest size with the source's aspect ratio that covers dst_w × dst_h."""
    if src_w <= 0 or src_h <= 0:
        raise ValueError(f"invalid source size {src_w}x{src_h}")
    scale = max(dst_w / src_w, dst_h / src_h)
    return max(dst_w, math.ceil(src_w * scale - 1e-6)), max(dst_h, math.ceil(src_h * scale - 1e-6))


def cover_box(src_w: int, src_h: int, dst_w: int, dst_h: int) -> tuple[float, float, float, float]:
    """The centred region of the source (left, top, right, bottom) with dst's aspect ratio."""
    dst_aspect = dst_w / dst_h
    if src_w / src_h > dst_aspect:  # source is wider: crop the sides
        w = src_h * dst_aspect
        left = (src_w - w) / 2
        return left, 0.0, left + w, float(src_h)
    h = src_w / dst_aspect
    top = (src_h - h) / 2
    return 0.0, top, float(src_w), top + h


def cover_fit(image: Image.Image, width: int, height: int) -> Image.Image:
    """Resize and centre-crop `image` to exactly width × height (high-quality, slow:
    for one-off preparation, not per frame)."""
    box = cover_box(image.width, image.height, width, height)
    return image.resize((width, height), Image.Resampling.LANCZOS, box=box)


def center_crop(frame: Frame, width: int, height: int) -> Frame:
    """The centred width × height window of a frame at least that large (a view)."""
    h, w = frame.shape[:2]
    if w < width or h < height:
        raise ValueError(f"cannot crop {w}x{h} to {width}x{height}")
    x = (w - width) // 2
    y = (h - height) // 2
    return frame[y : y + height, x : x + width]


def quarter_size(width: int, height: int) -> tuple[int, int]:
    return (width + 3) // 4, (height + 3) // 4
