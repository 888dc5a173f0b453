"""What one stream (a WebSocket, an SSE response) receives live from the bus:
a bounded queue that never blocks the bus and never grows past its size (one
that overflows is told to resync from the log instead), and the markers the
stream reads besides events."""

from __future__ import annotations

import asyncio
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Final, Literal

from aiprod.db.base import utcnow
from aiprod.events.envelope import Envelope
from aiprod.ops import metrics

if TYPE_CHECKING:
    from aiprod.events.bus import EventBus


class _Overflow:
    """Marker: the subscriber's queue overflowed; its stream must resync."""


class _Heartbeat:
    """Marker: nothing was sent for a heartbeat period."""


OVERFLOW: Final = _Overflow()
HEARTBEAT: Final = _Heartbeat()

Scope = Literal["job", "user", "all"]


@dataclass(eq=False)
class Subscription:
    """What one stream (a WebSocket, an SSE response) receives live.

    ``scope`` "job": one job; "user": every job of ``owner_id``; "all": every
    job (admins).  ``cursors`` is the last ``seq`` the stream delivered per
    job; the bus reads it to know where a reconcile must start."""

    bus: EventBus
    scope: Scope
    job_id: uuid.UUID | None
    owner_id: uuid.UUID | None
    maxsize: int
    cursors: dict[uuid.UUID, int] = field(default_factory=dict)
    since: datetime = field(default_factory=utcnow)
    overflowed: bool = False
    closed: bool = False
    heartbeat_due: bool = False
    active: bool = False
    _queue: deque[Envelope] = field(default_factory=deque)
    _waiter: asyncio.Future[None] | None = None

    def offer(self, env: Envelope) -> None:
        """Called by the bus: never blocks, never grows past `maxsize`."""
        if self.overflowed or self.closed:
            return
        if len(self._queue) >= self.maxsize:
            self._queue.clear()
            self.overflowed = True
            self.bus.overflows += 1
            metrics.subscriber_dropped(self.scope)
        else:
            self._queue.append(env)
        self.wake()

    def wake(self) -> None:
        # A bare future, not an asyncio.Event and no timer: with a thousand
        # subscribers this runs a thousand times per event.
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def tick(self) -> None:
        """The bus's heartbeat clock: a stream that sent nothing since the
        previous tick owes its client a heartbeat."""
        if self.active:
            self.active = False
        else:
            self.heartbeat_due = True
            self.wake()

    async def get(self) -> Envelope | _Overflow | _Heartbeat | None:
        """The next live event, OVERFLOW once after an overflow, HEARTBEAT when
        one is due, or None when the stream was woken for something else."""
        if not self._queue and not self.overflowed and not self.heartbeat_due:
            waiter = self._waiter = asyncio.get_running_loop().create_future()
            try:
                await waiter
            finally:
                self._waiter = None
        if self.overflowed:
            self.overflowed = False
            self._queue.clear()
            return OVERFLOW
        if self._queue:
            self.active = True
            return self._queue.popleft()
        if self.heartbeat_due:
            self.heartbeat_due = False
            return HEARTBEAT
        return None

    def pending(self) -> int:
        return len(self._queue)

    def close(self) -> None:
        self.closed = True
        self.bus.unsubscribe(self)
        self.wake()
