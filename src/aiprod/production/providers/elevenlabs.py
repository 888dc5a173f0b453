"""The ``elevenlabs`` narrator: ElevenLabs text to speech with timestamps.

``POST /v1/text-to-speech/{voice_id}/with-timestamps?output_format=pcm_24000``
(header ``xi-api-key``) answers JSON: the audio as base64 (raw 16-bit PCM at
24 kHz, mono) and, per character of the text, when it is spoken
(``alignment``; ``normalized_alignment`` for the text as the service
normalised it).  Word timings are read from the characters: each
whitespace-separated word of the text starts when its first character does
and ends when its last one does.  An answer without a usable alignment is
aligned like the ``openai-speech`` narrator's (`align`).

Voices are the account's (``GET /v1/voices``), named by ``voice_id``; the
list is kept `VOICES_TTL_SECONDS` so that ``GET /v1/voices`` of our API does
not call out each time.  `Voice.rate` becomes ``voice_settings.speed``
(0.7-1.2, which is all ElevenLabs accepts; only sent when it is not 1, so
the voice's own settings stay as its owner saved them); `Voice.pitch` is
ignored.  ``language_code`` is sent to the models that accept it only.
"""

from __future__ import annotations

import base64
import binascii
import difflib
import hashlib
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import numpy as np
from numpy.typing import NDArray

from aiprod.production.models import VOICE_NAME, Narration, Voice, WordTiming
from aiprod.production.providers import align, client_for, config_of
from aiprod.production.providers.client import ProviderClient, ProviderError
from aiprod.production.providers.speech import (
    NATURAL_RATE,
    charged_call,
    silent,
    trimmed,
    write_narration,
)
from aiprod.production.stages.narrate import VoiceInfo

NAME = "elevenlabs"
DEFAULT_BASE_URL = "https://api.elevenlabs.io"
DEFAULT_MODEL = "eleven_multilingual_v2"
CALL = "text-to-speech"
VOICES_CALL = "voices"
OUTPUT_FORMAT = "pcm_24000"
SAMPLE_RATE = 24_000
MAX_INPUT_CHARS = 10_000
MIN_SPEED, MAX_SPEED = 0.7, 1.2
DEFAULT_VOICE = "JBFqnCBsd6RMkjVDRZzb"
"""The voice of a request that names none (`Voice.name` ``en``): "George", one
of the premade voices every account has."""
LANGUAGE_CODE_MODELS = frozenset({"eleven_turbo_v2_5", "eleven_flash_v2_5"})
"""Models that accept ``language_code`` (the others answer 400 to it)."""
LANGUAGE = "mul"
VOICES_TTL_SECONDS = 600.0
VOICES_RETRY_SECONDS = 30.0
"""How long a failed voice list is remembered (so a service that is down is
not asked again on every ``GET /v1/voices``)."""
LICENCE = "ElevenLabs terms of service (a paid remote service)"

_VOICE_NAME = re.compile(VOICE_NAME)
_TOKEN = re.compile(r"\S+")


def _client() -> ProviderClient:
    return client_for(NAME, DEFAULT_BASE_URL, auth_headers=lambda key: {"xi-api-key": key})


def speed_for(rate: int) -> float:
    """``voice_settings.speed`` for a `Voice.rate` (165 wpm is 1.0), within ElevenLabs' range."""
    return round(min(MAX_SPEED, max(MIN_SPEED, rate / NATURAL_RATE)), 3)


# ------------------------------------------------------------- word timings


def _characters(alignment: Any) -> tuple[str, list[float], list[float]] | None:
    """(text, start of each character, end of each) from an alignment object,
    or None when it is not one."""
    if not isinstance(alignment, dict):
        return None
    chars = alignment.get("characters")
    starts = alignment.get("character_start_times_seconds")
    ends = alignment.get("character_end_times_seconds")
    if not (isinstance(chars, list) and isinstance(starts, list) and isinstance(ends, list)):
        return None
    if not chars or not len(chars) == len(starts) == len(ends):
        return None
    text: list[str] = []
    first: list[float] = []
    last: list[float] = []
    for c, s, e in zip(chars, starts, ends, strict=True):
        if not isinstance(c, str) or not all(isinstance(x, int | float) for x in (s, e)):
            return None
        for ch in c:  # one character each, as documented; a longer string keeps its times
            text.append(ch)
            first.append(float(s))
            last.append(float(e))
    return "".join(text), first, last


