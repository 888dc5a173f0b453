"""Starting and stopping live progress inside a process.

``EventsRuntime`` is what an API process runs (bus, Redis publisher, webhook
dispatcher, and the hook its ``JobService`` and embedded worker publish
through); :func:`aiprod.events.bus.worker_publisher` is the lighter variant
for ``aiprod worker``.  :func:`drain_streams_on_exit` lets open streams end
when uvicorn is asked to stop: otherwise an SSE client would hold the
server's graceful shutdown open for as long as it stays connected.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from types import FrameType
from typing import Any

from aiprod.db.engine import Database
from aiprod.events.bus import EventBus, EventPublisher, Sink
from aiprod.events.transports.redis import RedisPublisher
from aiprod.events.webhooks.delivery import WebhookDispatcher, WebhookOutbox
from aiprod.events.webhooks.secrets import SecretBox
from aiprod.events.webhooks.service import WebhookService
from aiprod.settings import Settings

log = logging.getLogger("aiprod.events")


@dataclass
class EventsRuntime:
    bus: EventBus
    publisher: EventPublisher
    redis: RedisPublisher | None
    dispatcher: WebhookDispatcher | None
    webhooks: WebhookService

    @classmethod
    async def start(cls, db: Database, settings: Settings) -> EventsRuntime:
        bus = EventBus(db, settings)
        redis = (
            RedisPublisher(settings.redis_url, settings.events_channel)
            if settings.redis_url
            else None
        )
        secrets = SecretBox.from_settings(settings)
        webhooks = WebhookService(db, secrets)
        await webhooks.reseal_secrets()
        dispatcher = (
            WebhookDispatcher(db, settings, secrets=secrets) if settings.webhooks_enabled else None
        )
        sinks: list[Sink] = [bus.publish_local]
        if redis is not None:
            sinks.append(redis)
        if dispatcher is not None:
            sinks.append(dispatcher.nudge)
        publisher = EventPublisher(settings.events_channel, sinks, WebhookOutbox())
        await bus.start()
        if redis is not None:
            await redis.start()
        if dispatcher is not None:
            await dispatcher.start()
        return cls(bus, publisher, redis, dispatcher, webhooks)

    async def stop(self) -> None:
        self.bus.begin_shutdown()
        if self.dispatcher is not None:
            await self.dispatcher.stop()
        if self.redis is not None:
            await self.redis.stop()
        await self.bus.stop()


def drain_streams_on_exit(server: Any, app: Any) -> None:
    """Wrap ``uvicorn.Server.handle_exit`` so that SIGTERM/SIGINT first tell the
    app's open streams to end (WebSockets close with 1001, SSE responses
    finish; clients resume elsewhere by sequence number)."""
    original = server.handle_exit

    def handle_exit(sig: int, frame: FrameType | None) -> None:
        bus = getattr(app.state, "events", None)
        loop = getattr(bus, "loop", None)
        if bus is not None and loop is not None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(bus.begin_shutdown)
        original(sig, frame)

    server.handle_exit = handle_exit


__all__ = ["EventsRuntime", "drain_streams_on_exit"]
