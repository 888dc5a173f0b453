"""How the operator points AIPROD at a remote AI service (a provider), validated
when Settings load.  It lives at the ground, beside ``settings.py``, so that
loading settings imports no domain package.

Each service has one ``ProviderConfig`` in Settings (``AIPROD_OPENAI_CHAT__MODEL``,
``AIPROD_PEXELS__API_KEY_FILE``, ...; or the whole object as JSON in
``AIPROD_OPENAI_CHAT``).  It fails closed: a key file that cannot be read, a
key given twice, or a key that would travel in clear text to a public host
stops the process at start-up.  The key is held as a ``SecretStr`` (its repr
and JSON dump are masked) and is read by the provider client only.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator


def _clear_text_is_local(host: str) -> bool:
    """Plain http is acceptable to this machine, a private network address or a
    single-label name (a container or LAN service such as ``ollama``)."""
    if host == "localhost" or host.endswith(".localhost") or "." not in host:
        return True
    try:
        ip = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return ip.is_loopback or ip.is_private


class ProviderConfig(BaseModel):
    """One remote service.  Unset ``base_url`` means the service's public API."""

    model_config = ConfigDict(extra="forbid")

    base_url: str | None = Field(
        None, description="API root, e.g. http://127.0.0.1:11434/v1 for Ollama."
    )
    api_key: SecretStr | None = Field(None, description="The key (prefer api_key_file).")
    api_key_file: Path | None = Field(
        None, description="A file holding the key (a Docker/Kubernetes secret), read at start."
    )
    model: str | None = Field(None, max_length=200, description="Model name, where one is chosen.")
    timeout_seconds: float = Field(60.0, gt=0, le=600, description="Per HTTP request.")
    max_retries: int = Field(4, ge=0, le=10, description="Retries on 429, 5xx and network errors.")
    retry_max_wait_seconds: float = Field(
        30.0, ge=0, le=600, description="Longest wait before a retry (a longer Retry-After fails)."
    )
    concurrency: int = Field(4, ge=1, le=64, description="Calls in flight per process.")
    task_timeout_seconds: float = Field(
        900.0, gt=0, le=7200, description="Task APIs (video generation): the longest wait for one."
    )
    breaker_failures: int = Field(
        5, ge=1, le=100, description="Failed calls in a row that open the circuit breaker."
    )
    breaker_reset_seconds: float = Field(
        30.0, gt=0, le=3600, description="How long an open breaker refuses calls."
    )

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("base_url must be an http:// or https:// URL with a host")
        if parts.username or parts.password or parts.query or parts.fragment:
            raise ValueError("base_url may not carry credentials, a query or a fragment")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _key(self) -> ProviderConfig:
        if self.api_key is not None and self.api_key_file is not None:
            raise ValueError("give api_key or api_key_file, not both")
        if self.api_key_file is not None:
            try:
                key = self.api_key_file.read_text().strip()
            except OSError as exc:
                raise ValueError(
                    f"api_key_file {self.api_key_file} cannot be read ({exc.strerror})"
                ) from None
            if not key:
                raise ValueError(f"api_key_file {self.api_key_file} is empty")
            self.api_key = SecretStr(key)
        if self.api_key is not None and self.base_url is not None:
            parts = urlsplit(self.base_url)
            if parts.scheme == "http" and not _clear_text_is_local(parts.hostname or ""):
                raise ValueError(
                    "base_url is plain http to a public host: the API key would travel in "
                    "clear text; use https"
                )
        return self

    @property
    def configured(self) -> bool:
        """A key or an address was given: the operator means to use it."""
        return self.api_key is not None or self.base_url is not None

    def key(self) -> str | None:
        return self.api_key.get_secret_value() if self.api_key is not None else None
