"""HTTP dependencies of the event routes: the caller as a ``Principal`` (by
bearer credential or stream ticket), and the services the routes call."""

from __future__ import annotations

from typing import Annotated, cast

from fastapi import Depends, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from aiprod.errors import AuthError, Forbidden
from aiprod.events import auth
from aiprod.events.bus import EventBus
from aiprod.events.webhooks.delivery import WebhookDispatcher
from aiprod.events.webhooks.service import WebhookService
from aiprod.identity.deps import bearer_or_cookie, check_csrf, limit_user, unauthorized
from aiprod.identity.permissions import Principal
from aiprod.settings import Settings

_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    bearerFormat="JWT",
    description="Access token from `POST /v1/auth/login` or `POST /v1/auth/refresh`.",
)

Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


async def _principal(
    request: Request, token: str | None, ticket: str | None, from_cookie: bool = False
) -> Principal:
    if token is None and ticket is None:
        raise unauthorized("missing bearer token", invalid_token=False)
    try:
        principal = await auth.authenticate(request.app.state, token=token, ticket=ticket)
    except AuthError as exc:
        raise unauthorized(str(exc), invalid_token=True) from None
    if from_cookie:
        check_csrf(request, principal)
    if not auth.may_read(principal):
        raise Forbidden("this credential may not read productions")
    await limit_user(request, principal)
    return principal


async def bearer_principal(request: Request, credentials: Credentials) -> Principal:
    """The caller of a bearer credential (or the studio's session cookie) with
    the ``jobs:read`` permission."""
    token, from_cookie = bearer_or_cookie(request, credentials)
    return await _principal(request, token, None, from_cookie)


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
    """The caller, by bearer credential, ticket or session cookie, with ``jobs:read``."""
    if credentials is None and ticket is not None:
        return await _principal(request, None, ticket)
    token, from_cookie = bearer_or_cookie(request, credentials)
    return await _principal(request, token, None, from_cookie)


BearerPrincipal = Annotated[Principal, Depends(bearer_principal)]
StreamPrincipal = Annotated[Principal, Depends(stream_principal)]


def _settings(request: Request) -> Settings:
    return cast(Settings, request.app.state.settings)


def _webhooks(request: Request) -> WebhookService:
    return cast(WebhookService, request.app.state.webhooks)


def _dispatcher(request: Request) -> WebhookDispatcher | None:
    return cast(WebhookDispatcher | None, request.app.state.webhook_dispatcher)


def _bus(request: Request) -> EventBus:
    return cast(EventBus, request.app.state.events)


EventSettings = Annotated[Settings, Depends(_settings)]
Bus = Annotated[EventBus, Depends(_bus)]
"""This process's event bus (log, fan-out, subscriptions)."""
Webhooks = Annotated[WebhookService, Depends(_webhooks)]
"""The webhook service the app's lifespan built."""
Dispatcher = Annotated[WebhookDispatcher | None, Depends(_dispatcher)]
"""This process's webhook dispatcher (None when ``AIPROD_WEBHOOKS_ENABLED`` is off)."""