def word_timings(text: str, alignment: Any) -> list[WordTiming] | None:
    """One timing per whitespace-separated word of `text` from a character
    `alignment`: a word runs from its first character's start to its last
    one's end.  The alignment's characters are matched to the text's (they
    are the same string unless the service changed it), so a word the
    service dropped takes no time, at the start of the next one.  None when
    `alignment` is not a usable character alignment."""
    found = _characters(alignment)
    if found is None:
        return None
    aligned, starts, ends = found
    if aligned == text:
        position: dict[int, int] = {i: i for i in range(len(text))}
    else:
        matcher = difflib.SequenceMatcher(None, text, aligned, autojunk=False)
        position = {
            a + k: b + k for a, b, size in matcher.get_matching_blocks() for k in range(size)
        }
    spans: list[tuple[str, float | None, float | None]] = []
    for m in _TOKEN.finditer(text):
        hits = [position[i] for i in range(m.start(), m.end()) if i in position]
        if hits:
            spans.append((m.group(), starts[min(hits)], ends[max(hits)]))
        else:
            spans.append((m.group(), None, None))
    words: list[WordTiming] = []
    following = max(ends) if ends else 0.0
    for token, start, end in reversed(spans):
        begin = following if start is None else start
        finish = begin if end is None else max(begin, end)
        words.append(WordTiming(text=token, start=begin, end=finish))
        following = begin
    words.reverse()
    for k in range(1, len(words)):  # keep starts in order, as every narrator does
        if words[k].start < words[k - 1].start:
            words[k] = words[k].model_copy(update={"start": words[k - 1].start})
    return words


def _pcm(answer: Any) -> NDArray[np.float32]:
    def bad(why: str) -> ProviderError:
        return ProviderError(NAME, CALL, f"unusable audio: {why}", transient=True)

    if not isinstance(answer, dict) or not isinstance(answer.get("audio_base64"), str):
        raise bad("the answer holds no audio_base64")
    try:
        data = base64.b64decode(answer["audio_base64"], validate=True)
    except (binascii.Error, ValueError):
        raise bad("audio_base64 is not base64") from None
    if not data:
        raise bad("the audio is empty")
    if len(data) % 2:
        raise bad("16-bit PCM with an odd number of bytes (cut short)")
    return np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0


# -------------------------------------------------------------------- voices


@dataclass
class _Listing:
    at: float
    voices: list[VoiceInfo] | None = None
    error: ProviderError | None = None


_listings: dict[str, _Listing] = {}
_listings_lock = threading.Lock()


def _listing_key() -> str:
    config = config_of(NAME)
    raw = f"{config.base_url or DEFAULT_BASE_URL}\0{config.key() or ''}"
    return hashlib.sha256(raw.encode()).hexdigest()


def forget_voices() -> None:
    """Drop the kept voice lists (tests; a changed account)."""
    with _listings_lock:
        _listings.clear()


def _voice_info(item: Any) -> VoiceInfo | None:
    if not isinstance(item, dict):
        return None
    voice_id = item.get("voice_id")
    if not isinstance(voice_id, str) or len(voice_id) > 64 or not _VOICE_NAME.match(voice_id):
        return None  # not a name our API can take (Voice.name's pattern)
    labels = item.get("labels")
    if not isinstance(labels, dict):
        labels = {}
    name = str(item.get("name") or voice_id)
    traits = [
        str(labels[k])
        for k in ("accent", "age", "description", "descriptive", "use_case")
        if isinstance(labels.get(k), str) and labels[k]
    ]
    category = item.get("category")
    description = name + (f": {', '.join(traits)}" if traits else "")
    if isinstance(category, str) and category:
        description += f" ({category})"
    language = labels.get("language")
    verified = item.get("verified_languages")
    if not isinstance(language, str) and isinstance(verified, list) and verified:
        first = verified[0]
        language = first.get("language") if isinstance(first, dict) else None
    gender = labels.get("gender")
    return VoiceInfo(
        name=voice_id,
        language=language if isinstance(language, str) and language else LANGUAGE,
        gender=gender.lower() if isinstance(gender, str) else "",
        description=description[:300],
        engine=NAME,
        sample_rate=SAMPLE_RATE,
        licence=LICENCE,
        any_language=True,
    )


