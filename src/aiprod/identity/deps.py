"""Authentication and authorisation for every route.

`principal_from_token` turns a bearer credential (our access JWT, an API key,
or an external issuer's JWT) into a `Principal`; `has_permission` decides.
HTTP routes declare what they need with `require(permission)` (or the
aliases below); WebSocket and SSE handlers call the two functions directly.

Deny by default: `check_routes` (run when the app is built) refuses to start
an app with a ``/v1`` route that declares neither a permission nor that it is
public.  Nothing about the caller's rights is taken from the token: the role
is read from the database on every request, so disabling an account or
changing a role takes effect on the next request.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Annotated, Any, cast, get_type_hints

from fastapi import Depends, FastAPI, Request
from fastapi import routing as fastapi_routing
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from aiprod.errors import AppError, AuthError, Forbidden
from aiprod.identity import browser
from aiprod.identity.audit import AuditContext
from aiprod.identity.authentication import Authenticated
from aiprod.identity.models import User
from aiprod.identity.permissions import PERMISSIONS, Principal, has_permission
from aiprod.identity.service import IdentityService

PERMISSION_KEY = "x-aiprod-permission"
PUBLIC = "public"

_bearer = HTTPBearer(
    auto_error=False,  # we answer 401 ourselves, in the error shape
    scheme_name="bearer",
    bearerFormat="JWT or API key",
    description="An access token from `POST /v1/auth/login` or `/v1/auth/refresh`, an API "
    "key (`aipk_…`), or an ID token of a configured external issuer.",
)
BEARER = _bearer
"""The bearer scheme, for a guard of another module (``/metrics``)."""


async def principal_from_token(app_state: Any, token: str) -> Principal:
    """The caller a bearer credential names: our access JWT, an API key
    (``aipk_…``) or a configured external issuer's JWT.  Raises AuthError when
    the credential is invalid, expired, revoked, or its account disabled.

    `app_state` is the application's ``app.state`` (its ``identity`` service
    is used)."""
    identity = cast(IdentityService, app_state.identity)
    return (await identity.authenticate(token)).principal


def identity_service(request: Request) -> IdentityService:
    """The service built by the app's lifespan."""
    return cast(IdentityService, request.app.state.identity)


Identity = Annotated[IdentityService, Depends(identity_service)]


def audit_context(request: Request, principal: Principal | None = None) -> AuditContext:
    """Where a request comes from, for the audit log."""
    ip = request.client.host if request.client is not None else None
    request_id = getattr(request.state, "request_id", None)
    ctx = AuditContext(ip=ip, request_id=request_id if isinstance(request_id, str) else None)
    return ctx if principal is None else ctx.as_principal(principal)


def unauthorized(message: str, invalid_token: bool) -> AppError:
    # RFC 6750 §3: no error code when credentials are simply missing.
    challenge = 'Bearer error="invalid_token"' if invalid_token else "Bearer"
    return AuthError(message, headers={"WWW-Authenticate": challenge})


