"""Reading the log for what no push channel brought: the bus's safety net,
and its only inbound channel on SQLite (or on PostgreSQL without LISTEN).

Each round compares the last ``seq`` of every watched job (the named jobs,
and the recently changed jobs of watched owners) with what the bus delivered,
and hands out whatever is missing, in order.  It runs slowly while a push
channel is up (``AIPROD_EVENTS_RECONCILE_SECONDS``) and at poll speed
otherwise (``AIPROD_EVENTS_POLL_SECONDS``), and at once when asked (a channel
came up or went down, an inbound queue overflowed).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Final

from aiprod.db.base import utcnow
from aiprod.events.tasks import wait_event

if TYPE_CHECKING:
    from aiprod.events.bus import EventBus

log = logging.getLogger("aiprod.events")

OWNER_WINDOW: Final = timedelta(seconds=30)
"""How far back the reconcile looks for jobs of watched owners that
changed: more than any poll period, clock skew or commit delay."""


class LogPoller:
    """Reconciles one bus with the event log; see the module docstring."""

    def __init__(self, bus: EventBus) -> None:
        self.bus = bus
        self.wanted = asyncio.Event()

    def request(self) -> None:
        """Reconcile now rather than at the next period."""
        self.wanted.set()

    async def run(self) -> None:
        settings = self.bus.settings
        while True:
            period = (
                settings.events_reconcile_seconds
                if self.bus.push_healthy
                else settings.events_poll_seconds
            )
            await wait_event(self.wanted, period)
            self.wanted.clear()
            try:
                await self.reconcile()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("event reconcile failed", exc_info=True)

    async def reconcile(self) -> None:
        """Deliver every event of a watched job that no channel brought.

        The reads run without the bus's dispatch lock (a slow database must
        not hold up live events); only the hand-out takes it, and the bus
        skips whatever the dispatcher delivered meanwhile, so order holds."""
        bus = self.bus
        bus.prune()
        jobs, owners, every_owner = bus.watched()
        if not (jobs or owners or every_owner):
            return
        window = max(OWNER_WINDOW, timedelta(seconds=4 * bus.settings.events_reconcile_seconds))
        event_log = bus.event_log
        heads = await event_log.heads(jobs, owners, every_owner, utcnow() - window)
        for head in heads:
            known = bus.delivered_seq(head.job_id)
            if known is not None:
                if head.last_seq <= known:
                    continue
                envs = await event_log.all_after(head.job_id, known)
            else:
                floor = self._floor(head.job_id, head.owner_id)
                if floor is None:
                    since = self._since(head.owner_id)
                    if since is None:
                        continue
                    envs = await event_log.since(None, since, job_id=head.job_id)
                elif head.last_seq > floor:
                    envs = await event_log.all_after(head.job_id, floor)
                else:
                    continue
            if envs:
                bus.reconciled += len(envs)
                await bus.hand_out(envs)

    def _floor(self, job_id: uuid.UUID, owner_id: uuid.UUID) -> int | None:
        """The lowest seq any subscriber of this job has delivered (None when
        none has seen it yet)."""
        seen = [s.cursors.get(job_id, 0) for s in self.bus.job_subscribers(job_id)]
        for sub in self.bus.owner_subscribers(owner_id):
            if job_id in sub.cursors:
                seen.append(sub.cursors[job_id])
        return min(seen) if seen else None

    def _since(self, owner_id: uuid.UUID) -> datetime | None:
        subs = self.bus.owner_subscribers(owner_id)
        if not subs:
            return None
        earliest: datetime = min(s.since for s in subs)
        return earliest - timedelta(seconds=5)
