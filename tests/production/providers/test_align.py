"""Forced alignment (`providers.align`): word timings found in speech that
came without them, checked against narrators that know their own timings.

eSpeak NG marks a word where its sound starts; the neural voice (hibari) marks
it where the word's first phoneme starts after the inter-word token, which
lies about 80 ms after the sound onset (measured at words that follow a
pause), so its comparison allows for that.

    .venv/bin/python -m pytest tests/production/providers/test_align.py -k accuracy -s

prints the figures (median and 95th percentile of the word-start error).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from aiprod.production.backends.espeak import EspeakNarrator
from aiprod.production.backends.neural import NeuralNarrator
from aiprod.production.media.audio import read_wav, resample
from aiprod.production.models import Narration, Voice
from aiprod.production.providers import align

TEXTS = [
    "Honeybees collect nectar from flowers, and then they turn it into honey inside the hive.",
    "Rivers carve valleys over thousands of years. Water, sand and stone work together, "
    "slowly and patiently.",
    "Good morning! Today we will learn how volcanoes form, why they erupt, and what "
    "scientists measure to predict them.",
]
OTHER_VOICES = [
    Voice(name="en-us+f3", rate=220, pitch=75),
    Voice(name="en+klatt", rate=130, pitch=30),
    Voice(name="en-gb-x-rp+m3", rate=190),
]


def _render(
    narrator: object, text: str, voice: Voice, out: Path
) -> tuple[Narration, np.ndarray, int]:
    nar: Narration = narrator.narrate(text, voice, "en", out)  # type: ignore[attr-defined]
    samples, rate = read_wav(out)
    return nar, samples, rate


def _errors(tmp_path: Path, narrator: object, voices: list[Voice]) -> np.ndarray:
    found: list[float] = []
    for v in voices:
        for k, text in enumerate(TEXTS):
            nar, samples, rate = _render(narrator, text, v, tmp_path / f"{v.name}-{k}.wav")
            words = align.align(samples, rate, text, "en")
            assert [w.text for w in words] == text.split()
            found += [a.start - b.start for a, b in zip(words, nar.words, strict=True)]
    return np.array(found) * 1000


def _figures(name: str, signed: np.ndarray) -> tuple[float, float]:
    err = np.abs(signed)
    median, p95 = float(np.median(err)), float(np.percentile(err, 95))
    print(
        f"\n{name}: {len(err)} words, word-start error median {median:.0f} ms, "
        f"p95 {p95:.0f} ms, max {err.max():.0f} ms, signed median {np.median(signed):+.0f} ms"
    )
    return median, p95


def test_accuracy_against_espeak_in_other_voices_rates_and_pitches(tmp_path: Path) -> None:
    median, p95 = _figures(
        "eSpeak NG, other voices", _errors(tmp_path, EspeakNarrator(), OTHER_VOICES)
    )
    assert median <= 30 and p95 <= 100


def test_accuracy_against_the_neural_voice(tmp_path: Path) -> None:
    voices = [Voice(name="hibari-heart"), Voice(name="hibari-heart", rate=220)]
    signed = _errors(tmp_path, NeuralNarrator(), voices)
    median, p95 = _figures("hibari (neural)", signed)
    assert median <= 120 and p95 <= 350
    # its timings lag the sound by a steady offset; around it the words are close
    _figures("hibari, less its offset", signed - np.median(signed))
    assert np.median(np.abs(signed - np.median(signed))) <= 60


def test_words_follow_leading_silence_and_a_resampled_rate(tmp_path: Path) -> None:
    text = TEXTS[0]
    nar, samples, rate = _render(EspeakNarrator(), text, OTHER_VOICES[0], tmp_path / "a.wav")
    padded = np.concatenate((np.zeros(rate, np.float32), samples, np.zeros(rate // 2, np.float32)))
    words = align.align(resample(padded, rate, 44_100), 44_100, text, "en")
    errors = [abs(a.start - (b.start + 1.0)) for a, b in zip(words, nar.words, strict=True)]
    assert max(errors) <= 0.1, errors
    assert words[-1].end <= (len(padded) / rate)


def test_a_language_espeak_lacks_is_aligned_as_english(tmp_path: Path) -> None:
    text = "Honeybees collect nectar from flowers."
    nar, samples, rate = _render(EspeakNarrator(), text, OTHER_VOICES[0], tmp_path / "a.wav")
    words = align.align(samples, rate, text, "mul")
    assert max(abs(a.start - b.start) for a, b in zip(words, nar.words, strict=True)) <= 0.1


def test_blank_text_or_silence_gives_no_words() -> None:
    rate = 24_000
    silence = np.zeros(rate, np.float32)
    assert align.align(silence, rate, "Some words here.", "en") == []
    tone = (0.3 * np.sin(np.arange(rate) * 2 * np.pi * 200 / rate)).astype(np.float32)
    assert align.align(tone, rate, "   ", "en") == []


def test_sounding_span_finds_the_speech() -> None:
    rate = 16_000
    x = np.zeros(3 * rate, np.float32)
    x[rate : 2 * rate] = 0.2 * np.sin(np.arange(rate) * 2 * np.pi * 300 / rate)
    lo, hi = align.sounding_span(x, rate)
    assert abs(lo - rate) <= 400 and abs(hi - 2 * rate) <= 400  # within a 25 ms window
    assert align.sounding_span(np.zeros(rate, np.float32), rate) == (0, 0)


def test_warp_recovers_a_known_time_warp() -> None:
    rng = np.random.default_rng(1)
    reference = rng.standard_normal((300, 6)).astype(np.float32)
    # the first 113 frames spoken twice as slowly, the rest three times as fast
    truth = np.concatenate([np.arange(113).repeat(2)[:225], np.arange(113, 300, 3)])
    target = reference[truth] + 0.05 * rng.standard_normal((len(truth), 6)).astype(np.float32)
    path = align.warp(target, reference, band=120, steps=4)
    assert np.all(np.diff(path) >= 0) and path[-1] == 299
    assert np.abs(path - truth).max() <= 3


@pytest.mark.parametrize("n", [0, 1])
def test_warp_of_nothing(n: int) -> None:
    ref = np.ones((5, 3), np.float32)
    assert len(align.warp(np.ones((n, 3), np.float32), ref, band=10, steps=4)) == n
