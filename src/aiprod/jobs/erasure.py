"""Erasing everything of one user, for data-protection requests.

``POST /v1/admin/users/{id}/erase`` (after ``GET /v1/admin/users/{id}/export``
if the person asked for their data).  In this order:

1. The account is disabled and its sessions revoked (``user.disabled``), so
   nothing new can be made while the rest goes; its API keys are refused
   from then on.
2. Every production is deleted through the one deletion path (running ones
   are cancelled first; one that will not stop answers 409 ``still_running``
   and the account stays disabled: repeat the erase).
3. The uploads: rows first, then their bytes (and anything left under
   ``media/<user id>/``).
4. The user row, in one transaction with the ``user.erased`` audit event: the
   database cascades to API keys, sessions and refresh tokens, external
   identities, webhook endpoints with their deliveries, and stream tickets.

The audit log is kept: it is the security record of what happened, its hash
chain forbids editing, and it names the user by id (and, on events the user
performed, by the email they had).  Say so in the answer to the request.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from aiprod.errors import Conflict, NotFound
from aiprod.events.models import WebhookEndpoint
from aiprod.identity.audit import AuditContext
from aiprod.identity.models import ApiKey, AuthSession, User
from aiprod.identity.permissions import Principal
from aiprod.identity.service import IdentityService
from aiprod.jobs.deletion import ProductionDeleter
from aiprod.jobs.models import Job, MediaFile


@dataclass(frozen=True)
class Erased:
    user_id: uuid.UUID
    productions: int
    media: int
    api_keys: int
    sessions: int
    webhooks: int
    cache_entries: int


async def _count(
    s: AsyncSession, column: InstrumentedAttribute[uuid.UUID], user_id: uuid.UUID
) -> int:
    q = select(func.count()).where(column == user_id)
    return int((await s.execute(q)).scalar_one())


class UserEraser:
    def __init__(self, deleter: ProductionDeleter, identity: IdentityService) -> None:
        self.deleter = deleter
        self.identity = identity
        self.db = deleter.jobs.db
        self.storage = deleter.storage

    async def erase(self, user_id: uuid.UUID, actor: Principal, ctx: AuditContext) -> Erased:
        if actor.user_id == user_id:
            raise Conflict("you cannot erase your own account", "cannot_erase_self")
        if await self.identity.users.get_user(user_id) is None:
            raise NotFound(f"user {user_id} not found")
        await self.identity.users.update_user(actor, user_id, ctx, is_active=False)
        ctx = ctx.as_principal(actor)

        productions = cached = 0
        while True:
            async with self.db.session() as s:
                q = select(Job.id).where(Job.owner_id == user_id).order_by(Job.id).limit(100)
                ids = list((await s.execute(q)).scalars())
            if not ids:
                break
            for job_id in ids:
                try:
                    done = await self.deleter.delete(job_id, None, ctx, reason="erase")
                except NotFound:
                    continue
                productions += 1
                cached += done.cache_entries

        async with self.db.transaction() as s:
            media = list(
                (await s.execute(select(MediaFile).where(MediaFile.owner_id == user_id))).scalars()
            )
            await s.execute(delete(MediaFile).where(MediaFile.owner_id == user_id))
        for row in media:
            await self.storage.delete(row.key)
        await self.storage.delete_prefix(f"media/{user_id}/")

        async with self.db.transaction() as s:
            user = (
                await s.execute(select(User).where(User.id == user_id).with_for_update())
            ).scalar_one_or_none()
            if user is None:
                raise NotFound(f"user {user_id} not found")
            keys = await _count(s, ApiKey.user_id, user_id)
            sessions = await _count(s, AuthSession.user_id, user_id)
            hooks = await _count(s, WebhookEndpoint.owner_id, user_id)
            await s.execute(delete(User).where(User.id == user_id))
            counts = {
                "productions": productions,
                "media": len(media),
                "api_keys": keys,
                "sessions": sessions,
                "webhooks": hooks,
                "cache_entries": cached,
            }
            await self.identity.audit.record(
                s,
                "user.erased",
                "success",
                ctx,
                subject_type="user",
                subject_id=user_id,
                details=counts,
            )
        return Erased(user_id=user_id, **counts)


__all__ = ["Erased", "UserEraser"]