async def _authenticated(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Authenticated:
    """Who is calling (once per request), else 401.  A browser signed in with
    the session cookie also needs its CSRF token on unsafe methods (403)."""
    token, from_cookie = bearer_or_cookie(request, credentials)
    if token is None:
        raise unauthorized("missing bearer token", invalid_token=False)
    found = await authenticated_by(request, token, from_cookie)
    await limit_user(request, found.principal)
    return found


async def authenticated_by(request: Request, token: str, from_cookie: bool) -> Authenticated:
    """Who `token` names (401 otherwise); with the cookie, an unsafe method
    also needs the session's CSRF token (403).  Kept in the request state."""
    try:
        found = await identity_service(request).authenticate(token)
    except AuthError as exc:
        raise unauthorized(exc.message, invalid_token=True) from None
    if from_cookie:
        check_csrf(request, found.principal)
    request.state.principal = found.principal
    return found


def bearer_or_cookie(
    request: Request, credentials: HTTPAuthorizationCredentials | None
) -> tuple[str | None, bool]:
    """The credential of a request and whether it came from the session cookie:
    the ``Authorization`` header first (a browser never adds one by itself), else
    the access token of the studio's cookie (:mod:`aiprod.identity.browser`)."""
    if credentials is not None:
        return credentials.credentials, False
    tokens = browser.session_tokens(request)
    return (tokens[0], True) if tokens is not None else (None, False)


def check_csrf(request: Request, principal: Principal) -> None:
    """A request signed in by the session cookie: the cookie must hold a login
    session (401 otherwise), and an unsafe method needs that session's CSRF
    token (403 `csrf_missing`, `csrf_invalid` or `csrf_expired`)."""
    if principal.via != "jwt" or principal.session_id is None:
        raise unauthorized("the session cookie holds no login session", invalid_token=True)
    if browser.csrf_check_needed(request):
        header, cookie = browser.csrf_parts(request)
        identity_service(request).csrf.check(header, cookie, principal.session_id)


async def limit_user(request: Request, principal: Principal) -> None:
    """Count the request under its user where the API's rate limits ask for it
    (exports and streams: ``aiprod.api.ratelimit`` leaves the check in the
    request state, under ``rate_limit_user``); raises RateLimited past it."""
    check = getattr(request.state, "rate_limit_user", None)
    if check is not None:
        await check(principal.user_id)


@dataclass(frozen=True)
class Guard:
    """What a route needs, as declared: a permission, or just a caller."""

    permission: str | None = None
    session_only: bool = False

    def describe(self) -> str:
        need = self.permission if self.permission is not None else "authenticated"
        return need + (" (login session)" if self.session_only else "")


async def deny(request: Request, principal: Principal, need: str, message: str) -> AppError:
    """A 403 to raise, after writing `permission.denied` to the audit log."""
    await identity_service(request).audit.permission_denied(
        audit_context(request, principal),
        principal,
        need,
        subject_type="route",
        subject_id=None,
        details={"method": request.method, "path": request.url.path},
    )
    return Forbidden(message, details={"needs": need})


def _via(principal: Principal) -> str:
    return " with an API key" if principal.via == "api_key" else ""


def _guarded(guard: Guard) -> Callable[..., Awaitable[Principal]]:
    async def check(
        request: Request, found: Annotated[Authenticated, Depends(_authenticated)]
    ) -> Principal:
        principal = found.principal
        need = guard.describe()
        if guard.session_only and principal.via == "api_key":
            raise await deny(
                request, principal, need, "this action needs a login session, not an API key"
            )
        if guard.permission is not None and not has_permission(principal, guard.permission):
            raise await deny(
                request,
                principal,
                need,
                f"this action needs the permission {guard.permission} "
                f"(you are {principal.role}{_via(principal)})",
            )
        return principal

    check.__aiprod_guard__ = guard  # type: ignore[attr-defined]
    return check


def require(permission: str | None, *, session_only: bool = False) -> Any:
    """``Depends`` for a route needing `permission` (None: any authenticated
    caller).  `session_only` refuses API keys (key management, passwords)."""
    if permission is not None and permission not in PERMISSIONS["admin"]:
        raise ValueError(f"unknown permission {permission!r}")
    return Depends(_guarded(Guard(permission, session_only=session_only)))


AnyPrincipal = Annotated[Principal, require(None)]
SessionPrincipal = Annotated[Principal, require(None, session_only=True)]
JobsCreate = Annotated[Principal, require("jobs:create")]
JobsRead = Annotated[Principal, require("jobs:read")]
JobsUpdate = Annotated[Principal, require("jobs:update")]
JobsDelete = Annotated[Principal, require("jobs:delete")]
JobsApprove = Annotated[Principal, require("jobs:approve")]
ResultsRead = Annotated[Principal, require("results:read")]
WebhooksRead = Annotated[Principal, require("webhooks:read")]
WebhooksWrite = Annotated[Principal, require("webhooks:write")]
MediaRead = Annotated[Principal, require("media:read")]
MediaWrite = Annotated[Principal, require("media:write")]


async def _current_user(
    found: Annotated[Authenticated, Depends(_authenticated)],
    _: Annotated[Principal, require(None)],
) -> User:
    return found.user


CurrentUser = Annotated[User, Depends(_current_user)]


def owner_scope(who: Principal | User) -> uuid.UUID | None:
    """The owner filter for job queries: admins see every job (None), others their own."""
    if who.role == "admin":
        return None
    return who.user_id if isinstance(who, Principal) else who.id


# ------------------------------------------------------------ route check


def _returns_principal(call: Any) -> bool:
    try:
        return get_type_hints(call).get("return") is Principal
    except Exception:  # unresolvable annotations: not ours to judge
        return False


def _guards(dependant: Dependant) -> Iterator[str]:
    for dep in dependant.dependencies:
        guard = getattr(dep.call, "__aiprod_guard__", None)
        if isinstance(guard, Guard):
            yield guard.describe()
        elif _returns_principal(dep.call):
            # A dependency of another module that establishes the caller with
            # principal_from_token and checks has_permission itself.
            yield "authenticated (custom check)"
        yield from _guards(dep)


@dataclass(frozen=True)
class RouteInfo:
    path: str
    methods: frozenset[str]
    dependant: Dependant | None
    openapi_extra: dict[str, Any] | None


def _plain_routes(routes: list[Any], prefix: str = "") -> list[RouteInfo] | None:
    """The APIRoutes under `routes` as their routers declared them, when no
    include adds dependencies (then a route's dependant is the effective one
    and its path is the include prefixes before its own); None otherwise."""
    found: list[RouteInfo] = []
    for r in routes:
        if isinstance(r, APIRoute):
            methods = frozenset(r.methods or ())
            found.append(RouteInfo(prefix + r.path, methods, r.dependant, r.openapi_extra))
            continue
        ctx = getattr(r, "include_context", None)
        router = getattr(r, "original_router", None)
        if ctx is None or router is None:
            continue  # not an API route (the docs pages, WebSockets)
        if ctx.dependencies or getattr(router, "dependencies", None):
            return None
        inner = _plain_routes(list(router.routes), prefix + (ctx.prefix or ""))
        if inner is None:
            return None
        found += inner
    return found


def api_routes(app: FastAPI) -> Iterator[RouteInfo]:
    """Every HTTP API route with its full path (FastAPI ≥ 0.13x includes
    routers lazily, so `app.routes` alone does not list them).

    When no include adds dependencies (our case), the routers' own routes are
    read directly: asking FastAPI for the effective contexts would build every
    route's state again for each app (~75 ms, paid by every test's app)."""
    iter_contexts = getattr(fastapi_routing, "iter_route_contexts", None)
    plain = _plain_routes(list(app.routes))
    if plain is not None:
        yield from plain
        return
    if iter_contexts is None:  # older FastAPI: the list is flat
        for r in app.routes:
            if isinstance(r, APIRoute):
                yield RouteInfo(r.path, frozenset(r.methods or ()), r.dependant, r.openapi_extra)
        return
    for ctx in iter_contexts(app.routes):
        if isinstance(ctx.original_route, APIRoute):
            yield RouteInfo(
                str(ctx.path),
                frozenset(ctx.methods or ()),
                getattr(ctx, "dependant", None),
                getattr(ctx, "openapi_extra", None),
            )


def route_permission(route: RouteInfo) -> str | None:
    """What the route declares: its guards' needs, or "public"; None: nothing."""
    declared = (route.openapi_extra or {}).get(PERMISSION_KEY)
    if isinstance(declared, str) and declared != PUBLIC:
        return declared  # an explicit declaration wins
    guards = set(_guards(route.dependant)) if route.dependant is not None else set()
    if len(guards) > 1:
        guards.discard("authenticated")  # implied by any other guard
    if guards:
        return " + ".join(sorted(guards))
    return declared if isinstance(declared, str) else None


GUARDED = ("/v1/", "/metrics")
"""Paths whose routes must each declare what they need (`check_routes`)."""


def check_routes(app: FastAPI) -> None:
    """Deny by default: every HTTP route under `GUARDED` (``/v1``, ``/metrics``)
    must declare a permission (a `require` dependency) or be explicitly public
    (``openapi_extra={"x-aiprod-permission": "public"}``); the app refuses to
    start otherwise.  Each
    route's need is written into the OpenAPI document as ``x-aiprod-permission``."""
    needs: dict[tuple[str, str], str] = {}
    missing = []
    for route in api_routes(app):
        if not route.path.startswith(GUARDED):
            continue
        need = route_permission(route)
        if need is None:
            missing.append(f"{','.join(sorted(route.methods))} {route.path}")
            continue
        documented = re.sub(r"\{(\w+):[^}]*\}", r"{\1}", route.path)  # {name:path} → {name}
        for method in route.methods:
            needs[(method.lower(), documented)] = need
    if missing:
        raise RuntimeError(
            "routes without a declared permission (deny by default): " + "; ".join(missing)
        )
    build = app.openapi

    def openapi() -> dict[str, Any]:
        fresh = app.openapi_schema is None
        schema = build()
        if fresh:
            for path, item in schema.get("paths", {}).items():
                for method, op in item.items():
                    need = needs.get((method, path))
                    if need is not None and isinstance(op, dict):
                        op[PERMISSION_KEY] = need
        return schema

    setattr(app, "openapi", openapi)  # noqa: B010 (FastAPI's documented override)
