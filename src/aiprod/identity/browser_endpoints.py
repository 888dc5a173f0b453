"""The studio's sign-in: a login session held in an HttpOnly cookie and its
CSRF tokens (:mod:`aiprod.identity.browser` says why and how), by password
or through an external OpenID Connect provider (:mod:`aiprod.identity.oidc_signin`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Path, Query, Request, Response
from fastapi.responses import JSONResponse, RedirectResponse
from pydantic import BaseModel, Field

from aiprod.errors import AuthError, NotFound, error_body, error_responses
from aiprod.identity import browser
from aiprod.identity.deps import (
    PERMISSION_KEY,
    PUBLIC,
    AnyPrincipal,
    Identity,
    audit_context,
    check_csrf,
)
from aiprod.identity.oidc_signin import FLOW_COOKIE, FLOW_SECONDS, SignInError
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
    access_expires_in: int = Field(
        description="Seconds before the cookie's access token expires: renew the session "
        "(`POST /v1/auth/session/refresh`) a little before."
    )


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
        user=UserOut.from_user(found.user),
        csrf_token=token,
        csrf_expires_in=lifetime,
        access_expires_in=pair.expires_in,
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


class SessionState(BaseModel):
    signed_in: bool
    user: UserOut | None = None
    renewable: bool = Field(
        description="A session cookie is there but its access token has expired: "
        "`POST /v1/auth/session/refresh` may renew it."
    )


@router.get(
    "/auth/session",
    summary="Is this browser signed in?",
    response_model=SessionState,
    openapi_extra=_PUBLIC,
)
async def session_state(request: Request, identity: Identity) -> SessionState:
    """What the studio asks first on a page load: always 200 (a 401 would be
    an error in the browser's console for a visitor who is simply not signed
    in yet)."""
    tokens = browser.session_tokens(request)
    if tokens is None:
        return SessionState(signed_in=False, renewable=False)
    try:
        found = await identity.authenticate(tokens[0])
    except AuthError:
        return SessionState(signed_in=False, renewable=True)
    if found.principal.session_id is None:
        return SessionState(signed_in=False, renewable=False)
    return SessionState(signed_in=True, user=UserOut.from_user(found.user), renewable=True)


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


# ------------------------------------------------------------ OIDC sign-in


class SignInProvider(BaseModel):
    id: str = Field(description="Use in `GET /v1/auth/oidc/{id}/start`.")
    name: str = Field(description="What the sign-in button says.")
    start_url: str


class SignInProviders(BaseModel):
    items: list[SignInProvider]


@router.get(
    "/auth/oidc/providers",
    summary="External sign-in providers",
    response_model=SignInProviders,
    openapi_extra=_PUBLIC,
)
async def oidc_providers(identity: Identity) -> SignInProviders:
    """The identity providers the studio offers "Sign in with …" for (every
    configured issuer with a `client_id`); empty when there is none."""
    return SignInProviders(
        items=[
            SignInProvider(id=slug, name=name, start_url=f"/v1/auth/oidc/{slug}/start")
            for slug, name in identity.oidc_signin.providers()
        ]
    )


def _callback_url(request: Request) -> str:
    return str(request.url_for("oidc_callback"))


def _to_studio(fragment: str) -> RedirectResponse:
    return RedirectResponse("/#/" + fragment, status_code=303)


@router.get(
    "/auth/oidc/{provider}/start",
    summary="Start signing in with an external provider",
    status_code=303,
    response_class=RedirectResponse,
    responses={
        303: {"description": "To the provider's sign-in page."},
        **error_responses(404, 422),
    },
    openapi_extra=_PUBLIC,
)
async def oidc_start(
    request: Request, provider: Annotated[str, Path(max_length=64)], identity: Identity
) -> RedirectResponse:
    """A browser navigation: sends the browser to the provider (authorization
    code flow with PKCE); it comes back to `/v1/auth/oidc/callback`."""
    signin = identity.oidc_signin
    if provider not in dict(signin.providers()):
        raise NotFound("no such sign-in provider")
    try:
        location, flow = await signin.start(provider, _callback_url(request))
    except SignInError as exc:
        return _to_studio(f"signin?error={exc.code}")
    response = RedirectResponse(location, status_code=303)
    response.set_cookie(
        browser.cookie_name(request, FLOW_COOKIE),
        signin.seal(flow),
        max_age=FLOW_SECONDS,
        path="/",
        secure=browser.secure(request),
        httponly=True,
        samesite="lax",  # sent on the provider's top-level redirect back
    )
    return response


@router.get(
    "/auth/oidc/callback",
    name="oidc_callback",
    summary="Where an external provider sends the browser back",
    status_code=303,
    response_class=RedirectResponse,
    responses={
        303: {"description": "To the studio, signed in or with an error code."},
        **error_responses(422),
    },
    openapi_extra=_PUBLIC,
)
async def oidc_callback(
    request: Request,
    identity: Identity,
    code: Annotated[str | None, Query(max_length=2048)] = None,
    state: Annotated[str | None, Query(max_length=512)] = None,
    error: Annotated[str | None, Query(max_length=200)] = None,
    user_agent: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> RedirectResponse:
    """Checks the answer against this browser's flow, trades the code for an
    ID token, verifies it like any token of that issuer, and opens a session:
    to the studio, signed in (cookie set), or to its sign-in page with
    `?error=<code>` (`oidc_denied`, `oidc_state`, `oidc_refused`,
    `oidc_unavailable`)."""
    signin = identity.oidc_signin
    ctx = audit_context(request)
    try:
        flow = signin.open(request.cookies.get(browser.cookie_name(request, FLOW_COOKIE)))
        if error is not None or code is None or state is None:
            raise SignInError("oidc_denied", "the provider did not sign you in")
        ext = await signin.finish(flow, state, code, _callback_url(request))
        issuer = signin.issuers[flow.slug]
        user = await identity.users.external_user(ext, sync_role=issuer.sync_role)
        pair = await identity.sessions.start(user, ctx, user_agent)
    except (SignInError, AuthError) as exc:
        reason = exc.code if isinstance(exc, SignInError) else "oidc_refused"
        await identity.audit.log(
            "login.failed", "failure", ctx, details={"reason": reason, "method": "oidc"}
        )
        response = _to_studio(f"signin?error={reason}")
    else:
        response = _to_studio("productions")
        await _signed_in(request, response, identity, pair)
    response.delete_cookie(
        browser.cookie_name(request, FLOW_COOKIE), path="/", secure=browser.secure(request)
    )
    return response
