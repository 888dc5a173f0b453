"""Quotas: what one user may use, checked before any work starts.

A user's limits are their role's (``AIPROD_QUOTAS``) with an admin's
overrides on top (``user_quotas``, ``PUT /v1/admin/users/{id}/quotas``):

=================  ==================================================  ==========================
quota              counts                                              past it
=================  ==================================================  ==========================
running            productions queued or processing now                429 ``quota_exceeded``
per_day            productions submitted in the last 24 hours          429 ``quota_exceeded``,
                   (a rolling window)                                  ``Retry-After``
storage_bytes      the productions' files (as their checkpoints        403 ``quota_exceeded``
                   record them) plus uploads
spend_month_usd    estimated cost of this calendar month's             403 ``quota_exceeded``,
                   productions (UTC), the new one included             ``details.resets_at``
=================  ==================================================  ==========================

429 where waiting is the remedy (a production finishes, the day rolls on),
403 where the user has to act (delete files) or an admin has to (raise the
limit); ``details.quota`` names the quota either way.  A production cancelled
before it started spent nothing and is not counted.  Re-queueing an existing
production (approve, retry, re-render) checks ``running`` only.

The checks run in the transaction that stores the job, under a lock per owner
(an advisory lock on PostgreSQL; SQLite serialises writers already), so two
submissions racing for the last slot cannot both take it.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import Uuid, and_, bindparam, func, not_, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from aiprod.db.base import utcnow
from aiprod.db.engine import Database
from aiprod.errors import Forbidden, NotFound, RateLimited
from aiprod.identity.audit import AuditContext, AuditLog
from aiprod.identity.models import User
from aiprod.jobs.models import Job, MediaFile
from aiprod.jobs.quota_models import UserQuota
from aiprod.settings import RoleQuota, Settings

QUOTA_FIELDS = ("running", "per_day", "storage_bytes", "spend_month_usd")
RUNNING = ("queued", "processing")
DAY = timedelta(days=1)
_LOCK_CLASS = 0x51554F54  # "QUOT": the first key of two-key advisory locks
_NO_ROLE = RoleQuota(running=0, per_day=0, storage_bytes=0, spend_month_usd=0.0)

# The bytes each job's checkpoints record, once per file name (a later stage
# may list a name again: the file is replaced, not added).
_ARTIFACT_BYTES = {
    "sqlite": """
        SELECT COALESCE(SUM(b), 0) FROM (
          SELECT MAX(CAST(json_extract(a.value, '$.bytes') AS INTEGER)) AS b
          FROM checkpoints c JOIN jobs j ON j.id = c.job_id, json_each(c.artifacts) a
          WHERE j.owner_id = :owner
          GROUP BY c.job_id, json_extract(a.value, '$.name'))""",
    "postgresql": """
        SELECT COALESCE(SUM(b), 0) FROM (
          SELECT MAX(CASE WHEN jsonb_typeof(a.value -> 'bytes') = 'number'
                          THEN (a.value ->> 'bytes')::numeric ELSE 0 END) AS b
          FROM checkpoints c JOIN jobs j ON j.id = c.job_id
          CROSS JOIN LATERAL jsonb_array_elements(
            CASE WHEN jsonb_typeof(c.artifacts) = 'array' THEN c.artifacts
                 ELSE '[]'::jsonb END) AS a(value)
          WHERE j.owner_id = :owner
          GROUP BY c.job_id, a.value ->> 'name') AS t""",
}


def month_start(now: datetime) -> datetime:
    return now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def next_month(now: datetime) -> datetime:
    start = month_start(now)
    return (
        start.replace(year=start.year + 1, month=1)
        if start.month == 12
        else start.replace(month=start.month + 1)
    )


@dataclass(frozen=True)
class Usage:
    """What a user uses now, against the quotas."""

    running: int
    per_day: int
    artifact_bytes: int
    upload_bytes: int
    spend_month_usd: float

    @property
    def storage_bytes(self) -> int:
        return self.artifact_bytes + self.upload_bytes


@dataclass(frozen=True)
class Standing:
    """A user's role, limits (the role's with the overrides applied), overrides and usage."""

    role: str
    limits: RoleQuota
    overrides: dict[str, Any]
    usage: Usage


# ------------------------------------------------------------------ counting


async def running(s: AsyncSession, owner: uuid.UUID) -> int:
    q = select(func.count()).where(Job.owner_id == owner, Job.status.in_(RUNNING))
    return int(await s.scalar(q) or 0)


async def submitted_since(s: AsyncSession, owner: uuid.UUID, since: datetime) -> int:
    q = select(func.count()).where(Job.owner_id == owner, Job.created_at > since)
    return int(await s.scalar(q) or 0)


async def artifact_bytes(s: AsyncSession, owner: uuid.UUID) -> int:
    sql = _ARTIFACT_BYTES.get(s.get_bind().dialect.name, _ARTIFACT_BYTES["sqlite"])
    q = text(sql).bindparams(bindparam("owner", owner, type_=Uuid()))
    return int(await s.scalar(q) or 0)


async def upload_bytes(s: AsyncSession, owner: uuid.UUID) -> int:
    q = select(func.coalesce(func.sum(MediaFile.bytes), 0)).where(MediaFile.owner_id == owner)
    return int(await s.scalar(q) or 0)


async def spend(s: AsyncSession, owner: uuid.UUID, now: datetime) -> float:
    never_ran = and_(Job.status == "cancelled", Job.stage.is_(None))
    q = select(func.coalesce(func.sum(Job.cost), 0.0)).where(
        Job.owner_id == owner, Job.created_at >= month_start(now), not_(never_ran)
    )
    return float(await s.scalar(q) or 0.0)


async def usage(s: AsyncSession, owner: uuid.UUID, now: datetime | None = None) -> Usage:
    now = now or utcnow()
    return Usage(
        running=await running(s, owner),
        per_day=await submitted_since(s, owner, now - DAY),
        artifact_bytes=await artifact_bytes(s, owner),
        upload_bytes=await upload_bytes(s, owner),
        spend_month_usd=await spend(s, owner, now),
    )


# ------------------------------------------------------------------- limits


def overridden(base: RoleQuota, overrides: dict[str, Any]) -> RoleQuota:
    """`base` with the overrides' fields (a null one lifts that limit)."""
    changes = {k: v for k, v in overrides.items() if k in QUOTA_FIELDS}
    return RoleQuota.model_validate({**base.model_dump(), **changes})


