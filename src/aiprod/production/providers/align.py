"""Word timings for speech a service made without them (forced alignment).

An OpenAI-style ``/audio/speech`` answers with audio only, but subtitles and
scene pacing need to know when each word is spoken.  The method is aeneas's:
the same text is synthesised with eSpeak NG, which reports where each word
starts; both signals become frames of MFCCs (25 ms windows, 10 ms hop);
dynamic time warping finds the cheapest monotonic mapping of the service's
frames onto eSpeak's; and eSpeak's word boundaries are carried through that
mapping onto the service's audio.

The warping is a function ``j(i)``: each frame ``i`` of the service's speech
maps to one frame of eSpeak's, never going back and advancing at most
``steps`` frames at a time (a pause eSpeak makes longer than the service is
skipped; one it makes shorter is waited on).  Every path sums exactly one
cost per service frame, so no path is favoured for its length.  The search
keeps to a band around the diagonal (`BAND_SECONDS`), and eSpeak is asked to
speak at roughly the service's pace first, so the band and the step limit
hold: a 20 s scene aligns in a few tens of milliseconds.

Only the sounding part of each signal is aligned (leading and trailing
silence cut away first), so a service that pads its audio does not shift the
words.  When eSpeak cannot read the language the text is aligned as English
(eSpeak reads any text with English rules), which still finds the words.
"""

from __future__ import annotations

import functools
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from scipy.fft import dct

from aiprod.production.media.audio import read_wav, resample
from aiprod.production.models import Voice, WordTiming

RATE = 16_000
"""Both signals are compared at this rate (speech needs no more)."""
HOP = 160  # 10 ms
WINDOW = 400  # 25 ms
N_FFT = 512
N_MELS = 40
N_MFCC = 13  # c0 (loudness) is dropped: the two voices differ in level, not in sounds
HOP_SECONDS = HOP / RATE
DITHER = 0.003
"""White noise added (relative to the peak) so that both voices' silences look
alike: eSpeak's are digital zeros, a service's are faint noise."""
ENERGY_WEIGHT = 1.0
"""Weight of the frame's level (dB under the loud frames, /20) beside the
MFCCs: pauses must meet pauses."""
PENALTY = 2.0
"""Cost of a warping step that is not one-to-one (keeps the path from
wandering where the voices differ)."""

BAND_SECONDS = 3.0
"""How far (at least) from the diagonal the warping path may stray."""
BAND_SHARE = 0.15
"""... or this share of the reference's length, whichever is more."""
REFERENCE_RATE = 175  # eSpeak's words per minute before matching the service's pace
_PACE_TOLERANCE = 1.2  # re-synthesise eSpeak when the paces differ by more than this

_TOKEN = re.compile(r"\S+")


@dataclass(frozen=True)
class Reference:
    """eSpeak's rendering of a text: samples at `RATE` and its word timings."""

    samples: NDArray[np.float32]
    words: list[WordTiming]


def _espeak(text: str, language: str, rate: int) -> Reference:
    from aiprod.production import backends

    narrator = backends.get("narrate", "espeak")
    voice = Voice(rate=max(80, min(400, rate)))
    with tempfile.TemporaryDirectory(prefix="aiprod-align-") as tmp:
        out = Path(tmp) / "reference.wav"
        try:
            nar = narrator.narrate(text, voice, language, out)
        except ValueError:  # no eSpeak voice for this language: read it as English
            nar = narrator.narrate(text, voice, "en", out)
        samples, rate_hz = read_wav(out)
    return Reference(resample(samples, rate_hz, RATE), nar.words)


@functools.lru_cache(maxsize=1)
def _mel_bank() -> NDArray[np.float32]:
    """Triangular filters (N_MELS, N_FFT // 2 + 1) evenly spaced in mels, 60-7600 Hz."""
    top = 2595.0 * np.log10(1.0 + 7600.0 / 700.0)
    bottom = 2595.0 * np.log10(1.0 + 60.0 / 700.0)
    edges = 700.0 * (10.0 ** (np.linspace(bottom, top, N_MELS + 2) / 2595.0) - 1.0)
    freqs = np.fft.rfftfreq(N_FFT, 1.0 / RATE)
    bank = np.zeros((N_MELS, len(freqs)), dtype=np.float32)
    for b in range(N_MELS):
        lo, mid, hi = edges[b], edges[b + 1], edges[b + 2]
        rising = (freqs - lo) / (mid - lo)
        falling = (hi - freqs) / (hi - mid)
        bank[b] = np.maximum(0.0, np.minimum(rising, falling))
    return bank


