"""Offline narration with eSpeak NG, driven through ctypes.

Size (~600 lines): the ctypes binding, its callback and the one lock around
eSpeak's global state belong together; splitting them would hand the lock to
several modules.

Why ctypes and not the `espeak-ng` command line: the library hands us, in the
same pass that makes the audio, an event for every word with its position in
the text and in the audio.  Those events are what subtitles and scene pacing
are built from, and the CLI cannot give them.  The library and its data come
from the `espeakng-loader` wheel, so nothing has to be installed system-wide.

eSpeak NG keeps its state (current voice, parameters, callback) in globals and
is not thread-safe, so every call into it holds one module-level lock and the
library is initialised once per process.

Determinism: eSpeak keeps synthesis state in C statics that outlive an
utterance and that no API resets: the pitch-flutter phase (`Flutter_ix`), the
glottal cycle counter that paces "roughness" (`cycle_count`), the Klatt
synthesiser's filters and noise state, and a random generator (breathy voices).
So the same text came out slightly different on every call.  The statics are
located through the shipped library's symbol table, snapshotted right after
initialisation and restored, with the random seed, before every synthesis:
each call then sounds exactly like the first one in a fresh process.
"""

from __future__ import annotations

import bisect
import ctypes
import os
import re
import struct
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import espeakng_loader
import numpy as np
from numpy.typing import NDArray

from aiprod.production.media.audio import write_wav
from aiprod.production.models import Narration, Voice, WordTiming
from aiprod.production.stages.narrate import VoiceInfo

# --- constants from espeak-ng's speak_lib.h -------------------------------------------------

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000  # report errors instead of calling exit()
_POS_CHARACTER = 1
_CHARS_UTF8 = 1

_EVENT_LIST_TERMINATED = 0
_EVENT_WORD = 1

_PARAM_RATE = 1
_PARAM_VOLUME = 2
_PARAM_PITCH = 3
_PARAM_RANGE = 4
_PARAM_WORDGAP = 7

_EE_OK = 0
_EE_NOT_FOUND = 2

_GENDERS = {1: "male", 2: "female"}

LICENCE = "GPL-3.0-or-later (eSpeak NG and its voice data, via espeakng-loader)"

# --- tuning ---------------------------------------------------------------------------------

EMPTY_SECONDS = 0.3
"""Length of the silent file written for blank text."""

_SILENCE = 0.004
"""Amplitude (about -48 dBFS) under which a 10 ms frame counts as silence."""

_FRAME_SECONDS = 0.010
_TAIL_SECONDS = 0.20
"""Silence kept after the last spoken sound, so the file does not end abruptly."""

_WORD_PAUSE_SECONDS = 0.10
"""A word's end is pulled back from the next word's start only over a pause this long."""

_WORD_RELEASE_SECONDS = 0.03


class _Event(ctypes.Structure):
    _fields_ = (
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),  # 1-based, in characters
        ("length", ctypes.c_int),  # in characters
        ("audio_position", ctypes.c_int),  # milliseconds from the start of this synthesis
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", ctypes.c_char * 8),
    )


class _VoiceStruct(ctypes.Structure):
    _fields_ = (
        ("name", ctypes.c_char_p),
        ("languages", ctypes.c_void_p),  # (priority byte, NUL-terminated string)*, then NUL
        ("identifier", ctypes.c_char_p),
        ("gender", ctypes.c_ubyte),
        ("age", ctypes.c_ubyte),
        ("variant", ctypes.c_ubyte),
        ("xx1", ctypes.c_ubyte),
        ("score", ctypes.c_int),
        ("spare", ctypes.c_void_p),
    )


_Callback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event)
)


@dataclass
class _Capture:
    """What the synth callback collects during one espeak_Synth call."""

    chunks: list[bytes] = field(default_factory=list)
    words: list[tuple[int, int, int]] = field(default_factory=list)  # (char index, len, ms)


@dataclass
class _Engine:
    lib: Any
    sample_rate: int
    data_path: Path
    callback: Any  # kept referenced: the C side holds a pointer to it
    pristine: list[tuple[int, bytes]] | None  # (address, bytes) of the statics to restore
    capture: _Capture = field(default_factory=_Capture)

    def reset(self) -> None:
        """Put the synthesis state back as it was right after initialisation."""
        if self.pristine is None:
            return
        for address, saved in self.pristine:
            ctypes.memmove(address, saved, len(saved))
        self.lib.espeak_ng_SetRandSeed(1)


_lock = threading.Lock()
_engine: _Engine | None = None
_lib: Any = None


