"""asyncio helpers for the long-running loops of live progress (the bus, its
transports, the webhook dispatcher): waiting with a timeout that cannot swallow
a cancellation, and stopping tasks that do not stop when asked once."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from typing import Any

log = logging.getLogger("aiprod.events")


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
