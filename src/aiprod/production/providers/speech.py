"""The ``openai-speech`` narrator: OpenAI-style ``POST /audio/speech``.

Works with OpenAI and with servers that speak its wire format (a local
Kokoro-FastAPI, LocalAI, ...; set ``AIPROD_OPENAI_SPEECH__BASE_URL``).  The
request is ``{model, input, voice, response_format, speed}`` with a Bearer
key; the answer is the audio file itself.  We ask for WAV but decode whatever
comes (WAV, MP3, Ogg, FLAC through PyAV, raw 16-bit PCM at 24 kHz), since
compatible servers do not all honour ``response_format``.

The service says nothing about when each word is spoken, so the words are
found in the audio by forced alignment against an eSpeak NG rendering of the
same text (`align`).  `Voice.rate` becomes ``speed`` (165 wpm is 1.0);
`Voice.pitch` has no equivalent and is ignored.  OpenAI's ``gpt-4o-mini-tts``
ignores ``speed``, so for it the pace is also asked for in words
(``instructions``); the narrate stage measures the speech it gets either way.

Each call is authorised against the production's budget before it is made
and charged after (unit ``1k_chars``); the narrate stage's cache keeps the
same text from being paid for twice.
"""

from __future__ import annotations

import io
import logging
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import av
import numpy as np
from numpy.typing import NDArray

from aiprod.production.media.audio import write_wav
from aiprod.production.models import Narration, Voice, WordTiming
from aiprod.production.providers import align, client_for, config_of, metering
from aiprod.production.providers.client import ProviderClient, ProviderError, bearer
from aiprod.production.stages.narrate import VoiceInfo

log = logging.getLogger(__name__)
T = TypeVar("T")

NAME = "openai-speech"
DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_MODEL = "gpt-4o-mini-tts"
CALL = "audio.speech"
UNIT = "1k_chars"
SAMPLE_RATE = 24_000
"""What OpenAI's WAV and PCM carry (raw PCM has no header to say so)."""
RESPONSE_FORMAT = "wav"
MAX_INPUT_CHARS = 4096
NATURAL_RATE = 165  # words per minute that speed 1.0 stands for (Voice.rate's default)
MIN_SPEED, MAX_SPEED = 0.25, 4.0
EMPTY_SECONDS = 0.3
LEAD_SECONDS = 0.05  # silence kept before the first sound
TAIL_SECONDS = 0.20  # and after the last one
DEFAULT_VOICE = "alloy"
"""The voice of a request that names none (`Voice.name` ``en``, "the default")."""
LANGUAGE = "mul"
"""BCP 47 for "multiple languages": these voices read whatever they are given."""

VOICES: tuple[tuple[str, str, str], ...] = (
    ("alloy", "", "neutral, balanced"),
    ("ash", "male", "clear, precise"),
    ("ballad", "male", "melodic, gentle"),
    ("coral", "female", "warm, friendly"),
    ("echo", "male", "resonant"),
    ("fable", "", "expressive, storytelling"),
    ("nova", "female", "bright, energetic"),
    ("onyx", "male", "deep, authoritative"),
    ("sage", "female", "calm, thoughtful"),
    ("shimmer", "female", "soft, clear"),
    ("verse", "male", "versatile, expressive"),
    ("marin", "female", "natural, conversational"),
    ("cedar", "male", "natural, conversational"),
)
"""OpenAI's built-in voices: (name, gender, character)."""


def _client() -> ProviderClient:
    return client_for(NAME, DEFAULT_BASE_URL, auth_headers=bearer)


def speed_for(rate: int) -> float:
    """``speed`` for a `Voice.rate` in words per minute (165 is 1.0)."""
    return round(min(MAX_SPEED, max(MIN_SPEED, rate / NATURAL_RATE)), 3)


# ------------------------------------------------------------------ audio in


