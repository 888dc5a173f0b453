"""BS.1770-4 loudness against reference values, and normalisation with limiting."""

from __future__ import annotations

import math

import numpy as np
import pytest
from numpy.typing import NDArray

from aiprod.production.media.loudness import (
    integrated_loudness,
    k_weighting,
    normalize,
    true_peak_db,
)

RATE = 48_000


def tone(db: float, seconds: float, freq: float = 1000.0, rate: int = RATE) -> NDArray[np.float64]:
    t = np.arange(round(seconds * rate)) / rate
    return np.asarray(10.0 ** (db / 20.0) * np.sin(2 * np.pi * freq * t))


def stereo(x: NDArray[np.float64]) -> NDArray[np.float64]:
    return np.stack([x, x], axis=1)


def test_k_weighting_matches_the_coefficients_tabled_for_48k() -> None:
    (b1, a1), (b2, a2) = k_weighting(48_000)
    np.testing.assert_allclose(
        b1, [1.53512485958697, -2.69169618940638, 1.19839281085285], atol=1e-8
    )
    np.testing.assert_allclose(a1, [1.0, -1.69065929318241, 0.73248077421585], atol=1e-8)
    np.testing.assert_allclose(b2, [1.0, -2.0, 1.0])
    np.testing.assert_allclose(a2, [1.0, -1.99004745483398, 0.99007225036621], atol=1e-8)


def test_full_scale_997hz_sine_in_one_channel_is_minus_3_01() -> None:
    x = tone(0.0, 5.0, 997.0)
    assert integrated_loudness(np.stack([x, np.zeros_like(x)], axis=1), RATE) == pytest.approx(
        -3.01, abs=0.02
    )
    assert integrated_loudness(stereo(x), RATE) == pytest.approx(0.0, abs=0.02)


@pytest.mark.parametrize("rate", [44_100, 48_000, 96_000])
def test_minus_20_dbfs_1khz_in_both_channels_is_minus_20_at_any_rate(rate: int) -> None:
    assert integrated_loudness(stereo(tone(-20.0, 5.0, rate=rate)), rate) == pytest.approx(
        -20.0, abs=0.05
    )


def test_mono_is_one_channel_not_doubled() -> None:
    assert integrated_loudness(tone(-20.0, 5.0), RATE) == pytest.approx(-23.01, abs=0.05)


def test_surround_channels_are_weighted_and_lfe_ignored() -> None:
    x = tone(-20.0, 4.0)
    z = np.zeros_like(x)
    front = integrated_loudness(np.stack([x, z, z, z, z, z], axis=1), RATE)
    surround = integrated_loudness(np.stack([z, z, z, z, x, z], axis=1), RATE)
    lfe_only = integrated_loudness(np.stack([z, z, z, x, z, z], axis=1), RATE)
    assert surround - front == pytest.approx(10 * math.log10(1.41), abs=0.01)
    assert lfe_only == -math.inf


def test_ebu_tech_3341_gating_cases() -> None:
    # Case 3: -36/-23/-36 dBFS → -23 LUFS (relative gate drops the quiet parts).
    x = np.concatenate([tone(-36, 10), tone(-23, 60), tone(-36, 10)])
    assert integrated_loudness(stereo(x), RATE) == pytest.approx(-23.0, abs=0.1)
    # Case 4: adds -72 dBFS parts, below the absolute gate.
    x = np.concatenate([tone(-72, 10), tone(-36, 10), tone(-23, 60), tone(-36, 10), tone(-72, 10)])
    assert integrated_loudness(stereo(x), RATE) == pytest.approx(-23.0, abs=0.1)


def test_silence_and_gated_silence() -> None:
    assert integrated_loudness(np.zeros((RATE * 3, 2)), RATE) == -math.inf
    assert integrated_loudness(np.zeros(0), RATE) == -math.inf
    # Adding digital silence to a programme does not change its loudness (beyond the
    # few 400 ms blocks that straddle the edges and pass the relative gate).
    x = stereo(tone(-20, 30))
    padded = np.concatenate([np.zeros((RATE * 5, 2)), x, np.zeros((RATE * 5, 2))])
    assert integrated_loudness(padded, RATE) == pytest.approx(integrated_loudness(x, RATE), abs=0.1)


def test_true_peak_sees_inter_sample_overs() -> None:
    # fs/4 sine sampled at 45° phase: samples at ±0.707 of the real peak (1.0).
    n = np.arange(RATE)
    x = np.sin(np.pi / 2 * n + np.pi / 4)
    assert np.abs(x).max() == pytest.approx(0.7071, abs=1e-3)
    assert true_peak_db(x, RATE) == pytest.approx(0.0, abs=0.2)


def test_normalize_quiet_tone_is_plain_gain() -> None:
    x = stereo(tone(-30, 5)).astype(np.float32)
    y = normalize(x, RATE, target=-14.0)
    assert integrated_loudness(y, RATE) == pytest.approx(-14.0, abs=0.05)
    ratio = y[RATE:-RATE] / np.where(x[RATE:-RATE] == 0, 1, x[RATE:-RATE])
    assert np.ptp(ratio[np.abs(x[RATE:-RATE]) > 1e-3]) < 1e-3  # one constant gain
    assert y.dtype == np.float32
    assert y.shape == x.shape


def test_normalize_limits_peaks_and_keeps_loudness() -> None:
    rng = np.random.default_rng(1)
    n = RATE * 10
    x = (rng.standard_normal((n, 2)) * 0.02).astype(np.float32)
    x[:: RATE // 4] = 0.95  # sharp clicks: plain gain to -14 LUFS would clip hard
    y = normalize(x, RATE, target=-14.0, peak_ceiling_db=-1.0)
    assert integrated_loudness(y, RATE) == pytest.approx(-14.0, abs=0.5)
    assert true_peak_db(y, RATE) <= -1.0 + 0.1
    assert np.abs(y).max() <= 10 ** (-1 / 20) + 1e-6
    # The limiter works on the peaks only: between clicks the gain is steady.
    quiet = slice(RATE // 8 - 500, RATE // 8 + 500)
    gain = np.std(y[quiet]) / np.std(x[quiet])
    assert 20 * math.log10(gain) > 5.0


def test_normalize_leaves_silence_alone() -> None:
    x = np.zeros((RATE, 2), np.float32)
    assert np.array_equal(normalize(x, RATE), x)
