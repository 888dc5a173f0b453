"""Inspect finished media with PyAV: what QA and the tests need to know about a file.

Everything is read from the file itself rather than trusted from the code that
wrote it, because QA exists to catch the cases where the two disagree.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
from numpy.typing import NDArray


@dataclass(frozen=True)
class ProbeInfo:
    path: Path
    duration: float  # container duration, seconds
    has_video: bool
    width: int
    height: int
    fps: float
    video_frames: int
    video_duration: float
    video_codec: str
    has_audio: bool
    audio_duration: float
    audio_rate: int
    audio_channels: int
    audio_codec: str
    faststart: bool  # the moov atom (index) precedes the media data


def top_level_boxes(path: Path) -> list[tuple[str, int, int]]:
    """(type, offset, size) of each top-level ISO-BMFF box, in file order.

    Reads only box headers, so it is cheap on large files.  Stops at the first
    malformed header rather than guessing.
    """
    boxes: list[tuple[str, int, int]] = []
    with path.open("rb") as f:
        end = f.seek(0, 2)
        pos = 0
        while pos + 8 <= end:
            f.seek(pos)
            header = f.read(8)
            size, kind = struct.unpack(">I4s", header)
            header_len = 8
            if size == 1:
                ext = f.read(8)
                if len(ext) < 8:
                    break
                size = struct.unpack(">Q", ext)[0]
                header_len = 16
            elif size == 0:
                size = end - pos
            if size < header_len:
                break
            boxes.append((kind.decode("latin-1"), pos, size))
            pos += size
    return boxes


def is_faststart(path: Path) -> bool:
    """True when ``moov`` comes before the first ``mdat`` (playback can start while
    the file is still downloading)."""
    kinds = [k for k, _, _ in top_level_boxes(path)]
    if "moov" not in kinds:
        return False
    if "mdat" not in kinds:
        return True
    return kinds.index("moov") < kinds.index("mdat")


def _seconds(value: int | None, time_base: Fraction | None) -> float:
    if value is None or time_base is None:
        return 0.0
    return float(value * time_base)


def probe(path: Path) -> ProbeInfo:
    """Streams, sizes, rates and durations of a media file.

    The video frame count comes from the container index when it has one (MP4
    does) and from counting packets otherwise.  The audio duration is the
    stream's own (after the encoder-delay edit list), not the padded packet sum.
    """
    container: Any = av.open(str(path))
    try:
        duration = (
            float(container.duration) / av.time_base if container.duration is not None else 0.0
        )
        video = container.streams.video[0] if container.streams.video else None
        audio = container.streams.audio[0] if container.streams.audio else None
        width = height = frames = 0
        fps = video_duration = 0.0
        vcodec = ""
        if video is not None:
            cc = video.codec_context
            width, height, vcodec = int(cc.width), int(cc.height), str(cc.name)
            rate = video.average_rate or video.guessed_rate or video.base_rate
            fps = float(rate) if rate else 0.0
            frames = int(video.frames or 0)
            video_duration = _seconds(video.duration, video.time_base)
        arate = channels = 0
        audio_duration = 0.0
        acodec = ""
        if audio is not None:
            cc = audio.codec_context
            arate, channels, acodec = int(cc.sample_rate), int(cc.channels), str(cc.name)
            audio_duration = _seconds(audio.duration, audio.time_base)
        if video is not None and frames == 0:
            frames = sum(1 for p in container.demux(video) if p.size)
        if video is not None and video_duration == 0.0 and fps:
            video_duration = frames / fps
    finally:
        container.close()
    if duration == 0.0:
        duration = max(video_duration, audio_duration)
    return ProbeInfo(
        path=path,
        duration=duration,
        has_video=video is not None,
        width=width,
        height=height,
        fps=fps,
        video_frames=frames,
        video_duration=video_duration,
        video_codec=vcodec,
        has_audio=audio is not None,
        audio_duration=audio_duration,
        audio_rate=arate,
        audio_channels=channels,
        audio_codec=acodec,
        faststart=is_faststart(path) if path.suffix.lower() in {".mp4", ".m4v", ".mov"} else False,
    )


def decode_audio(path: Path) -> tuple[NDArray[np.float32], int]:
    """The first audio stream as float32 (n, channels) and its sample rate.

    The decoder drops the encoder's priming samples but not the padding of the
    last AAC frame; we trim to the stream's declared duration so the result is as
    long as the audio the file actually presents.
    """
    container: Any = av.open(str(path))
    try:
        if not container.streams.audio:
            raise ValueError(f"{path}: no audio stream")
        stream = container.streams.audio[0]
        rate = int(stream.codec_context.sample_rate)
        channels = int(stream.codec_context.channels) or 1
        layout = stream.codec_context.layout.name if channels <= 2 else None
        resampler = av.AudioResampler(format="fltp", layout=layout, rate=rate)
        parts: list[NDArray[np.float32]] = []
        for frame in container.decode(stream):
            for out in resampler.resample(frame):
                parts.append(out.to_ndarray().astype(np.float32, copy=False))
        for out in resampler.resample(None):
            parts.append(out.to_ndarray().astype(np.float32, copy=False))
        declared = _seconds(stream.duration, stream.time_base)
    finally:
        container.close()
    data = np.concatenate(parts, axis=1) if parts else np.zeros((channels, 0), np.float32)
    if declared > 0:
        data = data[:, : round(declared * rate)]
    return np.ascontiguousarray(data.T), rate


def _analysis_size(stream: Any, max_width: int) -> tuple[int, int]:
    width, height = int(stream.codec_context.width), int(stream.codec_context.height)
    if width <= max_width:
        return width, height
    return max_width, max(2, round(height * max_width / width / 2) * 2)


def iter_frames(
    path: Path, every_n: int = 1, *, max_width: int = 320
) -> Iterator[NDArray[np.uint8]]:
    """Yield every ``every_n``-th video frame as RGB, scaled down to ``max_width``.

    The k-th yielded frame is frame ``k * every_n`` of the file.  Scaling happens
    in swscale with a fast bilinear filter while converting from YUV, which costs
    far less than converting at full size and shrinking in NumPy; analysis (luma
    means, frame differences) does not need full resolution.
    """
    if every_n < 1:
        raise ValueError("every_n must be ≥ 1")
    container: Any = av.open(str(path))
    try:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        out_w, out_h = _analysis_size(stream, max_width)
        for index, frame in enumerate(container.decode(stream)):
            if index % every_n:
                continue
            img = frame.reformat(
                width=out_w, height=out_h, format="rgb24", interpolation="FAST_BILINEAR"
            )
            yield img.to_ndarray()
    finally:
        container.close()


def frames_at(
    path: Path, indices: Iterable[int], *, max_width: int = 320
) -> dict[int, NDArray[np.uint8]]:
    """RGB frames (scaled down like :func:`iter_frames`) at the given frame indices.

    Decodes sequentially and converts only the wanted frames: for H.264 with long
    GOPs that is cheaper than seeking, since every seek decodes from the previous
    keyframe anyway.  Indices past the end are absent from the result.
    """
    wanted = sorted({i for i in indices if i >= 0})
    out: dict[int, NDArray[np.uint8]] = {}
    if not wanted:
        return out
    container: Any = av.open(str(path))
    try:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        out_w, out_h = _analysis_size(stream, max_width)
        last = wanted[-1]
        pending = set(wanted)
        for index, frame in enumerate(container.decode(stream)):
            if index in pending:
                img = frame.reformat(
                    width=out_w, height=out_h, format="rgb24", interpolation="FAST_BILINEAR"
                )
                out[index] = img.to_ndarray()
            if index >= last:
                break
    finally:
        container.close()
    return out
