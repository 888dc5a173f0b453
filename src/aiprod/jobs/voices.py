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
installed voices do not change while it runs.  A remote narrator's voices
(``elevenlabs``: the account's) are asked of its service, which the narrator
keeps a few minutes; ``GET /v1/voices`` lists them beside the offline ones
for each service configured here (`listing`), and leaves out a service whose
list cannot be read rather than fail.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import tempfile
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from aiprod.errors import Invalid, Unavailable
from aiprod.production import backends
from aiprod.production.models import ProductionRequest, Storyboard, Voice
from aiprod.production.stages.narrate import VoiceInfo
from aiprod.settings import Settings

log = logging.getLogger("aiprod.jobs.voices")

VOICES_URL = "/v1/voices"
REMOTE_LIST_SECONDS = 10.0
"""How long `listing` waits for a remote service's voices before leaving them out."""


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


@contextlib.contextmanager
def _provider_settings(settings: Settings | None) -> Iterator[None]:
    """The providers read `settings` (the app's), when given, else the process's."""
    if settings is None:
        yield
        return
    from aiprod.production import providers

    with providers.use_settings(settings):
        yield


def catalog(backend: str | None = None, settings: Settings | None = None) -> VoiceCatalog:
    """The catalog of narrator `backend` (default: the default narrator).
    Raises backends.UnknownBackend for a name not registered (or, a remote
    one, not configured in `settings`).  Blocking."""
    name = backend or backends.DEFAULTS["narrate"]
    backends.check("narrate", name, settings)
    if name in backends.PROVIDERS:  # the service's list, which its narrator keeps a while
        with _provider_settings(settings):
            narrator = backends.get("narrate", name)
            return VoiceCatalog(backend=name, voices=tuple(narrator.voices()), variants=())
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


async def installed(backend: str | None = None, settings: Settings | None = None) -> VoiceCatalog:
    """`catalog`, without blocking the event loop on the first listing (nor
    on a remote service)."""
    name = backend or backends.DEFAULTS["narrate"]
    found = _catalogs.get(name)
    return found if found is not None else await asyncio.to_thread(catalog, name, settings)


def remote_narrators(settings: Settings | None = None) -> list[str]:
    """The remote narrator backends configured in `settings`."""
    found = []
    for name in backends.names("narrate"):
        if name not in backends.PROVIDERS:
            continue
        try:
            backends.check("narrate", name, settings)
        except backends.UnknownBackend:
            continue
        found.append(name)
    return found


async def _remote(name: str, settings: Settings | None) -> VoiceCatalog | None:
    """A remote narrator's catalog, or None (logged) when it cannot be read in time."""
    try:
        return await asyncio.wait_for(installed(name, settings), REMOTE_LIST_SECONDS)
    except Exception as exc:
        log.warning("voices of narrator %r could not be listed: %s", name, exc)
        return None


async def listing(backend: str | None = None, settings: Settings | None = None) -> VoiceCatalog:
    """What ``GET /v1/voices`` shows: the catalog of `backend`; without one,
    the default narrator's voices and, after them, those of every remote
    narrator configured here (a voice's ``engine`` names the backend,
    ``backends.narrate``, that speaks it).  A remote service whose list
    cannot be read is left out, so the offline voices are always listed;
    asked for by name, it answers 503 `voices_unavailable`."""
    if backend is not None and backend in backends.PROVIDERS:
        try:
            return await asyncio.wait_for(installed(backend, settings), REMOTE_LIST_SECONDS)
        except backends.UnknownBackend:
            raise
        except Exception as exc:
            log.warning("voices of narrator %r could not be listed: %s", backend, exc)
            raise Unavailable(
                f"the {backend} narrator's voices cannot be listed now: {exc}",
                "voices_unavailable",
            ) from None
    found = await installed(backend, settings)
    if backend is not None:
        return found
    extra: list[VoiceInfo] = []
    for name in remote_narrators(settings):
        remote = await _remote(name, settings)
        if remote is not None:
            extra += remote.voices
    return VoiceCatalog(found.backend, found.voices + tuple(extra), found.variants)


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


async def _spoken_elsewhere(name: str, backend: str, settings: Settings | None) -> str:
    """A hint for a voice `backend` lacks that a configured remote narrator has."""
    for other in remote_narrators(settings):
        if other == backend:
            continue
        remote = await _remote(other, settings)
        if remote is not None and remote.knows(name):
            return f"; it is a voice of the {other} narrator: choose it with backends.narrate"
    return ""


async def check(
    backend: str,
    voices: Iterable[tuple[list[str | int], Voice | None]],
    language: str | None = None,
    settings: Settings | None = None,
) -> None:
    """Refuse (422 `unknown_voice`) the first voice, of (location, voice) pairs,
    that narrator `backend` does not list, and (422 `voice_language`) one that
    cannot read `language` (see `speaks`).  A narrator whose list cannot be read
    (a remote service down) is not checked: the worker reports a bad voice.
    Remote narrators are looked up in `settings` (the app's; default: the process's)."""
    named = [(loc, v) for loc, v in voices if _named(v)]
    if not named:
        return
    try:
        listed = installed(backend, settings)
        voices_here = await (
            asyncio.wait_for(listed, REMOTE_LIST_SECONDS)
            if backend in backends.PROVIDERS
            else listed
        )
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
            hint = await _spoken_elsewhere(voice.name, backend, settings)
            raise Invalid.at(
                [*loc, "name"],
                f"the {backend} narrator has no voice {voice.name!r}; "
                f"GET {VOICES_URL} lists the voices and variants installed here{hint}",
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


async def check_request(request: ProductionRequest, settings: Settings | None = None) -> None:
    """The voice of a submitted request, in the request's language."""
    await check(
        narrator_name(request), [(["body", "voice"], request.voice)], request.language, settings
    )


async def check_storyboard(
    request: ProductionRequest, storyboard: Storyboard, settings: Settings | None = None
) -> None:
    """The per-scene voices of an edited storyboard, in its language."""
    await check(
        narrator_name(request),
        [(["body", "scenes", s.index, "voice"], s.voice) for s in storyboard.scenes],
        storyboard.language,
        settings,
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
    "listing",
    "narrator_name",
    "preview",
    "remote_narrators",
    "speaks",
]
