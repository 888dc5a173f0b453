"""The narrator voices this installation can speak, and the check every voice
the API takes must pass.

Why a check at submit: eSpeak NG resolves a voice name (and a ``+variant``)
to files of its data folder and silently ignores a variant it cannot find, so
a name that is merely well-formed could still read the wrong file or quietly
speak with another timbre than asked, and an unknown voice would only fail
the job minutes later, at the narrate stage.  A name the narrator does not
list answers 422 at once, pointing at ``GET /v1/voices``.  So does a voice
that cannot read the request's language: the neural English voice cannot
read French (eSpeak NG voices read any text, with their own language's
rules, so a French scene voice in an English production stays a choice).

Listing voices loads the narrator (eSpeak: one initialisation per process),
so catalogs are built off the event loop and kept for the process's life:
installed voices do not change while it runs.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import tempfile
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from aiprod.errors import Invalid
from aiprod.production import backends
from aiprod.production.models import ProductionRequest, Storyboard, Voice
from aiprod.production.stages.narrate import VoiceInfo

log = logging.getLogger("aiprod.jobs.voices")

VOICES_URL = "/v1/voices"


@dataclass(frozen=True)
class VoiceCatalog:
    """The voices and variants one narrator backend offers."""

    backend: str
    voices: tuple[VoiceInfo, ...]
    variants: tuple[str, ...]

    def find(self, name: str) -> VoiceInfo | None:
        """The listed voice `name` (any case, as eSpeak matches them) names,
        ignoring a ``+variant``; None when there is none."""
        base = name.partition("+")[0].lower()
        return next((v for v in self.voices if v.name.lower() == base), None)

    def knows(self, name: str) -> bool:
        """Whether `name` is a listed voice (any case, as eSpeak matches them),
        optionally with a listed ``+variant`` (exact case: variants are files)
        or a numbered one (``+3`` is ``m3``, ``+13`` is ``f3``).  Variants are
        eSpeak NG's: a voice of another engine takes none."""
        _, plus, variant = name.partition("+")
        info = self.find(name)
        if info is None:
            return False
        if not plus:
            return True
        if info.engine not in ("", "espeak"):
            return False
        if variant.isdigit():
            n = int(variant)
            variant = f"m{n}" if n < 10 else f"f{n - 10}"
        return variant in self.variants


_catalogs: dict[str, VoiceCatalog] = {}
_lock = threading.Lock()


def narrator_name(request: ProductionRequest) -> str:
    """The narrator backend a request uses."""
    return request.backends.get("narrate") or backends.DEFAULTS["narrate"]


def catalog(backend: str | None = None) -> VoiceCatalog:
    """The catalog of narrator `backend` (default: the default narrator).
    Raises backends.UnknownBackend for a name not registered.  Blocking."""
    name = backend or backends.DEFAULTS["narrate"]
    backends.check("narrate", name)
    with _lock:
        found = _catalogs.get(name)
        if found is None:
            narrator = backends.get("narrate", name)
            variants = getattr(narrator, "variants", None)
            found = VoiceCatalog(
                backend=name,
                voices=tuple(narrator.voices()),
                variants=tuple(variants()) if callable(variants) else (),
            )
            _catalogs[name] = found
    return found


async def installed(backend: str | None = None) -> VoiceCatalog:
    """`catalog`, without blocking the event loop on the first listing."""
    name = backend or backends.DEFAULTS["narrate"]
    found = _catalogs.get(name)
    return found if found is not None else await asyncio.to_thread(catalog, name)


PREVIEW_TEXT = {
    "en": "Hello! This is how I sound when I read your script.",
    "de": "Hallo! So klinge ich, wenn ich Ihren Text vorlese.",
    "es": "¡Hola! Así sueno cuando leo su guion.",
    "fr": "Bonjour ! Voici comment je lis votre texte.",
    "it": "Ciao! Ecco come leggo il vostro testo.",
    "nl": "Hallo! Zo klink ik als ik uw tekst voorlees.",
    "pt": "Olá! É assim que eu leio o seu texto.",
}
"""The sentence a preview reads, by language (English for the others)."""


