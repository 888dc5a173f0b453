"""The speech providers (`openai-speech`, `elevenlabs`) against local servers
speaking each service's wire format with real speech (``speech_server``):
the requests they send, the WAV and word timings they make of the answers,
and how they fail (retries, unusable audio, errors that never show the key).
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from aiprod.production import backends
from aiprod.production.cache import StageCache
from aiprod.production.cost import BudgetExceeded, PriceTable
from aiprod.production.media.audio import read_wav
from aiprod.production.models import (
    STAGES,
    Narration,
    ProductionRequest,
    RenderSpec,
    Scene,
    Storyboard,
    Voice,
    WordTiming,
)
from aiprod.production.providers import ProviderError, elevenlabs, metering, speech
from aiprod.production.providers.elevenlabs import ElevenLabsNarrator, word_timings
from aiprod.production.providers.speech import OpenAISpeechNarrator, decode, speed_for
from aiprod.production.stages import narrate
from aiprod.production.stages.context import StageContext
from aiprod.provider_config import ProviderConfig
from aiprod.settings import Settings

from .conftest import FAKE_KEY
from .speech_server import (
    RATE,
    SpeechService,
    character_alignment,
    pcm16,
    plain_wav,
    voice_list,
)
from .wire import LocalService, Reply

TEXT = "Honeybees turn nectar into honey inside the hive."
SPEECH = "/v1/audio/speech"
GEORGE = "JBFqnCBsd6RMkjVDRZzb"
TTS = f"/v1/text-to-speech/{GEORGE}/with-timestamps"

Configure = Callable[..., Settings]


@pytest.fixture(autouse=True)
def _no_kept_voices() -> Any:
    elevenlabs.forget_voices()
    yield
    elevenlabs.forget_voices()


@pytest.fixture
def service(tmp_path: Path) -> SpeechService:
    return SpeechService(tmp_path / "served")


def _openai(local_service: LocalService, provider_settings: Configure, **config: Any) -> None:
    url = local_service.url + "/v1"
    if config:
        provider_settings(
            openai_speech=ProviderConfig(
                base_url=url, api_key=FAKE_KEY, max_retries=2, retry_max_wait_seconds=2.0, **config
            )
        )
    else:
        provider_settings(openai_speech=url)


def _starts_close(got: list[WordTiming], truth: list[WordTiming], within: float) -> None:
    assert [w.text for w in got] == [w.text for w in truth]
    errors = [abs(a.start - b.start) for a, b in zip(got, truth, strict=True)]
    assert max(errors) <= within, errors


def _wav_matches(nar: Narration, rate: int) -> None:
    samples, file_rate = read_wav(nar.path)
    assert samples.ndim == 1 and file_rate == nar.sample_rate == rate
    assert nar.duration == pytest.approx(len(samples) / rate, abs=1e-9)
    starts = [w.start for w in nar.words]
    assert starts == sorted(starts)
    for w in nar.words:
        assert 0.0 <= w.start <= w.end <= nar.duration


# ------------------------------------------------------------------ OpenAI


def test_openai_request_is_the_documented_shape(
    local_service: LocalService,
    provider_settings: Configure,
    service: SpeechService,
    tmp_path: Path,
) -> None:
    local_service.route("POST", SPEECH, service.openai())
    _openai(local_service, provider_settings)
    narrator = OpenAISpeechNarrator()
    narrator.narrate(TEXT, Voice(name="coral"), "en", tmp_path / "a.wav")
    narrator.narrate(TEXT, Voice(rate=330), "en", tmp_path / "b.wav")
    first, second = local_service.calls("POST", SPEECH)
    assert first.headers["authorization"] == f"Bearer {FAKE_KEY}"
    assert first.headers["content-type"] == "application/json"
    assert first.json() == {
        "model": "gpt-4o-mini-tts",
        "input": TEXT,
        "voice": "coral",
        "response_format": "wav",
        "speed": 1.0,
    }
    # the default voice ("en") is alloy; the rate is the speed (and, for
    # gpt-4o-mini-tts, which ignores speed, an instruction)
    body = second.json()
    assert (body["voice"], body["speed"]) == ("alloy", 2.0)
    assert "2" in body["instructions"]
    assert narrator.version.startswith("1+gpt-4o-mini-tts@127.0.0.1:")


def test_openai_model_comes_from_the_configuration(
    local_service: LocalService,
    provider_settings: Configure,
    service: SpeechService,
    tmp_path: Path,
) -> None:
    local_service.route("POST", SPEECH, service.openai())
    _openai(local_service, provider_settings, model="tts-1-hd")
    narrator = OpenAISpeechNarrator()
    narrator.narrate(TEXT, Voice(name="onyx", rate=120), "en", tmp_path / "a.wav")
    (call,) = local_service.calls("POST", SPEECH)
    assert call.json()["model"] == "tts-1-hd"
    assert "instructions" not in call.json()
    assert narrator.version.startswith("1+tts-1-hd@")


def test_speed_is_the_rate_over_165_within_the_api_range() -> None:
    assert speed_for(165) == 1.0
    assert speed_for(330) == 2.0
    assert speed_for(80) == pytest.approx(0.485, abs=1e-3)
    assert speed_for(400) == pytest.approx(2.424, abs=1e-3)
    assert elevenlabs.speed_for(80) == 0.7 and elevenlabs.speed_for(400) == 1.2


@pytest.mark.parametrize("fmt", ["wav", "pcm", "mp3", "flac", "ogg"])
def test_openai_audio_becomes_a_wav_with_aligned_words(
    local_service: LocalService,
    provider_settings: Configure,
    service: SpeechService,
    tmp_path: Path,
    fmt: str,
) -> None:
    service.lead = 0.6  # the service pads the start: the file is trimmed, the words follow
    local_service.route("POST", SPEECH, service.openai(fmt))
    _openai(local_service, provider_settings)
    nar = OpenAISpeechNarrator().narrate(TEXT, Voice(name="nova"), "en", tmp_path / "n.wav")
    expected_rate = 48_000 if fmt == "ogg" else RATE
    _wav_matches(nar, expected_rate)
    (spoken,) = service.spoken
    served = len(spoken.samples) / RATE
    cut = speech.trimmed(spoken.samples, RATE)[1]  # the silence cut from the front
    assert 0.5 <= cut <= 0.6
    assert served - cut - 0.3 < nar.duration <= served - cut + 0.01
    truth = [w.model_copy(update={"start": w.start - cut}) for w in spoken.words]
    _starts_close(nar.words, truth, within=0.15)


def test_blank_text_is_a_short_silence_and_no_call(
    local_service: LocalService, provider_settings: Configure, tmp_path: Path
) -> None:
    _openai(local_service, provider_settings)
    provider_settings(elevenlabs=local_service.url)
    for narrator in (OpenAISpeechNarrator(), ElevenLabsNarrator()):
        nar = narrator.narrate("  \n", Voice(), "en", tmp_path / f"{narrator.name}.wav")
        samples, _ = read_wav(nar.path)
        assert nar.words == [] and 0.1 < nar.duration < 1.0 and not samples.any()
    assert local_service.requests == []


@pytest.mark.parametrize(
    ("reply", "why"),
    [
        (Reply(200, b"", {"content-type": "audio/wav"}), "empty"),
        (Reply(200, plain_wav(np.zeros(24_000, np.float32))[:20_000]), "cut short"),
        (Reply(200, b"ID3" + bytes(range(256)) * 8, {"content-type": "audio/mpeg"}), "decoded"),
        (Reply(200, b"\x01\x02\x03", {"content-type": "audio/pcm"}), "odd number"),
    ],
)
def test_unusable_audio_is_a_provider_error(
    local_service: LocalService,
    provider_settings: Configure,
    tmp_path: Path,
    reply: Reply,
    why: str,
) -> None:
    local_service.route("POST", SPEECH, [reply])
    _openai(local_service, provider_settings)
    with pytest.raises(ProviderError) as caught:
        OpenAISpeechNarrator().narrate(TEXT, Voice(), "en", tmp_path / "x.wav")
    err = caught.value
    assert (err.provider, err.call, err.transient) == ("openai-speech", "audio.speech", True)
    assert why in str(err) and "openai-speech audio.speech failed" in str(err)
    assert not (tmp_path / "x.wav").exists()


def test_a_body_cut_short_in_transit_is_retried(
    local_service: LocalService,
    provider_settings: Configure,
    service: SpeechService,
    tmp_path: Path,
) -> None:
    good = service.openai()
    answers: list[Reply] = []

    def handler(rec: Any) -> Reply:
        reply = good(rec)
        answers.append(reply)
        if len(answers) == 1:
            assert isinstance(reply.body, bytes)
            reply.cut = len(reply.body) // 2  # the connection drops halfway
        return reply

    local_service.route("POST", SPEECH, handler)
    _openai(local_service, provider_settings)
    nar = OpenAISpeechNarrator().narrate(TEXT, Voice(), "en", tmp_path / "n.wav")
    assert len(local_service.calls("POST", SPEECH)) == 2
    assert len(nar.words) == len(TEXT.split())


# ----------------------------------------------------------- both services


def _route_elevenlabs(local_service: LocalService, handler: Any) -> None:
    local_service.route("POST", TTS, handler)


@pytest.mark.parametrize("provider", ["openai-speech", "elevenlabs"])
def test_rate_limited_then_served(
    local_service: LocalService,
    provider_settings: Configure,
    service: SpeechService,
    tmp_path: Path,
    provider: str,
) -> None:
    limited = Reply(429, {"error": {"message": "slow down"}}, {"retry-after": "0"})
    if provider == "openai-speech":
        good = service.openai()
        path = SPEECH
        _openai(local_service, provider_settings)
        narrator: Any = OpenAISpeechNarrator()
    else:
        good = service.elevenlabs()
        path = TTS
        provider_settings(elevenlabs=local_service.url)
        narrator = ElevenLabsNarrator()
    seen: list[int] = []

    def handler(rec: Any) -> Reply:
        seen.append(1)
        return limited if len(seen) == 1 else good(rec)

    local_service.route("POST", path, handler)
    nar = narrator.narrate(TEXT, Voice(), "en", tmp_path / "n.wav")
    assert len(local_service.calls("POST", path)) == 2
    assert [w.text for w in nar.words] == TEXT.split()


@pytest.mark.parametrize(
    ("provider", "path", "call"),
    [("openai-speech", SPEECH, "audio.speech"), ("elevenlabs", TTS, "text-to-speech")],
)
def test_server_errors_fail_naming_provider_and_call_never_the_key(
    local_service: LocalService,
    provider_settings: Configure,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    provider: str,
    path: str,
    call: str,
) -> None:
    # the service quotes the key back, as some do in their error messages
    failing = Reply(500, {"detail": {"message": f"bad {FAKE_KEY}"}}, {"retry-after": "0"})
    local_service.route("POST", path, [failing])
    if provider == "openai-speech":
        _openai(local_service, provider_settings)
        narrator: Any = OpenAISpeechNarrator()
    else:
        provider_settings(elevenlabs=local_service.url)
        narrator = ElevenLabsNarrator()
    with pytest.raises(ProviderError) as caught:
        narrator.narrate(TEXT, Voice(), "en", tmp_path / "n.wav")
    err = caught.value
    assert (err.provider, err.call, err.status, err.transient) == (provider, call, 500, True)
    assert f"{provider} {call} failed: HTTP 500" in str(err) and "after 3 attempts" in str(err)
    assert len(local_service.calls("POST", path)) == 3
    assert FAKE_KEY not in str(err) and FAKE_KEY not in repr(err.details())
    assert FAKE_KEY not in caplog.text


def test_unauthorised_is_not_retried(
    local_service: LocalService, provider_settings: Configure, tmp_path: Path
) -> None:
    local_service.route(
        "POST", SPEECH, [Reply(401, {"error": {"message": f"Incorrect API key: {FAKE_KEY}"}})]
    )
    _openai(local_service, provider_settings)
    with pytest.raises(ProviderError) as caught:
        OpenAISpeechNarrator().narrate(TEXT, Voice(), "en", tmp_path / "n.wav")
    assert caught.value.status == 401 and not caught.value.transient
    assert FAKE_KEY not in str(caught.value) and "***" in str(caught.value)
    assert len(local_service.requests) == 1


@pytest.mark.parametrize("provider", ["openai-speech", "elevenlabs"])
def test_each_call_is_authorised_then_charged_by_characters(
    local_service: LocalService,
    provider_settings: Configure,
    service: SpeechService,
    tmp_path: Path,
    provider: str,
) -> None:
    local_service.route("POST", SPEECH, service.openai())
    _route_elevenlabs(local_service, service.elevenlabs())
    provider_settings(openai_speech=local_service.url + "/v1", elevenlabs=local_service.url)
    narrator = backends.get("narrate", provider)
    prices = PriceTable.default()
    price = prices.unit_price(provider, "1k_chars")
    meter = metering.Meter(prices, budget=1.0)
    with metering.open_meter(meter):
        meter.stage = "narrate"
        narrator.narrate(TEXT, Voice(), "en", tmp_path / "n.wav")
    (charge,) = meter.charges
    call = "audio.speech" if provider == "openai-speech" else "text-to-speech"
    assert (charge.backend, charge.call, charge.unit, charge.stage) == (
        provider,
        call,
        "1k_chars",
        "narrate",
    )
    assert charge.units == pytest.approx(len(TEXT) / 1000)
    assert charge.cost == pytest.approx(len(TEXT) / 1000 * price)
    # a budget the call could exceed stops it before it is made
    before = len(local_service.requests)
    poor = metering.Meter(prices, budget=len(TEXT) / 1000 * price / 2)
    with metering.open_meter(poor), pytest.raises(BudgetExceeded):
        narrator.narrate(TEXT + " Again.", Voice(), "en", tmp_path / "m.wav")
    assert len(local_service.requests) == before and poor.charges == []


@pytest.mark.parametrize("provider", ["openai-speech", "elevenlabs"])
def test_the_narrate_stage_never_pays_twice_for_the_same_text(
    local_service: LocalService,
    provider_settings: Configure,
    service: SpeechService,
    tmp_path: Path,
    provider: str,
) -> None:
    local_service.route("POST", SPEECH, service.openai())
    _route_elevenlabs(local_service, service.elevenlabs())
    provider_settings(openai_speech=local_service.url + "/v1", elevenlabs=local_service.url)
    sb = Storyboard(
        title="Bees",
        scenes=[
            Scene(index=0, narration="Bees make honey.", visual="A hive", duration=2.0),
            Scene(index=1, narration="They dance to talk.", visual="A dance", duration=2.0),
            Scene(index=2, narration="Bees make honey.", visual="Again", duration=2.0),
        ],
        seed=1,
    )
    request = ProductionRequest(prompt="Bees", backends={"narrate": provider})
    runs = []
    for attempt in range(2):  # two productions sharing the stage cache
        ctx = StageContext(
            request=request,
            outdir=tmp_path / f"run{attempt}",
            spec=RenderSpec(width=320, height=180, fps=24),
            cache=StageCache(tmp_path / "cache"),
            weights=dict.fromkeys(STAGES, 1.0),
            on_progress=None,
            should_cancel=lambda: False,
            on_stage_done=None,
        )
        ctx.work.mkdir(parents=True)
        runs.append(narrate.run(ctx, sb))
    texts = [
        r.json().get("input") or r.json().get("text")
        for r in local_service.requests
        if r.method == "POST"
    ]
    assert sorted(texts) == ["Bees make honey.", "They dance to talk."]
    assert [len(n.words) for n in runs[1][1]] == [3, 4, 3]


# -------------------------------------------------------------- ElevenLabs


def test_elevenlabs_request_is_the_documented_shape(
    local_service: LocalService,
    provider_settings: Configure,
    service: SpeechService,
    tmp_path: Path,
) -> None:
    _route_elevenlabs(local_service, service.elevenlabs())
    local_service.route(
        "POST", "/v1/text-to-speech/EXAVITQu4vr4xnJGR9EL/with-timestamps", service.elevenlabs()
    )
    provider_settings(elevenlabs=local_service.url)
    narrator = ElevenLabsNarrator()
    narrator.narrate(TEXT, Voice(), "de", tmp_path / "a.wav")
    narrator.narrate(TEXT, Voice(name="EXAVITQu4vr4xnJGR9EL", rate=330), "en", tmp_path / "b.wav")
    first, second = local_service.requests
    assert first.path == TTS and first.query == {"output_format": ["pcm_24000"]}
    assert first.headers["xi-api-key"] == FAKE_KEY and "authorization" not in first.headers
    # multilingual v2 refuses language_code; speed 1 leaves the voice's settings alone
    assert first.json() == {"text": TEXT, "model_id": "eleven_multilingual_v2"}
    assert second.path.endswith("/EXAVITQu4vr4xnJGR9EL/with-timestamps")
    assert second.json()["voice_settings"] == {"speed": 1.2}
    assert narrator.version.startswith("1+eleven_multilingual_v2@127.0.0.1:")


def test_elevenlabs_sends_the_language_to_models_that_take_it(
    local_service: LocalService,
    provider_settings: Configure,
    service: SpeechService,
    tmp_path: Path,
) -> None:
    _route_elevenlabs(local_service, service.elevenlabs())
    provider_settings(
        elevenlabs=ProviderConfig(
            base_url=local_service.url, api_key=FAKE_KEY, model="eleven_flash_v2_5"
        )
    )
    ElevenLabsNarrator().narrate(TEXT, Voice(), "de-AT", tmp_path / "a.wav")
    body = local_service.requests[0].json()
    assert (body["model_id"], body["language_code"]) == ("eleven_flash_v2_5", "de")


def test_elevenlabs_word_timings_are_the_characters_timings(
    local_service: LocalService,
    provider_settings: Configure,
    service: SpeechService,
    tmp_path: Path,
) -> None:
    _route_elevenlabs(local_service, service.elevenlabs())
    provider_settings(elevenlabs=local_service.url)
    nar = ElevenLabsNarrator().narrate(TEXT, Voice(), "en", tmp_path / "n.wav")
    _wav_matches(nar, RATE)
    (spoken,) = service.spoken
    # eSpeak's audio starts sounding at once: nothing trimmed at the front
    assert [(w.text, w.start, w.end) for w in nar.words] == [
        (w.text, round(w.start, 4), round(w.end, 4)) for w in spoken.words
    ]


def test_elevenlabs_timings_follow_a_trimmed_start(
    local_service: LocalService,
    provider_settings: Configure,
    service: SpeechService,
    tmp_path: Path,
) -> None:
    service.lead = 0.8
    _route_elevenlabs(local_service, service.elevenlabs())
    provider_settings(elevenlabs=local_service.url)
    nar = ElevenLabsNarrator().narrate(TEXT, Voice(), "en", tmp_path / "n.wav")
    (spoken,) = service.spoken
    cut = speech.trimmed(spoken.samples, RATE)[1]
    assert 0.7 <= cut <= 0.8
    assert [w.start for w in nar.words] == [round(w.start - cut, 4) for w in spoken.words]


def test_elevenlabs_without_alignment_is_aligned_from_the_audio(
    local_service: LocalService,
    provider_settings: Configure,
    service: SpeechService,
    tmp_path: Path,
) -> None:
    _route_elevenlabs(local_service, service.elevenlabs(alignment=False))
    provider_settings(elevenlabs=local_service.url)
    nar = ElevenLabsNarrator().narrate(TEXT, Voice(), "en", tmp_path / "n.wav")
    _starts_close(nar.words, service.spoken[0].words, within=0.15)


def test_character_alignment_maps_back_to_the_texts_words() -> None:
    words = [
        WordTiming(text="Hello", start=0.1, end=0.5),
        WordTiming(text="big", start=0.6, end=0.8),
        WordTiming(text="world.", start=0.9, end=1.4),
    ]
    text = "Hello big world."
    assert word_timings(text, character_alignment(text, words)) == words
    # the service collapsed the spaces and dropped a word: one timing per word still
    spaced = "Hello   big  —  world."
    got = word_timings(spaced, character_alignment(text, words))
    assert got is not None
    assert [(w.text, w.start, w.end) for w in got] == [
        ("Hello", 0.1, 0.5),
        ("big", 0.6, 0.8),
        ("—", 0.9, 0.9),
        ("world.", 0.9, 1.4),
    ]
    assert word_timings(text, None) is None
    assert word_timings(text, {"characters": ["a"], "character_start_times_seconds": []}) is None


@pytest.mark.parametrize(
    "answer",
    [
        {"audio_base64": "not base64!!"},
        {"audio_base64": ""},
        {"audio_base64": base64.b64encode(b"\x00\x01\x02").decode()},
        {"alignment": {}},
    ],
)
def test_elevenlabs_unusable_audio_is_a_provider_error(
    local_service: LocalService, provider_settings: Configure, tmp_path: Path, answer: Any
) -> None:
    _route_elevenlabs(local_service, [Reply(200, answer)])
    provider_settings(elevenlabs=local_service.url)
    with pytest.raises(ProviderError) as caught:
        ElevenLabsNarrator().narrate(TEXT, Voice(), "en", tmp_path / "n.wav")
    assert (caught.value.provider, caught.value.call) == ("elevenlabs", "text-to-speech")
    assert "unusable audio" in str(caught.value)


def test_elevenlabs_voices_are_the_accounts_and_kept_a_while(
    local_service: LocalService, provider_settings: Configure
) -> None:
    odd = [
        {"voice_id": "has/slash", "name": "Bad"},
        {"voice_id": "x" * 65, "name": "Too long"},
        {"name": "No id"},
        "not an object",
    ]
    local_service.route("GET", "/v1/voices", [Reply(200, voice_list(*odd))])
    provider_settings(elevenlabs=local_service.url)
    narrator = ElevenLabsNarrator()
    found = {v.name: v for v in narrator.voices()}
    assert set(found) == {GEORGE, "EXAVITQu4vr4xnJGR9EL"}
    george = found[GEORGE]
    assert (george.engine, george.gender, george.language, george.sample_rate) == (
        "elevenlabs",
        "male",
        "en",
        24_000,
    )
    assert george.any_language and "George" in george.description
    assert "british" in george.description and "premade" in george.description
    assert found["EXAVITQu4vr4xnJGR9EL"].language == "mul"
    (call,) = local_service.calls("GET", "/v1/voices")
    assert call.headers["xi-api-key"] == FAKE_KEY
    assert narrator.voices() == list(found.values()) or len(narrator.voices()) == 2
    assert len(local_service.calls("GET", "/v1/voices")) == 1  # kept


def test_a_failing_voice_list_is_an_error_remembered_briefly(
    local_service: LocalService, provider_settings: Configure
) -> None:
    local_service.route("GET", "/v1/voices", [Reply(401, {"detail": {"message": "bad key"}})])
    provider_settings(elevenlabs=local_service.url)
    narrator = ElevenLabsNarrator()
    for _ in range(2):
        with pytest.raises(ProviderError) as caught:
            narrator.voices()
        assert (caught.value.provider, caught.value.call) == ("elevenlabs", "voices")
    assert len(local_service.calls("GET", "/v1/voices")) == 1


def test_openai_voices_read_any_language() -> None:
    found = OpenAISpeechNarrator().voices()
    names = [v.name for v in found]
    assert {"alloy", "ash", "coral", "echo", "fable", "nova", "onyx", "sage", "shimmer"} <= set(
        names
    )
    assert all(v.engine == "openai-speech" and v.any_language for v in found)
    assert all(v.language == "mul" and v.sample_rate == 24_000 for v in found)


def test_raw_pcm_and_wav_decode_alike() -> None:
    tone = (0.3 * np.sin(np.arange(4800) / 24_000 * 2 * np.pi * 220)).astype(np.float32)
    a, ra = decode(pcm16(tone), "p", "c")
    b, rb = decode(plain_wav(tone), "p", "c")
    assert ra == rb == RATE and np.array_equal(a, b)
    assert np.allclose(a, tone, atol=1e-4)
