"""Decode an upload once, under limits, before anything keeps it.

A file that passes is one the engine can read: an image Pillow verifies and
loads whole (after its declared size is checked against the pixel cap, so a
decompression bomb is refused before a single row is inflated), or a clip or
song FFmpeg opens with the one demuxer its magic bytes name and decodes the
first frames of, with its dimensions and duration within bounds.  Everything
else raises `BadMedia` with a reason fit to show the uploader.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
from PIL import Image

from aiprod.jobs.uploads.formats import Kind, Sniffed

VIDEO_FRAMES = 3  # decoded from a clip: enough to prove the codec works
AUDIO_SECONDS = 1.0  # decoded from a song
PACKET_SCAN = 200_000  # packets read to find a duration the header does not state

_PATH = re.compile(r"'?/[^\s']+'?")
_PILLOW_FORMATS = {"image/png": "PNG", "image/jpeg": "JPEG", "image/webp": "WEBP"}


class BadMedia(ValueError):
    """The upload is not a readable file of its type, or exceeds a limit."""


@dataclass(frozen=True)
class Limits:
    max_pixels: int
    max_dimension: int
    max_seconds: float


@dataclass(frozen=True)
class MediaInfo:
    kind: Kind
    content_type: str
    width: int | None = None
    height: int | None = None
    duration: float | None = None


def inspect(path: Path, sniffed: Sniffed, limits: Limits) -> MediaInfo:
    """What the file is; BadMedia when it cannot be decoded or is out of bounds."""
    if sniffed.family == "image":
        return _image(path, sniffed, limits)
    return _av(path, sniffed, limits)


def _image(path: Path, sniffed: Sniffed, limits: Limits) -> MediaInfo:
    expected = _PILLOW_FORMATS[sniffed.content_type]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path, formats=[expected]) as im:
                width, height = im.size
                _check_pixels(width, height, limits)
                im.verify()
            with Image.open(path, formats=[expected]) as im:
                im.load()
    except BadMedia:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise BadMedia("the image decompresses to too many pixels") from None
    except Exception as exc:  # Pillow raises many kinds for a broken file
        raise BadMedia(f"the image cannot be decoded ({_reason(exc)})") from None
    return MediaInfo("image", sniffed.content_type, width, height)


def _check_pixels(width: int, height: int, limits: Limits) -> None:
    if width <= 0 or height <= 0:
        raise BadMedia("the image has no pixels")
    if width * height > limits.max_pixels:
        raise BadMedia(
            f"the image is {width}x{height} ({width * height} pixels); "
            f"at most {limits.max_pixels} pixels are accepted"
        )


def _av(path: Path, sniffed: Sniffed, limits: Limits) -> MediaInfo:
    try:
        container: Any = av.open(str(path), format=sniffed.demuxer)
    except Exception as exc:
        raise BadMedia(f"the file cannot be opened ({_reason(exc)})") from None
    try:
        video = container.streams.video[0] if container.streams.video else None
        audio = container.streams.audio[0] if container.streams.audio else None
        if sniffed.family == "audio":
            video = None  # cover art in an MP3/FLAC is not a clip
        if video is not None:
            return _video(container, video, sniffed, limits)
        if audio is not None:
            return _audio(container, audio, sniffed, limits)
        raise BadMedia("the file has no video or audio stream")
    except BadMedia:
        raise
    except Exception as exc:
        raise BadMedia(f"the file cannot be decoded ({_reason(exc)})") from None
    finally:
        container.close()


def _video(container: Any, stream: Any, sniffed: Sniffed, limits: Limits) -> MediaInfo:
    width, height = int(stream.codec_context.width), int(stream.codec_context.height)
    if width <= 0 or height <= 0:
        raise BadMedia("the video has no picture size")
    if max(width, height) > limits.max_dimension:
        raise BadMedia(
            f"the video is {width}x{height}; at most {limits.max_dimension} pixels "
            "a side are accepted"
        )
    duration = _duration(container, stream, limits)
    decoded = 0
    for frame in container.decode(stream):
        if (frame.width, frame.height) != (width, height):
            raise BadMedia("the video's frames do not match its declared size")
        decoded += 1
        if decoded >= VIDEO_FRAMES:
            break
    if decoded == 0:
        raise BadMedia("the video has no decodable frame")
    return MediaInfo("video", sniffed.content_type, width, height, duration)


def _audio(container: Any, stream: Any, sniffed: Sniffed, limits: Limits) -> MediaInfo:
    duration = _duration(container, stream, limits)
    rate = int(stream.codec_context.sample_rate or 0)
    if rate <= 0:
        raise BadMedia("the audio has no sample rate")
    samples = 0
    for frame in container.decode(stream):
        samples += int(frame.samples)
        if samples >= AUDIO_SECONDS * rate:
            break
    if samples == 0:
        raise BadMedia("the audio has no decodable samples")
    content_type = sniffed.audio_type or sniffed.content_type
    return MediaInfo("audio", content_type, None, None, duration)


def _duration(container: Any, stream: Any, limits: Limits) -> float:
    """The stream's duration in seconds (from the header, else from the last
    packet's time); BadMedia when it is unknown or over the cap."""
    seconds = 0.0
    if stream.duration is not None and stream.time_base is not None:
        seconds = float(stream.duration * Fraction(stream.time_base))
    elif container.duration is not None:
        seconds = container.duration / av.time_base
    else:
        for i, packet in enumerate(container.demux(stream)):
            if packet.pts is not None and packet.time_base is not None:
                end = packet.pts + (packet.duration or 0)
                seconds = max(seconds, float(end * Fraction(packet.time_base)))
            if seconds > limits.max_seconds or i >= PACKET_SCAN:
                break
        container.seek(0)
    if seconds <= 0:
        raise BadMedia("the file does not say how long it is")
    if seconds > limits.max_seconds:
        raise BadMedia(
            f"the file lasts {seconds:.0f} s; at most {limits.max_seconds:g} s are accepted"
        )
    return round(seconds, 3)


def _reason(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    # Decoders name the path they were given: the scratch folder is not the user's business.
    return _PATH.sub("<upload>", text)[:200]


__all__ = ["BadMedia", "Limits", "MediaInfo", "inspect"]
