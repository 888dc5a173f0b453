"""The periodic task that rotates API keys older than the configured age.

It runs inside the API process (started by the app's lifespan when
``AIPROD_API_KEY_ROTATION_CHECK_SECONDS`` > 0): once at start-up, then every
period.  Several API processes may run it at once; rotation locks each key and
skips those already rotated.  ``aiprod keys rotate-due`` and
``POST /v1/admin/keys/rotate`` do the same on demand.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import suppress

from aiprod.identity.api_keys.service import KeyRotated
from aiprod.identity.service import IdentityService

log = logging.getLogger("aiprod.identity.api_keys.rotation")


async def rotate_once(identity: IdentityService) -> list[KeyRotated]:
    done = await identity.api_keys.rotate_due()
    for n in done:
        log.info(
            "rotated API key %s of user %s (pending claim; old version until %s)",
            n.previous_key_id,
            n.owner_id,
            n.grace_until.isoformat(),
        )
    return done


async def rotation_loop(identity: IdentityService, period: float, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            await rotate_once(identity)
        except Exception:  # keep the task alive: the next period tries again
            log.exception("scheduled API-key rotation failed")
        with suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=period)


class RotationTask:
    """Start/stop handle for the lifespan."""

    def __init__(self, identity: IdentityService, period: float) -> None:
        self.stop = asyncio.Event()
        self.task = asyncio.create_task(
            rotation_loop(identity, period, self.stop), name="aiprod-key-rotation"
        )

    async def close(self) -> None:
        self.stop.set()
        try:
            await asyncio.wait_for(self.task, timeout=10)
        except TimeoutError:
            self.task.cancel()
            with suppress(asyncio.CancelledError):
                await self.task
