"""The studio's sign-in: a login session held in an HttpOnly cookie, and its
CSRF tokens (:mod:`aiprod.identity.browser` says why and how)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from aiprod.errors import AuthError, error_body, error_responses
from aiprod.identity import browser
from aiprod.identity.deps import (
    PERMISSION_KEY,
    PUBLIC,
    AnyPrincipal,
    Identity,
    audit_context,
    check_csrf,
)
from aiprod.identity.schemas import LoginRequest, UserOut
from aiprod.identity.service import IdentityService
from aiprod.identity.sessions import TokenPair

router = APIRouter(tags=["auth"])  # included under /v1 by identity.endpoints
_PUBLIC = {PERMISSION_KEY: PUBLIC}


class BrowserSession(BaseModel):
    user: UserOut
    csrf_token: str = Field(
        description="Send as `X-CSRF-Token` with every POST, PUT, PATCH and DELETE made with "
        "the session cookie.  Keep it in memory only."
    )
    csrf_expires_in: int = Field(description="Seconds the CSRF token stays valid.")


class CsrfToken(BaseModel):
    csrf_token: str = Field(description="Send as `X-CSRF-Token` on unsafe methods.")
    expires_in: int = Field(description="Seconds it stays valid.")


async def _signed_in(
    request: Request, response: Response, identity: IdentityService, pair: TokenPair
) -> BrowserSession:
    """Set the cookies of a fresh token pair and say who is signed in."""
    found = await identity.authenticate(pair.access_token)
    settings = identity.settings
    browser.set_session(
        response,
        request,
        pair.access_token,
        pair.refresh_token,
        settings.refresh_token_days * 86400,
    )
    lifetime = settings.csrf_token_minutes * 60
    token = identity.csrf.issue(pair.session_id)
    browser.set_csrf(response, request, token, lifetime)
    return BrowserSession(
        user=UserOut.from_user(found.user), csrf_token=token, csrf_expires_in=lifetime
    )


@router.post(
    "/auth/session",
    summary="Sign in a browser (session cookie)",
    response_model=BrowserSession,
    responses=error_responses(401, 403, 422, 429),
    openapi_extra=_PUBLIC,
)
async def sign_in(
    request: Request,
    response: Response,
    body: LoginRequest,
    identity: Identity,
    user_agent: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> BrowserSession:
    """The studio's login: like `POST /v1/auth/login` (same checks, same
    throttle, a new session), but the tokens go into an HttpOnly, SameSite=Lax
    cookie (`__Host-aiprod_session` over https) that scripts cannot read, and
    the answer carries the CSRF token that unsafe requests must send back.
    A request that another site's page sent (its `Origin`) is refused: 403
    `origin_not_allowed`."""
    browser.check_origin(request, identity.settings.allowed_origins)
    pair = await identity.sessions.login(
        body.email, body.password, audit_context(request), user_agent
    )
    return await _signed_in(request, response, identity, pair)


@router.post(
    "/auth/session/refresh",
    summary="Renew a browser session",
    response_model=BrowserSession,
    responses=error_responses(401, 403),
    openapi_extra=_PUBLIC,
)
async def renew(
    request: Request, response: Response, identity: Identity
) -> BrowserSession | JSONResponse:
    """Rotate the cookie's refresh token (single use: presenting a spent one
    revokes the session) and set fresh cookies, with a new CSRF token.  Needs
    no CSRF token (the studio may have none after its access token expired),
    but a request sent by another site's page is refused."""
    browser.check_origin(request, identity.settings.allowed_origins)
    tokens = browser.session_tokens(request)
    if tokens is None:
        raise AuthError("no session cookie: sign in")
    try:
        pair = await identity.sessions.refresh(tokens[1], audit_context(request))
    except AuthError as exc:
        # The cookie is worthless now; do not let the browser send it again.
        ended = JSONResponse(
            error_body("unauthorized", f"the session has ended: sign in again ({exc.message})"),
            status_code=401,
            headers={"WWW-Authenticate": "Bearer"},
        )
        browser.clear(ended, request)
        return ended
    return await _signed_in(request, response, identity, pair)


@router.delete(
    "/auth/session",
    summary="Sign a browser out",
    status_code=204,
    response_class=Response,
    responses=error_responses(403),
    openapi_extra=_PUBLIC,
)
async def sign_out(request: Request, identity: Identity) -> Response:
    """End the cookie's session (its refresh and access tokens die) and clear
    the cookies.  With a session cookie this needs the CSRF token; without one
    it answers 204 too, so it is safe to repeat."""
    response = Response(status_code=204)
    tokens = browser.session_tokens(request)
    if tokens is not None:
        try:
            found = await identity.authenticate(tokens[0])
        except AuthError:
            # An expired access token: the refresh token still names the
            # session, and only the Origin can tell who sent this.
            browser.check_origin(request, identity.settings.allowed_origins)
        else:
            check_csrf(request, found.principal)
        await identity.sessions.logout(tokens[1], audit_context(request))
    browser.clear(response, request)
    return response


@router.get(
    "/csrf-token",
    summary="A CSRF token for the browser session",
    response_model=CsrfToken,
    responses=error_responses(401),
)
async def csrf_token(
    request: Request, response: Response, principal: AnyPrincipal, identity: Identity
) -> CsrfToken:
    """A fresh token bound to the caller's login session (signed
    double-submit: the same value is set in the `aiprod_csrf` cookie).  The
    studio asks for one after a page load; bearer and API-key clients never
    need one."""
    if principal.session_id is None:
        raise AuthError("CSRF tokens belong to login sessions, not to API keys")
    lifetime = identity.settings.csrf_token_minutes * 60
    token = identity.csrf.issue(principal.session_id)
    browser.set_csrf(response, request, token, lifetime)
    return CsrfToken(csrf_token=token, expires_in=lifetime)
