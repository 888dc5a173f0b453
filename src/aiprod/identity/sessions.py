"""Login sessions: log in, refresh, log out, list and revoke, change password.

A login opens an `AuthSession`; its refresh tokens form a family (each works
once; a spent one presented again revokes the session: theft signal).  Access
tokens name their session (``sid``), and every request checks that the session
is still open (see `authentication`), so logout, revocation, a password change
or disabling the account cut access tokens off on their next use, not when
they expire.  Failed logins and password checks are throttled per account and
per address (`throttle`).
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from aiprod.db.base import utcnow
from aiprod.db.engine import Database
from aiprod.errors import AuthError, Conflict, Forbidden, Invalid, NotFound, RateLimited
from aiprod.identity import passwords, tokens
from aiprod.identity.audit import AuditContext, AuditLog
from aiprod.identity.models import AuthSession, RefreshToken, User
from aiprod.identity.permissions import Principal, has_permission
from aiprod.identity.throttle import Throttle
from aiprod.identity.users import normalise_email
from aiprod.settings import Settings


@dataclass
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int
    session_id: uuid.UUID
    token_type: str = "bearer"  # noqa: S105 (the OAuth2 scheme name)


class SessionService:
    def __init__(
        self,
        db: Database,
        settings: Settings,
        signing_keys: tokens.SigningKeyring,
        audit: AuditLog,
        throttle: Throttle,
    ) -> None:
        self.db = db
        self.settings = settings
        self.signing_keys = signing_keys
        self.audit = audit
        self.throttle = throttle

    # ---------------------------------------------------------------- login

    async def login(
        self, email: str, password: str, ctx: AuditContext, user_agent: str | None = None
    ) -> TokenPair:
        """Unknown email, wrong password and disabled account all cost one Argon2
        verification, the same database writes, and answer the same 401."""
        email = normalise_email(email)
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
            return await self._open(s, user, ctx, user_agent, "password")

    async def start(self, user: User, ctx: AuditContext, user_agent: str | None) -> TokenPair:
        """A new login session for a user an external issuer just signed in
        (the studio's OIDC sign-in), audited like a password login."""
        if not user.is_active:
            raise AuthError("the account is disabled")
        async with self.db.transaction() as s:
            return await self._open(s, user, ctx, user_agent, "oidc")

    async def _open(
        self,
        s: AsyncSession,
        user: User,
        ctx: AuditContext,
        user_agent: str | None,
        method: str,
    ) -> TokenPair:
        session = AuthSession(
            id=uuid.uuid4(),
            user_id=user.id,
            created_at=utcnow(),
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
            details=None if method == "password" else {"method": method},
        )
        return pair

    async def _issue(self, s: AsyncSession, user: User, session_id: uuid.UUID) -> TokenPair:
        access, ttl = tokens.issue_access(
            self.settings, self.signing_keys, user.id, user.role, session_id
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

    async def revoke_all_in(
        self, s: AsyncSession, user_id: uuid.UUID, reason: str, ctx: AuditContext, now: datetime
    ) -> int:
        """Revoke every open session of the user inside the caller's transaction
        `s` (one ``session.revoked_all`` audit event); the count."""
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
        ctx = ctx.as_principal(actor)
        admin = has_permission(actor, "admin:users")
        target = user_id or actor.user_id
        if session_id is None and target != actor.user_id and not admin:
            await self.audit.permission_denied(
                ctx, actor, "admin:users", subject_type="user", subject_id=target
            )
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
            return await self.revoke_all_in(s, target, "revoked", ctx, now)

    async def change_password(
        self, actor: Principal, current: str, new: str, ctx: AuditContext
    ) -> None:
        """Check the current password (throttled like a login), store the new one
        and revoke every session of the account."""
        ctx = ctx.as_principal(actor)
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
            await self.revoke_all_in(s, user.id, "password_changed", ctx, now)