def _after_fork_in_child() -> None:
    # A forked child inherits the initialised library (synchronous mode runs no
    # threads) and, with it, the pristine snapshot, which a re-initialisation
    # could not recreate.  Only the lock must be new: one held by another thread
    # at fork time would never be released in the child.
    global _lock
    _lock = threading.Lock()


os.register_at_fork(after_in_child=_after_fork_in_child)


def _library() -> Any:
    """Load libespeak-ng (once) and declare the signatures we use."""
    global _lib
    if _lib is None:
        lib = ctypes.CDLL(espeakng_loader.get_library_path())
        lib.espeak_Info.restype = ctypes.c_char_p
        lib.espeak_Info.argtypes = [ctypes.c_void_p]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_SetSynthCallback.argtypes = [_Callback]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_GetCurrentVoice.restype = ctypes.POINTER(_VoiceStruct)
        lib.espeak_GetCurrentVoice.argtypes = []
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_ListVoices.restype = ctypes.POINTER(ctypes.POINTER(_VoiceStruct))
        lib.espeak_ListVoices.argtypes = [ctypes.c_void_p]
        lib.espeak_Synth.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [
            ctypes.c_char_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.c_void_p,
            ctypes.c_void_p,
        ]
        lib.espeak_Synchronize.restype = ctypes.c_int
        lib.espeak_Synchronize.argtypes = []
        _lib = lib
    return _lib


def library_version() -> str:
    """The eSpeak NG version string reported by the loaded library, e.g. '1.52.0'."""
    with _lock:
        raw: bytes | None = _library().espeak_Info(None)
    return raw.decode() if raw else "unknown"


_REQUIRED_STATICS = frozenset({"Flutter_ix", "cycle_count"})  # wavegen.c, every voice
_KLATT_STATICS = frozenset(
    {"kt_globals", "kt_frame", "klattp", "klattp1", "klattp_inc"}
    | {"glotlast", "nlast", "noise", "skew", "time_count", "vlast", "vwave"}
)
_ANCHOR = "espeak_Info"  # an exported function, to find where the library was loaded


def _static_name(symbol: str) -> str:
    """'Flutter_ix.5965' (GCC) or 'AdvanceParameters.Flutter_ix' (clang) -> 'Flutter_ix'."""
    parts = symbol.split(".")
    if len(parts) == 2 and parts[1].isdigit():
        return parts[0]
    return parts[-1]


def _find_statics(lib: Any, path: str, wanted: frozenset[str]) -> dict[str, list[tuple[int, int]]]:
    """Live addresses and sizes of the library's local data objects named in `wanted`.

    Reads the ELF64 symbol table (the wheel's library is not stripped) and
    relocates each symbol by the load address of an exported function.  An
    empty result means the library cannot be inspected (stripped, not ELF).
    """
    try:
        data = Path(path).read_bytes()
    except OSError:
        return {}
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:  # ELF64, little-endian
        return {}
    shoff = struct.unpack_from("<Q", data, 0x28)[0]
    shentsize, shnum = struct.unpack_from("<HH", data, 0x3A)
    sections = [
        struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize) for i in range(shnum)
    ]
    symtabs = [sh for sh in sections if sh[1] == 2]  # SHT_SYMTAB
    if not symtabs:
        return {}
    symtab = symtabs[0]
    str_off = sections[symtab[6]][4]
    anchor: int | None = None
    found: dict[str, list[tuple[int, int]]] = {}
    for off in range(symtab[4], symtab[4] + symtab[5], 24):
        st_name, st_info, _other, st_shndx, st_value, st_size = struct.unpack_from(
            "<IBBHQQ", data, off
        )
        end = data.index(b"\0", str_off + st_name)
        name = data[str_off + st_name : end].decode("ascii", errors="replace")
        kind, bind = st_info & 0xF, st_info >> 4
        if name == _ANCHOR and kind == 2 and st_shndx != 0:  # STT_FUNC, defined
            anchor = st_value
        elif kind == 1 and bind == 0 and st_shndx != 0 and st_size > 0:  # local STT_OBJECT
            base = _static_name(name)
            if base in wanted:
                found.setdefault(base, []).append((st_value, st_size))
    loaded = ctypes.cast(getattr(lib, _ANCHOR), ctypes.c_void_p).value
    if anchor is None or loaded is None:
        return {}
    shift = loaded - anchor
    return {k: [(shift + v, size) for v, size in objs] for k, objs in found.items()}


