"""Offline neural narration: hibari's "heart" voice (American English, female).

Size (~540 lines): the in-memory graph edit, the phoneme-to-word alignment
and the synthesis share the model's private tensor names and frame size;
split apart, each piece would have to know the others' internals.

Why hibari: its one ONNX model (7.9 MB, int8, Apache-2.0, distilled from
Kokoro-82M's af_heart) and its phonemizer ship inside the `hibari-tts` wheel,
run on onnxruntime at ~100x real time on one core, and need no torch, no
espeak-ng and no download.  Only the voice inside the wheel is offered: the
package's other voices would be fetched from the network on first use.

Word timings come from the model itself.  The graph predicts a duration (in
25 ms frames of 600 samples at 24 kHz) for every phoneme id, then expands the
phonemes by them; that tensor (``/Cast_32_output_0``) is not a graph output,
so the model's bytes are edited in memory at load time to list it as one (a
ValueInfoProto appended to GraphProto.output: a few lines of protobuf wire
format, so the ``onnx`` package is not needed).  The durations sum exactly to
the audio's length, which `_run` checks.  Each word of the text is then timed
by the phonemes the phonemizer made for it: characters of the normalised text
(``Dr.`` -> ``Doctor``) are aligned back to the text's own characters, so
every whitespace-separated token of the input gets one timing, as with eSpeak.

Determinism: onnxruntime runs single-threaded, and the noise component of the
vocoder comes from a generator seeded the same way on every call, so equal
text gives identical audio.

`Voice.rate` (words per minute) becomes the model's ``speed`` input, found
by bisection on the pace measured on a fixed text (`speed_for`; the graph's
unrounded durations are exposed too, so trying a speed needs no synthesis);
the model accepts 0.5-2.0.  `Voice.pitch` is not used: the
model has no pitch control (documented in docs/engine.md).
"""

from __future__ import annotations

import bisect
import difflib
import functools
import gc
import json
import os
import re
import threading
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from aiprod.production.media.audio import write_wav
from aiprod.production.media.memory import release_memory
from aiprod.production.models import Narration, Voice, WordTiming
from aiprod.production.stages.narrate import VoiceInfo

ENGINE = "hibari"
VOICE_ID = "hibari-heart"
"""The one neural voice: hibari's bundled "heart"."""

SAMPLE_RATE = 24000
LANGUAGE = "en-US"
LICENCE = "Apache-2.0 (hibari-tts; distilled from Kokoro-82M af_heart, Apache-2.0)"

_DURATION_OUTPUT = "/Cast_32_output_0"
"""Per-phoneme durations (int64 frames) inside hibari-tts 0.2.1's graph."""
_RAW_OUTPUT = "/Sub_output_0"
"""The same before ``max(round(raw / speed), 1)``: the pace at any speed, without synthesis."""
_FRAME = 600  # samples per duration frame (25 ms)
_MAX_PHONEMES = 400  # hibari's limit per model call; longer sentences split at clauses
_SEED = 0
_MIN_SPEED, _MAX_SPEED = 0.5, 2.0
_RATE_STEPS = 16  # bisection steps on the speed for an asked rate

EMPTY_SECONDS = 0.3
_SILENCE = 0.004  # about -48 dBFS: a 10 ms frame under this counts as silence
_FRAME_SECONDS = 0.010
_LEAD_SECONDS = 0.05  # silence kept before the first sound
_TAIL_SECONDS = 0.20  # and after the last one

RATE_SAMPLE = (
    "Every morning the market opens before sunrise. Farmers bring fresh bread, cheese and "
    "apples from the valley, and the first customers arrive with baskets and warm coffee. "
    "By noon the square is quiet again."
)
"""The fixed text speaking rates are measured on (34 words of plain prose)."""

_PUNCT_PHONEMES = frozenset(';:,.!?—…"“”() ')
_CLAUSE = re.compile(r"(?<=[,;:—])\s+")
_TOKEN = re.compile(r"\S+")


# --- the model, with its duration tensor exposed ------------------------------------------


