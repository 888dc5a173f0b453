"""Redis pub/sub: the fastest channel between processes, and an optional one.

:class:`RedisPublisher` sends committed events from a background task, so a
slow or dead Redis never delays a job; whatever it cannot send is dropped and
subscribers find it in the database.  :class:`RedisSubscriber` is the bus's
inbound side: it reconnects with backoff and reports when it goes up or down,
so that the bus can fall back to the database meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from aiprod.events.envelope import Envelope
from aiprod.events.tasks import cancel_all

log = logging.getLogger("aiprod.events")


def redis_client(url: str) -> Any:
    from redis.asyncio import Redis

    return Redis.from_url(
        url,
        socket_connect_timeout=2,
        socket_timeout=5,
        health_check_interval=5,
        retry_on_timeout=False,
    )


class RedisPublisher:
    """Publishes committed events to Redis from a background task, so that a
    slow or dead Redis never delays a job.  Whatever cannot be published is
    dropped: subscribers find it in the database (see :mod:`aiprod.events.bus`)."""

    def __init__(self, url: str, channel: str, maxsize: int = 10_000) -> None:
        self.url = url
        self.channel = channel
        self._queue: asyncio.Queue[Envelope] = asyncio.Queue(maxsize)
        self._task: asyncio.Task[None] | None = None
        self.published = 0
        self.dropped = 0
        self._warned_at = 0.0

    def __call__(self, envs: list[Envelope]) -> None:
        for env in envs:
            try:
                self._queue.put_nowait(env)
            except asyncio.QueueFull:
                self.dropped += 1

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="aiprod-redis-publisher")

    async def stop(self, grace: float = 2.0) -> None:
        """Publish what is queued (briefly), then stop."""
        if self._task is None:
            return
        deadline = time.monotonic() + grace
        while not self._queue.empty() and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        await cancel_all([self._task])
        self._task = None

    async def _run(self) -> None:
        from redis.asyncio import Redis

        client: Redis | None = None
        backoff = 0.2
        while True:
            env = await self._queue.get()
            batch = [env]
            while len(batch) < 500:
                try:
                    batch.append(self._queue.get_nowait())
                except asyncio.QueueEmpty:
                    break
            try:
                if client is None:
                    client = redis_client(self.url)
                async with client.pipeline(transaction=False) as pipe:
                    for e in batch:
                        pipe.publish(self.channel, e.encode())
                    await pipe.execute()
                self.published += len(batch)
                backoff = 0.2
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.dropped += len(batch)
                now = time.monotonic()
                if now - self._warned_at > 10:
                    self._warned_at = now
                    log.warning(
                        "Redis publish failed (%s: %s); events reach subscribers "
                        "through the database until it is back",
                        type(exc).__name__,
                        exc,
                    )
                if client is not None:
                    with contextlib.suppress(Exception):
                        await client.aclose()
                    client = None
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)


class RedisSubscriber:
    """The bus's Redis inbound channel.  `deliver` receives each decoded
    event; `changed` is called whenever the connection comes up or is lost
    (the bus then switches channels and reconciles from the log)."""

    def __init__(
        self,
        url: str,
        channel: str,
        deliver: Callable[[Envelope], None],
        changed: Callable[[], None],
    ) -> None:
        self.url = url
        self.channel = channel
        self.deliver = deliver
        self.changed = changed
        self.up = False

    async def run(self) -> None:
        backoff = 0.2
        while True:
            client = redis_client(self.url)
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                if not self.up:
                    log.info("events: Redis pub/sub connected")
                self.up = True
                self.changed()  # and reconcile: what was published before we listened
                backoff = 0.2
                while True:
                    msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if msg is None or msg.get("type") != "message":
                        continue
                    try:
                        self.deliver(Envelope.decode(msg["data"]))
                    except ValueError:
                        log.warning("events: ignoring a malformed Redis message")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self.up:
                    log.warning(
                        "events: Redis lost (%s: %s); the database carries events until it is back",
                        type(exc).__name__,
                        exc,
                    )
                self.up = False
                self.changed()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
                with contextlib.suppress(Exception):
                    await client.aclose()
