"""SynthComposer: exact lengths, levels, determinism, and that it is music (tempo, key)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from aiprod.production.backends.synth import MOODS, SAMPLE_RATE, SynthComposer, render
from aiprod.production.media.audio import read_wav
from aiprod.production.models import MUSIC_MOODS, MusicMood

Audio = NDArray[np.float32]


@cache
def _render(mood: MusicMood, duration: float, seed: int) -> Audio:
    out = render(mood, duration, seed)
    out.setflags(write=False)
    return out


def _onset_envelope(x: Audio, hop: int = 480, win: int = 2048) -> tuple[NDArray[np.float64], float]:
    """Spectral flux of the mono mix: peaks where notes and drums start."""
    mono = x.mean(axis=1).astype(np.float64)
    n = 1 + (len(mono) - win) // hop
    frames = mono[np.arange(win)[None, :] + hop * np.arange(n)[:, None]] * np.hanning(win)
    mag = np.log1p(100 * np.abs(np.fft.rfft(frames, axis=1)))
    flux = np.maximum(np.diff(mag, axis=0), 0).sum(axis=1)
    flux -= np.convolve(flux, np.ones(50) / 50, mode="same")
    return np.maximum(flux, 0), SAMPLE_RATE / hop


def _autocorrelation(env: NDArray[np.float64]) -> NDArray[np.float64]:
    env = env - env.mean()
    ac = np.correlate(env, env, "full")[len(env) - 1 :]
    return np.asarray(ac / ac[0], dtype=np.float64)


def test_backend_identity() -> None:
    composer = SynthComposer()
    assert (composer.name, composer.version) == ("synth", "1")
    assert set(MOODS) == set(MUSIC_MOODS)


@pytest.mark.parametrize("duration", [0.5, 7.3, 12.345])
def test_exact_length_stereo_48k(tmp_path: Path, duration: float) -> None:
    out = tmp_path / "m.wav"
    SynthComposer().compose("uplifting", duration, 0, out)
    samples, rate = read_wav(out)
    assert rate == SAMPLE_RATE == 48_000
    assert samples.shape == (round(duration * 48_000), 2)


@pytest.mark.parametrize("mood", MUSIC_MOODS)
def test_levels_and_stereo(mood: MusicMood) -> None:
    x = _render(mood, 30.0, 1)
    peak = float(np.abs(x).max())
    assert 10 ** (-1.5 / 20) < peak <= 10 ** (-0.9 / 20)  # about -1 dBFS, never over 0
    rms_db = 20 * np.log10(np.sqrt(np.mean(np.square(x, dtype=np.float64))))
    assert -26 < rms_db < -8
    # stereo with some width, but not two unrelated (or phase-inverted) channels
    corr = float(np.corrcoef(x[:, 0], x[:, 1])[0, 1])
    assert 0.3 < corr < 0.995
    # fades: silent at both ends, loud in the middle
    assert np.abs(x[:10]).max() < 0.01
    assert np.abs(x[-10:]).max() < 0.01
    # no long dropouts: every second has sound
    seconds = x[: 30 * SAMPLE_RATE].reshape(30, SAMPLE_RATE, 2)
    assert (np.sqrt((seconds.astype(np.float64) ** 2).mean(axis=(1, 2))) > 0.01).all()


def test_deterministic_per_seed(tmp_path: Path) -> None:
    a, b = tmp_path / "a.wav", tmp_path / "b.wav"
    SynthComposer().compose("playful", 9.0, 42, a)
    SynthComposer().compose("playful", 9.0, 42, b)
    assert a.read_bytes() == b.read_bytes()


def test_seed_and_mood_change_the_music() -> None:
    base = _render("calm", 30.0, 1)
    other_seed = _render("calm", 30.0, 2)
    other_mood = _render("dark", 30.0, 1)
    power = float(np.mean(np.square(base, dtype=np.float64)))
    for other in (other_seed, other_mood):
        diff = float(np.mean(np.square(base.astype(np.float64) - other)))
        assert diff > 0.3 * power
    # the seed varies the arrangement (melody, figure), not the mood's tempo and key
    assert _detected_beat(other_seed) == pytest.approx(_detected_beat(base), rel=0.03)


def _detected_beat(x: Audio, expected: float | None = None) -> float:
    """Beat period in seconds: the autocorrelation peak of the onset envelope.

    Searched from 0.7x to 1.4x the expected period (less than an octave, so a
    half- or double-time reading cannot pass), or over 0.3-1.2 s.
    """
    env, frame_rate = _onset_envelope(x)
    ac = _autocorrelation(env)
    lo, hi = (
        (int(0.7 * expected * frame_rate), int(1.4 * expected * frame_rate) + 1)
        if expected
        else (int(0.3 * frame_rate), int(1.2 * frame_rate))
    )
    lag = lo + int(np.argmax(ac[lo:hi]))
    assert ac[lag] > 0.4, "no clear periodicity"
    assert ac[lag] > float(np.median(ac[lo:hi])) + 0.4
    return lag / frame_rate


@pytest.mark.parametrize("mood", MUSIC_MOODS)
def test_tempo_is_the_moods(mood: MusicMood) -> None:
    beat = 60.0 / MOODS[mood].bpm
    assert _detected_beat(_render(mood, 30.0, 1), beat) == pytest.approx(beat, rel=0.03)


def test_tempos_are_ordered_like_the_moods() -> None:
    measured = {m: _detected_beat(_render(m, 30.0, 1), 60.0 / MOODS[m].bpm) for m in MUSIC_MOODS}
    assert measured["dark"] > measured["calm"] > measured["dramatic"] > measured["corporate"]
    assert measured["corporate"] > measured["uplifting"] > measured["playful"]


def _in_key_fraction(x: Audio, mood: MusicMood) -> float:
    """Share of 80-2000 Hz energy on the pitch classes of the mood's scale."""
    mono = x.mean(axis=1).astype(np.float64)
    power = np.abs(np.fft.rfft(mono)) ** 2
    freqs = np.fft.rfftfreq(len(mono), 1 / SAMPLE_RATE)
    band = (freqs > 80) & (freqs < 2000)
    pitch_class = np.round(69 + 12 * np.log2(freqs[band] / 440)).astype(int) % 12
    chroma = np.bincount(pitch_class, weights=power[band], minlength=12)
    spec = MOODS[mood]
    scale = [(spec.root + s) % 12 for s in spec.scale]
    return float(chroma[scale].sum() / chroma.sum())