def _varint(data: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[i]
        i += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, i


def _encode_varint(n: int) -> bytes:
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        if n:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def with_extra_outputs(model: bytes, names: list[str]) -> bytes:
    """A copy of an ONNX ModelProto whose graph also outputs the tensors `names`.

    ModelProto.graph is field 7; GraphProto.output is field 12 (repeated
    ValueInfoProto, whose field 1 is the name).  Repeated fields may appear
    anywhere in a message, so the new output is appended to the graph's bytes
    and the graph's length prefix rewritten.  onnxruntime infers its type.
    """
    out = bytearray()
    i = 0
    found = False
    while i < len(model):
        start = i
        key, i = _varint(model, i)
        field, wire = key >> 3, key & 7
        if wire == 0:
            _, i = _varint(model, i)
        elif wire == 1:
            i += 8
        elif wire == 5:
            i += 4
        elif wire == 2:
            size, body = _varint(model, i)
            i = body + size
            if field == 7 and not found:
                graph = model[body:i]
                for name in names:
                    raw = name.encode()
                    info = b"\x0a" + _encode_varint(len(raw)) + raw
                    graph += b"\x62" + _encode_varint(len(info)) + info
                out += _encode_varint(key) + _encode_varint(len(graph)) + graph
                found = True
                continue
        else:
            raise ValueError(f"not an ONNX model: wire type {wire} at byte {start}")
        out += model[start:i]
    if not found or i != len(model):
        raise ValueError("not an ONNX model: no graph")
    return bytes(out)


@dataclass
class _Model:
    session: Any  # onnxruntime.InferenceSession
    g2p: Any  # hibari.g2p.G2P
    vocab: dict[str, int]
    pid: int
    lock: threading.Lock  # the phonemizer is plain Python state; one caller at a time


_load_lock = threading.Lock()
_model: _Model | None = None


def _load() -> _Model:
    """Load the bundled model (never a download) and the phonemizer, once per process."""
    global _model
    with _load_lock:
        if _model is not None and _model.pid == os.getpid():
            return _model
        import onnxruntime as ort
        from hibari.g2p import G2P
        from hibari.tts import ASSETS
        from hibari.voices import voice_path

        path = voice_path("heart", download_missing=False)
        options = ort.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = 1
        options.log_severity_level = 3
        # No memory arena: it keeps the largest activation of any call for the
        # process's life (measured: 26 MB less resident after a narration).
        options.enable_cpu_mem_arena = False
        options.enable_mem_pattern = False
        try:
            session = ort.InferenceSession(
                with_extra_outputs(Path(path).read_bytes(), [_DURATION_OUTPUT, _RAW_OUTPUT]),
                options,
                providers=["CPUExecutionProvider"],
            )
        except Exception as exc:  # another hibari build: the tensor name moved
            raise RuntimeError(
                f"hibari's model ({path}) has no duration tensor {_DURATION_OUTPUT!r}; "
                "this backend supports hibari-tts 0.2.1"
            ) from exc
        vocab = json.loads(Path(ASSETS, "vocab.json").read_text(encoding="utf-8"))
        _model = _Model(session, G2P(british=False), vocab, os.getpid(), threading.Lock())
        return _model


def release() -> None:
    """Drop the model and phonemizer and hand their memory back to the OS.

    Loaded they hold ~170 MB (the phonemizer's lexicons ~100 MB, the session
    ~80 MB) that a 1080p render would otherwise have to fit beside; the narrate
    stage calls this when it is done, and the next narration loads them again
    (~0.9 s).  A narration running on another thread keeps its own reference."""
    global _model
    with _load_lock:
        _model = None
    gc.collect()
    release_memory()


# --- text -> phonemes, remembering which characters each phoneme came from ---------------


@dataclass
class _Chunk:
    """One model call: a phoneme string and, per phoneme character, its source."""

    phonemes: str
    source: list[int]  # index into the original text, -1 for inserted spaces
    spoken: list[bool]  # False for punctuation and spaces (pauses, not words)


def _align(original: str, normalised: str) -> list[int]:
    """For each character of `normalised`, a character index of `original`.

    Normalisation rewrites a few spans ("Dr." -> "Doctor", "5km" -> "5
    kilometers"); matching blocks map one to one, a rewritten span maps onto
    the span it replaced, and inserted text onto the position it was inserted at.
    """
    matcher = difflib.SequenceMatcher(None, original.lower(), normalised.lower(), autojunk=False)
    where = [0] * len(normalised)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        for j in range(j1, j2):
            if tag == "equal":
                where[j] = i1 + (j - j1)
            elif tag == "replace":
                where[j] = i1 + (j - j1) * (i2 - i1) // (j2 - j1)
            else:  # insert (delete has no normalised characters)
                where[j] = min(i1, max(len(original) - 1, 0))
    return where


def _sentence_chunks(model: _Model, sentence: str, offset: int) -> list[_Chunk]:
    """Phonemize one sentence (hibari's pipeline) keeping each phoneme's source character."""
    from hibari.g2p.normalize import normalize

    normalised = normalize(sentence)
    where = _align(sentence, normalised)
    with model.lock:
        tokens = model.g2p.phonemize_tokens(model.g2p.tokenize(normalised))
    phonemes: list[str] = []
    source: list[int] = []
    spoken: list[bool] = []
    cursor = 0
    for tok in tokens:
        found = normalised.find(tok.text, cursor) if tok.text else -1
        at = found if found >= 0 else min(cursor, max(len(normalised) - 1, 0))
        if found >= 0:
            cursor = found + len(tok.text)
        origin = offset + (where[at] if where else 0)
        ps = tok.phonemes or ""
        speaks = any(c not in _PUNCT_PHONEMES for c in ps)
        for c in ps:
            phonemes.append(c)
            source.append(origin)
            spoken.append(speaks and c not in _PUNCT_PHONEMES)
        if tok.whitespace:
            phonemes.append(" ")
            source.append(-1)
            spoken.append(False)
    # hibari strips the joined string; do the same, keeping the parallel lists in step.
    text = "".join(phonemes)
    lo = len(text) - len(text.lstrip())
    hi = len(text.rstrip())
    text, source, spoken = text[lo:hi], source[lo:hi], spoken[lo:hi]
    if not text:
        return []
    if len(text) <= _MAX_PHONEMES:
        return [_Chunk(text, source, spoken)]
    # Too long for one call: cut after clause punctuation, as hibari does.
    cuts = [(m.start(), m.end()) for m in _CLAUSE.finditer(text)] + [(len(text), len(text))]
    chunks: list[_Chunk] = []
    start = 0
    previous: tuple[int, int] | None = None
    for a, b in cuts:
        if a - start > _MAX_PHONEMES and previous is not None:
            cut, start_next = previous
            chunks.append(_Chunk(text[start:cut], source[start:cut], spoken[start:cut]))
            start = start_next
        previous = (a, b)
    chunks.append(_Chunk(text[start:], source[start:], spoken[start:]))
    return chunks


def _chunks(model: _Model, text: str) -> list[_Chunk]:
    from hibari.tts import Hibari

    out: list[_Chunk] = []
    cursor = 0
    for sentence in Hibari.split_sentences(text):
        offset = text.find(sentence, cursor)
        if offset < 0:  # split_sentences returns substrings; be safe anyway
            offset = cursor
        cursor = offset + len(sentence)
        out += _sentence_chunks(model, sentence, offset)
    return out


# --- synthesis -----------------------------------------------------------------------------


def _ids(model: _Model, chunk: _Chunk) -> tuple[list[int], list[int]]:
    """Model ids of a chunk (0 at both ends) and, per phoneme character, its id's index
    (-1 for a character the vocabulary lacks: hibari drops those)."""
    ids = [0]
    id_of: list[int] = []
    for c in chunk.phonemes:
        v = model.vocab.get(c)
        if v is None:
            id_of.append(-1)
        else:
            id_of.append(len(ids))
            ids.append(v)
    ids.append(0)
    return ids, id_of


def _spans(durations: NDArray[np.int64], id_of: list[int]) -> list[tuple[int, int]]:
    """Per phoneme character, its (start, end) sample from the ids' durations in frames."""
    ends = np.cumsum(durations) * _FRAME
    starts = ends - durations * _FRAME
    spans: list[tuple[int, int]] = [(0, 0)] * len(id_of)
    following = int(ends[-1])
    for k in range(len(id_of) - 1, -1, -1):
        i = id_of[k]
        if i < 0:  # dropped character: no time, at the next phoneme
            spans[k] = (following, following)
        else:
            spans[k] = (int(starts[i]), int(ends[i]))
            following = int(starts[i])
    return spans


def _infer(model: _Model, ids: list[int], speed: float) -> list[Any]:
    outputs: list[Any] = model.session.run(
        None, {"ids": np.asarray([ids], np.int64), "speed": np.asarray([speed], np.float32)}
    )
    return outputs


def _run(
    model: _Model, chunk: _Chunk, speed: float, rng: np.random.Generator
) -> tuple[NDArray[np.float32], list[tuple[int, int]]]:
    """Audio of one chunk and, per phoneme character, its (start, end) sample."""
    from hibari import dsp

    ids, id_of = _ids(model, chunk)
    if len(ids) < 3:
        return np.zeros(0, np.float32), [(0, 0)] * len(chunk.phonemes)
    outputs = _infer(model, ids, speed)
    durations = np.asarray(outputs[6]).reshape(-1).astype(np.int64)
    audio = np.asarray(dsp.synth(*(o[0] for o in outputs[:6]), rng), dtype=np.float32)
    if len(durations) != len(ids) or int(durations.sum()) * _FRAME != len(audio):
        raise RuntimeError(
            f"hibari's durations ({len(durations)} phonemes, {int(durations.sum())} frames) "
            f"do not match its audio ({len(ids)} phonemes, {len(audio)} samples)"
        )
    return audio, _spans(durations, id_of)


def _synthesise(text: str, speed: float) -> tuple[NDArray[np.float32], list[tuple[int, int, int]]]:
    """Audio of `text` and its spoken phonemes as (source char, start sample, end sample)."""
    model = _load()
    rng = np.random.default_rng(_SEED)
    parts: list[NDArray[np.float32]] = []
    phones: list[tuple[int, int, int]] = []
    offset = 0
    for chunk in _chunks(model, text):
        audio, spans = _run(model, chunk, speed, rng)
        for k, (a, b) in enumerate(spans):
            if chunk.spoken[k] and chunk.source[k] >= 0 and b > a:
                phones.append((chunk.source[k], offset + a, offset + b))
        parts.append(audio)
        offset += len(audio)
    audio = np.concatenate(parts) if parts else np.zeros(0, np.float32)
    return audio, phones


def _word_timings(
    text: str, phones: list[tuple[int, int, int]], shift: int, end: int
) -> list[WordTiming]:
    """One timing per whitespace-separated token of `text`, from the phonemes made for it.

    A token starts with its first phoneme and ends with its last (pauses for
    punctuation are not words).  A token the model said nothing for (a lone
    dash) takes no time, at the start of the next spoken token.
    """
    spans = [(m.start(), m.end(), m.group()) for m in _TOKEN.finditer(text)]
    if not spans:
        return []
    ends = [e for _, e, _ in spans]
    first: list[int | None] = [None] * len(spans)
    last: list[int | None] = [None] * len(spans)
    for char, a, b in phones:
        k = min(bisect.bisect_right(ends, char), len(spans) - 1)
        current_first, current_last = first[k], last[k]
        first[k] = a if current_first is None else min(current_first, a)
        last[k] = b if current_last is None else max(current_last, b)
    words: list[WordTiming] = []
    following = end
    timed: list[tuple[int, int]] = [(0, 0)] * len(spans)
    for k in range(len(spans) - 1, -1, -1):
        lo, hi = first[k], last[k]
        if lo is None or hi is None:
            timed[k] = (following, following)
        else:
            timed[k] = (lo - shift, hi - shift)
            following = lo - shift
    previous = 0
    for (_, _, token), (lo_, hi_) in zip(spans, timed, strict=True):
        a = min(max(lo_, previous, 0), end)  # keep starts monotonic and inside the audio
        b = min(max(hi_, a), end)
        previous = a
        words.append(
            WordTiming(text=token, start=round(a / SAMPLE_RATE, 4), end=round(b / SAMPLE_RATE, 4))
        )
    return words


def _frame_levels(samples: NDArray[np.float32], frame: int) -> NDArray[np.float32]:
    n = -(-len(samples) // frame) * frame
    padded = np.zeros(n, dtype=np.float32)
    padded[: len(samples)] = np.abs(samples)
    return np.asarray(padded.reshape(-1, frame).max(axis=1), dtype=np.float32)


@functools.cache
def _sample_paces() -> list[tuple[_Chunk, list[int], NDArray[np.float32]]]:
    """`RATE_SAMPLE`'s chunks with their ids' index and raw (unrounded) durations."""
    model = _load()
    found = []
    for chunk in _chunks(model, RATE_SAMPLE):
        ids, id_of = _ids(model, chunk)
        raw = np.asarray(_infer(model, ids, 1.0)[7], dtype=np.float32).reshape(-1)
        found.append((chunk, id_of, raw))
    return found


def _rate_at(speed: float) -> float:
    """Words per minute at model speed `speed` on `RATE_SAMPLE` (first word to last),
    from the durations the graph would compute (``max(round(raw / speed), 1)``,
    in float32 as onnxruntime does), without running the model again."""
    phones: list[tuple[int, int, int]] = []
    offset = 0
    for chunk, id_of, raw in _sample_paces():
        durations = np.maximum(np.round(raw / np.float32(speed)), 1).astype(np.int64)
        for k, (a, b) in enumerate(_spans(durations, id_of)):
            if chunk.spoken[k] and chunk.source[k] >= 0 and b > a:
                phones.append((chunk.source[k], offset + a, offset + b))
        offset += int(durations.sum()) * _FRAME
    words = _word_timings(RATE_SAMPLE, phones, 0, offset)
    return len(words) * 60.0 / (words[-1].end - words[0].start)


def natural_rate() -> float:
    """The voice's own pace in words per minute (speed 1.0).  Cached per process."""
    return _rate_at(1.0)


@functools.lru_cache(maxsize=64)
def speed_for(rate: int) -> float:
    """The model's speed input that makes the voice speak `rate` words per minute.

    The graph rounds each phoneme's duration to whole 25 ms frames after
    dividing by the speed, so pace is a staircase of the speed, not
    proportional to it (short phonemes stay one or two frames).  Pace grows
    with speed, so bisect on it; each step is a few NumPy operations on the
    sample's raw durations.  Clipped to the model's 0.5-2.0 (about 80-295
    words per minute).  Deterministic, cached per rate.
    """
    lo, hi = _MIN_SPEED, _MAX_SPEED
    if rate <= _rate_at(lo):
        return lo
    if rate >= _rate_at(hi):
        return hi
    for _ in range(_RATE_STEPS):
        mid = (lo + hi) / 2
        if _rate_at(mid) < rate:
            lo = mid
        else:
            hi = mid
    # The closer of the two bracketing speeds.
    best = min((lo, hi), key=lambda v: abs(_rate_at(v) - rate))
    return round(best, 4)


class NeuralNarrator:
    """Narrator backend on hibari's bundled neural voice: natural English, offline."""

    name: str = ENGINE

    def __init__(self) -> None:
        self.version: str = f"1+hibari-tts-{metadata.version('hibari-tts')}"

    def release(self) -> None:
        """Free the model until the next narration (see `release`)."""
        release()

    def narrate(self, text: str, voice: Voice, language: str, out: Path) -> Narration:
        """Speak `text` into a mono 16-bit WAV at 24 kHz with word timings from the model.

        The voice and language are checked even for blank text, so a bad
        request fails at once rather than on the first scene that has words.
        """
        if voice.name.lower() != VOICE_ID:
            raise ValueError(
                f"the {ENGINE} narrator has no voice {voice.name!r}; it has {VOICE_ID}"
            )
        if language.lower().split("-", 1)[0] != "en":
            raise ValueError(f"voice {VOICE_ID} speaks English only, not {language!r}")
        audio, phones = _synthesise(text, speed_for(voice.rate)) if text.strip() else (None, [])
        if audio is None or not phones:
            silence = np.zeros(round(EMPTY_SECONDS * SAMPLE_RATE), dtype=np.float32)
            write_wav(out, silence, SAMPLE_RATE)
            return Narration(path=out, sample_rate=SAMPLE_RATE, duration=EMPTY_SECONDS, words=[])
        frame = round(SAMPLE_RATE * _FRAME_SECONDS)
        sounding = np.flatnonzero(_frame_levels(audio, frame) > _SILENCE)
        first_phone = min(a for _, a, _ in phones)
        last_phone = max(b for _, _, b in phones)
        sound_start = int(sounding[0]) * frame if len(sounding) else first_phone
        sound_end = (int(sounding[-1]) + 1) * frame if len(sounding) else last_phone
        start = max(0, min(sound_start, first_phone) - round(_LEAD_SECONDS * SAMPLE_RATE))
        end = min(len(audio), max(sound_end, last_phone) + round(_TAIL_SECONDS * SAMPLE_RATE))
        audio = audio[start:end]
        words = _word_timings(text, phones, start, len(audio))
        write_wav(out, audio, SAMPLE_RATE)
        return Narration(
            path=out, sample_rate=SAMPLE_RATE, duration=len(audio) / SAMPLE_RATE, words=words
        )

    def voices(self) -> list[VoiceInfo]:
        """The one voice inside the wheel (hibari's others would be downloaded: not offered)."""
        return [
            VoiceInfo(
                name=VOICE_ID,
                language=LANGUAGE,
                gender="female",
                description="American English, neural (hibari 'heart', from Kokoro af_heart)",
                engine=ENGINE,
                sample_rate=SAMPLE_RATE,
                licence=LICENCE,
            )
        ]
