"""Backend registry: every stage's implementations, by name.

Backends are imported lazily so that asking for the planner does not load PyAV
or eSpeak.  Remote backends (``production/providers``) register here beside the
built-in ones; the first name of each stage is its built-in default.
"""

from __future__ import annotations

import importlib
from typing import Any

from aiprod.production.models import STAGES
from aiprod.settings import Settings

_REGISTRY: dict[str, dict[str, str]] = {
    "plan": {
        "builtin": "aiprod.production.backends.planner:BuiltinPlanner",
        "openai-chat": "aiprod.production.providers.chat:ChatPlanner",
    },
    "narrate": {
        # builtin (the default) routes each voice to the neural engine or to eSpeak NG
        "builtin": "aiprod.production.backends.narrators:BuiltinNarrator",
        "hibari": "aiprod.production.backends.neural:NeuralNarrator",
        "espeak": "aiprod.production.backends.espeak:EspeakNarrator",
        "openai-speech": "aiprod.production.providers.speech:OpenAISpeechNarrator",
        "elevenlabs": "aiprod.production.providers.elevenlabs:ElevenLabsNarrator",
    },
    "visuals": {
        "motion": "aiprod.production.backends.motion:MotionRenderer",
        "pexels": "aiprod.production.providers.stock_services:PexelsRenderer",
        "pixabay": "aiprod.production.providers.stock_services:PixabayRenderer",
        "openai-images": "aiprod.production.providers.images:ImageRenderer",
        "replicate-video": "aiprod.production.providers.video:VideoTaskRenderer",
    },
    "music": {"synth": "aiprod.production.backends.synth:SynthComposer"},
    "montage": {"pyav": "aiprod.production.backends.pyav_montage:PyAVMontage"},
    "qa": {"probe": "aiprod.production.backends.probe_qa:ProbeQA"},
}

DEFAULTS: dict[str, str] = {stage: next(iter(names)) for stage, names in _REGISTRY.items()}
PROVIDERS: frozenset[str] = frozenset(
    name
    for names in _REGISTRY.values()
    for name, target in names.items()
    if target.startswith("aiprod.production.providers.")
)
"""Backends that call a remote service (and may cost money)."""

_instances: dict[tuple[str, str], Any] = {}


class UnknownBackend(ValueError):
    code = "unknown_backend"


class BackendNotConfigured(UnknownBackend):
    """A provider backend this server has no configuration (address, key) for."""

    code = "backend_not_configured"


def register(stage: str, name: str, target: str) -> None:
    """Add a backend ("package.module:Class") for a stage, e.g. from a plugin."""
    if stage not in STAGES:
        raise UnknownBackend(f"unknown stage {stage!r}; stages are {list(STAGES)}")
    _REGISTRY[stage][name] = target
    _instances.pop((stage, name), None)


def names(stage: str) -> list[str]:
    return list(_REGISTRY[stage])


def check(stage: str, name: str, settings: Settings | None = None) -> None:
    """`name` is a backend of `stage`, and (a provider) configured here."""
    if stage not in STAGES:
        raise UnknownBackend(f"unknown stage {stage!r}; stages are {list(STAGES)}")
    if name not in _REGISTRY[stage]:
        raise UnknownBackend(
            f"unknown {stage} backend {name!r}; available: {', '.join(_REGISTRY[stage])}"
        )
    if name in PROVIDERS:
        from aiprod.production import providers

        try:
            providers.check_configured(name, settings)
        except providers.ProviderNotConfigured as exc:
            raise BackendNotConfigured(str(exc)) from None


def get(stage: str, name: str | None = None) -> Any:
    """The (shared, stateless) backend instance registered as `name` for `stage`."""
    name = name or DEFAULTS[stage]
    check(stage, name)
    key = (stage, name)
    if key not in _instances:
        module, _, attr = _REGISTRY[stage][name].partition(":")
        _instances[key] = getattr(importlib.import_module(module), attr)()
    return _instances[key]
