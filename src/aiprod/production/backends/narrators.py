"""The default narrator: each voice to the engine that speaks it, and speaking rates.

`BuiltinNarrator` (backend ``builtin``, the default) offers every offline
voice under one name and routes each request by its voice:

- a neural voice id (``hibari-heart``) goes to the neural engine;
- the default voice (`Voice.name` ``"en"``, which means "this language's
  default voice") goes to the neural engine when the language is English, and
  to eSpeak NG otherwise (which picks that language's voice);
- every other name (``en-us``, ``de``, ``en+f3`` ...) is an eSpeak NG voice.

So English sounds natural by default, the other languages eSpeak speaks keep
working, and an eSpeak English voice is still one name away (``en-gb``,
``en-us``, ``en+f3``).  The backends ``hibari`` and ``espeak`` stay
registered on their own for requests that want one engine only.

`speaking_rate` measures a voice's real pace (words per minute on a fixed
text) so that the planner can size narration to a target duration.
"""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path
from typing import Any

from aiprod.production import backends
from aiprod.production.backends.neural import RATE_SAMPLE, VOICE_ID
from aiprod.production.models import Narration, Voice
from aiprod.production.stages.narrate import Narrator, VoiceInfo
from aiprod.settings import Settings

DEFAULT_VOICE_NAME = "en"
"""`Voice.name`'s default: the request's language's default voice."""

NEURAL_VOICES = frozenset({VOICE_ID})
NEURAL_LANGUAGES = frozenset({"en"})


def _base(language: str) -> str:
    return language.lower().split("-", 1)[0]


def engine_for(voice: Voice, language: str, neural_default: bool = True) -> str:
    """The engine ("hibari" or "espeak") that speaks `voice` in `language`; with
    `neural_default` off (setting ``neural_narration``) the default voice is eSpeak's."""
    name = voice.name.lower()
    if name in NEURAL_VOICES:
        return "hibari"
    if name == DEFAULT_VOICE_NAME and neural_default and _base(language) in NEURAL_LANGUAGES:
        return "hibari"
    return "espeak"


def resolve(voice: Voice, language: str, neural_default: bool = True) -> Voice:
    """`voice` as its engine names it (the default English voice -> the neural one)."""
    if engine_for(voice, language, neural_default) == "hibari" and voice.name.lower() != VOICE_ID:
        return voice.model_copy(update={"name": VOICE_ID})
    return voice


class BuiltinNarrator:
    """Narrator backend that routes each voice to the neural engine or to eSpeak NG."""

    name: str = "builtin"

    def __init__(self) -> None:
        self._espeak: Any = backends.get("narrate", "espeak")
        self._neural: Any = backends.get("narrate", "hibari")
        self.neural_default = Settings().neural_narration  # once: backends live per process
        # Either engine's version enters the cache key (a new one may sound
        # different), and so does the routing of the default voice.
        self.version: str = f"1+{self._espeak.version}+{self._neural.version}" + (
            "" if self.neural_default else "+espeak-default"
        )

    def engine(self, voice: Voice, language: str) -> Narrator:
        neural = engine_for(voice, language, self.neural_default) == "hibari"
        engine: Narrator = self._neural if neural else self._espeak
        return engine

    def narrate(self, text: str, voice: Voice, language: str, out: Path) -> Narration:
        spoken = resolve(voice, language, self.neural_default)
        return self.engine(voice, language).narrate(text, spoken, language, out)

    def release(self) -> None:
        """Free the neural model's memory until the next narration."""
        self._neural.release()

    def voices(self) -> list[VoiceInfo]:
        """The neural voices first, then eSpeak NG's (whose ``en`` says what it means here)."""
        espeak: list[VoiceInfo] = [
            v.model_copy(
                update={
                    "description": f"{v.description}; as a request's voice `en` means the "
                    f"language's default voice ({VOICE_ID} for English), `en+f3` etc. this one"
                }
            )
            if v.name == DEFAULT_VOICE_NAME
            else v
            for v in self._espeak.voices()
        ]
        return [*self._neural.voices(), *espeak]

    def variants(self) -> list[str]:
        """eSpeak NG's timbre variants (they apply to eSpeak voices only)."""
        found: list[str] = self._espeak.variants()
        return found

    @property
    def deterministic(self) -> bool:
        """Whether equal requests give identical audio (the neural engine always does)."""
        return bool(self._espeak.deterministic)


@functools.lru_cache(maxsize=128)
def _measure(backend: str, voice_json: str, language: str) -> float:
    narrator = backends.get("narrate", backend)
    voice = Voice.model_validate_json(voice_json)
    with tempfile.TemporaryDirectory(prefix="aiprod-rate-") as tmp:
        result: Narration = narrator.narrate(RATE_SAMPLE, voice, language, Path(tmp) / "rate.wav")
    words = result.words
    if len(words) < 2 or words[-1].end <= words[0].start:
        raise ValueError(f"voice {voice.name!r} said nothing measurable")
    return len(words) * 60.0 / (words[-1].end - words[0].start)


def speaking_rate(
    voice: Voice | str | None = None, language: str = "en", backend: str | None = None
) -> float:
    """Words per minute `voice` really speaks (at its `rate` setting) in `language`.

    Measured from the word timings of `RATE_SAMPLE` (34 words of English
    prose; other languages' voices read it with their own rules, so treat
    their figure as approximate), from the first word's start to the last
    one's end, so leading and trailing silence do not count.  Cached per
    process: about 0.1 s (neural) or 0.05 s (eSpeak) the first time.
    """
    if voice is None:
        voice = Voice()
    elif isinstance(voice, str):
        voice = Voice(name=voice)
    name = backend or backends.DEFAULTS["narrate"]
    backends.check("narrate", name)
    return _measure(name, voice.model_dump_json(), language)
