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
   PostgreSQL, polling by sequence number on SQLite.
3. The bus delivers each job's events in ``seq`` order without gaps: an event
   whose ``seq`` jumps past the last one it delivered makes it read the gap
   from the log first; duplicates (the same event by two channels) are dropped.
   A reconcile loop compares each watched job's ``last_seq`` with what was
   delivered (slowly while a push channel is up, at poll speed otherwise), so
   that an event lost with a dying Redis still arrives.
4. Each subscriber has a bounded queue.  One that falls behind is not allowed
   to grow memory: its queue is dropped, it is told to resync, and its stream
   replays the missing events from the log (see :mod:`aiprod.events.stream`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final, Literal

from sqlalchemy import event as sa_event
from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from aiprod.db.base import utcnow
from aiprod.db.engine import Database
from aiprod.events.store import Envelope, EventStore, envelope
from aiprod.jobs.models import Job, JobEvent
from aiprod.jobs.service import EventHook
from aiprod.settings import Settings

log = logging.getLogger("aiprod.events")

NOTIFY_LIMIT: Final = 7900
"""PostgreSQL caps a notification at 8000 bytes; bigger events travel as a
hint (their coordinates) and receivers read them from the log."""

INBOUND_MAX: Final = 50_000
OWNER_WINDOW: Final = timedelta(seconds=30)
"""How far back the reconcile loop looks for jobs of watched owners that
changed: more than any poll period, clock skew or commit delay."""

_PENDING_KEY = "aiprod.events.pending"


# ------------------------------------------------------------------ asyncio


async def wait_event(event: asyncio.Event, timeout: float) -> bool:
    """Wait for `event` at most `timeout` seconds.  ``asyncio.timeout``, not
    ``wait_for``: on Python 3.11 wait_for may swallow a cancellation that
    arrives as the event is set, and a loop that misses its cancellation never
    stops."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout):
            await event.wait()
    return event.is_set()


async def cancel_all(tasks: Iterable[asyncio.Task[Any]], grace: float = 5.0) -> None:
    """Cancel `tasks` and wait for them, cancelling again whatever is still
    running after `grace` seconds (it missed or absorbed the first one)."""
    pending = {t for t in tasks if not t.done()}
    for t in pending:
        t.cancel()
    while pending:
        _, pending = await asyncio.wait(pending, timeout=grace)
        for t in pending:
            log.warning("task %s did not stop when cancelled; cancelling again", t.get_name())
            t.cancel()


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
            raw = env.encode()
            if len(raw.encode()) > NOTIFY_LIMIT:
                raw = env.hint()
            await s.execute(select(func.pg_notify(self.channel, raw)))
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


class RedisPublisher:
    """Publishes committed events to Redis from a background task, so that a
    slow or dead Redis never delays a job.  Whatever cannot be published is
    dropped: subscribers find it in the database (see the module docstring)."""

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
                    client = _redis_client(self.url)
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


def _redis_client(url: str) -> Any:
    from redis.asyncio import Redis

    return Redis.from_url(
        url,
        socket_connect_timeout=2,
        socket_timeout=5,
        health_check_interval=5,
        retry_on_timeout=False,
    )


# --------------------------------------------------------------- subscribing


class _Overflow:
    """Marker: the subscriber's queue overflowed; its stream must resync."""


class _Heartbeat:
    """Marker: nothing was sent for a heartbeat period."""


OVERFLOW: Final = _Overflow()
HEARTBEAT: Final = _Heartbeat()


@dataclass(eq=False)
class Subscription:
    """What one stream (a WebSocket, an SSE response) receives live.

    ``scope`` "job": one job; "user": every job of ``owner_id``; "all": every
    job (admins).  ``cursors`` is the last ``seq`` the stream delivered per
    job; the bus reads it to know where a reconcile must start."""

    bus: EventBus
    scope: Literal["job", "user", "all"]
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


class EventBus:
    """One per API process; see the module docstring."""

    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings
        self.store = EventStore(db)
        self.channel = settings.events_channel
        self.redis_url = settings.redis_url
        self.postgres = db.engine.dialect.name == "postgresql"
        self._by_job: dict[uuid.UUID, set[Subscription]] = {}
        self._by_owner: dict[uuid.UUID, set[Subscription]] = {}
        self._all: set[Subscription] = set()
        self._known: dict[uuid.UUID, tuple[int, uuid.UUID]] = {}
        self._inbound: asyncio.Queue[Envelope] = asyncio.Queue(INBOUND_MAX)
        self._lock = asyncio.Lock()
        self._reconcile_now = asyncio.Event()
        self._listen_wanted = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.loop: asyncio.AbstractEventLoop | None = None
        self.closing = asyncio.Event()
        self.redis_up = False
        self.listen_up = False
        # Counters, for tests, the bench and operators.
        self.received = 0
        self.delivered = 0
        self.gap_fills = 0
        self.overflows = 0
        self.reconciled = 0

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        self._tasks.append(asyncio.create_task(self._dispatch_loop(), name="aiprod-bus-dispatch"))
        self._tasks.append(asyncio.create_task(self._reconcile_loop(), name="aiprod-bus-reconcile"))
        self._tasks.append(asyncio.create_task(self._heartbeat_loop(), name="aiprod-bus-heartbeat"))
        if self.redis_url:
            self._tasks.append(asyncio.create_task(self._redis_loop(), name="aiprod-bus-redis"))
        if self.postgres:
            self._tasks.append(asyncio.create_task(self._listen_loop(), name="aiprod-bus-listen"))
        self._update_mode()

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

    # -------------------------------------------------------- subscriptions

    def subscribe(
        self,
        scope: Literal["job", "user", "all"],
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
            self._reconcile_now.set()

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
                self._reconcile_now.set()

    async def _deliver(self, env: Envelope) -> None:
        if not self._interested(env.job_id, env.owner_id):
            return
        known = self._known.get(env.job_id)
        last = known[0] if known is not None else None
        if last is not None and env.seq <= last:
            return  # already delivered (another channel was faster)
        if not env.text or (last is not None and env.seq > last + 1):
            start = last if last is not None else env.seq - 1
            self.gap_fills += 1
            for missing in await self.store.all_after(env.job_id, start, upto=env.seq):
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

    async def _heartbeat_loop(self) -> None:
        """One clock for every stream (no timer per subscriber): a stream that
        sent nothing for a whole period sends a heartbeat, so an idle client
        hears from the server at least every two periods."""
        while True:
            await asyncio.sleep(self.settings.events_heartbeat_seconds)
            for sub in self._subscriptions():
                sub.tick()

    # ----------------------------------------------------------- reconcile

    def request_reconcile(self) -> None:
        self._reconcile_now.set()

    async def _reconcile_loop(self) -> None:
        while True:
            period = (
                self.settings.events_reconcile_seconds
                if self.push_healthy
                else self.settings.events_poll_seconds
            )
            await wait_event(self._reconcile_now, period)
            self._reconcile_now.clear()
            try:
                await self.reconcile()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("event reconcile failed", exc_info=True)

    async def reconcile(self) -> None:
        """Deliver every event of a watched job that no channel brought.

        The reads run without the dispatch lock (a slow database must not hold
        up live events); only the hand-out takes it, and ``_fanout`` skips
        whatever the dispatcher delivered meanwhile, so order holds."""
        self._prune()
        if not (self._by_job or self._by_owner or self._all):
            return
        window = max(OWNER_WINDOW, timedelta(seconds=4 * self.settings.events_reconcile_seconds))
        heads = await self.store.heads(
            self._by_job.keys(), self._by_owner.keys(), bool(self._all), utcnow() - window
        )
        for head in heads:
            known = self._known.get(head.job_id)
            if known is not None:
                if head.last_seq <= known[0]:
                    continue
                envs = await self.store.all_after(head.job_id, known[0])
            else:
                floor = self._floor(head.job_id, head.owner_id)
                if floor is None:
                    since = self._since(head.owner_id)
                    if since is None:
                        continue
                    envs = await self.store.since(None, since, job_id=head.job_id)
                elif head.last_seq > floor:
                    envs = await self.store.all_after(head.job_id, floor)
                else:
                    continue
            if envs:
                self.reconciled += len(envs)
                async with self._lock:
                    for env in envs:
                        self._fanout(env)

    def _floor(self, job_id: uuid.UUID, owner_id: uuid.UUID) -> int | None:
        """The lowest seq any subscriber of this job has delivered (None when
        none has seen it yet)."""
        seen = [s.cursors.get(job_id, 0) for s in self._by_job.get(job_id, ())]
        for sub in (*self._by_owner.get(owner_id, ()), *self._all):
            if job_id in sub.cursors:
                seen.append(sub.cursors[job_id])
        return min(seen) if seen else None

    def _since(self, owner_id: uuid.UUID) -> datetime | None:
        subs = [*self._by_owner.get(owner_id, ()), *self._all]
        if not subs:
            return None
        earliest: datetime = min(s.since for s in subs)
        return earliest - timedelta(seconds=5)

    def _prune(self) -> None:
        """Forget jobs nobody watches (memory stays bounded by subscriptions)."""
        for job_id, (_, owner_id) in list(self._known.items()):
            if not self._interested(job_id, owner_id):
                del self._known[job_id]

    # --------------------------------------------------------------- redis

    async def _redis_loop(self) -> None:
        assert self.redis_url is not None
        backoff = 0.2
        while True:
            client = _redis_client(self.redis_url)
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                if not self.redis_up:
                    log.info("events: Redis pub/sub connected")
                self.redis_up = True
                self._update_mode()
                self._reconcile_now.set()  # what was published before we listened
                backoff = 0.2
                while True:
                    msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if msg is None or msg.get("type") != "message":
                        continue
                    try:
                        self._enqueue(Envelope.decode(msg["data"]))
                    except ValueError:
                        log.warning("events: ignoring a malformed Redis message")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self.redis_up:
                    log.warning(
                        "events: Redis lost (%s: %s); the database carries events until it is back",
                        type(exc).__name__,
                        exc,
                    )
                self.redis_up = False
                self._update_mode()
                self._reconcile_now.set()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
                with contextlib.suppress(Exception):
                    await client.aclose()

    # ------------------------------------------------------ LISTEN/NOTIFY

    async def _listen_loop(self) -> None:
        import asyncpg

        dsn = (
            make_url(self.db.url).set(drivername="postgresql").render_as_string(hide_password=False)
        )
        backoff = 0.2
        while True:
            await self._listen_wanted.wait()
            conn: Any = None
            lost = asyncio.Event()
            try:
                async with asyncio.timeout(10):
                    conn = await asyncpg.connect(dsn)
                conn.add_termination_listener(lambda _c, ev=lost: ev.set())
                await conn.add_listener(self.channel, self._on_notify)
                self.listen_up = True
                self._reconcile_now.set()
                backoff = 0.2
                while self._listen_wanted.is_set() and not lost.is_set():
                    await wait_event(lost, 5.0)
                    if not lost.is_set() and self._listen_wanted.is_set():
                        async with asyncio.timeout(5):
                            await conn.execute("SELECT 1")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("events: LISTEN failed (%s: %s)", type(exc).__name__, exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
            finally:
                self.listen_up = False
                if conn is not None:
                    with contextlib.suppress(Exception):
                        async with asyncio.timeout(2):
                            await conn.close()
                self._reconcile_now.set()
            if not self._listen_wanted.is_set():
                continue

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        try:
            self._enqueue(Envelope.decode(payload))
        except ValueError:
            log.warning("events: ignoring a malformed notification")


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
