"""Authentication: a bearer credential → the `Principal` it establishes.

Three kinds of credential are told apart by their shape, never by trying each:
``aipk_…`` is an API key (`api_keys`); a JWT whose ``kid`` is one of our
signing keys is our access token (`tokens`), valid only while its session is
open and its account active; a JWT of a configured external issuer is an OIDC
token (`oidc`), whose user gets an account on first sight (`users`).  Anything
else is refused with `AuthError`.  Permissions come from the role stored now,
never from the token.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import select

from aiprod.db.engine import Database
from aiprod.errors import AuthError
from aiprod.identity import tokens
from aiprod.identity.api_keys import format as key_format
from aiprod.identity.api_keys.service import ApiKeyService
from aiprod.identity.models import AuthSession, User
from aiprod.identity.oidc import OIDCError, OIDCVerifier
from aiprod.identity.permissions import PERMISSIONS, Principal
from aiprod.identity.users import UserService
from aiprod.settings import Settings


@dataclass(frozen=True)
class Authenticated:
    principal: Principal
    user: User


class Authenticator:
    def __init__(
        self,
        db: Database,
        settings: Settings,
        signing_keys: tokens.SigningKeyring,
        api_keys: ApiKeyService,
        oidc: OIDCVerifier,
        users: UserService,
    ) -> None:
        self.db = db
        self.settings = settings
        self.signing_keys = signing_keys
        self.api_keys = api_keys
        self.oidc = oidc
        self.users = users

    async def authenticate(self, token: str) -> Authenticated:
        """The principal (and user row) a bearer credential establishes, or AuthError.

        `aipk_…`: an API key.  A JWT with one of our key ids: our access token.
        A JWT whose issuer is a configured external issuer: an OIDC token.
        Anything else is refused."""
        if key_format.looks_like_key(token):
            key, user = await self.api_keys.authenticate(token)
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
        if header.get("kid") in self.signing_keys.by_kid or not self.oidc.handles(token):
            return await self._own_token(token)
        return await self._external_token(token)

    async def _own_token(self, token: str) -> Authenticated:
        try:
            claims = tokens.decode_access(self.settings, self.signing_keys, token)
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
        issuer = self.oidc.issuers[ext.issuer]
        user = await self.users.external_user(ext, sync_role=issuer.sync_role)
        principal = Principal(
            user_id=user.id,
            role=user.role,
            email=user.email,
            scopes=PERMISSIONS.get(user.role, frozenset()),
            via="oidc",
        )
        return Authenticated(principal, user)