def _pristine_state(lib: Any) -> list[tuple[int, bytes]] | None:
    """Snapshot the statics that make eSpeak's output depend on earlier calls.

    None when they cannot all be found (another build of the library), in
    which case output varies slightly between calls and a warning says so.
    """
    statics = _find_statics(
        lib, espeakng_loader.get_library_path(), _REQUIRED_STATICS | _KLATT_STATICS
    )
    if not statics.keys() >= _REQUIRED_STATICS or not hasattr(lib, "espeak_ng_SetRandSeed"):
        return None
    lib.espeak_ng_SetRandSeed.restype = None
    lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
    return [
        (address, ctypes.string_at(address, size))
        for objs in statics.values()
        for address, size in objs
    ]


def _get_engine() -> _Engine:
    """Initialise eSpeak NG once per process (forked children inherit it).  Hold `_lock`."""
    global _engine
    if _engine is not None:
        return _engine
    lib = _library()
    data_path = Path(espeakng_loader.get_data_path())
    rate = lib.espeak_Initialize(
        _AUDIO_OUTPUT_SYNCHRONOUS, 0, str(data_path).encode(), _INITIALIZE_DONT_EXIT
    )
    if rate <= 0:
        raise RuntimeError(f"espeak_Initialize failed ({rate}) with data at {data_path}")
    engine: _Engine

    def on_synth(wav: Any, numsamples: int, events: Any) -> int:
        capture = engine.capture
        if wav and numsamples > 0:
            capture.chunks.append(ctypes.string_at(wav, numsamples * 2))
        i = 0
        while events[i].type != _EVENT_LIST_TERMINATED:
            ev = events[i]
            if ev.type == _EVENT_WORD:
                capture.words.append((ev.text_position - 1, ev.length, ev.audio_position))
            i += 1
        return 0  # 0 = carry on synthesising

    callback = _Callback(on_synth)
    lib.espeak_SetSynthCallback(callback)
    pristine = _pristine_state(lib)  # before anything is synthesised
    if pristine is None:
        warnings.warn(
            "eSpeak NG's synthesis state cannot be reset in this library build: narration "
            "will vary slightly from call to call",
            RuntimeWarning,
            stacklevel=3,
        )
    engine = _Engine(
        lib=lib, sample_rate=rate, data_path=data_path, callback=callback, pristine=pristine
    )
    _engine = engine
    return engine


def _languages(raw: int | None) -> list[str]:
    """Decode espeak_VOICE.languages: (priority byte, string, NUL)* terminated by a NUL."""
    if not raw:
        return []
    out: list[str] = []
    p = raw
    while True:
        priority = ctypes.string_at(p, 1)
        if priority == b"\0":
            return out
        name = ctypes.string_at(p + 1)
        out.append(name.decode(errors="replace"))
        p += 2 + len(name)


def _has_dictionary(data_path: Path, identifier: str) -> bool:
    """Whether the voice's pronunciation dictionary ships with the data.

    The wheel lists a few voices (Faroese, Karakalpak, ...) whose `*_dict` file
    is missing; eSpeak would "speak" them with an empty dictionary after
    printing an error, which is worse than refusing.  The dictionary is named by
    a `dictionary` line in the voice file, else by the first language's code.
    """
    voice_file = data_path / "lang" / identifier.split("+", 1)[0]
    try:
        lines = voice_file.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return True  # not a file we can inspect (e.g. a variant-only voice): trust eSpeak
    dictionary = ""
    for line in lines:
        parts = line.split()
        if len(parts) >= 2 and parts[0] == "dictionary":
            dictionary = parts[1]
            break
        if len(parts) >= 2 and parts[0] == "language" and not dictionary:
            dictionary = parts[1].split("-", 1)[0]
    return not dictionary or (data_path / f"{dictionary}_dict").is_file()


_HOW_TO_LIST = (
    "list the voices with `aiprod voices` (or EspeakNarrator().voices()); names are like "
    "'en', 'en-us', 'fr', 'de', and a variant such as '+f3' or '+klatt' changes the timbre"
)