def frames(
    samples: NDArray[np.float32], hop: int = HOP, window: int = WINDOW
) -> NDArray[np.float32]:
    """Frames (n, window) every `hop` samples, the last ones zero-padded."""
    n = max(1, 1 + -(-max(0, len(samples) - window) // hop))
    padded = np.zeros((n - 1) * hop + window, dtype=np.float32)
    padded[: len(samples)] = samples[: len(padded)]
    idx = np.arange(window)[None, :] + hop * np.arange(n)[:, None]
    framed: NDArray[np.float32] = padded[idx]
    return framed


def mfcc(samples: NDArray[np.float32]) -> NDArray[np.float32]:
    """MFCCs c1..c12 of each 10 ms frame, normalised per coefficient over the
    signal (cepstral mean and variance normalisation: the two voices' timbres
    and channels differ; their sounds' shapes do not)."""
    peak = float(np.max(np.abs(samples), initial=0.0)) or 1.0
    noise = np.random.default_rng(0).standard_normal(len(samples)).astype(np.float32)
    dithered = samples / peak + DITHER * noise
    emphasised = np.append(dithered[:1], dithered[1:] - 0.97 * dithered[:-1]).astype(np.float32)
    windowed = frames(emphasised) * np.hamming(WINDOW).astype(np.float32)
    power = np.abs(np.fft.rfft(windowed, N_FFT)) ** 2
    mel = np.log(power @ _mel_bank().T + 1e-10)
    ceps = np.asarray(dct(mel, type=2, norm="ortho", axis=1)[:, 1:N_MFCC], dtype=np.float32)
    ceps -= ceps.mean(axis=0)
    ceps /= ceps.std(axis=0) + 1e-6
    level = np.log10(np.sum(power, axis=1) + 1e-10) * 10.0
    level = (level - np.percentile(level, 95)) / 20.0
    return np.concatenate((ceps, ENERGY_WEIGHT * level[:, None].astype(np.float32)), axis=1)


def sounding_span(samples: NDArray[np.float32], rate: int = RATE) -> tuple[int, int]:
    """(first, last + 1) sample of the part that sounds: 10 ms frames within
    35 dB of the loud ones (the 95th percentile).  (0, 0) for silence."""
    hop = max(1, round(rate * HOP_SECONDS))
    window = max(hop, round(rate * WINDOW / RATE))
    energy = np.sqrt(np.mean(np.square(frames(samples, hop, window)), axis=1))
    if not len(energy) or float(energy.max()) < 1e-4:
        return 0, 0
    floor = max(1e-4, float(np.percentile(energy, 95)) * 10 ** (-35 / 20))
    loud = np.flatnonzero(energy > floor)
    return int(loud[0]) * hop, min(len(samples), int(loud[-1]) * hop + window)


def _banded_costs(
    target: NDArray[np.float32],
    reference: NDArray[np.float32],
    starts: NDArray[np.int64],
    width: int,
) -> NDArray[np.float32]:
    """Euclidean distances of target frame ``i`` to reference frames
    ``starts[i] + k`` (k < `width`); infinite outside the reference."""
    n, m = len(target), len(reference)
    costs = np.empty((n, width), dtype=np.float32)
    offsets = np.arange(width)
    ref_sq = np.einsum("ij,ij->i", reference, reference)
    tgt_sq = np.einsum("ij,ij->i", target, target)
    chunk = max(1, 2_000_000 // (width * reference.shape[1]))  # ~8 MB of gathered frames
    for lo in range(0, n, chunk):
        hi = min(n, lo + chunk)
        cols = starts[lo:hi, None] + offsets[None, :]
        safe = np.clip(cols, 0, m - 1)
        dots = np.einsum("rkd,rd->rk", reference[safe], target[lo:hi])
        sq = ref_sq[safe] - 2.0 * dots + tgt_sq[lo:hi, None]
        block = np.sqrt(np.maximum(sq, 0.0))
        block[(cols < 0) | (cols >= m)] = np.inf
        costs[lo:hi] = block
    return costs


def warp(
    target: NDArray[np.float32], reference: NDArray[np.float32], band: int, steps: int
) -> NDArray[np.int64]:
    """The reference frame of each target frame: the monotonic path ``j(i)``
    from the first frames to the last reference frame, advancing 0..`steps`
    reference frames per target frame (any advance but 1 costs `PENALTY`),
    within `band` frames of the diagonal, that minimises the summed distances
    of the frames it pairs (one per target frame)."""
    n, m = len(target), len(reference)
    if n == 0 or m == 0:
        return np.zeros(n, dtype=np.int64)
    band = min(band, max(n, m))
    width = 2 * band + 1
    starts = np.round(np.arange(n) * ((m - 1) / max(1, n - 1))).astype(np.int64) - band
    costs = _banded_costs(target, reference, starts, width)
    penalty = np.full((steps + 1, 1), PENALTY, dtype=np.float32)
    penalty[1] = 0.0
    back = np.zeros((n, width), dtype=np.uint8)
    offsets = np.arange(width)
    # The previous row, padded so that every candidate is a plain slice: index
    # `steps + x` holds column x of the previous row (infinite beyond it).
    shift = int(np.max(np.diff(starts), initial=0))
    padded = np.full(steps + width + shift + 1, np.inf, dtype=np.float32)
    options = np.empty((steps + 1, width), dtype=np.float32)
    row = np.where(starts[0] + offsets <= steps, costs[0], np.inf).astype(np.float32)
    for i in range(1, n):
        padded[steps : steps + width] = row
        delta = int(starts[i] - starts[i - 1])
        for s in range(steps + 1):  # advancing s frames: from column k + delta - s
            options[s] = padded[steps + delta - s : steps + delta - s + width]
        options += penalty
        choice = np.argmin(options, axis=0)
        back[i] = choice
        row = costs[i] + options[choice, offsets]
    k = (m - 1) - int(starts[n - 1])
    if not 0 <= k < width or not np.isfinite(row[k]):
        k = int(np.argmin(row))
    path = np.empty(n, dtype=np.int64)
    for i in range(n - 1, -1, -1):
        path[i] = starts[i] + k
        if i:
            k += int(starts[i] - starts[i - 1]) - int(back[i, k])
    return np.clip(path, 0, m - 1)


def _band_and_steps(n: int, m: int) -> tuple[int, int]:
    band = max(round(BAND_SECONDS / HOP_SECONDS), round(BAND_SHARE * max(n, m)))
    steps = max(4, int(np.ceil(2.5 * m / max(1, n))))
    return band, steps


def align(samples: NDArray[np.float32], rate: int, text: str, language: str) -> list[WordTiming]:
    """One timing per whitespace-separated token of `text`, in seconds from
    the start of `samples` (mono, at `rate`), found by aligning an eSpeak NG
    rendering of the text to them.  Empty for blank text or silent audio."""
    tokens = _TOKEN.findall(text)
    audio = resample(np.asarray(samples, dtype=np.float32), rate, RATE)
    lo, hi = sounding_span(audio)
    if not tokens or hi <= lo:
        return []
    spoken = audio[lo:hi]
    ref = _espeak(text, language, REFERENCE_RATE)
    r_lo, r_hi = sounding_span(ref.samples)
    if r_hi <= r_lo or not ref.words:
        return _even(tokens, lo / RATE, hi / RATE)
    pace = (r_hi - r_lo) / len(spoken)  # > 1: eSpeak is slower than the service
    if not 1 / _PACE_TOLERANCE < pace < _PACE_TOLERANCE:
        ref = _espeak(text, language, round(REFERENCE_RATE * pace))
        r_lo, r_hi = sounding_span(ref.samples)
        if r_hi <= r_lo or not ref.words:
            return _even(tokens, lo / RATE, hi / RATE)
    target = mfcc(spoken)
    reference = mfcc(ref.samples[r_lo:r_hi])
    band, steps = _band_and_steps(len(target), len(reference))
    path = warp(target, reference, band, steps)
    r_shift = r_lo / RATE

    def carry(t: float) -> float:
        frame = round((t - r_shift) / HOP_SECONDS)
        i = int(np.searchsorted(path, frame, side="left"))
        return lo / RATE + min(i, len(path)) * HOP_SECONDS

    end_of_speech = hi / RATE
    starts = [carry(w.start) for w in ref.words]
    ends = [carry(w.end) for w in ref.words]
    words: list[WordTiming] = []
    for k, token in enumerate(tokens):
        if k >= len(starts):  # eSpeak split the text otherwise (never seen): stretch the last
            start = end = end_of_speech
        else:
            start = starts[k]
            end = min(ends[k], starts[k + 1] if k + 1 < len(starts) else end_of_speech)
        start = max(start, words[-1].start if words else 0.0)
        end = min(max(end, start), end_of_speech)
        words.append(WordTiming(text=token, start=round(start, 4), end=round(end, 4)))
    return words


def _even(tokens: list[str], start: float, end: float) -> list[WordTiming]:
    """Timings shared out by characters over the sounding span (when eSpeak
    gives nothing to align with)."""
    lengths = np.array([len(t) + 1 for t in tokens], dtype=np.float64)
    edges = start + (end - start) * np.concatenate(([0.0], np.cumsum(lengths))) / lengths.sum()
    return [
        WordTiming(text=t, start=round(float(edges[k]), 4), end=round(float(edges[k + 1]), 4))
        for k, t in enumerate(tokens)
    ]


__all__ = ["align", "mfcc", "sounding_span", "warp"]
