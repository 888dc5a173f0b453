"""Programme loudness per ITU-R BS.1770-4, and normalisation to a streaming target.

Streaming platforms normalise to about -14 LUFS integrated; delivering at that
level means our videos play neither quieter than their neighbours nor get turned
down (and a turned-down loud master sounds squashed for nothing).  Peak level is a
separate limit: AAC encoding and the DAC's reconstruction overshoot sample peaks,
so we keep an estimate of the *true* (inter-sample) peak below -1 dBFS.

Measurement (BS.1770-4):
  * K-weighting: a high-shelf (+4 dB above ~1.7 kHz, the head's acoustic effect)
    then a high-pass (RLB, ~38 Hz).  The standard lists coefficients for 48 kHz
    only; we derive them for any rate from the analogue prototype the 48 kHz values
    come from (the method used by libebur128), so 44.1 kHz input measures right.
  * Mean square per channel over 400 ms blocks with 75 % overlap.
  * Channel weights 1.0 (L, R, C), 1.41 (surrounds), LFE excluded.
  * Gating: blocks under -70 LUFS are dropped (absolute gate), then blocks more
    than 10 LU below the loudness of the remaining ones (relative gate).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray
from scipy.ndimage import minimum_filter1d
from scipy.signal import lfilter, resample_poly

Audio = NDArray[np.float32]
Float64 = NDArray[np.float64]

ABSOLUTE_GATE_LUFS = -70.0
RELATIVE_GATE_LU = -10.0
BLOCK_SECONDS = 0.4
STEP_SECONDS = 0.1  # 75 % overlap
_FILTER_CHUNK = 1 << 18  # samples filtered at a time (~5 s at 48 kHz)


def k_weighting(rate: int) -> tuple[tuple[Float64, Float64], tuple[Float64, Float64]]:
    """(b, a) of the two K-weighting biquads (shelf, high-pass) for ``rate``.

    At 48 kHz these reproduce the coefficients tabled in BS.1770-4 to ~1e-8.
    """
    # Stage 1: high shelf.
    f0, gain_db, q = 1681.974450955533, 3.999843853973347, 0.7071752369554196
    k = math.tan(math.pi * f0 / rate)
    vh = 10.0 ** (gain_db / 20.0)
    vb = vh**0.4996667741545416
    a0 = 1.0 + k / q + k * k
    shelf_b = np.array(
        [(vh + vb * k / q + k * k) / a0, 2.0 * (k * k - vh) / a0, (vh - vb * k / q + k * k) / a0]
    )
    shelf_a = np.array([1.0, 2.0 * (k * k - 1.0) / a0, (1.0 - k / q + k * k) / a0])
    # Stage 2: RLB high-pass.
    f0, q = 38.13547087602444, 0.5003270373238773
    k = math.tan(math.pi * f0 / rate)
    a0 = 1.0 + k / q + k * k
    hp_b = np.array([1.0, -2.0, 1.0])
    hp_a = np.array([1.0, 2.0 * (k * k - 1.0) / a0, (1.0 - k / q + k * k) / a0])
    return (shelf_b, shelf_a), (hp_b, hp_a)


def channel_weights(channels: int) -> list[float]:
    """BS.1770 weights: 1.0 for front channels, 1.41 for surrounds, 0 for LFE.

    Layouts follow the usual order: 5 channels = L R C Ls Rs; 6 = L R C LFE Ls Rs.
    """
    if channels == 5:
        return [1.0, 1.0, 1.0, 1.41, 1.41]
    if channels == 6:
        return [1.0, 1.0, 1.0, 0.0, 1.41, 1.41]
    return [1.0] * channels


def _as_2d(samples: NDArray[np.floating]) -> NDArray[np.floating]:
    x = np.asarray(samples)
    if x.ndim == 1:
        return x[:, None]
    if x.ndim != 2:
        raise ValueError(f"audio must be (n,) or (n, channels), got shape {x.shape}")
    return x


def block_loudness(samples: NDArray[np.floating], rate: int) -> tuple[Float64, Float64]:
    """Per-block weighted power (sum of G_i * z_ij) and its loudness in LUFS.

    Blocks are 400 ms long every 100 ms; a signal shorter than one block is one
    block over its whole length (the standard leaves that case open, and a
    short sting should still get a number).
    """
    x = _as_2d(samples)
    n, channels = x.shape
    if n == 0:
        empty = np.zeros(0)
        return empty, empty
    (b1, a1), (b2, a2) = k_weighting(rate)
    block = max(1, round(BLOCK_SECONDS * rate))
    step = max(1, round(STEP_SECONDS * rate))
    if n < block:
        starts = np.array([0])
        block = n
    else:
        starts = np.arange(0, n - block + 1, step)
    # Running sums of the K-weighted square at every block edge; filtering in
    # chunks (carrying the filter state) keeps memory flat for long programmes.
    edges = np.unique(np.concatenate((starts, starts + block)))
    power = np.zeros(len(starts))
    for ch, weight in enumerate(channel_weights(channels)):
        if weight == 0.0:
            continue
        at_edge = np.zeros(len(edges))
        z1, z2 = np.zeros(2), np.zeros(2)
        running = 0.0
        for c0 in range(0, n, _FILTER_CHUNK):
            c1 = min(n, c0 + _FILTER_CHUNK)
            seg = x[c0:c1, ch].astype(np.float64)
            seg, z1 = lfilter(b1, a1, seg, zi=z1)
            seg, z2 = lfilter(b2, a2, seg, zi=z2)
            local = np.cumsum(seg * seg)
            local += running
            running = float(local[-1])
            inside = (edges > c0) & (edges <= c1)
            at_edge[inside] = local[edges[inside] - c0 - 1]
        lo = np.searchsorted(edges, starts)
        hi = np.searchsorted(edges, starts + block)
        sums = at_edge[hi] - at_edge[lo]
        power += weight * sums / block
    with np.errstate(divide="ignore"):
        loud = -0.691 + 10.0 * np.log10(np.maximum(power, 0.0))
    return power, loud


def integrated_loudness(samples: NDArray[np.floating], rate: int) -> float:
    """Gated integrated loudness in LUFS; ``-inf`` for silence (everything gated)."""
    power, loud = block_loudness(samples, rate)
    above_abs = loud > ABSOLUTE_GATE_LUFS
    if not above_abs.any():
        return float("-inf")
    relative_gate = -0.691 + 10.0 * math.log10(float(power[above_abs].mean())) + RELATIVE_GATE_LU
    gated = above_abs & (loud > relative_gate)
    return float(-0.691 + 10.0 * math.log10(float(power[gated].mean())))


# --- peaks and limiting -------------------------------------------------------------

OVERSAMPLE = 4
_CHUNK_SECONDS = 1.0
_PAD = 64  # input samples of context for the oversampling filter at chunk edges


def block_true_peaks(samples: NDArray[np.floating], rate: int, block: int) -> Float64:
    """Per-block estimate of the true peak (linear, all channels), 4x oversampled.

    BS.1770-4 Annex 2 estimates inter-sample peaks by 4x oversampling; processing
    in chunks keeps memory flat for long programmes.  The filtering runs in
    float32 on channel-major rows (measured: 3x faster than float64 sample-major
    for 48 kHz stereo; float32's 24-bit mantissa is far finer than the estimate).
    """
    x = np.ascontiguousarray(_as_2d(samples).T, dtype=np.float32)  # (channels, n)
    n = x.shape[1]
    nblocks = -(-n // block)
    peaks = np.zeros(nblocks)
    chunk = max(block, (round(_CHUNK_SECONDS * rate) // block) * block)
    for s in range(0, n, chunk):
        e = min(n, s + chunk)
        lo, hi = max(0, s - _PAD), min(n, e + _PAD)
        up = resample_poly(x[:, lo:hi], OVERSAMPLE, 1, axis=1)
        part = up[:, (s - lo) * OVERSAMPLE : (e - lo) * OVERSAMPLE]
        np.abs(part, out=part)
        seg = part.max(axis=0)
        # Never report less than the sample peak itself.
        seg = np.maximum(seg, np.repeat(np.abs(x[:, s:e]).max(axis=0), OVERSAMPLE))
        count = -(-(e - s) // block)
        padded = np.zeros(count * block * OVERSAMPLE)
        padded[: seg.size] = seg
        peaks[s // block : s // block + count] = padded.reshape(count, -1).max(axis=1)
    return peaks


def true_peak_db(samples: NDArray[np.floating], rate: int) -> float:
    """Estimated true peak in dBFS (``-inf`` for digital silence)."""
    peaks = block_true_peaks(samples, rate, max(1, rate // 10))
    top = float(peaks.max()) if peaks.size else 0.0
    return 20.0 * math.log10(top) if top > 0 else float("-inf")


def limiter_gain(
    samples: NDArray[np.floating],
    rate: int,
    ceiling_db: float,
    *,
    attack_s: float = 0.005,
    release_s: float = 0.12,
) -> Float64:
    """Per-sample gain (≤ 1) of a look-ahead peak limiter holding peaks ≤ ceiling.

    Works on 1 ms blocks so the envelope loop is cheap: the gain each block needs
    is taken as the minimum over the next ``attack_s`` (look-ahead, so the gain is
    already down when the peak arrives), released exponentially with ``release_s``
    and then averaged over the attack window, which turns the drop into a short
    ramp (no click) while still meeting the requirement at the peak itself.
    """
    block = max(1, rate // 1000)
    ceiling = 10.0 ** (ceiling_db / 20.0)
    peaks = block_true_peaks(samples, rate, block)
    need = np.minimum(1.0, ceiling / np.maximum(peaks, 1e-12))
    attack = max(1, round(attack_s * 1000))
    # Look-ahead: the minimum of need over [k, k + attack].
    ahead = minimum_filter1d(need, size=attack + 1, origin=-((attack + 1) // 2))
    rel = 1.0 - math.exp(-1.0 / (release_s * 1000))
    env = np.empty_like(ahead)
    g = 1.0
    for k, target in enumerate(ahead.tolist()):
        g = target if target < g else g + (target - g) * rel
        env[k] = g
    # Causal moving average over the attack window: a ramp that still ends at or
    # below what the peak needs (all its inputs are).
    kernel = np.ones(attack + 1) / (attack + 1)
    smooth = np.convolve(np.concatenate((np.full(attack, env[0]), env)), kernel, "valid")
    per_sample = np.repeat(smooth, block)[: _as_2d(samples).shape[0]]
    return np.asarray(per_sample, dtype=np.float64)


def normalize(
    samples: NDArray[np.floating],
    rate: int,
    target: float = -14.0,
    peak_ceiling_db: float = -1.0,
) -> Audio:
    """Gain ``samples`` to ``target`` LUFS integrated with true peaks ≤ the ceiling.

    A plain gain is used when it keeps peaks under the ceiling.  Otherwise a
    look-ahead limiter catches the peaks; since limiting lowers the loudness a
    little, gain and limiter are iterated a few times so the result lands within
    ±0.5 LU of target.  Silence is returned unchanged (there is nothing to scale).
    The limiter aims 0.3 dB under the ceiling to leave room for the inaccuracy of
    the 4x true-peak estimate, and a final sample clip guarantees the ceiling.
    """
    x = np.asarray(samples, dtype=np.float32)
    loud = integrated_loudness(x, rate)
    if not math.isfinite(loud):
        return x.copy()
    ceiling = 10.0 ** (peak_ceiling_db / 20.0)
    gain_db = target - loud
    out = x * np.float32(10.0 ** (gain_db / 20.0))
    if true_peak_db(out, rate) <= peak_ceiling_db:
        return out
    for _ in range(4):
        scaled = x * np.float32(10.0 ** (gain_db / 20.0))
        g = limiter_gain(scaled, rate, peak_ceiling_db - 0.3)
        out = scaled * (g[:, None] if scaled.ndim == 2 else g).astype(np.float32)
        err = target - integrated_loudness(out, rate)
        if abs(err) < 0.2:
            break
        gain_db += err
    return np.asarray(np.clip(out, -ceiling, ceiling), dtype=np.float32)