def _select_voice(engine: _Engine, voice: Voice, language: str) -> str:
    """Make eSpeak use the voice the request means; return the voice identifier.

    `Voice.name` defaults to "en", so a request in another language that kept the
    default voice is taken to want that language's default voice.  An explicit
    voice name always wins.  A language with a region eSpeak lacks ("de-AT")
    falls back to the bare language ("de").
    """
    lib = engine.lib
    explicit = voice.name != "en" or language.lower().split("-", 1)[0] == "en"
    if explicit:
        candidates = [voice.name]
    else:
        candidates = [language]
        if "-" in language:
            candidates.append(language.split("-", 1)[0])
    for name in candidates:
        status = lib.espeak_SetVoiceByName(name.encode())
        if status == _EE_OK:
            current = lib.espeak_GetCurrentVoice()
            identifier = (
                current.contents.identifier.decode()
                if current and current.contents.identifier
                else name
            )
            if not _has_dictionary(engine.data_path, identifier):
                raise ValueError(
                    f"eSpeak NG voice {name!r} ({identifier}) has no pronunciation dictionary "
                    f"in this installation; {_HOW_TO_LIST}"
                )
            return identifier
        if status != _EE_NOT_FOUND:
            raise RuntimeError(f"espeak_SetVoiceByName({name!r}) failed with status {status}")
    what = f"voice {voice.name!r}" if explicit else f"language {language!r}"
    raise ValueError(f"eSpeak NG has no {what}; {_HOW_TO_LIST}")


def _set_parameters(lib: Any, voice: Voice) -> None:
    """Set every parameter we depend on, so no state leaks from a previous call.

    Punctuation and capitals announcement are left alone: this library build
    rejects setting them synchronously, and nothing here ever changes them.
    """
    for param, value in (
        (_PARAM_RATE, voice.rate),
        (_PARAM_PITCH, voice.pitch),
        (_PARAM_VOLUME, 100),
        (_PARAM_RANGE, 50),
        (_PARAM_WORDGAP, 0),
    ):
        status = lib.espeak_SetParameter(param, value, 0)
        if status != _EE_OK:
            raise RuntimeError(f"espeak_SetParameter({param}, {value}) failed with {status}")


def _synthesise(
    voice: Voice, language: str, text: str
) -> tuple[NDArray[np.float32], int, list[tuple[int, int, int]]]:
    """Speak `text`; return (samples, rate, word events as (char index, length, ms))."""
    with _lock:
        engine = _get_engine()
        # Reset first: selecting a voice sets up part of the state restored here.
        engine.reset()
        _select_voice(engine, voice, language)
        _set_parameters(engine.lib, voice)
        engine.capture = _Capture()
        data = text.replace("\0", " ").encode("utf-8")  # a NUL would end the C string
        status = engine.lib.espeak_Synth(
            data, len(data) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None
        )
        engine.lib.espeak_Synchronize()
        capture, engine.capture = engine.capture, _Capture()
        rate = engine.sample_rate
    if status != _EE_OK:
        raise RuntimeError(f"espeak_Synth failed with status {status}")
    pcm = np.frombuffer(b"".join(capture.chunks), dtype="<i2")
    return pcm.astype(np.float32) / 32768.0, rate, capture.words


