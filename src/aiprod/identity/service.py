"""Users, login and refresh-token rotation."""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from aiprod.db.base import utcnow
from aiprod.db.engine import Database
from aiprod.identity import passwords, tokens
from aiprod.identity.models import ROLES, RefreshToken, User
from aiprod.settings import Settings


class AuthError(Exception):
    """Wrong credentials or an unusable token; the message is safe to show."""


class UserExists(Exception):
    pass


@dataclass
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int
    token_type: str = "bearer"  # noqa: S105 (the OAuth2 scheme name)


class IdentityService:
    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings
        self.key = tokens.signing_key(settings)

    async def create_user(self, email: str, password: str, role: str = "user") -> User:
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}")
        passwords.check_strength(password)
        user = User(
            id=uuid.uuid4(),
            email=email.strip().lower(),
            password_hash=passwords.hash_password(password),
            role=role,
            is_active=True,
            created_at=utcnow(),
            updated_at=utcnow(),
        )
        try:
            async with self.db.transaction() as s:
                s.add(user)
        except IntegrityError:
            raise UserExists(f"a user with email {user.email} already exists") from None
        return user

    async def count_admins(self) -> int:
        async with self.db.session() as s:
            q = select(func.count()).select_from(User).where(User.role == "admin")
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

    async def login(self, email: str, password: str) -> TokenPair:
        async with self.db.session() as s:
            user = (
                await s.execute(select(User).where(User.email == email.strip().lower()))
            ).scalar_one_or_none()
        ok = passwords.verify_password(password, user.password_hash if user else None)
        if user is None or not ok or not user.is_active:
            raise AuthError("invalid email or password")
        return await self._issue(user, family=uuid.uuid4())

    async def _issue(self, user: User, family: uuid.UUID) -> TokenPair:
        access, ttl = tokens.issue_access(self.settings, self.key, user.id, user.role)
        refresh = tokens.new_refresh_token()
        async with self.db.transaction() as s:
            s.add(
                RefreshToken(
                    id=uuid.uuid4(),
                    user_id=user.id,
                    family_id=family,
                    token_hash=tokens.token_hash(refresh),
                    created_at=utcnow(),
                    expires_at=utcnow() + timedelta(days=self.settings.refresh_token_days),
                )
            )
        return TokenPair(access, refresh, ttl)

    async def refresh(self, token: str) -> TokenPair:
        """Rotate: the presented token dies, a new one is issued in its family.
        Presenting a used token again revokes the whole family (theft signal)."""
        digest = tokens.token_hash(token)
        now = utcnow()
        async with self.db.transaction() as s:
            row = (
                await s.execute(
                    select(RefreshToken).where(RefreshToken.token_hash == digest).with_for_update()
                )
            ).scalar_one_or_none()
            if row is None:
                raise AuthError("invalid refresh token")
            if row.used_at is not None or row.revoked_at is not None:
                await s.execute(
                    update(RefreshToken)
                    .where(
                        RefreshToken.family_id == row.family_id, RefreshToken.revoked_at.is_(None)
                    )
                    .values(revoked_at=now)
                )
                reuse = True
            else:
                reuse = False
                row.used_at = now
        if reuse:
            raise AuthError("refresh token already used; all sessions of this login are revoked")
        if row.expires_at <= now:
            raise AuthError("refresh token expired")
        user = await self.get_user(row.user_id)
        if user is None or not user.is_active:
            raise AuthError("account disabled")
        return await self._issue(user, family=row.family_id)

    async def logout(self, token: str) -> None:
        digest = tokens.token_hash(token)
        async with self.db.transaction() as s:
            row = (
                await s.execute(select(RefreshToken).where(RefreshToken.token_hash == digest))
            ).scalar_one_or_none()
            if row is not None:
                await s.execute(
                    update(RefreshToken)
                    .where(
                        RefreshToken.family_id == row.family_id, RefreshToken.revoked_at.is_(None)
                    )
                    .values(revoked_at=utcnow())
                )

    def authenticate(self, access_token: str) -> dict[str, object]:
        try:
            return tokens.decode_access(self.settings, self.key, access_token)
        except tokens.TokenError as exc:
            raise AuthError(f"invalid access token: {exc}") from None