class Quotas:
    """The quota rules; the caller brings the session (and its transaction)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def role_limits(self, role: str) -> RoleQuota:
        quotas = cast(dict[str, RoleQuota], self.settings.quotas)
        return quotas.get(role, _NO_ROLE)

    async def limits(self, s: AsyncSession, owner: uuid.UUID) -> tuple[str, RoleQuota] | None:
        """The owner's role and limits; None when there is no such user."""
        role = await s.scalar(select(User.role).where(User.id == owner))
        if role is None:
            return None
        row = await s.get(UserQuota, owner)
        return role, overridden(self.role_limits(role), row.limits if row is not None else {})

    async def standing(self, s: AsyncSession, owner: uuid.UUID) -> Standing | None:
        """Role, limits, overrides and usage of `owner`; None when there is no such user."""
        role = await s.scalar(select(User.role).where(User.id == owner))
        if role is None:
            return None
        row = await s.get(UserQuota, owner)
        overrides = dict(row.limits) if row is not None else {}
        limits = overridden(self.role_limits(role), overrides)
        return Standing(role, limits, overrides, await usage(s, owner))

    async def set_overrides(
        self,
        db: Database,
        audit: AuditLog,
        ctx: AuditContext,
        user_id: uuid.UUID,
        overrides: dict[str, Any],
    ) -> None:
        """Replace `user_id`'s overrides (empty: the role's limits again), with
        ``user.quotas_changed`` in the audit log, in one transaction."""
        unknown = set(overrides) - set(QUOTA_FIELDS)
        if unknown:
            raise ValueError(f"not quotas: {sorted(unknown)}")
        async with db.transaction() as s:
            if await s.get(User, user_id) is None:
                raise NotFound(f"user {user_id} not found")
            row = await s.get(UserQuota, user_id)
            before = dict(row.limits) if row is not None else {}
            if not overrides:
                if row is not None:
                    await s.delete(row)
            elif row is None:
                s.add(
                    UserQuota(
                        user_id=user_id,
                        limits=dict(overrides),
                        updated_at=utcnow(),
                        updated_by=ctx.actor_id,
                    )
                )
            else:
                row.limits = dict(overrides)
                row.updated_at = utcnow()
                row.updated_by = ctx.actor_id
            await audit.record(
                s,
                "user.quotas_changed",
                "success",
                ctx,
                subject_type="user",
                subject_id=user_id,
                details={"from": before, "to": dict(overrides)},
            )

    async def check_submit(self, s: AsyncSession, owner: uuid.UUID, cost: float) -> None:
        """Before storing a new production of `owner` estimated at `cost` USD."""
        found = await self._locked_limits(s, owner)
        if found is None:
            return
        limits = found
        await self._check_running(s, owner, limits)
        now = utcnow()
        if limits.per_day is not None:
            used = await submitted_since(s, owner, now - DAY)
            if used >= limits.per_day:
                raise RateLimited(
                    f"you submitted {used} productions in the last 24 hours, your limit is "
                    f"{limits.per_day}",
                    await self._day_retry(s, owner, used, limits.per_day, now),
                    "quota_exceeded",
                    details={"quota": "per_day", "limit": limits.per_day, "used": used},
                )
        if limits.storage_bytes is not None:
            stored = await artifact_bytes(s, owner) + await upload_bytes(s, owner)
            if stored >= limits.storage_bytes:
                raise _storage_refusal(limits.storage_bytes, stored)
        if limits.spend_month_usd is not None:
            spent = await spend(s, owner, now)
            if spent + cost > limits.spend_month_usd + 1e-9:
                raise Forbidden(
                    f"this production (${cost:.4f}) would take this month's spending to "
                    f"${spent + cost:.4f}, above your limit of ${limits.spend_month_usd:.2f}",
                    "quota_exceeded",
                    details={
                        "quota": "spend_month_usd",
                        "limit": limits.spend_month_usd,
                        "used": round(spent, 8),
                        "needed": round(cost, 8),
                        "resets_at": next_month(now).isoformat().replace("+00:00", "Z"),
                    },
                )

    async def check_requeue(self, s: AsyncSession, owner: uuid.UUID) -> None:
        """Before an existing production of `owner` is queued again."""
        limits = await self._locked_limits(s, owner)
        if limits is not None:
            await self._check_running(s, owner, limits)

    async def check_upload(self, s: AsyncSession, owner: uuid.UUID, size: int) -> None:
        """Before keeping an upload of `size` bytes."""
        found = await self.limits(s, owner)
        if found is None or found[1].storage_bytes is None:
            return
        stored = await artifact_bytes(s, owner) + await upload_bytes(s, owner)
        if stored + size > found[1].storage_bytes:
            raise _storage_refusal(found[1].storage_bytes, stored)

    async def _locked_limits(self, s: AsyncSession, owner: uuid.UUID) -> RoleQuota | None:
        if s.get_bind().dialect.name == "postgresql":
            key = int.from_bytes(owner.bytes[:4], "big", signed=True)
            await s.execute(
                text("SELECT pg_advisory_xact_lock(:c, :k)"), {"c": _LOCK_CLASS, "k": key}
            )
        found = await self.limits(s, owner)
        return None if found is None else found[1]

    @staticmethod
    async def _check_running(s: AsyncSession, owner: uuid.UUID, limits: RoleQuota) -> None:
        if limits.running is None:
            return
        used = await running(s, owner)
        if used >= limits.running:
            raise RateLimited(
                f"you have {used} productions queued or running, your limit is "
                f"{limits.running}; submit again when one has finished",
                None,
                "quota_exceeded",
                details={"quota": "running", "limit": limits.running, "used": used},
            )

    @staticmethod
    async def _day_retry(
        s: AsyncSession, owner: uuid.UUID, used: int, limit: int, now: datetime
    ) -> int | None:
        """Seconds until enough of the day's submissions leave the window."""
        if limit <= 0:
            return None
        q = (
            select(Job.created_at)
            .where(Job.owner_id == owner, Job.created_at > now - DAY)
            .order_by(Job.created_at)
            .offset(used - limit)
            .limit(1)
        )
        oldest = await s.scalar(q)
        if oldest is None:
            return 1
        return max(1, math.ceil((oldest + DAY - now).total_seconds()))


def _storage_refusal(limit: int, used: int) -> Forbidden:
    return Forbidden(
        f"your productions and uploads take {used} bytes, your limit is {limit}; delete some first",
        "quota_exceeded",
        details={"quota": "storage_bytes", "limit": limit, "used": used},
    )


__all__ = [
    "DAY",
    "QUOTA_FIELDS",
    "Quotas",
    "Standing",
    "Usage",
    "month_start",
    "next_month",
    "overridden",
    "usage",
]
