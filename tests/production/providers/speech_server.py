"""Local speech services speaking OpenAI's ``/audio/speech`` and ElevenLabs'
``/with-timestamps`` wire formats with real speech: eSpeak NG reading the text
it was sent, in another voice, pitch and pace than the aligner's reference,
so a test knows exactly when each word was spoken (`Spoken.words`).
"""

from __future__ import annotations

import base64
import io
import struct
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
from numpy.typing import NDArray

from aiprod.production.backends.espeak import EspeakNarrator
from aiprod.production.media.audio import read_wav, resample
from aiprod.production.models import Voice, WordTiming

from .wire import Handler, Recorded, Reply

RATE = 24_000
SPEAKER = Voice(name="en-us+f3", pitch=72)
"""The services' voice: not the aligner's reference (eSpeak's default "en")."""


@dataclass
class Spoken:
    text: str
    samples: NDArray[np.float32]  # mono at RATE, as served
    words: list[WordTiming]  # when each word is spoken in `samples`


def pcm16(samples: NDArray[np.float32]) -> bytes:
    return bytes((np.clip(samples, -1, 1) * 32767).round().astype("<i2").tobytes())


def streamed_wav(samples: NDArray[np.float32], rate: int = RATE) -> bytes:
    """A WAV as OpenAI streams it: RIFF and data sizes left at 0xFFFFFFFF."""
    data = pcm16(samples)
    fmt = struct.pack("<HHIIHH", 1, 1, rate, rate * 2, 2, 16)
    return (
        b"RIFF\xff\xff\xff\xffWAVE"
        + b"fmt "
        + struct.pack("<I", len(fmt))
        + fmt
        + b"data\xff\xff\xff\xff"
        + data
    )


def plain_wav(samples: NDArray[np.float32], rate: int = RATE) -> bytes:
    data = pcm16(samples)
    fmt = struct.pack("<HHIIHH", 1, 1, rate, rate * 2, 2, 16)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    body += b"data" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


def encoded(samples: NDArray[np.float32], fmt: str, rate: int = RATE) -> bytes:
    """`samples` in a container PyAV writes: ``mp3``, ``flac`` or ``ogg`` (Opus)."""
    codec, container, codec_rate = {
        "mp3": ("libmp3lame", "mp3", rate),
        "flac": ("flac", "flac", rate),
        "ogg": ("libopus", "ogg", 48_000),
    }[fmt]
    audio = resample(samples, rate, codec_rate)
    buf = io.BytesIO()
    with av.open(buf, "w", format=container) as out:
        stream: Any = out.add_stream(codec, rate=codec_rate)
        stream.layout = "mono"
        frame_size = 1152 if codec == "libmp3lame" else 960
        pcm = (np.clip(audio, -1, 1) * 32767).round().astype(np.int16)
        for i in range(0, len(pcm), frame_size):
            chunk = pcm[i : i + frame_size]
            frame = av.AudioFrame.from_ndarray(chunk[None, :], format="s16", layout="mono")
            frame.sample_rate = codec_rate
            frame.pts = i
            frame.time_base = Fraction(1, codec_rate)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buf.getvalue()


