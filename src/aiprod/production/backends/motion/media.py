"""User media layers of the motion renderer: a photo (Ken Burns) or a video (looped).

When a scene comes with a user's file, it replaces the procedural background
as the frame's base layer: a full-resolution RGB image per frame, which the
renderer converts to yuv420p and draws the text over.  Opening happens when
the layer is built, so a missing or unreadable file raises ValueError before
any output exists.
"""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageOps, UnidentifiedImageError

from aiprod.production.media.frames import cover_box, cover_fit
from aiprod.production.models import CameraMove, QualityTier


class MediaLayer:
    """A full-resolution base layer from a user file."""

    def frame(self, t: float) -> Image.Image:
        """The RGB image (frame size) at scene time t; read it, never draw on it
        (it may be shared with later calls)."""
        raise NotImplementedError

    def close(self) -> None:
        """Release file handles (no-op by default)."""


class KenBurns(MediaLayer):
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


class LoopedVideo(MediaLayer):
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
