"""HTTP dependencies of the event routes: the caller as a ``Principal``."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from aiprod.errors import AppError, AuthError, Forbidden
from aiprod.events import auth
from aiprod.identity.deps import Principal

_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    bearerFormat="JWT",
    description="Access token from `POST /v1/auth/login` or `POST /v1/auth/refresh`.",
)

Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def _unauthorized(message: str, invalid: bool) -> AppError:
    challenge = 'Bearer error="invalid_token"' if invalid else "Bearer"
    return AuthError(message, headers={"WWW-Authenticate": challenge})


async def _principal(request: Request, token: str | None, ticket: str | None) -> Principal:
    if token is None and ticket is None:
        raise _unauthorized("missing bearer token", invalid=False)
    try:
        principal = await auth.authenticate(request.app.state, token=token, ticket=ticket)
    except AuthError as exc:
        raise _unauthorized(str(exc), invalid=True) from None
    if not auth.may_read(principal):
        raise Forbidden("this credential may not read productions")
    return principal


async def bearer_principal(request: Request, credentials: Credentials) -> Principal:
    """The caller of a bearer credential with the ``jobs:read`` permission."""
    return await _principal(request, credentials.credentials if credentials else None, None)


async def stream_principal(
    request: Request,
    credentials: Credentials,
    ticket: Annotated[
        str | None,
        Query(
            max_length=200,
            description="A ticket from `POST /v1/ws-ticket`, for clients that cannot send "
            "headers (browsers' EventSource).  Single use, valid 30 s.",
        ),
    ] = None,
) -> Principal:
    """The caller, by bearer credential or ticket, with ``jobs:read``."""
    if credentials is not None:
        return await _principal(request, credentials.credentials, None)
    return await _principal(request, None, ticket)


BearerPrincipal = Annotated[Principal, Depends(bearer_principal)]
StreamPrincipal = Annotated[Principal, Depends(stream_principal)]
