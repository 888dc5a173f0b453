"""The counts behind the rate limits: `limits`' sliding-window counter, in
Redis when ``AIPROD_REDIS_URL`` is set (every API process shares them), else
in process memory.

A sliding-window counter keeps two counters per key (this window's and the
last one's, weighted by how much of it the sliding window still covers), so
a flood of addresses costs little memory.  When Redis fails (an error, or no
answer within `REDIS_TIMEOUT_SECONDS`), the counts go to process memory for
`REDIS_RETRY_SECONDS`, then to Redis again, with a warning at each switch:
a store that fails never lifts the limits.  :mod:`aiprod.api.ratelimit`
decides what counts under which key and answers.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from dataclasses import dataclass
from typing import cast

from limits import RateLimitItem, parse_many
from limits.aio.storage import MemoryStorage, RedisStorage, SlidingWindowCounterSupport
from limits.aio.strategies import SlidingWindowCounterRateLimiter

from aiprod.settings import Settings

log = logging.getLogger("aiprod.api.ratelimit")

REDIS_RETRY_SECONDS = 10.0
REDIS_TIMEOUT_SECONDS = 0.5


@dataclass(frozen=True)
class Policy:
    """One limit of a class, under its name in the headers."""

    name: str
    item: RateLimitItem

    @property
    def window(self) -> int:
        return int(self.item.get_expiry())

    def header(self) -> str:
        return f'"{self.name}";q={self.item.amount};w={self.window}'

    def __str__(self) -> str:
        return f"{self.item.amount} per {self.window} s"


@dataclass(frozen=True)
class Outcome:
    """One key's standing under one policy after this request."""

    policy: Policy
    kind: str  # address, credential, user
    allowed: bool
    remaining: int
    reset: float  # seconds until the window is whole again
    retry_after: float  # seconds until one more request fits (0: now)

    def worse_than(self, other: Outcome | None) -> bool:
        if other is None:
            return True
        if self.allowed != other.allowed:
            return not self.allowed
        return self.remaining < other.remaining


def window_state(
    previous: int, previous_ttl: float, current: int, current_ttl: float, expiry: float, limit: int
) -> tuple[int, float, float]:
    """(remaining, seconds until whole, seconds until one more fits) of a
    sliding-window counter: the previous window's count weighs by the share
    of it still inside the sliding window, the current one fully."""
    weighted = previous * previous_ttl / expiry + current
    remaining = max(0, limit - math.floor(weighted))
    boundary = max(0.0, current_ttl - expiry)  # the current window ends then
    whole = current_ttl if current else (previous_ttl if previous else 0.0)
    if remaining > 0:
        wait = 0.0
    elif limit <= 0:
        wait = current_ttl
    elif current < limit:  # the previous window's weight has to fade enough
        wait = max(0.0, previous_ttl - (limit - current) * expiry / max(previous, 1))
    else:  # then this window has to become the previous one and fade
        wait = boundary + expiry * (1 - limit / current)
    return remaining, whole, wait


class Limiter:
    """The counts of one API process: Redis when configured (falling back to
    memory while it fails), else memory."""

    def __init__(self, settings: Settings) -> None:
        self.policies: dict[str, list[Policy]] = {}
        for cls, text in settings.rate_limits.items():
            items = parse_many(text)
            self.policies[cls] = [
                Policy(cls if len(items) == 1 else f"{cls}-{i + 1}", item)
                for i, item in enumerate(items)
            ]
        # Several API processes counting in memory side by side: each enforces
        # its share, so that together they allow about the configured rate.
        share = settings.rate_limit_processes
        self.memory_policies = {
            cls: [
                Policy(p.name, type(p.item)(math.ceil(p.item.amount / share), p.item.multiples))
                for p in found
            ]
            for cls, found in self.policies.items()
        }
        self.memory = SlidingWindowCounterRateLimiter(MemoryStorage())
        self.redis: SlidingWindowCounterRateLimiter | None = None
        self.redis_url = settings.redis_url
        if settings.redis_url:
            storage = RedisStorage(
                _async_url(settings.redis_url),
                implementation="redispy",
                key_prefix=settings.rate_limit_prefix,
                socket_timeout=REDIS_TIMEOUT_SECONDS,
                socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
            )
            self.redis = SlidingWindowCounterRateLimiter(storage)
        self._redis_back_at = 0.0
        self._redis_down = False

    @property
    def backend(self) -> str:
        """Where the counts go now: "redis" or "memory"."""
        if self.redis is not None and not self._redis_down:
            return "redis"
        return "memory"

    async def close(self) -> None:
        if self.redis is not None:
            client = getattr(getattr(self.redis.storage, "bridge", None), "storage", None)
            closing = getattr(client, "aclose", None)
            if closing is not None:
                try:
                    await closing()
                except Exception:  # closing a dead connection: nothing to keep
                    log.debug("closing the rate-limit Redis client failed", exc_info=True)

    async def check(self, cls: str, kind: str, key: str) -> Outcome:
        """Count one request of class `cls` under `kind`:`key`; the policy
        nearest to refusing (a refusing one first)."""
        policies = self.policies[cls]
        if self.redis is not None and time.monotonic() >= self._redis_back_at:
            try:
                outcomes = await asyncio.wait_for(
                    _count(self.redis, policies, cls, kind, key), REDIS_TIMEOUT_SECONDS * 2
                )
            except Exception as exc:
                self._fell_back(exc)
            else:
                if self._redis_down:
                    self._redis_down = False
                    log.warning("rate limits: Redis answers again; counting there")
                return _worst(outcomes)
        return _worst(await _count(self.memory, self.memory_policies[cls], cls, kind, key))

    def _fell_back(self, exc: BaseException) -> None:
        self._redis_back_at = time.monotonic() + REDIS_RETRY_SECONDS
        if not self._redis_down:
            self._redis_down = True
            log.warning(
                "rate limits: Redis failed (%s: %s); counting in this process for %.0f s "
                "at a time until it answers",
                type(exc).__name__,
                exc,
                REDIS_RETRY_SECONDS,
            )


async def _count(
    limiter: SlidingWindowCounterRateLimiter,
    policies: list[Policy],
    cls: str,
    kind: str,
    key: str,
) -> list[Outcome]:
    found = []
    for policy in policies:
        item = policy.item
        allowed = await limiter.hit(item, cls, kind, key)
        storage = cast(SlidingWindowCounterSupport, limiter.storage)
        window = await storage.get_sliding_window(item.key_for(cls, kind, key), item.get_expiry())
        remaining, whole, wait = window_state(*window, item.get_expiry(), item.amount)
        found.append(Outcome(policy, kind, allowed, remaining, whole, wait if not allowed else 0))
    return found


def _worst(outcomes: list[Outcome]) -> Outcome:
    worst: Outcome | None = None
    for o in outcomes:
        if o.worse_than(worst):
            worst = o
    assert worst is not None
    return worst


def _async_url(url: str) -> str:
    """redis://… as limits names its async Redis storage."""
    if url.startswith("unix://"):
        return "async+redis+unix://" + url.removeprefix("unix://")
    return "async+" + url


__all__ = [
    "REDIS_RETRY_SECONDS",
    "REDIS_TIMEOUT_SECONDS",
    "Limiter",
    "Outcome",
    "Policy",
    "window_state",
]
