"""H.264/AAC writing with PyAV, shared by the visuals renderer, the montage and
the benchmark baseline so that all three encode with exactly the same settings."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import Any

import av
import numpy as np
from numpy.typing import NDArray

from aiprod.production.models import RenderSpec

Frame = NDArray[np.uint8]  # (height, width, 3) RGB

MEZZANINE_OPTIONS = {"preset": "ultrafast", "crf": "12"}
"""Scene clips are intermediates: fast to write and decode, visually lossless."""


def final_options(spec: RenderSpec) -> dict[str, str]:
    # x264's default look-ahead at medium/slow (40/50 frames) holds hundreds of
    # MB of 1080p frames; 10 frames (measured: −65 MB against 20, and faster)
    # keeps a 1080p production under 512 MB peak RSS for a small compression cost.
    return {"preset": spec.x264_preset, "crf": str(spec.crf), "rc-lookahead": "10"}


class VideoWriter:
    """Write RGB frames (and optionally one audio track) to an MP4.

    ``faststart`` moves the index to the front so players can start before the
    whole file has arrived.  Audio is given in full as float32 (n, channels).
    """

    def __init__(
        self,
        path: Path,
        width: int,
        height: int,
        fps: int,
        options: dict[str, str],
        *,
        faststart: bool = False,
        audio_rate: int | None = None,
        audio_channels: int = 2,
        audio_bitrate: int = 160_000,
    ) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        container_opts = {"movflags": "+faststart"} if faststart else {}
        self.path = path
        self.container: Any = av.open(str(path), "w", format="mp4", options=container_opts)
        self.video: Any = self.container.add_stream("libx264", rate=fps)
        self.video.width, self.video.height = width, height
        self.video.pix_fmt = "yuv420p"
        self.video.options = dict(options)
        self.video.codec_context.time_base = Fraction(1, fps)
        self.audio: Any = None
        if audio_rate is not None:
            self.audio = self.container.add_stream("aac", rate=audio_rate)
            self.audio.layout = "stereo" if audio_channels == 2 else "mono"
            self.audio.bit_rate = audio_bitrate
        self.frames = 0

    def write(self, frame: Frame) -> None:
        vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
        vf.pts = self.frames
        self.frames += 1
        for packet in self.video.encode(vf):
            self.container.mux(packet)

    def write_audio(self, samples: NDArray[np.float32], rate: int) -> None:
        """Encode the whole audio track (float32, (n, channels))."""
        if self.audio is None:
            raise RuntimeError("writer was opened without an audio stream")
        data = np.ascontiguousarray(samples.T if samples.ndim == 2 else samples[None, :])
        layout = "stereo" if data.shape[0] == 2 else "mono"
        chunk = 1024 * 16
        pts = 0
        for start in range(0, data.shape[1], chunk):
            part = np.ascontiguousarray(data[:, start : start + chunk], dtype=np.float32)
            af = av.AudioFrame.from_ndarray(part, format="fltp", layout=layout)
            af.sample_rate = rate
            af.pts = pts
            pts += part.shape[1]
            for packet in self.audio.encode(af):
                self.container.mux(packet)

    def close(self) -> None:
        for packet in self.video.encode():
            self.container.mux(packet)
        if self.audio is not None:
            for packet in self.audio.encode():
                self.container.mux(packet)
        self.container.close()

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            try:
                self.container.close()
            finally:
                self.path.unlink(missing_ok=True)


def mezzanine_writer(path: Path, spec: RenderSpec) -> VideoWriter:
    return VideoWriter(path, spec.width, spec.height, spec.fps, MEZZANINE_OPTIONS)
