"""API keys: create, verify, rotate with a grace period, revoke.

Versions of one key share a lineage.  Rotating the newest version issues the
next one; the previous one keeps working until the grace period ends (its
``expires_at`` is pulled in), and any older version still alive is revoked,
so at most two versions of a key work at any time.

Scheduled rotation (keys older than ``api_key_rotate_after_days``) cannot
hand a secret to anyone, so it makes the next version *pending*: no secret
exists yet and the previous version's grace period starts.  The owner is
notified (an ``api_key.rotated`` notice to subscribers, and the audit log)
and calls ``POST /v1/api-keys/{id}/claim`` to have the secret issued, once.
No plaintext secret is ever stored.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from aiprod.db.base import utcnow
from aiprod.db.engine import Database
from aiprod.errors import AuthError, Conflict, Invalid, NotFound
from aiprod.identity.api_keys import format as key_format
from aiprod.identity.audit import SYSTEM, AuditContext, AuditLog
from aiprod.identity.models import ApiKey, User
from aiprod.identity.permissions import ADMIN_PERMISSIONS, PERMISSIONS
from aiprod.settings import Settings

log = logging.getLogger("aiprod.identity.api_keys")


@dataclass(frozen=True)
class KeyRotated:
    """Notice to the key's owner (subscribers deliver it: webhook, stream, mail)."""

    type: str
    owner_id: uuid.UUID
    key_id: uuid.UUID  # the new version
    previous_key_id: uuid.UUID
    name: str
    grace_until: datetime
    by: str  # "owner", "admin" or "schedule"
    pending: bool  # True: the owner must claim the new secret


Listener = Callable[[KeyRotated], Awaitable[None]]


def key_status(key: ApiKey, now: datetime) -> str:
    if key.revoked_at is not None:
        return "revoked"
    if key.expires_at <= now:
        return "expired"
    if key.digest is None:
        return "pending"
    if key.superseded_at is not None:
        return "grace"
    return "active"


def default_scopes(role: str) -> list[str]:
    """Everything the role may do except administration (least privilege)."""
    return sorted(PERMISSIONS.get(role, frozenset()) - set(ADMIN_PERMISSIONS))