def _fetch_voices() -> list[VoiceInfo]:
    answer = _client().json(VOICES_CALL, "GET", "v1/voices")
    items = answer.get("voices") if isinstance(answer, dict) else None
    if not isinstance(items, list):
        raise ProviderError(NAME, VOICES_CALL, "the answer holds no list of voices", transient=True)
    found = [v for v in (_voice_info(item) for item in items) if v is not None]
    return sorted(found, key=lambda v: v.description.lower())


# ------------------------------------------------------------------- backend


class ElevenLabsNarrator:
    """Narrator backend on ElevenLabs (word timings from its character timestamps)."""

    name: str = NAME

    @property
    def version(self) -> str:
        config = config_of(NAME)
        host = urlsplit(config.base_url or DEFAULT_BASE_URL).netloc
        return f"1+{config.model or DEFAULT_MODEL}@{host}"

    def narrate(self, text: str, voice: Voice, language: str, out: Path) -> Narration:
        """Speak `text` into a mono 16-bit WAV at 24 kHz; word timings from the
        service's character alignment."""
        if not text.strip():
            return silent(out, SAMPLE_RATE)
        if len(text) > MAX_INPUT_CHARS:
            raise ValueError(f"{NAME} reads at most {MAX_INPUT_CHARS} characters at a time")
        model = config_of(NAME).model or DEFAULT_MODEL
        body: dict[str, Any] = {"text": text, "model_id": model}
        if model in LANGUAGE_CODE_MODELS:
            body["language_code"] = language.split("-", 1)[0].lower()
        speed = speed_for(voice.rate)
        if speed != 1.0:
            body["voice_settings"] = {"speed": speed}
        voice_id = DEFAULT_VOICE if voice.name == "en" else voice.name
        path = f"v1/text-to-speech/{quote(voice_id, safe='')}/with-timestamps"
        client = _client()
        answer = charged_call(
            NAME,
            CALL,
            text,
            lambda: client.json(
                CALL, "POST", path, json=body, params={"output_format": OUTPUT_FORMAT}
            ),
        )
        samples = _pcm(answer)
        words = word_timings(text, answer.get("alignment"))
        if words is None:
            words = word_timings(text, answer.get("normalized_alignment"))
        samples, shift = trimmed(samples, SAMPLE_RATE)
        if words is None:  # no timestamps after all: find the words in the audio
            words, shift = align.align(samples, SAMPLE_RATE, text, language), 0.0
        return write_narration(out, samples, SAMPLE_RATE, words, shift)

    def voices(self) -> list[VoiceInfo]:
        """The account's voices (``GET /v1/voices``), kept `VOICES_TTL_SECONDS`;
        a failure is remembered `VOICES_RETRY_SECONDS` and raised (ProviderError)."""
        key = _listing_key()
        now = time.monotonic()
        with _listings_lock:
            kept = _listings.get(key)
        if kept is not None:
            if kept.voices is not None and now - kept.at < VOICES_TTL_SECONDS:
                return list(kept.voices)
            if kept.error is not None and now - kept.at < VOICES_RETRY_SECONDS:
                raise kept.error
        try:
            found = _fetch_voices()
        except ProviderError as exc:
            with _listings_lock:
                _listings[key] = _Listing(time.monotonic(), error=exc)
            raise
        with _listings_lock:
            _listings[key] = _Listing(time.monotonic(), voices=found)
        return list(found)


__all__ = [
    "DEFAULT_MODEL",
    "DEFAULT_VOICE",
    "NAME",
    "ElevenLabsNarrator",
    "forget_voices",
    "speed_for",
    "word_timings",
]
