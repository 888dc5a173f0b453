"""Remote AI services as stage backends (see docs/providers.md).

Each provider is a backend of an existing stage, registered by name beside the
built-in ones (``production/backends/__init__.py``) and chosen the same way
(the request's ``backends``, e.g. ``{"plan": "openai-chat"}``):

==========  ===============  ==============================================
stage       backend          service
==========  ===============  ==============================================
plan        openai-chat      OpenAI-compatible Chat Completions (JSON schema)
narrate     openai-speech    OpenAI-style ``POST /audio/speech``
narrate     elevenlabs       ElevenLabs text-to-speech with timestamps
visuals     pexels           Pexels photo/video search
visuals     pixabay          Pixabay photo/video search
visuals     openai-images    OpenAI-style ``POST /images/generations``
visuals     replicate-video  Replicate-style predictions (text-to-video tasks)
==========  ===============  ==============================================

What they share lives here: ``client`` (timeouts, retries, circuit breaker,
concurrency, errors that name the provider and never the key), ``download``
(fetching the files a service points at through the SSRF guard) and
``metering`` (charges, the budget that stops a paid call before it is made).
Configuration is one ``ProviderConfig`` per service in Settings.
"""

from __future__ import annotations

import contextvars
import hashlib
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager

from aiprod.production.providers.client import ProviderClient, ProviderError, ProviderNotConfigured

__all__ = [
    "ProviderClient",
    "ProviderError",
    "ProviderNotConfigured",
    "check_configured",
    "client_for",
]
from aiprod.provider_config import ProviderConfig
from aiprod.settings import Settings, get_settings

KEYLESS: frozenset[str] = frozenset({"openai-chat", "openai-speech", "openai-images"})
"""Services that may run without a key (a local OpenAI-compatible server such as
Ollama); they still need a base_url or a key to count as configured."""

_settings: contextvars.ContextVar[Settings | None] = contextvars.ContextVar(
    "provider_settings", default=None
)


def current_settings() -> Settings:
    """The settings of the production being made (the Pipeline's), else the process's."""
    return _settings.get() or get_settings()


@contextmanager
def use_settings(settings: Settings) -> Iterator[None]:
    token = _settings.set(settings)
    try:
        yield
    finally:
        _settings.reset(token)


def config_of(name: str, settings: Settings | None = None) -> ProviderConfig:
    config: ProviderConfig = getattr(settings or current_settings(), name.replace("-", "_"))
    return config


def check_configured(name: str, settings: Settings | None = None) -> None:
    """Refuse (ProviderNotConfigured) a provider backend the operator has not set up."""
    config = config_of(name, settings)
    env = f"AIPROD_{name.upper().replace('-', '_')}"
    if name in KEYLESS:
        if not config.configured:
            raise ProviderNotConfigured(
                f"the {name} backend is not configured on this server: set {env}__BASE_URL "
                f"(a local server) or {env}__API_KEY_FILE"
            )
    elif config.key() is None:
        raise ProviderNotConfigured(
            f"the {name} backend is not configured on this server: set {env}__API_KEY_FILE"
        )


_clients: dict[tuple[str, str], ProviderClient] = {}
_lock = threading.Lock()


def client_for(
    name: str,
    default_base_url: str,
    *,
    auth_headers: Callable[[str], Mapping[str, str]] | None = None,
    auth_params: Callable[[str], Mapping[str, str]] | None = None,
    key_required: bool = True,
) -> ProviderClient:
    """The client of service `name` (its Settings field: ``name`` with ``_`` for
    ``-``) as configured now; made again when the configuration changes.
    Raises ProviderNotConfigured when the service needs a key and has none."""
    config = config_of(name)
    fingerprint = hashlib.sha256(
        (config.model_dump_json() + (config.key() or "")).encode()
    ).hexdigest()
    with _lock:
        client = _clients.get((name, fingerprint))
        if client is None:
            client = ProviderClient(
                name,
                config,
                default_base_url,
                auth_headers=auth_headers,
                auth_params=auth_params,
                key_required=key_required and name not in KEYLESS,
            )
            for key in [k for k in _clients if k[0] == name]:  # configured anew: let go
                _clients.pop(key).close()
            _clients[(name, fingerprint)] = client
        return client
