"""The narrator voices this installation can speak, and the check every voice
the API takes must pass.

Why a check at submit: eSpeak NG resolves a voice name (and a ``+variant``)
to files of its data folder and silently ignores a variant it cannot find, so
a name that is merely well-formed could still read the wrong file or quietly
speak with another timbre than asked, and an unknown voice would only fail
the job minutes later, at the narrate stage.  A name the narrator does not
list answers 422 at once, pointing at ``GET /v1/voices``.

Listing voices loads the narrator (eSpeak: one initialisation per process),
so catalogs are built off the event loop and kept for the process's life:
installed voices do not change while it runs.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass

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

    def knows(self, name: str) -> bool:
        """Whether `name` is a listed voice (any case, as eSpeak matches them),
        optionally with a listed ``+variant`` (exact case: variants are files)
        or a numbered one (``+3`` is ``m3``, ``+13`` is ``f3``)."""
        base, plus, variant = name.partition("+")
        if base.lower() not in {v.name.lower() for v in self.voices}:
            return False
        if not plus:
            return True
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


def _named(voice: Voice | None) -> bool:
    """Only names a caller gave are checked: the default ("en", or the
    language's own voice) is the narrator's business."""
    return voice is not None and "name" in voice.model_fields_set


async def check(backend: str, voices: Iterable[tuple[list[str | int], Voice | None]]) -> None:
    """Refuse (422 `unknown_voice`) the first voice, of (location, voice) pairs,
    that narrator `backend` does not list.  A narrator whose list cannot be read
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


async def check_request(request: ProductionRequest) -> None:
    """The voice of a submitted request."""
    await check(narrator_name(request), [(["body", "voice"], request.voice)])


async def check_storyboard(request: ProductionRequest, storyboard: Storyboard) -> None:
    """The per-scene voices of an edited storyboard."""
    await check(
        narrator_name(request),
        [(["body", "scenes", s.index, "voice"], s.voice) for s in storyboard.scenes],
    )


__all__ = [
    "VOICES_URL",
    "VoiceCatalog",
    "catalog",
    "check",
    "check_request",
    "check_storyboard",
    "installed",
    "narrator_name",
]
