"""Users, login, sessions and refresh-token rotation, credentials → principals.

Sessions: a login opens an `AuthSession`; its refresh tokens form a family
(each works once; a spent one presented again revokes the session: theft
signal).  Access tokens name their session (``sid``), and every request
checks that the session is still open and the account active, so logout,
revocation, a password change or disabling the account cut access tokens off
on their next use, not when they expire.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from aiprod.db.base import utcnow
from aiprod.db.engine import Database
from aiprod.errors import (
    AuthError,
    Conflict,
    Forbidden,
    Invalid,
    NotFound,
    RateLimited,
)
from aiprod.identity import apikeys, passwords, tokens
from aiprod.identity.audit import SYSTEM, AuditContext, AuditLog
from aiprod.identity.keys import ApiKeyService
from aiprod.identity.models import (
    ROLES,
    AuthSession,
    ExternalIdentity,
    RefreshToken,
    User,
)
from aiprod.identity.oidc import ExternalIdentityClaims, OIDCError, OIDCVerifier
from aiprod.identity.permissions import PERMISSIONS, Principal, has_permission
from aiprod.identity.throttle import Throttle
from aiprod.settings import Settings

__all__ = [
    "AuthError",
    "IdentityService",
    "TokenPair",
    "UserExists",
]

log = logging.getLogger("aiprod.identity")


class UserExists(Exception):
    pass


@dataclass
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int
    session_id: uuid.UUID
    token_type: str = "bearer"  # noqa: S105 (the OAuth2 scheme name)


@dataclass(frozen=True)
class Authenticated:
    principal: Principal
    user: User


def _normalise(email: str) -> str:
    return email.strip().lower()


def _actor(principal: Principal, ctx: AuditContext) -> AuditContext:
    label = principal.email if principal.via != "api_key" else f"{principal.email} (API key)"
    return ctx.as_actor(principal.user_id, label)


class IdentityService:
    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings
        self.keyring = tokens.Keyring.from_settings(settings)  # refuses weak keys
        self.key = self.keyring.current
        for issuer in settings.oidc_issuers:
            if issuer.issuer == settings.jwt_issuer:
                raise tokens.InsecureConfiguration(
                    f"external issuer {issuer.issuer!r} is this server's own JWT issuer"
                )
        self.audit = AuditLog(db)
        self.throttle = Throttle(db, settings)
        secret = settings.api_key_secret or tokens.secret_from_file(
            settings.data_dir / "api-key.secret"
        )
        self.keys = ApiKeyService(db, settings, self.audit, secret)
        self.oidc = OIDCVerifier(list(settings.oidc_issuers))

    # ---------------------------------------------------------------- users

    async def create_user(
        self, email: str, password: str | None, role: str = "user", ctx: AuditContext = SYSTEM
    ) -> User:
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}")
        if password is not None:
            passwords.check_strength(password)
        user = User(
            id=uuid.uuid4(),
            email=_normalise(email),
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

    async def count_admins(self) -> int:
        async with self.db.session() as s:
            q = (
                select(func.count())
                .select_from(User)
                .where(User.role == "admin", User.is_active.is_(True))
            )
            return int((await s.execute(q)).scalar_one())

    async def ensure_admin(self, email: str = "admin@localhost") -> str | None:
        """Create the first admin if there is none; returns its one-time password."""
        if await self.count_admins():
            return None
        password = secrets.token_urlsafe(18)
        await self.create_user(email, password, role="admin")
        return password

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
        ctx = _actor(actor, ctx)
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
                    await self._revoke_user_sessions(s, user.id, "user_disabled", ctx, now)
            user.updated_at = now
        return user

    async def _denied(
        self, ctx: AuditContext, actor: Principal, need: str, subject: uuid.UUID
    ) -> None:
        await self.audit.log(
            "permission.denied",
            "denied",
            ctx,
            subject_type="user",
            subject_id=subject,
            details={"needs": need, "role": actor.role, "via": actor.via},
        )

    # ---------------------------------------------------------------- login

    async def login(
        self, email: str, password: str, ctx: AuditContext, user_agent: str | None = None
    ) -> TokenPair:
        """Unknown email, wrong password and disabled account all cost one Argon2
        verification, the same database writes, and answer the same 401."""
        email = _normalise(email)
        now = utcnow()
        lock = await self.throttle.locked(email, ctx.ip)
        if lock is not None:
            await self.audit.log(
                "login.throttled",
                "denied",
                ctx.as_actor(None, email),
                details={"lock": lock.kind, "until": lock.until.isoformat()},
            )
            retry = lock.retry_after(now)
            raise RateLimited(f"too many failed logins; try again in {retry} s", retry)
        async with self.db.session() as s:
            user = (await s.execute(select(User).where(User.email == email))).scalar_one_or_none()
        ok, new_hash = await asyncio.to_thread(
            passwords.verify_and_update, password, user.password_hash if user else None
        )
        if user is None or not ok or not user.is_active:
            reason = "unknown_user" if user is None else "bad_password" if not ok else "disabled"
            async with self.db.transaction() as s:
                locks = await self.throttle.failure(s, email, ctx.ip)
                actor = ctx.as_actor(user.id if user else None, email)
                await self.audit.record(
                    s,
                    "login.failed",
                    "failure",
                    actor,
                    subject_type="user",
                    subject_id=user.id if user else None,
                    details={"reason": reason},
                )
                for new in locks:
                    await self.audit.record(
                        s,
                        "login.locked",
                        "denied",
                        actor,
                        subject_type="user",
                        subject_id=user.id if user else None,
                        details={
                            "lock": new.kind,
                            "failures": new.failures,
                            "seconds": int(new.seconds),
                        },
                    )
            raise AuthError("invalid email or password")
        async with self.db.transaction() as s:
            await self.throttle.success(s, email)
            if new_hash is not None:
                await s.execute(
                    update(User).where(User.id == user.id).values(password_hash=new_hash)
                )
            session = AuthSession(
                id=uuid.uuid4(),
                user_id=user.id,
                created_at=now,
                ip=(ctx.ip or None) and ctx.ip[:64],
                user_agent=(user_agent or None) and user_agent[:255],
            )
            s.add(session)
            await s.flush()
            pair = await self._issue(s, user, session.id)
            await self.audit.record(
                s,
                "login.succeeded",
                "success",
                ctx.as_actor(user.id, user.email),
                subject_type="session",
                subject_id=session.id,
            )
        return pair

    async def _issue(self, s: AsyncSession, user: User, session_id: uuid.UUID) -> TokenPair:
        access, ttl = tokens.issue_access(
            self.settings, self.keyring, user.id, user.role, session_id
        )
        refresh = tokens.new_refresh_token()
        now = utcnow()
        s.add(
            RefreshToken(
                id=uuid.uuid4(),
                user_id=user.id,
                family_id=session_id,
                token_hash=tokens.token_hash(refresh),
                created_at=now,
                expires_at=now + timedelta(days=self.settings.refresh_token_days),
            )
        )
        await s.flush()
        return TokenPair(access, refresh, ttl, session_id)

    # -------------------------------------------------------------- refresh

    async def refresh(self, token: str, ctx: AuditContext) -> TokenPair:
        """Rotate: the presented token dies, a new one is issued in its session.
        Presenting a spent token again revokes the whole session (theft signal)."""
        digest = tokens.token_hash(token)
        now = utcnow()
        failure: tuple[str, str] | None = None
        pair: TokenPair | None = None
        async with self.db.transaction() as s:
            row = (
                await s.execute(
                    select(RefreshToken).where(RefreshToken.token_hash == digest).with_for_update()
                )
            ).scalar_one_or_none()
            session = (
                None
                if row is None
                else (
                    await s.execute(
                        select(AuthSession).where(AuthSession.id == row.family_id).with_for_update()
                    )
                ).scalar_one_or_none()
            )
            user = None if row is None else await s.get(User, row.user_id)
            actor = ctx if user is None else ctx.as_actor(user.id, user.email)
            if row is None or session is None or user is None:
                failure = ("unknown", "invalid refresh token")
            elif row.used_at is not None and session.revoked_at is None:
                await self._revoke_session(s, session, "reuse_detected", now)
                await self.audit.record(
                    s,
                    "refresh.reuse_detected",
                    "denied",
                    actor,
                    subject_type="session",
                    subject_id=session.id,
                    details={"token_issued_at": row.created_at.isoformat()},
                )
                failure = ("reuse", "refresh token already used; the session is revoked")
            elif row.used_at is not None or row.revoked_at is not None or session.revoked_at:
                failure = ("revoked", "refresh token revoked")
            elif row.expires_at <= now:
                failure = ("expired", "refresh token expired")
            elif not user.is_active:
                failure = ("disabled", "account disabled")
            else:
                row.used_at = now
                session.refreshed_at = now
                pair = await self._issue(s, user, session.id)
                await self.audit.record(
                    s,
                    "token.refreshed",
                    "success",
                    actor,
                    subject_type="session",
                    subject_id=session.id,
                )
            if failure is not None and failure[0] != "reuse":
                await self.audit.record(
                    s,
                    "refresh.failed",
                    "failure",
                    actor,
                    subject_type="session",
                    subject_id=session.id if session else None,
                    details={"reason": failure[0]},
                )
        if failure is not None or pair is None:
            raise AuthError(failure[1] if failure else "invalid refresh token")
        return pair

    # ------------------------------------------------------------- sessions

    async def _revoke_session(
        self, s: AsyncSession, session: AuthSession, reason: str, now: datetime
    ) -> None:
        if session.revoked_at is None:
            session.revoked_at = now
            session.revoked_reason = reason
        await s.execute(
            update(RefreshToken)
            .where(RefreshToken.family_id == session.id, RefreshToken.revoked_at.is_(None))
            .values(revoked_at=now)
        )

    async def _revoke_user_sessions(
        self, s: AsyncSession, user_id: uuid.UUID, reason: str, ctx: AuditContext, now: datetime
    ) -> int:
        sessions = list(
            (
                await s.execute(
                    select(AuthSession)
                    .where(AuthSession.user_id == user_id, AuthSession.revoked_at.is_(None))
                    .with_for_update()
                )
            ).scalars()
        )
        for session in sessions:
            await self._revoke_session(s, session, reason, now)
        await self.audit.record(
            s,
            "session.revoked_all",
            "success",
            ctx,
            subject_type="user",
            subject_id=user_id,
            details={"count": len(sessions), "reason": reason},
        )
        return len(sessions)

    async def logout(self, token: str, ctx: AuditContext) -> None:
        """Revoke the session the refresh token belongs to (unknown: no-op)."""
        digest = tokens.token_hash(token)
        async with self.db.transaction() as s:
            row = (
                await s.execute(select(RefreshToken).where(RefreshToken.token_hash == digest))
            ).scalar_one_or_none()
            if row is None:
                return
            session = (
                await s.execute(
                    select(AuthSession).where(AuthSession.id == row.family_id).with_for_update()
                )
            ).scalar_one()
            if session.revoked_at is not None:
                return
            await self._revoke_session(s, session, "logout", utcnow())
            user = await s.get(User, row.user_id)
            await self.audit.record(
                s,
                "logout",
                "success",
                ctx.as_actor(row.user_id, user.email if user else None),
                subject_type="session",
                subject_id=session.id,
            )

    async def list_sessions(self, user_id: uuid.UUID) -> list[AuthSession]:
        cutoff = utcnow() - timedelta(days=self.settings.refresh_token_days)
        async with self.db.session() as s:
            q = (
                select(AuthSession)
                .where(
                    AuthSession.user_id == user_id,
                    AuthSession.revoked_at.is_(None),
                    func.coalesce(AuthSession.refreshed_at, AuthSession.created_at) > cutoff,
                )
                .order_by(AuthSession.created_at.desc())
            )
            return list((await s.execute(q)).scalars())

    async def revoke(
        self,
        actor: Principal,
        ctx: AuditContext,
        *,
        session_id: uuid.UUID | None = None,
        user_id: uuid.UUID | None = None,
    ) -> int:
        """Revoke one session, or every session of a user.  Your own: always;
        anyone else's: admin:users (another user's session id answers 404)."""
        ctx = _actor(actor, ctx)
        admin = has_permission(actor, "admin:users")
        target = user_id or actor.user_id
        if session_id is None and target != actor.user_id and not admin:
            await self._denied(ctx, actor, "admin:users", target)
            raise Forbidden("revoking another user's sessions needs the permission admin:users")
        now = utcnow()
        async with self.db.transaction() as s:
            if session_id is not None:
                session = (
                    await s.execute(
                        select(AuthSession).where(AuthSession.id == session_id).with_for_update()
                    )
                ).scalar_one_or_none()
                if session is None or (session.user_id != actor.user_id and not admin):
                    raise NotFound(f"session {session_id} not found")
                if session.revoked_at is not None:
                    return 0
                await self._revoke_session(s, session, "revoked", now)
                await self.audit.record(
                    s,
                    "session.revoked",
                    "success",
                    ctx,
                    subject_type="session",
                    subject_id=session.id,
                    details={"user_id": str(session.user_id)},
                )
                return 1
            if await s.get(User, target) is None:
                raise NotFound(f"user {target} not found")
            return await self._revoke_user_sessions(s, target, "revoked", ctx, now)

    async def change_password(
        self, actor: Principal, current: str, new: str, ctx: AuditContext
    ) -> None:
        """Check the current password (throttled like a login), store the new one
        and revoke every session of the account."""
        ctx = _actor(actor, ctx)
        async with self.db.session() as s:
            user = await s.get(User, actor.user_id)
        if user is None:
            raise AuthError("the account is disabled or no longer exists")
        if user.password_hash is None:
            raise Conflict(
                "this account signs in through an external issuer and has no password",
                code="external_account",
            )
        lock = await self.throttle.locked(user.email, ctx.ip)
        if lock is not None:
            retry = lock.retry_after(utcnow())
            raise RateLimited(f"too many failed attempts; try again in {retry} s", retry)
        ok, _ = await asyncio.to_thread(passwords.verify_and_update, current, user.password_hash)
        if not ok:
            async with self.db.transaction() as s:
                await self.throttle.failure(s, user.email, ctx.ip)
                await self.audit.record(
                    s,
                    "password.change_failed",
                    "failure",
                    ctx,
                    subject_type="user",
                    subject_id=user.id,
                    details={"reason": "bad_password"},
                )
            raise Forbidden("the current password is wrong", code="wrong_password")
        try:
            passwords.check_strength(new)
        except ValueError as exc:
            raise Invalid(str(exc)) from None
        new_hash = await asyncio.to_thread(passwords.hash_password, new)
        now = utcnow()
        async with self.db.transaction() as s:
            await s.execute(
                update(User)
                .where(User.id == user.id)
                .values(password_hash=new_hash, updated_at=now)
            )
            await self.audit.record(
                s, "password.changed", "success", ctx, subject_type="user", subject_id=user.id
            )
            await self._revoke_user_sessions(s, user.id, "password_changed", ctx, now)

    # ---------------------------------------------------------- credentials

    async def authenticate(self, token: str) -> Authenticated:
        """The principal (and user row) a bearer credential establishes, or AuthError.

        `aipk_…`: an API key.  A JWT with one of our key ids: our access token.
        A JWT whose issuer is a configured external issuer: an OIDC token.
        Anything else is refused."""
        if apikeys.looks_like_key(token):
            key, user = await self.keys.authenticate(token)
            return Authenticated(
                Principal(
                    user_id=user.id,
                    role=user.role,
                    email=user.email,
                    scopes=frozenset(key.scopes),
                    via="api_key",
                    api_key_id=key.id,
                ),
                user,
            )
        if token.count(".") != 2:
            raise AuthError("invalid access token: not a JWT")
        try:
            header = tokens.unverified_header(token)
        except tokens.TokenError:
            raise AuthError("invalid access token: malformed") from None
        if header.get("kid") in self.keyring.keys or not self.oidc.handles(token):
            return await self._own_token(token)
        return await self._external_token(token)

    async def _own_token(self, token: str) -> Authenticated:
        try:
            claims = tokens.decode_access(self.settings, self.keyring, token)
            user_id = uuid.UUID(str(claims["sub"]))
            session_id = uuid.UUID(str(claims["sid"]))
        except tokens.TokenError as exc:
            raise AuthError(f"invalid access token: {exc}") from None
        except (KeyError, ValueError):
            raise AuthError("invalid access token: bad subject") from None
        async with self.db.session() as s:
            row = (
                await s.execute(
                    select(User, AuthSession.revoked_at)
                    .join(AuthSession, AuthSession.user_id == User.id)
                    .where(User.id == user_id, AuthSession.id == session_id)
                )
            ).first()
        if row is None:
            raise AuthError("the account is disabled or no longer exists")
        user, revoked_at = row
        if revoked_at is not None:
            raise AuthError("the session was revoked")
        if not user.is_active:
            raise AuthError("the account is disabled or no longer exists")
        principal = Principal(
            user_id=user.id,
            role=user.role,
            email=user.email,
            scopes=PERMISSIONS.get(user.role, frozenset()),
            via="jwt",
            session_id=session_id,
        )
        return Authenticated(principal, user)

    async def _external_token(self, token: str) -> Authenticated:
        try:
            ext = await self.oidc.verify(token)
        except OIDCError as exc:
            raise AuthError(f"invalid token: {exc}") from None
        user = await self._external_user(ext)
        principal = Principal(
            user_id=user.id,
            role=user.role,
            email=user.email,
            scopes=PERMISSIONS.get(user.role, frozenset()),
            via="oidc",
        )
        return Authenticated(principal, user)

    async def _external_user(self, ext: ExternalIdentityClaims) -> User:
        """The user behind an external identity; created on first sight (never
        linked to an existing account by email: that would let whoever controls
        the issuer take over local accounts)."""
        issuer = self.oidc.issuers[ext.issuer]
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
                if issuer.sync_role and row.role != ext.role:
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

    # -------------------------------------------------------------- helpers

    async def users_by_ids(self, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, User]:
        if not ids:
            return {}
        async with self.db.session() as s:
            rows = (await s.execute(select(User).where(User.id.in_(ids)))).scalars()
            return {u.id: u for u in rows}
