"""Login, token refresh, logout and the caller's own profile."""

from __future__ import annotations

from fastapi import APIRouter, Response

from aiprod.api.middleware import error_responses
from aiprod.identity.deps import CurrentUser, Identity
from aiprod.identity.schemas import (
    LoginRequest,
    LogoutRequest,
    RefreshRequest,
    TokenResponse,
    UserOut,
)
from aiprod.identity.service import TokenPair

router = APIRouter(prefix="/v1")


def _tokens(pair: TokenPair) -> TokenResponse:
    return TokenResponse(
        access_token=pair.access_token,
        refresh_token=pair.refresh_token,
        token_type="bearer",  # noqa: S106 (the OAuth2 scheme name)
        expires_in=pair.expires_in,
    )


@router.post(
    "/auth/login",
    tags=["auth"],
    summary="Log in with email and password",
    response_model=TokenResponse,
    responses=error_responses(401, 422),
)
async def login(body: LoginRequest, identity: Identity) -> TokenResponse:
    """Trade credentials for an access token and a refresh token.

    An unknown email, a wrong password and a disabled account all answer the
    same 401, so the endpoint cannot be used to discover accounts."""
    return _tokens(await identity.login(body.email, body.password))


@router.post(
    "/auth/refresh",
    tags=["auth"],
    summary="Rotate the refresh token",
    response_model=TokenResponse,
    responses=error_responses(401, 422),
)
async def refresh(body: RefreshRequest, identity: Identity) -> TokenResponse:
    """Trade a refresh token for a new pair.  Each refresh token works once;
    presenting a spent one again is treated as theft and revokes every token
    issued from the same login."""
    return _tokens(await identity.refresh(body.refresh_token))


@router.post(
    "/auth/logout",
    tags=["auth"],
    summary="Revoke a login",
    status_code=204,
    response_class=Response,
    responses=error_responses(422),
)
async def logout(body: LogoutRequest, identity: Identity) -> Response:
    """Revoke the refresh token and every token rotated from the same login.

    No access token is needed (it may have expired); an unknown token also
    answers 204 so the call is safe to repeat.  Access tokens already issued
    stay valid until they expire (minutes)."""
    await identity.logout(body.refresh_token)
    return Response(status_code=204)


@router.get(
    "/me",
    tags=["auth"],
    summary="The authenticated user",
    response_model=UserOut,
    responses=error_responses(401),
)
async def me(user: CurrentUser) -> UserOut:
    """Who the access token belongs to, with the role as it is now."""
    return UserOut.from_user(user)
