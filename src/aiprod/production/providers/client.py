"""One HTTP client per remote service, with the manners a paid API needs.

Every provider backend talks to its service through a ``ProviderClient``:

* a timeout on every request (``timeout_seconds``);
* retries on 429, 5xx and network errors, with exponential backoff and jitter,
  honouring ``Retry-After`` (seconds or an HTTP date) up to
  ``retry_max_wait_seconds`` (a longer one fails at once: waiting an hour
  inside a render helps nobody);
* a circuit breaker per service: after ``breaker_failures`` failed calls in a
  row it refuses calls for ``breaker_reset_seconds`` (then lets one through);
* at most ``concurrency`` calls in flight per service and process;
* errors that say which provider, which call and why (``ProviderError``),
  with the API key scrubbed from everything they quote.  The key never reaches
  a log line either: httpx's own request log (which prints URLs, and Pixabay
  wants its key in the query) goes through ``redact`` too.
"""

from __future__ import annotations

import email.utils
import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from aiprod.production import telemetry
from aiprod.provider_config import ProviderConfig

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({408, 409, 425, 429, 500, 502, 503, 504, 520, 522, 524, 529})
BACKOFF_BASE_SECONDS = 0.5
_EXCERPT = 300  # characters of an error body quoted in an error

_secrets: set[str] = set()
_secrets_lock = threading.Lock()


def remember_secret(value: str) -> None:
    """Add a value that must never be shown (API keys, as clients are made)."""
    if len(value) >= 4:
        with _secrets_lock:
            _secrets.add(value)


def redact(text: str) -> str:
    """`text` with every known secret replaced by ``***``."""
    for secret in sorted(_secrets, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, "***")
    return text


class _RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if _secrets:
            record.msg = redact(record.getMessage())
            record.args = None
        return True


for _name in ("httpx", "httpcore"):
    logging.getLogger(_name).addFilter(_RedactingFilter())


def bearer(key: str) -> dict[str, str]:
    """The ``Authorization: Bearer`` header OpenAI-style services take."""
    return {"authorization": f"Bearer {key}"}


class ProviderError(Exception):
    """A remote service failed: which one, doing what, and why.

    ``transient`` says whether trying again later may work (rate limits, 5xx,
    network) or not (401, 400, a reply that cannot be used).  The message never
    holds the API key (``redact``)."""

    def __init__(
        self,
        provider: str,
        call: str,
        reason: str,
        *,
        status: int | None = None,
        transient: bool = False,
    ) -> None:
        self.provider = provider
        self.call = call
        self.reason = redact(reason)
        self.status = status
        self.transient = transient
        super().__init__(f"{provider} {call} failed: {self.reason}")

    def details(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "call": self.call,
            "status": self.status,
            "reason": self.reason,
            "transient": self.transient,
        }


class ProviderNotConfigured(ValueError):
    """A provider backend was chosen that the operator has not configured
    (refused when a request is submitted, as an unknown backend is)."""

    code = "backend_not_configured"


@dataclass
class CircuitBreaker:
    failures_to_open: int
    reset_seconds: float
    clock: Callable[[], float] = time.monotonic
    failures: int = 0
    opened_at: float | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def allow(self) -> float | None:
        """None when a call may go ahead, else the seconds until it may."""
        with self.lock:
            if self.opened_at is None:
                return None
            left = self.opened_at + self.reset_seconds - self.clock()
            if left > 0:
                return left
            self.opened_at = None  # half-open: one call decides
            self.failures = self.failures_to_open - 1
            return None

    def record(self, ok: bool) -> None:
        with self.lock:
            if ok:
                self.failures, self.opened_at = 0, None
                return
            self.failures += 1
            if self.failures >= self.failures_to_open:
                self.opened_at = self.clock()


_breakers: dict[str, CircuitBreaker] = {}
_slots: dict[str, threading.BoundedSemaphore] = {}
_shared_lock = threading.Lock()


def _shared(name: str, config: ProviderConfig) -> tuple[CircuitBreaker, threading.BoundedSemaphore]:
    """The breaker and the concurrency slots of a service, shared by every client
    of it in this process."""
    with _shared_lock:
        if name not in _breakers:
            _breakers[name] = CircuitBreaker(config.breaker_failures, config.breaker_reset_seconds)
            _slots[name] = threading.BoundedSemaphore(config.concurrency)
        return _breakers[name], _slots[name]


def reset_shared_state() -> None:
    """Forget every breaker and slot (settings changed; tests)."""
    with _shared_lock:
        _breakers.clear()
        _slots.clear()


def retry_after(response: httpx.Response, now: float | None = None) -> float | None:
    """Seconds a ``Retry-After`` header asks for (delta-seconds or an HTTP date)."""
    value = response.headers.get("retry-after")
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (now if now is not None else time.time()))


