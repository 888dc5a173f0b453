"""PostgreSQL LISTEN/NOTIFY: the push channel that needs nothing but the
database, used while Redis is not configured or is down.

:func:`notify` runs inside the transaction that writes the event, so
PostgreSQL delivers the notification only if that transaction commits.
:class:`PostgresListener` holds one ``LISTEN`` connection per API process,
opened only while the bus wants it (`wanted`), checked every few seconds, and
reopened with backoff when it drops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any, Final

from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession

from aiprod.events.envelope import Envelope
from aiprod.events.tasks import wait_event

log = logging.getLogger("aiprod.events")

NOTIFY_LIMIT: Final = 7900
"""PostgreSQL caps a notification at 8000 bytes; bigger events travel as a
hint (their coordinates) and receivers read them from the log."""


async def notify(s: AsyncSession, channel: str, env: Envelope) -> None:
    """Queue the event's notification in the session's transaction."""
    raw = env.encode()
    if len(raw.encode()) > NOTIFY_LIMIT:
        raw = env.hint()
    await s.execute(select(func.pg_notify(channel, raw)))


def listen_dsn(database_url: str) -> str:
    """The asyncpg DSN of a SQLAlchemy URL (``postgresql+asyncpg://`` → ``postgresql://``)."""
    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


class PostgresListener:
    """The bus's LISTEN channel.  `deliver` receives each decoded event;
    `changed` is called when the connection comes up or goes away."""

    def __init__(
        self,
        database_url: str,
        channel: str,
        wanted: asyncio.Event,
        deliver: Callable[[Envelope], None],
        changed: Callable[[], None],
    ) -> None:
        self.dsn = listen_dsn(database_url)
        self.channel = channel
        self.wanted = wanted
        self.deliver = deliver
        self.changed = changed
        self.up = False

    async def run(self) -> None:
        import asyncpg

        backoff = 0.2
        while True:
            await self.wanted.wait()
            conn: Any = None
            lost = asyncio.Event()
            try:
                async with asyncio.timeout(10):
                    conn = await asyncpg.connect(self.dsn)
                conn.add_termination_listener(lambda _c, ev=lost: ev.set())
                await conn.add_listener(self.channel, self._on_notify)
                self.up = True
                self.changed()
                backoff = 0.2
                while self.wanted.is_set() and not lost.is_set():
                    await wait_event(lost, 5.0)
                    if not lost.is_set() and self.wanted.is_set():
                        async with asyncio.timeout(5):
                            await conn.execute("SELECT 1")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("events: LISTEN failed (%s: %s)", type(exc).__name__, exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
            finally:
                self.up = False
                if conn is not None:
                    with contextlib.suppress(Exception):
                        async with asyncio.timeout(2):
                            await conn.close()
                self.changed()

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        try:
            self.deliver(Envelope.decode(payload))
        except ValueError:
            log.warning("events: ignoring a malformed notification")
