"""EspeakNarrator against the real eSpeak NG library: audio, word timings, voices."""

from __future__ import annotations

import multiprocessing
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from aiprod.production.backends.espeak import EMPTY_SECONDS, EspeakNarrator
from aiprod.production.media.audio import read_wav
from aiprod.production.models import Narration, Voice

SENTENCE = "The quick brown fox jumps over the lazy dog near the quiet river."
MIXED = "Hello world, it's 1999 — a well-known café. Dr. Smith paid $3.50! Then: nothing."


@pytest.fixture(scope="module")
def narrator() -> EspeakNarrator:
    return EspeakNarrator()


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if len(x) else 0.0


def test_version_names_the_library(narrator: EspeakNarrator) -> None:
    assert narrator.name == "espeak"
    assert "espeak-ng-1." in narrator.version


def test_writes_mono_16bit_wav_matching_the_result(
    narrator: EspeakNarrator, tmp_path: Path
) -> None:
    out = tmp_path / "n.wav"
    result = narrator.narrate(SENTENCE, Voice(), "en", out)
    samples, rate = read_wav(out)
    assert samples.ndim == 1
    assert rate == result.sample_rate == 22050
    assert result.duration == pytest.approx(len(samples) / rate, abs=1e-9)
    assert 2.0 < result.duration < 8.0
    assert result.path == out


def test_duration_scales_with_text_length(narrator: EspeakNarrator, tmp_path: Path) -> None:
    one = narrator.narrate(SENTENCE, Voice(), "en", tmp_path / "1.wav").duration
    three = narrator.narrate(" ".join([SENTENCE] * 3), Voice(), "en", tmp_path / "3.wav").duration
    assert 2.4 < three / one < 3.4


def test_faster_rate_is_shorter(narrator: EspeakNarrator, tmp_path: Path) -> None:
    slow = narrator.narrate(SENTENCE, Voice(rate=120), "en", tmp_path / "s.wav")
    fast = narrator.narrate(SENTENCE, Voice(rate=240), "en", tmp_path / "f.wav")
    assert slow.duration > 1.5 * fast.duration
    # the words stretch with it, not just trailing silence
    assert slow.words[-1].start > 1.5 * fast.words[-1].start


def _check_timings(result: Narration, text: str) -> None:
    assert [w.text for w in result.words] == text.split()
    starts = [w.start for w in result.words]
    assert starts == sorted(starts)
    assert starts[0] < 0.2
    for w, nxt in zip(result.words, result.words[1:], strict=False):
        assert w.start <= w.end <= nxt.start
    assert 0 <= result.words[-1].end <= result.duration


def test_one_monotonic_timing_per_word(narrator: EspeakNarrator, tmp_path: Path) -> None:
    result = narrator.narrate(MIXED, Voice(), "en", tmp_path / "m.wav")
    _check_timings(result, MIXED)
    # eSpeak speaks "1999" as several words and "—" as none; timings follow the text
    year = result.words[3]
    assert year.text == "1999"
    assert year.end - year.start > 0.8


def test_speech_is_where_the_words_are(narrator: EspeakNarrator, tmp_path: Path) -> None:
    out = tmp_path / "w.wav"
    result = narrator.narrate(SENTENCE, Voice(), "en", out)
    samples, rate = read_wav(out)
    for w in result.words:
        seg = samples[int(w.start * rate) : int(w.end * rate)]
        assert _rms(seg) > 0.02, w
    tail = samples[int(result.words[-1].end * rate) :]
    assert _rms(tail) < 0.005
    # the trailing silence is trimmed to a short tail
    assert result.duration - result.words[-1].end < 0.3


def test_pause_after_a_sentence_is_not_part_of_the_word(
    narrator: EspeakNarrator, tmp_path: Path
) -> None:
    result = narrator.narrate(
        "First sentence here. Second one follows.", Voice(), "en", tmp_path / "p.wav"
    )
    here, second = result.words[2], result.words[3]
    assert second.start - here.end > 0.1  # the full stop's pause is a gap between words


def test_deterministic_even_after_other_voices(narrator: EspeakNarrator, tmp_path: Path) -> None:
    a = narrator.narrate(MIXED, Voice(rate=180, pitch=40), "en", tmp_path / "a.wav")
    narrator.narrate("Guten Tag.", Voice(name="de", rate=300, pitch=90), "de", tmp_path / "x.wav")
    b = narrator.narrate(MIXED, Voice(rate=180, pitch=40), "en", tmp_path / "b.wav")
    assert (tmp_path / "a.wav").read_bytes() == (tmp_path / "b.wav").read_bytes()
    assert a.words == b.words


@pytest.mark.parametrize("name", ["en+f3", "en+klatt"])
def test_variants_with_noise_and_klatt_are_deterministic(
    narrator: EspeakNarrator, tmp_path: Path, name: str
) -> None:
    # breathy variants use eSpeak's random generator, Klatt ones their own filter state
    voice = Voice(name=name)
    narrator.narrate(SENTENCE, voice, "en", tmp_path / "a.wav")
    narrator.narrate(MIXED, Voice(name="en+klatt3", rate=250), "en", tmp_path / "x.wav")
    narrator.narrate(SENTENCE, voice, "en", tmp_path / "b.wav")
    assert (tmp_path / "a.wav").read_bytes() == (tmp_path / "b.wav").read_bytes()


