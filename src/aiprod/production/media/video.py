"""H.264/AAC writing with PyAV, shared by the visuals renderer, the montage and
the benchmark baseline so that all three encode with exactly the same settings."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import Any

import av
import numpy as np
from av.video.frame import PictureType
from numpy.typing import NDArray

from aiprod.production.models import RenderSpec

Frame = NDArray[np.uint8]  # (height, width, 3) RGB

MEZZANINE_OPTIONS = {"preset": "ultrafast", "crf": "12", "threads": "1"}
"""Scene clips are intermediates: fast to write and decode, visually lossless.
One encoder thread: the renderer draws on a second thread, which keeps two cores
busy without x264's own thread pool contending with it (measured at 720p: 5-15 %
less wall time per frame than x264's automatic threading)."""


def final_options(spec: RenderSpec) -> dict[str, str]:
    # x264's default look-ahead at medium/slow (40/50 frames) holds hundreds of
    # MB of 1080p frames; 10 frames (measured: −65 MB against 20, and faster)
    # keeps a 1080p production under 512 MB peak RSS for a small compression cost.
    return {"preset": spec.x264_preset, "crf": str(spec.crf), "rc-lookahead": "10"}


class VideoWriter:
    """Write video frames (and optionally one audio track) to an MP4.

    `write` takes an RGB array (converted to yuv420p by libswscale, BT.601 limited
    range) or an :class:`av.VideoFrame`; `write_frame` takes a VideoFrame, which
    goes to the encoder as it is when it is yuv420p at the stream's size (no
    conversion), so a montage can pass decoded frames straight through.
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
        self._time_base = Fraction(1, fps)
        self.video.codec_context.time_base = self._time_base
        self.audio: Any = None
        if audio_rate is not None:
            self.audio = self.container.add_stream("aac", rate=audio_rate)
            self.audio.layout = "stereo" if audio_channels == 2 else "mono"
            self.audio.bit_rate = audio_bitrate
        self.frames = 0
        self._held: list[Any] | None = None  # video packets waiting for the audio
        self._audio_flushed = False
        self._aac_config = b""  # AudioSpecificConfig of the last encode_audio

    def write(self, frame: Frame | av.VideoFrame) -> None:
        """Encode an RGB (height, width, 3) array, or a VideoFrame (`write_frame`)."""
        if isinstance(frame, av.VideoFrame):
            self.write_frame(frame)
            return
        vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
        vf.pts = self.frames
        self.frames += 1
        self._mux_video(self.video.encode(vf))

    def write_frame(self, frame: av.VideoFrame) -> None:
        """Encode `frame` as the next picture.

        A yuv420p frame of the stream's size goes to the encoder untouched (any
        other is converted first, as `write` converts RGB).  The frame is
        restamped: its timestamp and time base become this stream's, its duration
        is cleared like a fresh frame's, and so is its picture type, because
        libx264 would otherwise obey a decoded frame's I/P type and give up its own
        frame-type decisions (B-frames, scene cuts).  The encoder copies the pixels
        before this returns, so the caller may reuse the frame's buffers.
        """
        ctx = self.video.codec_context
        if frame.format.name != ctx.pix_fmt or (frame.width, frame.height) != (
            ctx.width,
            ctx.height,
        ):
            frame = frame.reformat(width=ctx.width, height=ctx.height, format=ctx.pix_fmt)
        frame.pts = self.frames
        frame.time_base = self._time_base
        frame.duration = 0
        frame.pict_type = PictureType.NONE
        self.frames += 1
        self._mux_video(self.video.encode(frame))

    def _mux_video(self, packets: list[Any]) -> None:
        if self._held is not None:
            self._held.extend(packets)
            return
        for packet in packets:
            self.container.mux(packet)

    def _audio_frames(self, samples: NDArray[np.float32], rate: int) -> Iterator[Any]:
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
            yield af

    def write_audio(self, samples: NDArray[np.float32], rate: int) -> None:
        """Encode the whole audio track (float32, (n, channels))."""
        for af in self._audio_frames(samples, rate):
            for packet in self.audio.encode(af):
                self.container.mux(packet)

    def hold_video(self) -> None:
        """Keep video packets in memory instead of muxing them, until `mux_audio`.

        With `encode_audio` this lets the audio track be made on another thread
        while the first video frames are encoded, and still reach the muxer before
        any video packet, exactly as `write_audio` called first does.  Held packets
        are compressed: a few MB for a minute of 1080p.
        """
        if self._held is None:
            self._held = []

    def encode_audio(self, samples: NDArray[np.float32], rate: int) -> list[Any]:
        """Encode the whole audio track (like `write_audio`), returning the
        packets unmuxed.

        Touches no shared state, so it may run on another thread while this one
        writes video frames, provided nothing is muxed meanwhile (`hold_video`).
        Each call encodes afresh with an encoder of the stream's settings (not
        the stream's own, which can be flushed only once), so a caller may
        measure the result (`decode_aac`) and encode again before muxing.
        """
        if self.audio is None:
            raise RuntimeError("writer was opened without an audio stream")
        encoder: Any = av.CodecContext.create("aac", "w")
        encoder.sample_rate = rate
        encoder.layout = self.audio.layout.name
        encoder.format = "fltp"
        encoder.bit_rate = self.audio.bit_rate
        encoder.time_base = Fraction(1, rate)
        encoder.open()
        packets: list[Any] = []
        for af in self._audio_frames(samples, rate):
            packets.extend(encoder.encode(af))
        packets.extend(encoder.encode(None))
        for packet in packets:
            packet.stream = self.audio
        self._audio_flushed = True
        self._aac_config = bytes(encoder.extradata or b"")
        return packets

    def decode_audio(self, packets: Sequence[Any]) -> NDArray[np.float32]:
        """What a player hears from `packets` of `encode_audio`: (n, channels)
        float32 at the stream's rate.  AAC's quantisation moves peaks (up to
        ~1 dB over the input's), so the true peak is measured on this."""
        if self.audio is None:
            raise RuntimeError("writer was opened without an audio stream")
        decoder: Any = av.CodecContext.create("aac", "r")
        decoder.sample_rate = self.audio.rate
        decoder.layout = self.audio.layout.name
        decoder.extradata = self._aac_config
        parts: list[NDArray[np.float32]] = []
        for packet in [*packets, None]:
            for frame in decoder.decode(packet):
                parts.append(frame.to_ndarray().astype(np.float32, copy=False))
        if not parts:
            return np.zeros((0, self.audio.layout.nb_channels), np.float32)
        return np.ascontiguousarray(np.concatenate(parts, axis=1).T)

    def mux_audio(self, packets: list[Any]) -> None:
        """Mux packets from `encode_audio`, then the video packets held back."""
        for packet in packets:
            self.container.mux(packet)
        held, self._held = self._held, None
        for packet in held or ():
            self.container.mux(packet)

    def close(self) -> None:
        self._mux_video(self.video.encode())
        held, self._held = self._held, None
        for packet in held or ():
            self.container.mux(packet)
        if self.audio is not None and not self._audio_flushed:
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
