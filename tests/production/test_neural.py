"""The neural narrator (hibari-heart) and the builtin router, against the real model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from aiprod.production import backends
from aiprod.production.backends.narrators import BuiltinNarrator, engine_for, speaking_rate
from aiprod.production.backends.neural import (
    RATE_SAMPLE,
    SAMPLE_RATE,
    VOICE_ID,
    NeuralNarrator,
    with_extra_outputs,
)
from aiprod.production.media.audio import read_wav
from aiprod.production.models import Narration, Voice

SENTENCE = "The quick brown fox jumps over the lazy dog."
MIXED = "Dr. Smith paid $3.50 — in 1999! Then: well-known words."
HEART = Voice(name=VOICE_ID)


@pytest.fixture(scope="module")
def narrator() -> NeuralNarrator:
    return NeuralNarrator()


@pytest.fixture(scope="module")
def spoken(narrator: NeuralNarrator, tmp_path_factory: pytest.TempPathFactory) -> Narration:
    return narrator.narrate(SENTENCE, HEART, "en", tmp_path_factory.mktemp("n") / "s.wav")


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if len(x) else 0.0


def _check_timings(result: Narration, text: str) -> None:
    assert [w.text for w in result.words] == text.split()
    starts = [w.start for w in result.words]
    assert starts == sorted(starts)
    for w, nxt in zip(result.words, result.words[1:], strict=False):
        assert 0 <= w.start <= w.end <= nxt.start
    assert result.words[-1].end <= result.duration


def test_writes_mono_16bit_wav_matching_the_result(spoken: Narration) -> None:
    samples, rate = read_wav(spoken.path)
    assert samples.ndim == 1
    assert rate == spoken.sample_rate == SAMPLE_RATE
    assert spoken.duration == pytest.approx(len(samples) / rate, abs=1e-9)
    assert 1.5 < spoken.duration < 5.0


def test_audio_is_speech_at_a_sensible_level(spoken: Narration) -> None:
    samples, _ = read_wav(spoken.path)
    rms_db = 20 * np.log10(_rms(samples))
    assert -35 < rms_db < -10, rms_db
    assert 0.05 < float(np.abs(samples).max()) <= 1.0
    # the silence around the speech is trimmed to a short lead and tail
    assert spoken.words[0].start < 0.15
    assert spoken.duration - spoken.words[-1].end < 0.35


def test_one_timing_per_word_from_the_model(spoken: Narration) -> None:
    _check_timings(spoken, SENTENCE)
    samples, rate = read_wav(spoken.path)
    for w in spoken.words:
        assert w.end > w.start, w  # every word has phonemes, hence frames
        seg = samples[int(w.start * rate) : int(w.end * rate)]
        assert _rms(seg) > 0.01, w
    # the model's durations are whole 25 ms frames; the lead shifts them all alike
    offsets = {round((w.start * 1000) % 25, 1) for w in spoken.words}
    assert len(offsets) == 1, offsets


def test_normalised_text_keeps_the_texts_words(narrator: NeuralNarrator, tmp_path: Path) -> None:
    result = narrator.narrate(MIXED, HEART, "en", tmp_path / "m.wav")
    _check_timings(result, MIXED)
    words = {w.text: w for w in result.words}
    assert words["—"].end == words["—"].start  # said as a pause, not a word
    assert words["1999!"].end - words["1999!"].start > 0.5  # "nineteen ninety-nine"
    assert words["Dr."].end - words["Dr."].start > 0.2  # "Doctor"


def test_deterministic(narrator: NeuralNarrator, tmp_path: Path) -> None:
    a = narrator.narrate(SENTENCE, HEART, "en", tmp_path / "a.wav")
    narrator.narrate("Something else entirely.", HEART, "en", tmp_path / "x.wav")
    b = narrator.narrate(SENTENCE, HEART, "en", tmp_path / "b.wav")
    assert (tmp_path / "a.wav").read_bytes() == (tmp_path / "b.wav").read_bytes()
    assert a.words == b.words


def test_rate_is_honoured(narrator: NeuralNarrator, tmp_path: Path) -> None:
    slow = narrator.narrate(SENTENCE, Voice(name=VOICE_ID, rate=120), "en", tmp_path / "s.wav")
    fast = narrator.narrate(SENTENCE, Voice(name=VOICE_ID, rate=220), "en", tmp_path / "f.wav")
    assert slow.words[-1].end > 1.4 * fast.words[-1].end
    for rate in (120, 165, 220):
        assert speaking_rate(Voice(name=VOICE_ID, rate=rate)) == pytest.approx(rate, rel=0.05)


def test_blank_text_and_wrong_requests(narrator: NeuralNarrator, tmp_path: Path) -> None:
    blank = narrator.narrate("  ", HEART, "en", tmp_path / "b.wav")
    assert blank.words == [] and blank.duration > 0
    with pytest.raises(ValueError, match="English"):
        narrator.narrate(SENTENCE, HEART, "fr", tmp_path / "fr.wav")
    with pytest.raises(ValueError, match="no voice"):
        narrator.narrate(SENTENCE, Voice(name="en-us"), "en", tmp_path / "x.wav")


def test_voice_description(narrator: NeuralNarrator) -> None:
    (info,) = narrator.voices()
    assert info.name == VOICE_ID and Voice(name=info.name).name == VOICE_ID
    assert info.engine == "hibari" and info.sample_rate == SAMPLE_RATE
    assert info.language == "en-US" and info.gender == "female"
    assert "Apache-2.0" in info.licence and not info.any_language


def test_extra_output_edit_keeps_the_model() -> None:
    # A graph-only message: field 7 (graph) holding field 1 (a node name).
    model = b"\x08\x08" + b"\x3a\x03\x0a\x01n"
    edited = with_extra_outputs(model, ["d"])
    assert edited == b"\x08\x08" + b"\x3a\x08\x0a\x01n" + b"\x62\x03\x0a\x01d"
    with pytest.raises(ValueError, match="no graph"):
        with_extra_outputs(b"\x08\x08", ["d"])


def test_builtin_routes_by_voice_and_language(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert backends.DEFAULTS["narrate"] == "builtin"
    assert engine_for(Voice(), "en") == engine_for(Voice(), "en-GB") == "hibari"
    assert engine_for(HEART, "en") == engine_for(Voice(name="HIBARI-HEART"), "en") == "hibari"
    assert engine_for(Voice(), "fr") == engine_for(Voice(name="en-us"), "en") == "espeak"
    assert engine_for(Voice(name="en+f3"), "en") == "espeak"
    # The suite narrates with eSpeak by default (tests/conftest.py); the product does not.
    monkeypatch.setenv("AIPROD_NEURAL_NARRATION", "true")
    builtin = BuiltinNarrator()
    english = builtin.narrate("Good morning.", Voice(), "en", tmp_path / "en.wav")
    french = builtin.narrate("Bonjour.", Voice(), "fr", tmp_path / "fr.wav")
    assert english.sample_rate == SAMPLE_RATE and french.sample_rate == 22050
    voices = builtin.voices()
    assert voices[0].name == VOICE_ID
    assert {v.engine for v in voices} == {"hibari", "espeak"}
    assert all(v.sample_rate and v.licence for v in voices)
    assert "f3" in builtin.variants()


def test_neural_default_can_be_turned_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`neural_narration=false`: the default English voice is eSpeak's (cheap
    hosts), an explicit neural voice still speaks, and the cache key differs."""
    assert engine_for(Voice(), "en", neural_default=False) == "espeak"
    assert engine_for(HEART, "en", neural_default=False) == "hibari"
    monkeypatch.setenv("AIPROD_NEURAL_NARRATION", "false")
    off = BuiltinNarrator()
    monkeypatch.setenv("AIPROD_NEURAL_NARRATION", "true")
    on = BuiltinNarrator()
    assert off.version != on.version
    said = off.narrate("Good morning.", Voice(), "en", tmp_path / "en.wav")
    assert said.sample_rate == 22050  # eSpeak's


def test_speaking_rate_is_measured_per_voice() -> None:
    espeak = speaking_rate(Voice(name="en-us", rate=165))
    assert espeak == pytest.approx(165, rel=0.1)
    assert speaking_rate("en-us") == espeak  # cached, and a name is a default Voice
    assert len(RATE_SAMPLE.split()) == 34