def test_same_audio_as_a_fresh_process(narrator: EspeakNarrator, tmp_path: Path) -> None:
    assert narrator.deterministic
    narrator.narrate(MIXED, Voice(name="de"), "en", tmp_path / "warmup.wav")
    here = narrator.narrate(SENTENCE, Voice(rate=190), "en", tmp_path / "here.wav")
    script = (
        "import sys; from pathlib import Path; "
        "from aiprod.production.backends.espeak import EspeakNarrator; "
        "from aiprod.production.models import Voice; "
        "EspeakNarrator().narrate(sys.argv[1], Voice(rate=190), 'en', Path(sys.argv[2]))"
    )
    there = tmp_path / "there.wav"
    subprocess.run([sys.executable, "-c", script, SENTENCE, str(there)], check=True)
    assert here.path.read_bytes() == there.read_bytes()


def _narrate_in_child(out: str) -> None:
    EspeakNarrator().narrate(SENTENCE, Voice(rate=190), "en", Path(out))


def test_forked_worker_inherits_a_working_engine(narrator: EspeakNarrator, tmp_path: Path) -> None:
    # job workers may fork after the parent has narrated: same engine, same audio
    here = narrator.narrate(SENTENCE, Voice(rate=190), "en", tmp_path / "parent.wav")
    child = multiprocessing.get_context("fork").Process(
        target=_narrate_in_child, args=(str(tmp_path / "child.wav"),)
    )
    child.start()
    child.join(30)
    assert child.exitcode == 0
    assert (tmp_path / "child.wav").read_bytes() == here.path.read_bytes()


def test_pitch_changes_the_audio(narrator: EspeakNarrator, tmp_path: Path) -> None:
    low = narrator.narrate(SENTENCE, Voice(pitch=10), "en", tmp_path / "l.wav")
    high = narrator.narrate(SENTENCE, Voice(pitch=90), "en", tmp_path / "h.wav")
    assert low.path.read_bytes() != high.path.read_bytes()


def test_concurrent_calls_are_serialised(narrator: EspeakNarrator, tmp_path: Path) -> None:
    texts = [SENTENCE, MIXED, "Bonjour à tous.", "One two three four five."]
    voices = [Voice(), Voice(rate=200), Voice(name="fr"), Voice(pitch=70)]
    expected = [
        narrator.narrate(t, v, "en", tmp_path / f"seq{i}.wav").words
        for i, (t, v) in enumerate(zip(texts, voices, strict=True))
    ]
    got: dict[int, Narration] = {}

    def work(i: int) -> None:
        got[i] = narrator.narrate(texts[i], voices[i], "en", tmp_path / f"par{i}.wav")

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(texts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(len(texts)):
        assert got[i].words == expected[i]
        assert (tmp_path / f"par{i}.wav").read_bytes() == (tmp_path / f"seq{i}.wav").read_bytes()


def test_language_selects_the_voice(narrator: EspeakNarrator, tmp_path: Path) -> None:
    text = "Bonjour à tous, ceci est un essai de la voix française."
    fr = narrator.narrate(text, Voice(), "fr", tmp_path / "fr.wav")
    en = narrator.narrate(text, Voice(), "en", tmp_path / "en.wav")
    _check_timings(fr, text)
    assert fr.path.read_bytes() != en.path.read_bytes()
    samples, _ = read_wav(fr.path)
    assert _rms(samples) > 0.02


def test_german_voice_by_name(narrator: EspeakNarrator, tmp_path: Path) -> None:
    text = "Guten Tag, wie geht es Ihnen heute?"
    de = narrator.narrate(text, Voice(name="de"), "de", tmp_path / "de.wav")
    _check_timings(de, text)
    samples, _ = read_wav(de.path)
    assert _rms(samples) > 0.02


def test_region_falls_back_to_language(narrator: EspeakNarrator, tmp_path: Path) -> None:
    a = narrator.narrate("Guten Tag.", Voice(), "de-AT", tmp_path / "a.wav")
    b = narrator.narrate("Guten Tag.", Voice(), "de", tmp_path / "b.wav")
    assert a.path.read_bytes() == b.path.read_bytes()


def test_unknown_voice_raises(narrator: EspeakNarrator, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"no voice 'zz-nope'.*aiprod voices"):
        narrator.narrate("hello", Voice(name="zz-nope"), "en", tmp_path / "x.wav")
    with pytest.raises(ValueError, match="no language 'qq'"):
        narrator.narrate("hello", Voice(), "qq", tmp_path / "y.wav")
    with pytest.raises(ValueError, match="zz-nope"):  # even with nothing to say
        narrator.narrate("", Voice(name="zz-nope"), "en", tmp_path / "z.wav")


def test_blank_text_is_short_silence(narrator: EspeakNarrator, tmp_path: Path) -> None:
    for text in ("", "   \n "):
        result = narrator.narrate(text, Voice(), "en", tmp_path / "blank.wav")
        samples, rate = read_wav(result.path)
        assert result.words == []
        assert result.duration == pytest.approx(EMPTY_SECONDS)
        assert len(samples) == round(EMPTY_SECONDS * rate)
        assert not samples.any()


def test_voices_lists_usable_names(narrator: EspeakNarrator, tmp_path: Path) -> None:
    voices = narrator.voices()
    by_name = {v.name: v for v in voices}
    assert {"en", "fr", "de"} <= set(by_name)
    assert by_name["en"].language.startswith("en")
    assert by_name["fr"].language.startswith("fr")
    assert all(v.gender in ("male", "female", "") for v in voices)
    assert len(voices) > 50
    # every listed name is accepted by the request model and by eSpeak
    for v in voices[:: max(1, len(voices) // 10)]:
        narrator.narrate("a", Voice(name=v.name), "en", tmp_path / "v.wav")
