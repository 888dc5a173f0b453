"""A music bed from the user's own audio file (any format PyAV decodes).

The music stage hands the montage a 48 kHz stereo 16-bit WAV exactly as long
as the video; a user's song is rarely that long, so it is looped (with a
short crossfade at the seam) or trimmed, and faded in and out.  Decoding stops
once enough audio is read, so a long file costs no more memory than the video
needs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import av
import numpy as np

from aiprod.production.media.audio import MIX_RATE, Audio, write_wav

FADE_IN = 0.05  # seconds: no click at the start
FADE_OUT = 2.0  # seconds, at most a quarter of the video
SEAM = 0.05  # seconds of crossfade where a loop starts again


def decode_stereo(path: Path, max_seconds: float) -> Audio:
    """The first audio stream as float32 (n, 2) at MIX_RATE, at most `max_seconds` long.
    ValueError for a file without decodable audio."""
    limit = max(1, round(max_seconds * MIX_RATE))
    try:
        container: Any = av.open(str(path))
    except av.error.FFmpegError as exc:
        raise ValueError(f"{path.name}: not a readable audio file ({exc})") from None
    try:
        if not container.streams.audio:
            raise ValueError(f"{path.name}: no audio stream")
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="fltp", layout="stereo", rate=MIX_RATE)
        parts: list[Audio] = []
        have = 0
        try:
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    chunk = out.to_ndarray().astype(np.float32, copy=False)
                    parts.append(chunk)
                    have += chunk.shape[1]
                if have >= limit:
                    break
        except av.error.FFmpegError as exc:
            if not parts:
                raise ValueError(f"{path.name}: audio cannot be decoded ({exc})") from None
    finally:
        container.close()
    if not parts:
        raise ValueError(f"{path.name}: no audio samples")
    data = np.concatenate(parts, axis=1)[:, :limit]
    return np.ascontiguousarray(data.T)


def fit_bed(source: Path, duration: float, out: Path) -> None:
    """Write `source`'s audio as a bed of exactly `duration` seconds to `out`."""
    total = max(1, round(duration * MIX_RATE))
    song = decode_stereo(source, duration)
    if len(song) < total:
        seam = min(round(SEAM * MIX_RATE), len(song) // 4)
        parts = [song]
        have = len(song)
        ramp = np.linspace(0.0, 1.0, seam, dtype=np.float32)[:, None]
        while have < total:
            nxt = song.copy()
            if seam:
                nxt[:seam] *= ramp
                parts[-1] = parts[-1].copy()
                parts[-1][-seam:] *= ramp[::-1]
            parts.append(nxt)
            have += len(nxt)
        song = np.concatenate(parts)
    bed = np.array(song[:total], dtype=np.float32)
    fade_in = min(round(FADE_IN * MIX_RATE), total)
    fade_out = min(round(FADE_OUT * MIX_RATE), total // 4)
    if fade_in:
        bed[:fade_in] *= np.linspace(0.0, 1.0, fade_in, dtype=np.float32)[:, None]
    if fade_out:
        bed[-fade_out:] *= np.linspace(1.0, 0.0, fade_out, dtype=np.float32)[:, None]
    write_wav(out, bed, MIX_RATE)


__all__ = ["decode_stereo", "fit_bed"]