@pytest.mark.parametrize("mood", MUSIC_MOODS)
def test_notes_are_in_the_moods_key(mood: MusicMood) -> None:
    # white noise scores 7/12 = 0.58; music in a key puts most energy on its scale
    assert _in_key_fraction(_render(mood, 30.0, 1), mood) > 0.8
    noise = np.random.default_rng(0).standard_normal((SAMPLE_RATE * 5, 2)).astype(np.float32)
    assert _in_key_fraction(noise, mood) < 0.65


def test_five_minutes_render_exact(tmp_path: Path) -> None:
    """Five minutes, to the sample (how fast: bench/music.py)."""
    out = tmp_path / "long.wav"
    SynthComposer().compose("dramatic", 300.0, 3, out)
    samples, rate = read_wav(out)
    assert samples.shape == (300 * 48_000, 2)
    # the bed keeps playing to the end: every 10 s block before the fade is loud
    blocks = samples[: 290 * rate].reshape(29, 10 * rate, 2).astype(np.float64)
    levels = np.sqrt((blocks**2).mean(axis=(1, 2)))
    assert levels.min() > 0.5 * levels.max()


def test_section_joins_are_seamless() -> None:
    """No click where a section repeats: the join looks like the next bar's downbeat."""
    x = _render("corporate", 30.0, 1).astype(np.float64)
    bar = 16 * 60.0 / MOODS["corporate"].bpm / 4 * SAMPLE_RATE
    join = round(8 * bar)
    jumps = np.abs(np.diff(x, axis=0)).max(axis=1)
    at_join = jumps[join - 50 : join + 50].max()
    next_bar = jumps[join + round(bar) - 50 : join + round(bar) + 50].max()
    assert at_join < 1.5 * next_bar


def test_rejects_bad_input(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="mood"):
        SynthComposer().compose("jazzy", 5.0, 0, tmp_path / "x.wav")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="positive"):
        SynthComposer().compose("calm", 0.0, 0, tmp_path / "x.wav")
