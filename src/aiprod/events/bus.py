"""Fan-out of job events to subscribers in every API process.

How an event travels
--------------------
1. :class:`EventPublisher` is the ``JobService`` hook: inside the transaction
   that writes the ``job_events`` row it queues the webhook deliveries (same
   transaction: an outbox) and, on PostgreSQL, a ``pg_notify`` (delivered by
   PostgreSQL only if the transaction commits).  After the commit, and never
   before, it hands the event to this process's bus and to Redis.
2. Each API process runs one :class:`EventBus`.  Its inbound channels are the
   in-process hand-off, Redis pub/sub when ``AIPROD_REDIS_URL`` is set, and,
   when Redis is not configured or is down, the database: LISTEN/NOTIFY on
   PostgreSQL, polling by sequence number on SQLite.  The channels themselves
   live in :mod:`aiprod.events.transports`; this module orders and fans out.
3. The bus delivers each job's events in ``seq`` order without gaps: an event
   whose ``seq`` jumps past the last one it delivered makes it read the gap
   from the log first; duplicates (the same event by two channels) are dropped.
   A reconcile loop (:mod:`aiprod.events.transports.poll`) compares each
   watched job's ``last_seq`` with what was delivered (slowly while a push
   channel is up, at poll speed otherwise), so that an event lost with a
   dying Redis still arrives.
4. Each subscriber has a bounded queue (:mod:`aiprod.events.subscription`).
   One that falls behind is not allowed to grow memory: its queue is dropped,
   it is told to resync, and its stream replays the missing events from the
   log (see :mod:`aiprod.events.stream`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any, Final

from sqlalchemy import event as sa_event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from aiprod.db.engine import Database
from aiprod.events.envelope import Envelope, envelope
from aiprod.events.event_log import EventLog
from aiprod.events.subscription import Scope, Subscription
from aiprod.events.tasks import cancel_all
from aiprod.events.transports.poll import LogPoller
from aiprod.events.transports.postgres import PostgresListener, notify
from aiprod.events.transports.redis import RedisPublisher, RedisSubscriber
from aiprod.jobs.models import Job, JobEvent
from aiprod.jobs.service import EventHook
from aiprod.ops import metrics
from aiprod.settings import Settings

__all__ = ["EventBus", "EventPublisher", "Sink", "worker_publisher"]

log = logging.getLogger("aiprod.events")

INBOUND_MAX: Final = 50_000

_PENDING_KEY = "aiprod.events.pending"


# --------------------------------------------------------------- publishing


Sink = Callable[[list[Envelope]], None]


class EventPublisher:
    """The ``JobService`` event hook (see :data:`aiprod.jobs.service.EventHook`).

    `sinks` receive the events of each transaction once it has committed, in
    commit order; a rolled-back transaction publishes nothing.  `outbox`
    queues webhook deliveries inside the transaction."""

    def __init__(
        self,
        channel: str,
        sinks: Iterable[Sink] = (),
        outbox: Callable[[AsyncSession, Envelope], Any] | None = None,
    ) -> None:
        self.channel = channel
        self.sinks = list(sinks)
        self.outbox = outbox

    async def __call__(self, s: AsyncSession, job: Job, ev: JobEvent) -> None:
        env = envelope(ev, job.owner_id)
        if s.get_bind().dialect.name == "postgresql":
            await notify(s, self.channel, env)
        if self.outbox is not None:
            await self.outbox(s, env)
        self._pending(s).append(env)

    def _pending(self, s: AsyncSession) -> list[Envelope]:
        info = s.sync_session.info
        pending: list[Envelope] | None = info.get(_PENDING_KEY)
        if pending is None:
            pending = []
            info[_PENDING_KEY] = pending
            if not info.get(_PENDING_KEY + ".hooked"):
                info[_PENDING_KEY + ".hooked"] = True
                sa_event.listen(s.sync_session, "after_commit", self._after_commit)
                sa_event.listen(s.sync_session, "after_rollback", _forget)
        return pending

    def _after_commit(self, session: Session) -> None:
        envs: list[Envelope] = session.info.pop(_PENDING_KEY, None) or []
        if not envs:
            return
        for sink in self.sinks:
            try:
                sink(envs)
            except Exception:  # a sink must never break the job's own work
                log.exception("event sink failed")


def _forget(session: Session) -> None:
    session.info.pop(_PENDING_KEY, None)


# ---------------------------------------------------------------- the bus


class EventBus:
    """One per API process; see the module docstring."""

    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings
        self.event_log = EventLog(db)
        self.channel = settings.events_channel
        self.redis_url = settings.redis_url
        self.postgres = db.engine.dialect.name == "postgresql"
        self._by_job: dict[uuid.UUID, set[Subscription]] = {}
        self._by_owner: dict[uuid.UUID, set[Subscription]] = {}
        self._all: set[Subscription] = set()
        self._known: dict[uuid.UUID, tuple[int, uuid.UUID]] = {}
        self._inbound: asyncio.Queue[Envelope] = asyncio.Queue(INBOUND_MAX)
        self._lock = asyncio.Lock()
        self._listen_wanted = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.poller = LogPoller(self)
        self.redis = (
            RedisSubscriber(self.redis_url, self.channel, self._enqueue, self._channels_changed)
            if self.redis_url
            else None
        )
        self.listener = (
            PostgresListener(
                db.url, self.channel, self._listen_wanted, self._enqueue, self._channels_changed
            )
            if self.postgres
            else None
        )
        self.loop: asyncio.AbstractEventLoop | None = None
        self.closing = asyncio.Event()
        # Counters, for tests, the bench and operators.
        self.received = 0
        self.delivered = 0
        self.gap_fills = 0
        self.overflows = 0
        self.reconciled = 0

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        self._spawn(self._dispatch_loop(), "aiprod-bus-dispatch")
        self._spawn(self.poller.run(), "aiprod-bus-reconcile")
        self._spawn(self._heartbeat_loop(), "aiprod-bus-heartbeat")
        if self.redis is not None:
            self._spawn(self.redis.run(), "aiprod-bus-redis")
        if self.listener is not None:
            self._spawn(self.listener.run(), "aiprod-bus-listen")
        self._update_mode()

    def _spawn(self, coro: Any, name: str) -> None:
        self._tasks.append(asyncio.create_task(coro, name=name))

    def begin_shutdown(self) -> None:
        """Tell every open stream to end (the server is stopping)."""
        self.closing.set()
        for sub in self._subscriptions():
            sub.wake()

    async def stop(self) -> None:
        self.begin_shutdown()
        await cancel_all(self._tasks)
        self._tasks.clear()

    @property
    def redis_up(self) -> bool:
        return self.redis is not None and self.redis.up

    @property
    def listen_up(self) -> bool:
        return self.listener is not None and self.listener.up

    @property
    def push_healthy(self) -> bool:
        """A channel that pushes other processes' events is up."""
        return self.redis_up or self.listen_up

    def mode(self) -> str:
        if self.redis_up:
            return "redis"
        if self.listen_up:
            return "listen"
        return "poll"

    def _update_mode(self) -> None:
        if self.postgres and not self.redis_up:
            self._listen_wanted.set()
        else:
            self._listen_wanted.clear()

    def _channels_changed(self) -> None:
        """A push channel came up or went down: LISTEN only while Redis is
        down, and reconcile now (events may have slipped between channels)."""
        self._update_mode()
        self.poller.request()

    # -------------------------------------------------------- subscriptions

    def subscribe(
        self,
        scope: Scope,
        *,
        job_id: uuid.UUID | None = None,
        owner_id: uuid.UUID | None = None,
        cursors: dict[uuid.UUID, int] | None = None,
        maxsize: int | None = None,
    ) -> Subscription:
        sub = Subscription(
            bus=self,
            scope=scope,
            job_id=job_id,
            owner_id=owner_id,
            maxsize=maxsize or self.settings.events_queue_size,
            cursors=dict(cursors or {}),
        )
        if scope == "job":
            assert job_id is not None
            self._by_job.setdefault(job_id, set()).add(sub)
        elif scope == "user":
            assert owner_id is not None
            self._by_owner.setdefault(owner_id, set()).add(sub)
        else:
            self._all.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        if sub.scope == "job" and sub.job_id is not None:
            subs = self._by_job.get(sub.job_id)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self._by_job[sub.job_id]
        elif sub.scope == "user" and sub.owner_id is not None:
            subs = self._by_owner.get(sub.owner_id)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self._by_owner[sub.owner_id]
        else:
            self._all.discard(sub)

    def subscriber_count(self) -> int:
        return (
            sum(len(s) for s in self._by_job.values())
            + sum(len(s) for s in self._by_owner.values())
            + len(self._all)
        )

    def _subscriptions(self) -> list[Subscription]:
        out = list(self._all)
        for subs in (*self._by_job.values(), *self._by_owner.values()):
            out.extend(subs)
        return out

    def _interested(self, job_id: uuid.UUID, owner_id: uuid.UUID) -> bool:
        return bool(self._all) or job_id in self._by_job or owner_id in self._by_owner

    # ------------------------------------------ what the reconcile reads

    def watched(self) -> tuple[list[uuid.UUID], list[uuid.UUID], bool]:
        """(jobs watched by id, owners watched, whether every job is watched)."""
        return list(self._by_job), list(self._by_owner), bool(self._all)

    def delivered_seq(self, job_id: uuid.UUID) -> int | None:
        """The last seq this bus handed out for the job (None: none yet)."""
        known = self._known.get(job_id)
        return known[0] if known is not None else None

    def job_subscribers(self, job_id: uuid.UUID) -> list[Subscription]:
        return list(self._by_job.get(job_id, ()))

    def owner_subscribers(self, owner_id: uuid.UUID) -> list[Subscription]:
        """The streams that see every job of `owner_id` (theirs and admins')."""
        return [*self._by_owner.get(owner_id, ()), *self._all]

    def prune(self) -> None:
        """Forget jobs nobody watches (memory stays bounded by subscriptions)."""
        for job_id, (_, owner_id) in list(self._known.items()):
            if not self._interested(job_id, owner_id):
                del self._known[job_id]

    async def hand_out(self, envs: list[Envelope]) -> None:
        """Fan out events read from the log, skipping any already delivered."""
        async with self._lock:
            for env in envs:
                self._fanout(env)

    def request_reconcile(self) -> None:
        self.poller.request()

    async def reconcile(self) -> None:
        """One reconcile round now (see :class:`LogPoller`)."""
        await self.poller.reconcile()

    # ------------------------------------------------------------- inbound

    def publish_local(self, envs: list[Envelope]) -> None:
        """Sink for this process's :class:`EventPublisher` (after commit)."""
        for env in envs:
            self._enqueue(env)

    def _enqueue(self, env: Envelope) -> None:
        try:
            self._inbound.put_nowait(env)
        except asyncio.QueueFull:
            # Dropping is safe: the reconcile finds the event in the log.
            self.poller.request()

    async def _dispatch_loop(self) -> None:
        while True:
            batch = [await self._inbound.get()]
            while len(batch) < 1000:
                try:
                    batch.append(self._inbound.get_nowait())
                except asyncio.QueueEmpty:
                    break
            self.received += len(batch)
            try:
                async with self._lock:
                    for env in batch:
                        await self._deliver(env)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("event dispatch failed; reconciling from the log", exc_info=True)
                self.poller.request()

    async def _deliver(self, env: Envelope) -> None:
        if not self._interested(env.job_id, env.owner_id):
            return
        last = self.delivered_seq(env.job_id)
        if last is not None and env.seq <= last:
            return  # already delivered (another channel was faster)
        if not env.text or (last is not None and env.seq > last + 1):
            start = last if last is not None else env.seq - 1
            self.gap_fills += 1
            for missing in await self.event_log.all_after(env.job_id, start, upto=env.seq):
                self._fanout(missing)
            return
        self._fanout(env)

    def _fanout(self, env: Envelope) -> None:
        known = self._known.get(env.job_id)
        if known is not None and env.seq <= known[0]:
            return
        self._known[env.job_id] = (env.seq, env.owner_id)
        for sub in self._by_job.get(env.job_id, ()):
            sub.offer(env)
        for sub in self._by_owner.get(env.owner_id, ()):
            sub.offer(env)
        for sub in self._all:
            sub.offer(env)
        self.delivered += 1
        created = env.created()
        metrics.event_fanned_out(time.time() - created if created is not None else None)

    async def _heartbeat_loop(self) -> None:
        """One clock for every stream (no timer per subscriber): a stream that
        sent nothing for a whole period sends a heartbeat, so an idle client
        hears from the server at least every two periods."""
        while True:
            await asyncio.sleep(self.settings.events_heartbeat_seconds)
            for sub in self._subscriptions():
                sub.tick()


# ------------------------------------------------------------------ wiring


@contextlib.asynccontextmanager
async def worker_publisher(
    settings: Settings, outbox: Callable[[AsyncSession, Envelope], Any] | None = None
) -> AsyncIterator[EventHook]:
    """The event hook for a worker process with no bus of its own: Redis when
    configured (NOTIFY on PostgreSQL either way; SQLite needs nothing, API
    processes poll it)."""
    redis = (
        RedisPublisher(settings.redis_url, settings.events_channel) if settings.redis_url else None
    )
    if redis is not None:
        await redis.start()
    try:
        yield EventPublisher(settings.events_channel, [redis] if redis is not None else [], outbox)
    finally:
        if redis is not None:
            await redis.stop()
