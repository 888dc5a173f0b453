"""One stream's messages: replay from the log, then live, in order, exactly once.

The same engine feeds WebSocket and SSE.  Per job it keeps the last ``seq``
it sent (the *cursor*):

* a replay (``after=N``, ``Last-Event-ID``, a ``resume`` message) reads the
  log after N page by page, and the stream was subscribed *before* the read,
  so nothing committed meanwhile is missed;
* a live event at or below the cursor is a duplicate and is skipped; one past
  ``cursor + 1`` means something was lost on the way, and the gap is read from
  the log before it is sent;
* after an overflow (the client reads too slowly) the stream says ``resync``
  and replays from its cursors, so memory stays bounded and nothing is lost.
"""

from __future__ import annotations

import time
import uuid
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from aiprod.events.bus import EventBus
from aiprod.events.envelope import Envelope
from aiprod.events.event_log import PAGE
from aiprod.events.schemas import Resync, heartbeat_json
from aiprod.events.subscription import HEARTBEAT, OVERFLOW, Subscription


@dataclass(frozen=True, slots=True)
class Out:
    """A message to send: an event (with its job and seq) or a control message."""

    text: str
    type: str
    job_id: uuid.UUID | None = None
    seq: int | None = None


SINCE_MARGIN = timedelta(seconds=5)


class EventStream:
    def __init__(self, bus: EventBus, sub: Subscription) -> None:
        self.bus = bus
        self.sub = sub
        self._replays: deque[tuple[uuid.UUID, int]] = deque()
        self._controls: deque[Out] = deque()
        self._last_event_at = sub.since.timestamp()
        self.sent_events = 0

    # ------------------------------------------------------------ commands

    def replay(self, job_id: uuid.UUID, after: int) -> None:
        """Send the job's events after `after` (again, if they were sent), then go on live."""
        self._replays.append((job_id, after))
        self.sub.wake()

    def control(self, text: str, type_: str) -> None:
        self._controls.append(Out(text, type_))
        self.sub.wake()

    def close(self) -> None:
        self.sub.close()

    # ------------------------------------------------------------ messages

    async def __aiter__(self) -> AsyncIterator[Out]:
        event_log = self.bus.event_log
        while not self.sub.closed and not self.bus.closing.is_set():
            while self._controls:
                yield self._controls.popleft()
            if self._replays:
                job_id, after = self._replays.popleft()
                self.sub.cursors[job_id] = after
                async for out in self._replay(job_id):
                    yield out
                continue
            item = await self.sub.get()
            if item is None:
                continue  # woken for a control message, a replay or the end
            if item is HEARTBEAT:
                if not self.bus.closing.is_set():
                    yield Out(heartbeat_json(), "heartbeat")
                continue
            if item is OVERFLOW:
                for out in await self._resync():
                    yield out
                continue
            assert isinstance(item, Envelope)
            cursor = self.sub.cursors.get(item.job_id)
            if cursor is not None:
                if item.seq <= cursor:
                    continue
                if item.seq > cursor + 1:
                    for env in await event_log.all_after(item.job_id, cursor, upto=item.seq - 1):
                        filled = self._accept(env)
                        if filled is not None:
                            yield filled
            live = self._accept(item)
            if live is not None:
                yield live

    def _accept(self, env: Envelope) -> Out | None:
        cursor = self.sub.cursors.get(env.job_id)
        if cursor is not None and env.seq <= cursor:
            return None
        self.sub.cursors[env.job_id] = env.seq
        self._last_event_at = time.time()
        self.sent_events += 1
        return Out(env.text, env.type, env.job_id, env.seq)

    async def _replay(self, job_id: uuid.UUID) -> AsyncIterator[Out]:
        event_log = self.bus.event_log
        while not self.sub.closed and not self.bus.closing.is_set():
            page = await event_log.after(job_id, self.sub.cursors[job_id])
            for env in page:
                out = self._accept(env)
                if out is not None:
                    yield out
            if len(page) < PAGE:
                return

    async def _resync(self) -> list[Out]:
        """After an overflow: announce it, then queue replays from the cursors
        (and, for a user stream, of the jobs it had not seen yet)."""
        sub = self.sub
        out = [
            Out(
                Resync(
                    reason="slow_consumer",
                    job_id=sub.job_id,
                    after=sub.cursors.get(sub.job_id) if sub.job_id is not None else None,
                ).model_dump_json(),
                "resync",
            )
        ]
        for job_id, cursor in sub.cursors.items():
            self._replays.append((job_id, cursor))
        if sub.scope != "job":
            since = datetime.fromtimestamp(self._last_event_at, UTC) - SINCE_MARGIN
            owner = sub.owner_id if sub.scope == "user" else None
            fresh = await self.bus.event_log.since(owner, since, exclude=list(sub.cursors))
            for env in fresh:
                o = self._accept(env)
                if o is not None:
                    out.append(o)
        return out
