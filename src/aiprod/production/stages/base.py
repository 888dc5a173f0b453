"""What every backend has: a registered name and a version that enters cache keys."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

ProgressFn = Callable[[float], None]
"""Reports the fraction (0..1) done of the current unit of work."""


def no_progress(_: float) -> None:
    """A ProgressFn for callers that do not care."""


class Backend(Protocol):
    name: str
    version: str