def _frame_levels(samples: NDArray[np.float32], frame: int) -> NDArray[np.float32]:
    """Peak absolute amplitude of each `frame`-sample frame (last one padded)."""
    n = -(-len(samples) // frame) * frame
    padded = np.zeros(n, dtype=np.float32)
    padded[: len(samples)] = np.abs(samples)
    return np.asarray(padded.reshape(-1, frame).max(axis=1), dtype=np.float32)


_TOKEN = re.compile(r"\S+")


def _word_timings(
    text: str,
    events: list[tuple[int, int, int]],
    loud: NDArray[np.bool_],
    frame_seconds: float,
    speech_end: float,
) -> list[WordTiming]:
    """One timing per whitespace-separated token of `text`, in order.

    eSpeak reports words as *it* splits them: "1999" gives several events,
    "well-known" one, a lone dash none.  Subtitles need the user's words, so
    events are mapped onto the text's tokens by character position and a token
    starts at its earliest event.  A word ends where the next one starts,
    pulled back to the end of the sound when a pause follows it.
    """
    spans = [(m.start(), m.end(), m.group()) for m in _TOKEN.finditer(text)]
    if not spans or not events:
        return []
    ends = [e for _, e, _ in spans]
    starts: list[float | None] = [None] * len(spans)
    for char, _length, ms in events:
        k = bisect.bisect_right(ends, char)  # first token ending after this character
        if k >= len(spans):
            k = len(spans) - 1
        t = min(ms / 1000.0, speech_end)
        current = starts[k]
        starts[k] = t if current is None else min(current, t)
    # A token eSpeak said nothing for (a lone dash, an emoji) takes no time: it
    # sits at the start of the next spoken word, or at the end of the speech.
    following = speech_end
    for i in range(len(spans) - 1, -1, -1):
        current = starts[i]
        if current is None:
            starts[i] = following
        else:
            following = current
    # eSpeak's events come in text order; keep starts monotonic even if one does not.
    all_starts = np.maximum.accumulate(np.array(starts, dtype=np.float64))
    words: list[WordTiming] = []
    n_frames = len(loud)
    for i, (_, _, token) in enumerate(spans):
        start = float(all_starts[i])
        end = float(all_starts[i + 1]) if i + 1 < len(spans) else speech_end
        end = max(end, start)
        lo = min(int(start / frame_seconds), n_frames)
        hi = min(int(np.ceil(end / frame_seconds)), n_frames)
        sounding = np.flatnonzero(loud[lo:hi])
        if len(sounding):
            last = (lo + int(sounding[-1]) + 1) * frame_seconds + _WORD_RELEASE_SECONDS
            if end - last > _WORD_PAUSE_SECONDS:
                end = last
        words.append(WordTiming(text=token, start=round(start, 4), end=round(end, 4)))
    return words


class EspeakNarrator:
    """Narrator backend on eSpeak NG: robotic but intelligible, fast and fully offline."""

    name: str = "espeak"

    def __init__(self) -> None:
        # The library version enters the cache key: a new eSpeak may say things differently.
        self.version: str = f"1+espeak-ng-{library_version()}"

    @property
    def deterministic(self) -> bool:
        """Whether equal requests give identical audio (see the module docstring)."""
        with _lock:
            return _get_engine().pristine is not None

    def narrate(self, text: str, voice: Voice, language: str, out: Path) -> Narration:
        """Speak `text` into a mono 16-bit WAV at eSpeak's rate (22050 Hz).

        The voice is checked even for blank text, so a bad voice fails at once
        rather than on the first scene that has words.
        """
        samples, rate, events = _synthesise(voice, language, text if text.strip() else "")
        frame = max(1, round(rate * _FRAME_SECONDS))
        frame_seconds = frame / rate
        loud = _frame_levels(samples, frame) > _SILENCE
        sounding = np.flatnonzero(loud)
        if not text.strip() or len(sounding) == 0:
            silence = np.zeros(round(EMPTY_SECONDS * rate), dtype=np.float32)
            write_wav(out, silence, rate)
            return Narration(path=out, sample_rate=rate, duration=len(silence) / rate, words=[])
        speech_end = min((int(sounding[-1]) + 1) * frame, len(samples))
        keep = min(len(samples), speech_end + round(_TAIL_SECONDS * rate))
        samples = samples[:keep]
        words = _word_timings(text, events, loud, frame_seconds, speech_end / rate)
        write_wav(out, samples, rate)
        return Narration(path=out, sample_rate=rate, duration=keep / rate, words=words)

    def voices(self) -> list[VoiceInfo]:
        """The voices this installation can speak, by the name `Voice.name` accepts.

        The name is the voice file's name (e.g. "en", "en-US", "fr"), which
        espeak_SetVoiceByName accepts and which fits `Voice.name`'s pattern,
        unlike eSpeak's display names ("English (Great Britain)").
        """
        with _lock:
            engine = _get_engine()
            listed = engine.lib.espeak_ListVoices(None)
            found: list[VoiceInfo] = []
            i = 0
            while listed[i]:
                v = listed[i].contents
                i += 1
                identifier = v.identifier.decode() if v.identifier else ""
                if not identifier or identifier.startswith("mb/"):
                    continue  # MBROLA voices need an MBROLA install we do not ship
                if not _has_dictionary(engine.data_path, identifier):
                    continue
                langs = _languages(v.languages)
                found.append(
                    VoiceInfo(
                        name=identifier.rsplit("/", 1)[-1],
                        language=langs[0] if langs else "",
                        gender=_GENDERS.get(v.gender, ""),
                        description=v.name.decode(errors="replace") if v.name else "",
                        engine="espeak",
                        sample_rate=engine.sample_rate,
                        licence=LICENCE,
                        any_language=True,
                    )
                )
        return found

    def variants(self) -> list[str]:
        """The timbre variants a voice name may add after ``+`` ("en+f3",
        "de+klatt3"): the files of the data's ``voices/!v`` folder.  A digit
        names a numbered one (``+3`` is ``m3``, ``+13`` is ``f3``).  eSpeak
        silently ignores a variant it cannot find, so callers check names
        against this list rather than rely on an error."""
        with _lock:
            folder = _get_engine().data_path / "voices" / "!v"
        try:
            return sorted(p.name for p in folder.iterdir() if p.is_file())
        except OSError:
            return []
