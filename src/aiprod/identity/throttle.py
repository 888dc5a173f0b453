"""Login throttling per account and per client address, with exponential delay.

Each key (the email as typed, normalised, and the client address) counts its
failures.  After ``free`` failures every further one locks the key for
``base · 2^(failures − free)`` seconds, capped at ``max``; while a key is
locked, logins for it answer 429 with ``Retry-After`` without checking the
password.  A success clears the account's count (not the address's: one
valid account must not let an address wipe its record).  Failures are
forgotten once ``window`` seconds pass without a new one.

Unknown emails are throttled exactly like real ones, so neither the answers
nor their timing tell whether an account exists.  State lives in the
database, so every API process enforces the same limits.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from aiprod.db.base import utcnow
from aiprod.db.engine import Database
from aiprod.identity.models import LoginThrottle
from aiprod.settings import Settings


def throttle_key(kind: str, value: str) -> str:
    return hashlib.sha256(f"{kind}\x00{value}".encode()).hexdigest()


@dataclass(frozen=True)
class Lock:
    kind: str  # "account" or "address"
    until: datetime

    def retry_after(self, now: datetime) -> int:
        return max(1, int((self.until - now).total_seconds() + 0.999))


@dataclass(frozen=True)
class NewLock:
    kind: str
    failures: int
    seconds: float


class Throttle:
    """The policy; `LoginThrottle` rows hold its state."""

    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings

    def _keys(self, email: str, address: str | None) -> list[tuple[str, str, int]]:
        keys = [
            ("account", throttle_key("account", email), self.settings.login_account_free_failures)
        ]
        if address:
            keys.append(
                (
                    "address",
                    throttle_key("address", address),
                    self.settings.login_address_free_failures,
                )
            )
        return keys

    def delay(self, failures: int, free: int) -> float:
        """Seconds of lock after the `failures`-th failure (0 while under `free`)."""
        if failures < free:
            return 0.0
        exponent = min(failures - free, 30)
        return float(
            min(
                self.settings.login_delay_max_seconds,
                self.settings.login_delay_base_seconds * 2**exponent,
            )
        )

    async def locked(self, email: str, address: str | None) -> Lock | None:
        """The lock that refuses this attempt now, if any (the later one of the two)."""
        now = utcnow()
        found: Lock | None = None
        async with self.db.session() as s:
            for kind, key, _ in self._keys(email, address):
                row = await s.get(LoginThrottle, key)
                until = row.locked_until if row is not None else None
                if until is not None and until > now and (found is None or until > found.until):
                    found = Lock(kind, until)
        return found

    async def failure(self, s: AsyncSession, email: str, address: str | None) -> list[NewLock]:
        """Count a failure under both keys (inside the caller's transaction);
        returns the locks this failure started."""
        now = utcnow()
        window = timedelta(seconds=self.settings.login_failure_window_seconds)
        started: list[NewLock] = []
        for kind, key, free in self._keys(email, address):
            insert = pg_insert if s.get_bind().dialect.name == "postgresql" else sqlite_insert
            await s.execute(
                insert(LoginThrottle)
                .values(key=key, kind=kind, failures=0, last_failure_at=now, locked_until=None)
                .on_conflict_do_nothing(index_elements=["key"])
            )
            row = (
                await s.execute(
                    select(LoginThrottle)
                    .where(LoginThrottle.key == key)
                    .with_for_update()
                    .execution_options(populate_existing=True)
                )
            ).scalar_one()
            if now - row.last_failure_at > window:
                row.failures = 0
                row.locked_until = None
            row.failures += 1
            row.last_failure_at = now
            seconds = self.delay(row.failures, free)
            if seconds > 0:
                row.locked_until = now + timedelta(seconds=seconds)
                started.append(NewLock(kind, row.failures, seconds))
        await s.flush()
        return started

    async def success(self, s: AsyncSession, email: str) -> None:
        await s.execute(
            delete(LoginThrottle).where(LoginThrottle.key == throttle_key("account", email))
        )
