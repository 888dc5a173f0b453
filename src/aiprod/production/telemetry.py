"""What the engine measures, for whoever runs it.

The engine knows nothing of Prometheus (``aiprod.ops`` sits above it): it
reports through the one :class:`Recorder` the platform installs when it runs
productions (the job worker installs ``aiprod.ops.metrics``'s).  The command
line installs none, and every report is then a no-op costing one ``None``
check.  A recorder must be cheap and must not raise: it is called from the
pipeline's thread and from inside the provider client's retry loop.
"""

from __future__ import annotations

from typing import Protocol


class Recorder(Protocol):
    def provider_attempt(self, provider: str, call: str, outcome: str, seconds: float) -> None:
        """One HTTP exchange with a provider: ``ok``, ``http_4xx``, ``http_429``,
        ``http_5xx``, ``timeout`` or ``network``, and how long it took."""

    def provider_error(self, provider: str, call: str, transient: bool) -> None:
        """A call that failed for good (after the client's retries, or a refusal
        of the breaker)."""

    def provider_charge(self, provider: str, unit: str, units: float, cost: float) -> None:
        """What a service said a call used, and its price in USD."""


_recorder: Recorder | None = None


def install(recorder: Recorder | None) -> None:
    """Report to `recorder` from now on (None: to nobody)."""
    global _recorder
    _recorder = recorder


def provider_attempt(provider: str, call: str, outcome: str, seconds: float) -> None:
    r = _recorder
    if r is not None:
        r.provider_attempt(provider, call, outcome, seconds)


def provider_error(provider: str, call: str, transient: bool) -> None:
    r = _recorder
    if r is not None:
        r.provider_error(provider, call, transient)


def provider_charge(provider: str, unit: str, units: float, cost: float) -> None:
    r = _recorder
    if r is not None:
        r.provider_charge(provider, unit, units, cost)
