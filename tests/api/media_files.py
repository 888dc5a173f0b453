"""Tiny real media files made in memory for the upload tests: pictures with
Pillow, clips and songs with PyAV, a decompression bomb by hand."""

from __future__ import annotations

import io
import struct
import wave
import zlib
from fractions import Fraction

import av
import numpy as np
from PIL import Image

RGB = tuple[int, int, int]


def image(fmt: str = "PNG", size: tuple[int, int] = (64, 48), color: RGB = (220, 40, 160)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format=fmt)
    return buf.getvalue()


def video(
    fmt: str = "mp4",
    size: tuple[int, int] = (64, 48),
    frames: int = 12,
    color: RGB = (40, 200, 90),
    codec: str = "libx264",
) -> bytes:
    buf = io.BytesIO()
    with av.open(buf, "w", format=fmt) as out:
        stream = out.add_stream(codec, rate=12)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        pixels = np.full((size[1], size[0], 3), color, dtype=np.uint8)
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            frame.pts = i
            frame.time_base = Fraction(1, 12)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buf.getvalue()


def tone(seconds: float = 1.0, rate: int = 48_000, freq: float = 440.0) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def wav(seconds: float = 1.0, freq: float = 440.0) -> bytes:
    pcm = (tone(seconds, freq=freq) * 32767).astype("<i2")
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(48_000)
        w.writeframes(pcm.tobytes())
    return buf.getvalue()


def audio(fmt: str, codec: str, seconds: float = 1.0, rate: int = 48_000) -> bytes:
    """A tone encoded with `codec` in container `fmt` (mp3, ipod = .m4a, ogg, flac)."""
    buf = io.BytesIO()
    samples = tone(seconds, rate)
    with av.open(buf, "w", format=fmt) as out:
        stream = out.add_stream(codec, rate=rate, layout="mono")
        size = stream.codec_context.frame_size or 1024
        fmt_name = stream.codec_context.format.name
        pos = 0
        while pos < len(samples):
            chunk = samples[pos : pos + size]
            if fmt_name.startswith("s16"):
                data = (chunk * 32767).astype(np.int16)[None, :]
                layout_fmt = "s16p" if fmt_name.endswith("p") else "s16"
            else:
                data = chunk[None, :]
                layout_fmt = "fltp" if fmt_name.endswith("p") else "flt"
            frame = av.AudioFrame.from_ndarray(data, format=layout_fmt, layout="mono")
            frame.sample_rate = rate
            frame.pts = pos
            frame.time_base = Fraction(1, rate)
            for packet in stream.encode(frame):
                out.mux(packet)
            pos += size
        for packet in stream.encode(None):
            out.mux(packet)
    return buf.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bomb(side: int = 20_000) -> bytes:
    """A valid 1-bit grayscale PNG of side x side pixels, all black: a few
    tens of kilobytes that inflate to side² pixels."""
    row = b"\x00" + b"\x00" * ((side + 7) // 8)
    z = zlib.compressobj(9)
    parts = [z.compress(row * 1000) for _ in range(side // 1000)]
    parts.append(z.compress(row * (side % 1000)))
    parts.append(z.flush())
    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", ihdr)
        + _chunk(b"IDAT", b"".join(parts))
        + _chunk(b"IEND", b"")
    )