@functools.lru_cache(maxsize=32)
def preview(backend: str, name: str) -> bytes:
    """A short WAV of voice `name` (a listed one, maybe with a ``+variant``)
    of narrator `backend` reading `PREVIEW_TEXT` in its own language.  Kept
    for the process's life (32 voices, ~150 KB each).  Blocking; raises
    LookupError for a voice the catalog does not list."""
    found = catalog(backend)
    info = found.find(name)
    if info is None or not found.knows(name):
        raise LookupError(name)
    # The voice's own engine when it is registered on its own: through the
    # routing narrator, eSpeak's "en" would mean "the default English voice".
    engine = info.engine if info.engine in backends.names("narrate") else found.backend
    narrator = backends.get("narrate", engine)
    text = PREVIEW_TEXT.get(info.language.lower().split("-", 1)[0], PREVIEW_TEXT["en"])
    with tempfile.TemporaryDirectory(prefix="aiprod-preview-") as tmp:
        out = Path(tmp) / "preview.wav"
        narrator.narrate(text, Voice(name=name), info.language or "en", out)
        return out.read_bytes()


def _named(voice: Voice | None) -> bool:
    """Only names a caller gave are checked: the default ("en", or the
    language's own voice) is the narrator's business."""
    return voice is not None and "name" in voice.model_fields_set


def speaks(voice: VoiceInfo, language: str) -> bool:
    """Whether `voice` may read text in `language`: its own language (``en``
    matches ``en-US``), or any when its engine reads other languages with its
    own rules (eSpeak NG; `VoiceInfo.any_language`)."""
    if voice.any_language or not voice.language:
        return True
    return voice.language.lower().split("-", 1)[0] == language.lower().split("-", 1)[0]


async def check(
    backend: str,
    voices: Iterable[tuple[list[str | int], Voice | None]],
    language: str | None = None,
) -> None:
    """Refuse (422 `unknown_voice`) the first voice, of (location, voice) pairs,
    that narrator `backend` does not list, and (422 `voice_language`) one that
    cannot read `language` (see `speaks`).  A narrator whose list cannot be read
    (a remote service down) is not checked: the worker reports a bad voice."""
    named = [(loc, v) for loc, v in voices if _named(v)]
    if not named:
        return
    try:
        voices_here = await installed(backend)
    except backends.UnknownBackend:
        raise
    except Exception:
        log.warning(
            "voices of narrator %r could not be listed; not checked", backend, exc_info=True
        )
        return
    for loc, voice in named:
        assert voice is not None
        if not voices_here.knows(voice.name):
            raise Invalid.at(
                [*loc, "name"],
                f"the {backend} narrator has no voice {voice.name!r}; "
                f"GET {VOICES_URL} lists the voices and variants installed here",
                "unknown_voice",
            )
        info = voices_here.find(voice.name)
        if language is not None and info is not None and not speaks(info, language):
            raise Invalid.at(
                [*loc, "name"],
                f"voice {voice.name!r} speaks {info.language} only, not {language!r}; "
                f"GET {VOICES_URL}?language={language} lists the voices for it",
                "voice_language",
            )


async def check_request(request: ProductionRequest) -> None:
    """The voice of a submitted request, in the request's language."""
    await check(narrator_name(request), [(["body", "voice"], request.voice)], request.language)


async def check_storyboard(request: ProductionRequest, storyboard: Storyboard) -> None:
    """The per-scene voices of an edited storyboard, in its language."""
    await check(
        narrator_name(request),
        [(["body", "scenes", s.index, "voice"], s.voice) for s in storyboard.scenes],
        storyboard.language,
    )


__all__ = [
    "PREVIEW_TEXT",
    "VOICES_URL",
    "VoiceCatalog",
    "catalog",
    "check",
    "check_request",
    "check_storyboard",
    "installed",
    "narrator_name",
    "preview",
    "speaks",
]