class ApiKeyService:
    def __init__(self, db: Database, settings: Settings, audit: AuditLog, secret: str) -> None:
        self.db = db
        self.settings = settings
        self.audit = audit
        self._secret = secret.encode()
        self.listeners: list[Listener] = []

    # ------------------------------------------------------------ verifying

    async def authenticate(self, token: str) -> tuple[ApiKey, User]:
        """The key and its owner, or AuthError.  One HMAC and one indexed lookup."""
        if not key_format.well_formed(token):
            raise AuthError("invalid API key")
        digest = key_format.digest(self._secret, token)
        async with self.db.session() as s:
            row = (
                await s.execute(
                    select(ApiKey, User)
                    .join(User, User.id == ApiKey.user_id)
                    .where(ApiKey.digest == digest)
                )
            ).first()
        if (
            row is None
            or row[0].digest is None
            or not key_format.same_digest(row[0].digest, digest)
        ):
            raise AuthError("invalid API key")
        key, user = row
        now = utcnow()
        if key.revoked_at is not None:
            raise AuthError("this API key was revoked")
        if key.expires_at <= now:
            raise AuthError("this API key has expired")
        if not user.is_active:
            raise AuthError("the account is disabled or no longer exists")
        return key, user

    # -------------------------------------------------------------- issuing

    def _check_scopes(self, role: str, scopes: Sequence[str] | None) -> list[str]:
        if scopes is None:
            return default_scopes(role)
        allowed = PERMISSIONS.get(role, frozenset())
        extra = sorted(set(scopes) - allowed)
        if extra:
            raise Invalid(
                f"a {role} cannot grant {', '.join(extra)} to a key",
                details=[{"loc": ["body", "scopes"], "msg": "not allowed", "type": "scope"}],
            )
        if not scopes:
            raise Invalid("a key needs at least one scope")
        return sorted(set(scopes))

    def _new_version(
        self,
        *,
        owner_id: uuid.UUID,
        lineage_id: uuid.UUID,
        version: int,
        name: str,
        scopes: list[str],
        days: int,
        created_by: uuid.UUID | None,
        rotated_by: str | None,
        pending: bool,
    ) -> tuple[ApiKey, str | None]:
        now = utcnow()
        secret = None if pending else key_format.generate()
        key = ApiKey(
            id=uuid.uuid4(),
            user_id=owner_id,
            lineage_id=lineage_id,
            version=version,
            name=name,
            prefix=key_format.display_prefix(secret) if secret else None,
            digest=key_format.digest(self._secret, secret) if secret else None,
            scopes=scopes,
            lifetime_days=days,
            created_at=now,
            expires_at=now + timedelta(days=days),
            created_by=created_by,
            rotated_by=rotated_by,
        )
        return key, secret

    async def create(
        self,
        owner: User,
        name: str,
        scopes: Sequence[str] | None,
        days: int | None,
        ctx: AuditContext,
    ) -> tuple[ApiKey, str]:
        chosen = self._check_scopes(owner.role, scopes)
        lifetime = days or self.settings.api_key_default_days
        key, secret = self._new_version(
            owner_id=owner.id,
            lineage_id=uuid.uuid4(),
            version=1,
            name=name,
            scopes=chosen,
            days=lifetime,
            created_by=ctx.actor_id,
            rotated_by=None,
            pending=False,
        )
        assert secret is not None
        async with self.db.transaction() as s:
            s.add(key)
            await s.flush()
            await self.audit.record(
                s,
                "api_key.created",
                "success",
                ctx,
                subject_type="api_key",
                subject_id=key.id,
                details={
                    "owner_id": str(owner.id),
                    "name": name,
                    "scopes": chosen,
                    "expires_at": key.expires_at.isoformat(),
                    "prefix": key.prefix,
                },
            )
        return key, secret

    # -------------------------------------------------------------- reading

    async def list_keys(self, owner_id: uuid.UUID | None) -> list[ApiKey]:
        q = select(ApiKey).order_by(ApiKey.created_at.desc(), ApiKey.id)
        if owner_id is not None:
            q = q.where(ApiKey.user_id == owner_id)
        async with self.db.session() as s:
            return list((await s.execute(q)).scalars())

    async def get(self, key_id: uuid.UUID, owner_id: uuid.UUID | None) -> ApiKey:
        async with self.db.session() as s:
            key = await s.get(ApiKey, key_id)
        if key is None or (owner_id is not None and key.user_id != owner_id):
            raise NotFound(f"API key {key_id} not found")
        return key

    async def _locked(
        self, s: AsyncSession, key_id: uuid.UUID, owner_id: uuid.UUID | None
    ) -> ApiKey:
        key = (
            await s.execute(select(ApiKey).where(ApiKey.id == key_id).with_for_update())
        ).scalar_one_or_none()
        if key is None or (owner_id is not None and key.user_id != owner_id):
            raise NotFound(f"API key {key_id} not found")
        return key

    # ------------------------------------------------------------- rotating

    async def rotate(
        self,
        key_id: uuid.UUID,
        owner_id: uuid.UUID | None,
        ctx: AuditContext,
        *,
        grace_seconds: float | None = None,
        by: str = "owner",
        pending: bool = False,
    ) -> tuple[ApiKey, str | None]:
        """Issue the next version of the key; the given (newest) version keeps
        working for the grace period; older ones die now."""
        grace = timedelta(
            seconds=self.settings.api_key_grace_seconds if grace_seconds is None else grace_seconds
        )
        async with self.db.transaction() as s:
            key = await self._locked(s, key_id, owner_id)
            new, secret, notice = await self._rotate_locked(s, key, ctx, grace, by, pending)
        await self._notify(notice)
        return new, secret

    async def _rotate_locked(
        self,
        s: AsyncSession,
        key: ApiKey,
        ctx: AuditContext,
        grace: timedelta,
        by: str,
        pending: bool,
    ) -> tuple[ApiKey, str | None, KeyRotated]:
        now = utcnow()
        status = key_status(key, now)
        if status in ("revoked", "expired"):
            raise Conflict(f"this API key is {status} and cannot be rotated", code="invalid_state")
        if status == "pending":
            raise Conflict("this version has no secret yet: claim it first", code="invalid_state")
        if status == "grace":
            raise Conflict(
                "this version was already rotated; rotate its newest version", code="invalid_state"
            )
        lineage = list(
            (
                await s.execute(
                    select(ApiKey).where(ApiKey.lineage_id == key.lineage_id).with_for_update()
                )
            ).scalars()
        )
        retired = []
        for other in lineage:
            if other.id != key.id and other.revoked_at is None and other.expires_at > now:
                other.revoked_at = now  # at most two versions alive
                retired.append(str(other.id))
        grace_until = min(key.expires_at, now + grace)
        key.superseded_at = now
        key.expires_at = grace_until
        new, secret = self._new_version(
            owner_id=key.user_id,
            lineage_id=key.lineage_id,
            version=max(v.version for v in lineage) + 1,
            name=key.name,
            scopes=list(key.scopes),
            days=key.lifetime_days,
            created_by=ctx.actor_id,
            rotated_by=by,
            pending=pending,
        )
        s.add(new)
        await s.flush()
        await self.audit.record(
            s,
            "api_key.rotated",
            "success",
            ctx,
            subject_type="api_key",
            subject_id=key.id,
            details={
                "owner_id": str(key.user_id),
                "new_key_id": str(new.id),
                "version": new.version,
                "grace_until": grace_until.isoformat(),
                "by": by,
                "pending": pending,
                "revoked_versions": retired,
            },
        )
        notice = KeyRotated(
            type="api_key.rotated",
            owner_id=key.user_id,
            key_id=new.id,
            previous_key_id=key.id,
            name=key.name,
            grace_until=grace_until,
            by=by,
            pending=pending,
        )
        return new, secret, notice

    async def claim(
        self, key_id: uuid.UUID, owner_id: uuid.UUID, ctx: AuditContext
    ) -> tuple[ApiKey, str]:
        """Issue the secret of a pending version (made by scheduled rotation), once."""
        async with self.db.transaction() as s:
            key = await self._locked(s, key_id, owner_id)
            status = key_status(key, utcnow())
            if status != "pending":
                raise Conflict(
                    f"only a pending key can be claimed (this one is {status})",
                    code="invalid_state",
                )
            secret = key_format.generate()
            key.digest = key_format.digest(self._secret, secret)
            key.prefix = key_format.display_prefix(secret)
            await self.audit.record(
                s, "api_key.claimed", "success", ctx, subject_type="api_key", subject_id=key.id
            )
        return key, secret

    async def due(self, max_age_days: float | None = None) -> list[ApiKey]:
        age = timedelta(days=max_age_days or self.settings.api_key_rotate_after_days)
        now = utcnow()
        q = select(ApiKey).where(
            ApiKey.superseded_at.is_(None),
            ApiKey.revoked_at.is_(None),
            ApiKey.digest.is_not(None),
            ApiKey.expires_at > now,
            ApiKey.created_at <= now - age,
        )
        async with self.db.session() as s:
            return list((await s.execute(q.order_by(ApiKey.created_at))).scalars())

    async def rotate_due(
        self, ctx: AuditContext = SYSTEM, max_age_days: float | None = None, by: str = "schedule"
    ) -> list[KeyRotated]:
        """Rotate every key older than the limit to a pending version.  Safe to run
        on several servers at once: a key already rotated is skipped."""
        done: list[KeyRotated] = []
        grace = timedelta(seconds=self.settings.api_key_grace_seconds)
        for candidate in await self.due(max_age_days):
            try:
                async with self.db.transaction() as s:
                    key = await self._locked(s, candidate.id, None)
                    if key.superseded_at is not None or key_status(key, utcnow()) != "active":
                        continue
                    _, _, notice = await self._rotate_locked(s, key, ctx, grace, by, pending=True)
            except (Conflict, NotFound):
                continue  # changed under us: someone else handled it
            done.append(notice)
            await self._notify(notice)
        return done

    async def _notify(self, notice: KeyRotated) -> None:
        for listener in list(self.listeners):
            try:
                await listener(notice)
            except Exception:
                log.exception("key-rotation listener failed for key %s", notice.key_id)

    # ------------------------------------------------------------- revoking

    async def revoke(
        self, key_id: uuid.UUID, owner_id: uuid.UUID | None, ctx: AuditContext
    ) -> ApiKey:
        """Revoke this version and every older one of the same key."""
        now = utcnow()
        async with self.db.transaction() as s:
            key = await self._locked(s, key_id, owner_id)
            older = (
                await s.execute(
                    select(ApiKey)
                    .where(ApiKey.lineage_id == key.lineage_id, ApiKey.version <= key.version)
                    .with_for_update()
                )
            ).scalars()
            revoked = []
            for v in older:
                if v.revoked_at is None:
                    v.revoked_at = now
                    revoked.append(str(v.id))
            await self.audit.record(
                s,
                "api_key.revoked",
                "success",
                ctx,
                subject_type="api_key",
                subject_id=key.id,
                details={"owner_id": str(key.user_id), "revoked": revoked},
            )
        return key

    async def revoke_all(self, owner_id: uuid.UUID, ctx: AuditContext, reason: str) -> int:
        now = utcnow()
        async with self.db.transaction() as s:
            return await self.revoke_all_in(s, owner_id, ctx, reason, now)

    async def revoke_all_in(
        self, s: AsyncSession, owner_id: uuid.UUID, ctx: AuditContext, reason: str, now: datetime
    ) -> int:
        keys = (
            await s.execute(
                select(ApiKey)
                .where(ApiKey.user_id == owner_id, ApiKey.revoked_at.is_(None))
                .with_for_update()
            )
        ).scalars()
        count = 0
        for k in keys:
            k.revoked_at = now
            count += 1
        await self.audit.record(
            s,
            "api_key.revoked_all",
            "success",
            ctx,
            subject_type="user",
            subject_id=owner_id,
            details={"count": count, "reason": reason},
        )
        return count
