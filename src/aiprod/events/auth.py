"""Who may open a stream: credentials, tickets, origins, ownership.

Long-lived credentials never travel in a URL (they end up in proxy logs and
browser history).  A stream is authenticated either by a header (SSE), by the
first WebSocket message, or by a *ticket*: a random single-use string from
``POST /v1/ws-ticket``, valid for ``AIPROD_WS_TICKET_SECONDS`` (30 s), stored
hashed in the database so that any API process can redeem it, and never
worth more than the credential that asked for it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import secrets
import uuid
from collections.abc import Mapping
from datetime import timedelta
from typing import Any, cast

from sqlalchemy import delete, update

from aiprod.db.base import utcnow
from aiprod.db.engine import Database
from aiprod.errors import AuthError
from aiprod.events.models import StreamTicket
from aiprod.identity.deps import principal_from_token
from aiprod.identity.permissions import PERMISSIONS, Principal, has_permission
from aiprod.identity.service import IdentityService

TICKET_PREFIX = "wst_"
READ_PERMISSION = "jobs:read"


def _hash(ticket: str) -> str:
    return hashlib.sha256(ticket.encode()).hexdigest()


async def issue_ticket(db: Database, principal: Principal, ttl_seconds: int) -> str:
    ticket = TICKET_PREFIX + secrets.token_urlsafe(32)
    now = utcnow()
    async with db.transaction() as s:
        # Spent and expired tickets are worthless; keep the table small.
        await s.execute(
            delete(StreamTicket).where(StreamTicket.expires_at < now - timedelta(minutes=10))
        )
        s.add(
            StreamTicket(
                token_hash=_hash(ticket),
                user_id=principal.user_id,
                credential={
                    "scopes": sorted(principal.scopes),
                    "via": principal.via,
                    "api_key_id": _str_or_none(principal.api_key_id),
                    "session_id": _str_or_none(getattr(principal, "session_id", None)),
                },
                expires_at=now + timedelta(seconds=ttl_seconds),
                created_at=now,
            )
        )
    return ticket


async def redeem_ticket(db: Database, identity: IdentityService, ticket: str) -> Principal:
    """The principal a ticket was issued to; it cannot be used again."""
    if not ticket.startswith(TICKET_PREFIX) or len(ticket) > 200:
        raise AuthError("invalid ticket")
    now = utcnow()
    async with db.transaction() as s:
        row = (
            await s.execute(
                update(StreamTicket)
                .where(
                    StreamTicket.token_hash == _hash(ticket),
                    StreamTicket.used_at.is_(None),
                    StreamTicket.expires_at > now,
                )
                .values(used_at=now)
                .returning(StreamTicket.user_id, StreamTicket.credential)
            )
        ).one_or_none()
    if row is None:
        raise AuthError("invalid, expired or already used ticket")
    user_id, credential = row
    user = await identity.get_user(user_id)
    if user is None or not user.is_active:
        raise AuthError("the account is disabled or no longer exists")
    cred = cast(Mapping[str, Any], credential)
    granted = frozenset(str(p) for p in cred.get("scopes", []))
    via = cred.get("via", "jwt")
    fields: dict[str, Any] = {
        "user_id": user.id,
        "role": user.role,
        "email": user.email,
        # The role as it is now, narrowed by what the original credential had.
        "scopes": PERMISSIONS.get(user.role, frozenset()) & granted,
        "via": via if via in ("jwt", "api_key", "oidc") else "jwt",
        "api_key_id": _uuid_or_none(cred.get("api_key_id")),
    }
    if "session_id" in {f.name for f in dataclasses.fields(Principal)}:
        fields["session_id"] = _uuid_or_none(cred.get("session_id"))
    return Principal(**fields)


def _str_or_none(value: object) -> str | None:
    return str(value) if value is not None else None


def _uuid_or_none(value: object) -> uuid.UUID | None:
    return uuid.UUID(str(value)) if value else None


async def authenticate(app_state: Any, *, token: str | None, ticket: str | None) -> Principal:
    """A bearer credential or a ticket → the principal (AuthError otherwise)."""
    if ticket is not None:
        return await redeem_ticket(
            cast(Database, app_state.db), cast(IdentityService, app_state.identity), ticket
        )
    if token is None:
        raise AuthError("missing credentials")
    return await principal_from_token(app_state, token)


def may_read(principal: Principal) -> bool:
    return has_permission(principal, READ_PERMISSION)


def owner_scope(principal: Principal) -> uuid.UUID | None:
    """Admins watch every job (None); everyone else only their own."""
    return None if principal.role == "admin" else principal.user_id