def _excerpt(response: httpx.Response) -> str:
    """What the service said about an error: its JSON ``error.message`` (OpenAI,
    ElevenLabs' ``detail.message``), else the start of the body."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:_EXCERPT].strip()
    if isinstance(body, dict):
        for key in ("error", "detail"):
            inner = body.get(key)
            if isinstance(inner, dict) and isinstance(inner.get("message"), str):
                return str(inner["message"])[:_EXCERPT]
            if isinstance(inner, str):
                return inner[:_EXCERPT]
    return response.text[:_EXCERPT].strip()


class ProviderClient:
    """Calls one service.  ``auth`` turns the key into request headers (or
    query parameters, with ``auth_params``)."""

    def __init__(
        self,
        name: str,
        config: ProviderConfig,
        default_base_url: str,
        *,
        auth_headers: Callable[[str], Mapping[str, str]] | None = None,
        auth_params: Callable[[str], Mapping[str, str]] | None = None,
        key_required: bool = True,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.name = name
        self.config = config
        self.base_url = config.base_url or default_base_url
        key = config.key()
        if key is None and key_required:
            raise ProviderNotConfigured(
                f"the {name} backend needs an API key: set AIPROD_{_env(name)}__API_KEY_FILE "
                "(or __API_KEY)"
            )
        if key is not None:
            remember_secret(key)
        self._headers = dict(auth_headers(key)) if key is not None and auth_headers else {}
        self._params = dict(auth_params(key)) if key is not None and auth_params else {}
        self._sleep = sleep
        self.breaker, self._slots = _shared(name, config)
        self._http = httpx.Client(
            timeout=httpx.Timeout(
                config.timeout_seconds, connect=min(10.0, config.timeout_seconds)
            ),
            follow_redirects=False,
            headers={"user-agent": "aiprod"},
        )

    def close(self) -> None:
        self._http.close()

    def url(self, path: str) -> str:
        return f"{self.base_url}/{path.lstrip('/')}"

    def request(
        self,
        call: str,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """Send with retries; the successful (2xx) response, body read.
        Raises ProviderError.  Each exchange and each failure is reported to
        :mod:`aiprod.production.telemetry`."""
        try:
            return self._send(call, method, path, json, params, headers)
        except ProviderError as exc:
            telemetry.provider_error(self.name, call, exc.transient)
            raise

    def _send(
        self,
        call: str,
        method: str,
        path: str,
        json: Any,
        params: Mapping[str, Any] | None,
        headers: Mapping[str, str] | None,
    ) -> httpx.Response:
        wait = self.breaker.allow()
        if wait is not None:
            raise ProviderError(
                self.name,
                call,
                f"circuit breaker open after repeated failures; retry in {wait:.0f} s",
                transient=True,
            )
        attempt = 0
        while True:
            started = time.monotonic()
            try:
                with self._slots:
                    started = time.monotonic()
                    response = self._http.request(
                        method,
                        self.url(path),
                        json=json,
                        params={**(params or {}), **self._params},
                        headers={**self._headers, **(headers or {})},
                    )
            except httpx.TimeoutException:
                telemetry.provider_attempt(self.name, call, "timeout", time.monotonic() - started)
                error = ProviderError(
                    self.name,
                    call,
                    f"no answer within {self.config.timeout_seconds:g} s",
                    transient=True,
                )
                delay: float | None = None
            except httpx.HTTPError as exc:
                telemetry.provider_attempt(self.name, call, "network", time.monotonic() - started)
                error = ProviderError(
                    self.name, call, f"network error: {type(exc).__name__}", transient=True
                )
                delay = None
            else:
                outcome = _outcome(response.status_code)
                telemetry.provider_attempt(self.name, call, outcome, time.monotonic() - started)
                if response.is_success:
                    self.breaker.record(True)
                    return response
                retryable = response.status_code in RETRY_STATUSES
                error = ProviderError(
                    self.name,
                    call,
                    f"HTTP {response.status_code}: {_excerpt(response)}",
                    status=response.status_code,
                    transient=retryable,
                )
                if not retryable:
                    # The request is at fault (400, 401, 404, 422 ...): the
                    # service is up, so the breaker counts it as a success.
                    self.breaker.record(True)
                    raise error
                delay = retry_after(response)
            if attempt >= self.config.max_retries:
                self.breaker.record(False)
                raise ProviderError(
                    self.name,
                    call,
                    f"{error.reason} (after {attempt + 1} attempts)",
                    status=error.status,
                    transient=True,
                )
            backoff = BACKOFF_BASE_SECONDS * 2**attempt * (0.5 + random.random())
            if delay is not None and delay > self.config.retry_max_wait_seconds:
                self.breaker.record(False)
                raise ProviderError(
                    self.name,
                    call,
                    f"{error.reason}; the service asks to wait {delay:.0f} s, more than "
                    f"retry_max_wait_seconds ({self.config.retry_max_wait_seconds:g})",
                    status=error.status,
                    transient=True,
                )
            pause = min(self.config.retry_max_wait_seconds, delay if delay is not None else backoff)
            log.info(
                "provider %s: %s: %s; retry %d in %.1f s",
                self.name,
                call,
                error.reason,
                attempt + 1,
                pause,
            )
            self._sleep(pause)
            attempt += 1

    def json(self, call: str, method: str, path: str, **kwargs: Any) -> Any:
        """`request`, then the body as JSON (a body that is not: ProviderError)."""
        response = self.request(call, method, path, **kwargs)
        try:
            return response.json()
        except ValueError:
            raise ProviderError(
                self.name,
                call,
                f"the answer is not JSON ({response.headers.get('content-type', 'no type')})",
                status=response.status_code,
                transient=True,
            ) from None


def _outcome(status: int) -> str:
    """An answer's class, as the metrics count it."""
    if status < 400:
        return "ok"
    if status == 429:
        return "http_429"
    return "http_4xx" if status < 500 else "http_5xx"


def _env(name: str) -> str:
    return name.upper().replace("-", "_")