def _truncated_wav(data: bytes) -> bool:
    """Whether a RIFF/WAVE file's data chunk promises more bytes than it holds.
    A streamed WAV (OpenAI's) leaves the sizes at 0 or 0xFFFFFFFF: not truncated."""
    pos = 12
    while pos + 8 <= len(data):
        chunk, size = data[pos : pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        if chunk == b"data":
            return size not in (0, 0xFFFFFFFF, 0x7FFFFFFF) and pos + 8 + size > len(data)
        pos += 8 + size + (size & 1)
    return True  # no data chunk at all


def decode(data: bytes, provider: str, call: str) -> tuple[NDArray[np.float32], int]:
    """Audio bytes a service returned as mono float samples and their rate.
    Containers (WAV, MP3, Ogg, FLAC ...) go through PyAV; bytes with no known
    header are raw 16-bit little-endian PCM at `SAMPLE_RATE`.  Empty,
    truncated or undecodable audio raises ProviderError (transient: asking
    again may give a whole file)."""

    def bad(why: str) -> ProviderError:
        return ProviderError(provider, call, f"unusable audio: {why}", transient=True)

    if not data:
        raise bad("the answer is empty")
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE" and _truncated_wav(data):
        raise bad("the WAV file is cut short")
    frame_sync = len(data) > 1 and data[0] == 0xFF and data[1] & 0xE0 == 0xE0  # MP3, ADTS
    known = data[:4] in (b"RIFF", b"OggS", b"fLaC") or data[:3] == b"ID3" or frame_sync
    if not known:
        if len(data) % 2:
            raise bad("raw PCM with an odd number of bytes")
        pcm = np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0
        return pcm, SAMPLE_RATE
    try:
        samples, rate = _pyav_decode(data)
    except Exception as exc:  # PyAV raises many kinds (InvalidDataError, ValueError ...)
        raise bad(f"cannot be decoded ({type(exc).__name__})") from None
    if not len(samples):
        raise bad("no samples")
    return samples, rate


def _pyav_decode(data: bytes) -> tuple[NDArray[np.float32], int]:
    container: Any = av.open(io.BytesIO(data))
    try:
        if not container.streams.audio:
            raise ValueError("no audio stream")
        stream = container.streams.audio[0]
        rate = int(stream.codec_context.sample_rate)
        resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
        parts: list[NDArray[np.float32]] = []
        for frame in container.decode(stream):
            for out in resampler.resample(frame):
                parts.append(out.to_ndarray().reshape(-1).astype(np.float32, copy=False))
        for out in resampler.resample(None):
            parts.append(out.to_ndarray().reshape(-1).astype(np.float32, copy=False))
    finally:
        container.close()
    return (np.concatenate(parts) if parts else np.zeros(0, np.float32)), rate


# --------------------------------------------------------------- narration out


def silent(out: Path, rate: int = SAMPLE_RATE) -> Narration:
    """The short silent file blank text gets."""
    silence = np.zeros(round(EMPTY_SECONDS * rate), dtype=np.float32)
    write_wav(out, silence, rate)
    return Narration(path=out, sample_rate=rate, duration=len(silence) / rate, words=[])


def trimmed(samples: NDArray[np.float32], rate: int) -> tuple[NDArray[np.float32], float]:
    """`samples` with the silence before the first sound and after the last
    cut to `LEAD_SECONDS` and `TAIL_SECONDS` (as the offline narrators leave
    it, so scenes are paced alike whoever speaks), and the seconds cut from
    the front."""
    lo, hi = align.sounding_span(samples, rate)
    if hi <= lo:
        return samples, 0.0
    start = max(0, lo - round(LEAD_SECONDS * rate))
    end = min(len(samples), hi + round(TAIL_SECONDS * rate))
    return samples[start:end], start / rate


def write_narration(
    out: Path,
    samples: NDArray[np.float32],
    rate: int,
    words: list[WordTiming],
    shift: float = 0.0,
) -> Narration:
    """Write the WAV and return its Narration, the word timings moved `shift`
    seconds earlier and kept inside the file, in order."""
    duration = len(samples) / rate
    kept: list[WordTiming] = []
    for w in words:
        start = min(duration, max(0.0, w.start - shift, kept[-1].start if kept else 0.0))
        end = min(duration, max(start, w.end - shift))
        kept.append(WordTiming(text=w.text, start=round(start, 4), end=round(end, 4)))
    write_wav(out, samples, rate)
    return Narration(path=out, sample_rate=rate, duration=duration, words=kept)


def charged_call(provider: str, call: str, text: str, send: Callable[[], T]) -> T:
    """Authorise the call's characters against the budget, make it, charge them."""
    units = len(text) / 1000
    meter = metering.current()
    meter.authorize(provider, UNIT, units)
    answer = send()
    meter.charge(provider, call, UNIT, units)
    return answer


# ------------------------------------------------------------------- backend


class OpenAISpeechNarrator:
    """Narrator backend on an OpenAI-style speech service (word timings by alignment)."""

    name: str = NAME

    @property
    def version(self) -> str:
        """The model and the server enter the stage cache's key: another voice
        engine behind the same names sounds different."""
        config = config_of(NAME)
        host = urlsplit(config.base_url or DEFAULT_BASE_URL).netloc
        return f"1+{config.model or DEFAULT_MODEL}@{host}"

    def narrate(self, text: str, voice: Voice, language: str, out: Path) -> Narration:
        """Speak `text` through the service into a mono 16-bit WAV at the
        service's rate; word timings by alignment (see the module docstring)."""
        if not text.strip():
            return silent(out)
        if len(text) > MAX_INPUT_CHARS:
            raise ValueError(f"{NAME} reads at most {MAX_INPUT_CHARS} characters at a time")
        model = config_of(NAME).model or DEFAULT_MODEL
        speed = speed_for(voice.rate)
        body: dict[str, Any] = {
            "model": model,
            "input": text,
            "voice": DEFAULT_VOICE if voice.name == "en" else voice.name.lower(),
            "response_format": RESPONSE_FORMAT,
            "speed": speed,
        }
        if model.startswith("gpt-4o") and speed != 1.0:
            body["instructions"] = f"Speak at {speed:g} times your usual pace."
        client = _client()
        response = charged_call(
            NAME, CALL, text, lambda: client.request(CALL, "POST", "audio/speech", json=body)
        )
        samples, rate = decode(response.content, NAME, CALL)
        samples, _ = trimmed(samples, rate)
        words = align.align(samples, rate, text, language)
        return write_narration(out, samples, rate, words)

    def voices(self) -> list[VoiceInfo]:
        """OpenAI's built-in voices; each reads any language."""
        return [
            VoiceInfo(
                name=name,
                language=LANGUAGE,
                gender=gender,
                description=f"OpenAI {name}: {character}",
                engine=NAME,
                sample_rate=SAMPLE_RATE,
                licence="OpenAI usage policies (a paid remote service)",
                any_language=True,
            )
            for name, gender, character in VOICES
        ]


__all__ = [
    "DEFAULT_MODEL",
    "NAME",
    "VOICES",
    "OpenAISpeechNarrator",
    "charged_call",
    "decode",
    "speed_for",
    "write_narration",
]