@dataclass
class SpeechService:
    """Speaks what it is sent; remembers what it said."""

    tmp: Path
    lead: float = 0.0  # seconds of silence before the speech, as some services send
    spoken: list[Spoken] = field(default_factory=list)

    def speak(self, text: str, rate: int = 165) -> Spoken:
        out = self.tmp / f"spoken-{len(self.spoken)}.wav"
        voice = SPEAKER.model_copy(update={"rate": max(80, min(400, rate))})
        nar = EspeakNarrator().narrate(text, voice, "en", out)
        samples, rate_hz = read_wav(out)
        samples = resample(samples, rate_hz, RATE)
        pad = np.zeros(round(self.lead * RATE), dtype=np.float32)
        words = [
            w.model_copy(update={"start": w.start + self.lead, "end": w.end + self.lead})
            for w in nar.words
        ]
        spoken = Spoken(text, np.concatenate((pad, samples)), words)
        self.spoken.append(spoken)
        return spoken

    # ------------------------------------------------------------ OpenAI

    def openai(self, fmt: str = "wav") -> Handler:
        """``POST /audio/speech``: the audio as `fmt` (``wav`` streamed as
        OpenAI does, ``pcm`` raw, ``mp3``, ``flac``, ``ogg``)."""

        def handler(rec: Recorded) -> Reply:
            body = rec.json()
            spoken = self.speak(body["input"], round(165 * float(body.get("speed", 1.0))))
            if fmt == "wav":
                return Reply(200, streamed_wav(spoken.samples), {"content-type": "audio/wav"})
            if fmt == "pcm":
                return Reply(200, pcm16(spoken.samples), {"content-type": "audio/pcm"})
            kind = {"mp3": "audio/mpeg", "flac": "audio/flac", "ogg": "audio/ogg"}[fmt]
            return Reply(200, encoded(spoken.samples, fmt), {"content-type": kind})

        return handler

    # -------------------------------------------------------- ElevenLabs

    def elevenlabs(self, alignment: bool = True) -> Handler:
        """``POST /v1/text-to-speech/{voice}/with-timestamps``: base64 PCM at
        24 kHz and a character alignment whose words start and end exactly
        where eSpeak said them (letters spread evenly over their word)."""

        def handler(rec: Recorded) -> Reply:
            body = rec.json()
            speed = float((body.get("voice_settings") or {}).get("speed", 1.0))
            spoken = self.speak(body["text"], round(165 * speed))
            answer: dict[str, Any] = {
                "audio_base64": base64.b64encode(pcm16(spoken.samples)).decode()
            }
            if alignment:
                answer["alignment"] = character_alignment(body["text"], spoken.words)
                answer["normalized_alignment"] = character_alignment(
                    " ".join(body["text"].split()), spoken.words
                )
            return Reply(200, answer)

        return handler


def character_alignment(text: str, words: list[WordTiming]) -> dict[str, list[Any]]:
    """ElevenLabs' ``alignment`` of `text` given its words' timings: each
    word's characters share its time evenly; spaces fill the gaps."""
    chars: list[str] = []
    starts: list[float] = []
    ends: list[float] = []
    tokens = iter(words)
    i = 0
    last_end = 0.0
    while i < len(text):
        if text[i].isspace():
            chars.append(text[i])
            starts.append(last_end)
            ends.append(last_end)
            i += 1
            continue
        j = i
        while j < len(text) and not text[j].isspace():
            j += 1
        word = next(tokens)
        step = (word.end - word.start) / (j - i)
        for k in range(j - i):
            chars.append(text[i + k])
            starts.append(round(word.start + k * step, 6))
            ends.append(round(word.start + (k + 1) * step, 6) if k < j - i - 1 else word.end)
        last_end = word.end
        i = j
    return {
        "characters": chars,
        "character_start_times_seconds": starts,
        "character_end_times_seconds": ends,
    }


def voice_list(*extra: Any) -> dict[str, Any]:
    """``GET /v1/voices`` of an account with two premade voices (and `extra`)."""
    return {
        "voices": [
            {
                "voice_id": "JBFqnCBsd6RMkjVDRZzb",
                "name": "George",
                "category": "premade",
                "labels": {
                    "accent": "british",
                    "age": "middle aged",
                    "gender": "male",
                    "use_case": "narration",
                },
                "verified_languages": [{"language": "en", "model_id": "eleven_multilingual_v2"}],
            },
            {
                "voice_id": "EXAVITQu4vr4xnJGR9EL",
                "name": "Sarah",
                "category": "premade",
                "labels": {"accent": "american", "gender": "female", "description": "soft"},
            },
            *extra,
        ]
    }
