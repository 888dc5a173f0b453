"""User accounts: create, list, change role or disable, the first admin, and
the accounts behind external identities.

The rules live here: a role is one of `ROLES`; an email is stored trimmed and
lower-cased (it is the login); changing a role needs ``admin:roles`` and
enabling or disabling needs ``admin:users``; no change may leave the platform
without an active admin; disabling an account revokes every session at once.
An external issuer's user gets an account of its own on first sight, never one
found by email.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from aiprod.db.base import utcnow
from aiprod.db.engine import Database
from aiprod.errors import AuthError, Conflict, Forbidden, Invalid, NotFound
from aiprod.identity import passwords
from aiprod.identity.audit import SYSTEM, AuditContext, AuditLog
from aiprod.identity.models import ExternalIdentity, User
from aiprod.identity.oidc import ExternalIdentityClaims
from aiprod.identity.permissions import ROLES, Principal, has_permission

if TYPE_CHECKING:
    from aiprod.identity.sessions import SessionService


class UserExists(Exception):
    """An account with this email exists already."""


def normalise_email(email: str) -> str:
    return email.strip().lower()


class UserService:
    def __init__(self, db: Database, audit: AuditLog, sessions: SessionService) -> None:
        self.db = db
        self.audit = audit
        self.sessions = sessions  # disabling an account revokes its sessions

    # ------------------------------------------------------------- reading

    async def get_user(self, user_id: uuid.UUID) -> User | None:
        async with self.db.session() as s:
            return await s.get(User, user_id)

    async def list_users(
        self, limit: int, after_email: str | None = None, role: str | None = None
    ) -> list[User]:
        q = select(User).order_by(User.email).limit(limit)
        if after_email is not None:
            q = q.where(User.email > after_email)
        if role is not None:
            q = q.where(User.role == role)
        async with self.db.session() as s:
            return list((await s.execute(q)).scalars())

    async def count_admins(self) -> int:
        async with self.db.session() as s:
            q = (
                select(func.count())
                .select_from(User)
                .where(User.role == "admin", User.is_active.is_(True))
            )
            return int((await s.execute(q)).scalar_one())

    # ------------------------------------------------------------ creating

    async def create_user(
        self, email: str, password: str | None, role: str = "user", ctx: AuditContext = SYSTEM
    ) -> User:
        """A new active account (ValueError: bad role or weak password; UserExists)."""
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}")
        if password is not None:
            passwords.check_strength(password)
        user = User(
            id=uuid.uuid4(),
            email=normalise_email(email),
            password_hash=passwords.hash_password(password) if password is not None else None,
            role=role,
            is_active=True,
            created_at=utcnow(),
            updated_at=utcnow(),
        )
        try:
            async with self.db.transaction() as s:
                s.add(user)
                await s.flush()
                await self.audit.record(
                    s,
                    "user.created",
                    "success",
                    ctx,
                    subject_type="user",
                    subject_id=user.id,
                    details={"email": user.email, "role": role},
                )
        except IntegrityError:
            raise UserExists(f"a user with email {user.email} already exists") from None
        return user

    async def ensure_admin(self, email: str = "admin@localhost") -> str | None:
        """Create the first admin if there is none; returns its one-time password."""
        if await self.count_admins():
            return None
        password = secrets.token_urlsafe(18)
        await self.create_user(email, password, role="admin")
        return password

    # ------------------------------------------------------------ changing

    async def update_user(
        self,
        actor: Principal,
        user_id: uuid.UUID,
        ctx: AuditContext,
        *,
        role: str | None = None,
        is_active: bool | None = None,
    ) -> User:
        """Change a user's role and/or enable or disable them.  Refuses (409
        `last_admin`) to leave no active admin.  Disabling revokes every session."""
        ctx = ctx.as_principal(actor)
        if role is not None and not has_permission(actor, "admin:roles"):
            await self._denied(ctx, actor, "admin:roles", user_id)
            raise Forbidden("changing a role needs the permission admin:roles")
        if is_active is not None and not has_permission(actor, "admin:users"):
            await self._denied(ctx, actor, "admin:users", user_id)
            raise Forbidden("enabling or disabling a user needs the permission admin:users")
        if role is not None and role not in ROLES:
            raise Invalid(f"role must be one of {', '.join(ROLES)}")
        now = utcnow()
        async with self.db.transaction() as s:
            # Lock every active admin first (always in the same order), so two
            # admins demoting each other at once cannot both succeed.
            admins = list(
                (
                    await s.execute(
                        select(User)
                        .where(User.role == "admin", User.is_active.is_(True))
                        .order_by(User.id)
                        .with_for_update()
                    )
                ).scalars()
            )
            user = (
                await s.execute(select(User).where(User.id == user_id).with_for_update())
            ).scalar_one_or_none()
            if user is None:
                raise NotFound(f"user {user_id} not found")
            stays_admin = (role or user.role) == "admin" and (
                is_active if is_active is not None else user.is_active
            )
            if user in admins and not stays_admin and len(admins) <= 1:
                raise Conflict(
                    "this is the last active admin: make another admin first", code="last_admin"
                )
            if role is not None and role != user.role:
                await self.audit.record(
                    s,
                    "user.role_changed",
                    "success",
                    ctx,
                    subject_type="user",
                    subject_id=user.id,
                    details={"from": user.role, "to": role},
                )
                user.role = role
            if is_active is not None and is_active != user.is_active:
                user.is_active = is_active
                await self.audit.record(
                    s,
                    "user.enabled" if is_active else "user.disabled",
                    "success",
                    ctx,
                    subject_type="user",
                    subject_id=user.id,
                )
                if not is_active:
                    await self.sessions.revoke_all_in(s, user.id, "user_disabled", ctx, now)
            user.updated_at = now
        return user

    async def _denied(
        self, ctx: AuditContext, actor: Principal, need: str, subject: uuid.UUID
    ) -> None:
        await self.audit.permission_denied(
            ctx, actor, need, subject_type="user", subject_id=subject
        )

    # ---------------------------------------------------- external accounts

    async def external_user(self, ext: ExternalIdentityClaims, *, sync_role: bool) -> User:
        """The user behind an external identity; created on first sight (never
        linked to an existing account by email: that would let whoever controls
        the issuer take over local accounts).  `sync_role`: the issuer's role
        claim overrides the stored role on every sign-in."""
        ctx = AuditContext(actor=f"oidc:{ext.issuer}"[:320])
        for _ in range(2):
            async with self.db.session() as s:
                row = (
                    await s.execute(
                        select(User)
                        .join(ExternalIdentity, ExternalIdentity.user_id == User.id)
                        .where(
                            ExternalIdentity.issuer == ext.issuer,
                            ExternalIdentity.subject == ext.subject,
                        )
                    )
                ).scalar_one_or_none()
            if row is not None:
                if not row.is_active:
                    raise AuthError("the account is disabled or no longer exists")
                if sync_role and row.role != ext.role:
                    async with self.db.transaction() as s:
                        await s.execute(
                            update(User)
                            .where(User.id == row.id)
                            .values(role=ext.role, updated_at=utcnow())
                        )
                        await self.audit.record(
                            s,
                            "user.role_changed",
                            "success",
                            ctx,
                            subject_type="user",
                            subject_id=row.id,
                            details={"from": row.role, "to": ext.role, "source": "issuer"},
                        )
                    row.role = ext.role
                return row
            try:
                return await self._create_external(ext, ctx)
            except IntegrityError:
                continue  # created by a concurrent request: read it again
        raise AuthError("could not create the account; try again")

    async def _create_external(self, ext: ExternalIdentityClaims, ctx: AuditContext) -> User:
        async with self.db.session() as s:
            taken = (
                ext.email is not None
                and (await s.execute(select(User.id).where(User.email == ext.email))).first()
                is not None
            )
        if ext.email is not None and ext.email_verified and not taken:
            email = ext.email
        else:
            tag = hashlib.sha256(f"{ext.issuer}\x00{ext.subject}".encode()).hexdigest()[:20]
            host = urlsplit(ext.issuer).hostname or "external"
            email = f"oidc-{tag}@{host}.invalid"
        now = utcnow()
        user = User(
            id=uuid.uuid4(),
            email=email,
            password_hash=None,
            role=ext.role,
            is_active=True,
            created_at=now,
            updated_at=now,
        )
        async with self.db.transaction() as s:
            s.add(user)
            await s.flush()
            s.add(
                ExternalIdentity(
                    id=uuid.uuid4(),
                    issuer=ext.issuer,
                    subject=ext.subject,
                    user_id=user.id,
                    created_at=now,
                )
            )
            await s.flush()
            await self.audit.record(
                s,
                "user.created",
                "success",
                ctx,
                subject_type="user",
                subject_id=user.id,
                details={"email": email, "role": ext.role, "issuer": ext.issuer},
            )
        return user
