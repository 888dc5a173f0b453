"""Login, token refresh, logout, sessions, password and the caller's profile.

`router` also carries the API-key and admin routes (see `api_keys.endpoints` and
`admin`), so the app registers identity with one ``include_router``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Request, Response

from aiprod.errors import error_responses
from aiprod.identity import admin, browser_endpoints
from aiprod.identity.api_keys import endpoints as api_key_endpoints
from aiprod.identity.deps import (
    PERMISSION_KEY,
    PUBLIC,
    AnyPrincipal,
    CurrentUser,
    Identity,
    SessionPrincipal,
    audit_context,
)
from aiprod.identity.schemas import (
    LoginRequest,
    LogoutRequest,
    PasswordChange,
    RefreshRequest,
    RevokeRequest,
    RevokeResponse,
    SessionList,
    SessionOut,
    TokenResponse,
    UserOut,
)
from aiprod.identity.sessions import TokenPair

router = APIRouter(prefix="/v1")
_PUBLIC = {PERMISSION_KEY: PUBLIC}


def _tokens(pair: TokenPair) -> TokenResponse:
    return TokenResponse(
        access_token=pair.access_token,
        refresh_token=pair.refresh_token,
        token_type="bearer",  # noqa: S106 (the OAuth2 scheme name)
        expires_in=pair.expires_in,
        session_id=pair.session_id,
    )


@router.post(
    "/auth/login",
    tags=["auth"],
    summary="Log in with email and password",
    response_model=TokenResponse,
    responses=error_responses(401, 422, 429),
    openapi_extra=_PUBLIC,
)
async def login(
    request: Request,
    body: LoginRequest,
    identity: Identity,
    user_agent: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> TokenResponse:
    """Trade credentials for an access token and a refresh token (a new session).

    An unknown email, a wrong password and a disabled account all answer the
    same 401 after the same work, so the endpoint cannot be used to discover
    accounts.  Repeated failures for one account or from one address are
    delayed exponentially: 429 with `Retry-After`."""
    pair = await identity.sessions.login(
        body.email, body.password, audit_context(request), user_agent
    )
    return _tokens(pair)


@router.post(
    "/auth/refresh",
    tags=["auth"],
    summary="Rotate the refresh token",
    response_model=TokenResponse,
    responses=error_responses(401, 422),
    openapi_extra=_PUBLIC,
)
async def refresh(request: Request, body: RefreshRequest, identity: Identity) -> TokenResponse:
    """Trade a refresh token for a new pair.  Each refresh token works once;
    presenting a spent one again is treated as theft and revokes the session
    (every token issued from the same login, access tokens included)."""
    return _tokens(await identity.sessions.refresh(body.refresh_token, audit_context(request)))


@router.post(
    "/auth/logout",
    tags=["auth"],
    summary="End a session",
    status_code=204,
    response_class=Response,
    responses=error_responses(422),
    openapi_extra=_PUBLIC,
)
async def logout(request: Request, body: LogoutRequest, identity: Identity) -> Response:
    """Revoke the session of this refresh token: its refresh tokens die, and its
    access tokens are refused from their next use.

    No access token is needed (it may have expired); an unknown token also
    answers 204 so the call is safe to repeat."""
    await identity.sessions.logout(body.refresh_token, audit_context(request))
    return Response(status_code=204)


@router.post(
    "/auth/revoke",
    tags=["auth"],
    summary="Revoke sessions",
    response_model=RevokeResponse,
    responses=error_responses(401, 403, 404, 422),
)
async def revoke(
    request: Request, body: RevokeRequest, principal: AnyPrincipal, identity: Identity
) -> RevokeResponse:
    """Revoke one session (`session_id`), every session of a user (`user_id`), or,
    with an empty body, every session of your own.  Other users' sessions need
    admin:users.  Revoked sessions' access tokens stop working at once."""
    count = await identity.sessions.revoke(
        principal,
        audit_context(request, principal),
        session_id=body.session_id,
        user_id=body.user_id,
    )
    return RevokeResponse(revoked=count)


@router.get(
    "/auth/sessions",
    tags=["auth"],
    summary="Your open sessions",
    response_model=SessionList,
    responses=error_responses(401),
)
async def sessions(principal: AnyPrincipal, identity: Identity) -> SessionList:
    """Logins that can still refresh, newest first; `current` marks this one."""
    rows = await identity.sessions.list_sessions(principal.user_id)
    return SessionList(items=[SessionOut.from_session(s, principal.session_id) for s in rows])


@router.post(
    "/auth/password",
    tags=["auth"],
    summary="Change your password",
    status_code=204,
    response_class=Response,
    responses=error_responses(401, 403, 409, 422, 429),
)
async def change_password(
    request: Request, body: PasswordChange, principal: SessionPrincipal, identity: Identity
) -> Response:
    """Needs the current password (403 `wrong_password`; failures count towards
    the login throttle).  Every session of the account is revoked, this one
    included: log in again with the new password.  API keys keep working."""
    await identity.sessions.change_password(
        principal, body.current_password, body.new_password, audit_context(request)
    )
    return Response(status_code=204)


@router.get(
    "/me",
    tags=["auth"],
    summary="The authenticated user",
    response_model=UserOut,
    responses=error_responses(401),
)
async def me(user: CurrentUser) -> UserOut:
    """Who the credential belongs to, with the role as it is now."""
    return UserOut.from_user(user)


router.include_router(api_key_endpoints.router)
router.include_router(admin.router)
router.include_router(browser_endpoints.router)
