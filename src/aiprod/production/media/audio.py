"""WAV I/O and resampling.  Audio travels between stages as 16-bit PCM WAV files;
in memory it is float32 in [-1, 1], shaped (samples,) for mono or (samples, 2)."""

from __future__ import annotations

import wave
from fractions import Fraction
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from scipy.signal import resample_poly

Audio = NDArray[np.float32]

MIX_RATE = 48_000


def read_wav(path: Path) -> tuple[Audio, int]:
    """Return (samples, rate); samples (n,) for mono, (n, channels) otherwise."""
    with wave.open(str(path), "rb") as w:
        if w.getsampwidth() != 2:
            raise ValueError(f"{path}: only 16-bit PCM WAV is supported")
        rate, channels = w.getframerate(), w.getnchannels()
        raw = w.readframes(w.getnframes())
    data = np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0
    if channels > 1:
        data = data.reshape(-1, channels)
    return data, rate


def write_wav(path: Path, samples: Audio, rate: int) -> None:
    """Write float samples as 16-bit PCM, clipping to the valid range."""
    data = np.asarray(samples, dtype=np.float32)
    channels = 1 if data.ndim == 1 else data.shape[1]
    pcm = (np.clip(data, -1.0, 1.0) * 32767.0).round().astype("<i2")
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())


def resample(samples: Audio, rate: int, target: int) -> Audio:
    """Polyphase resampling (anti-aliased) along the first axis."""
    if rate == target:
        return samples
    ratio = Fraction(target, rate)
    out = resample_poly(samples, ratio.numerator, ratio.denominator, axis=0)
    return np.asarray(out, dtype=np.float32)
