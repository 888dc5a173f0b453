"""Rate limits on every route, by class, per client address, credential and user.

Classes (``AIPROD_RATE_LIMITS``, in the `limits` notation, e.g. "10/minute"):

* ``auth``: ``POST /v1/auth/…`` (login, refresh, logout, revoke, password);
* ``exports``: the export routes (``…/export``);
* ``streams``: SSE streams, WebSockets and ``POST /v1/ws-ticket``;
* ``writes``: every other POST, PUT, PATCH and DELETE;
* ``reads``: every other GET and HEAD (the health probes are not limited:
  the balancer that asks them must always get an answer).

A request counts against its class under the client's address (an IPv6
address by its /64, which one host usually holds whole) and under the bearer
credential it presents (by SHA-256; a wrong one counts too), before any other
work: the body is not read, the credential not even checked.  ``exports`` and
``streams`` count a third time under the user, once the credential is known:
:func:`aiprod.identity.deps.limit_user` calls the check this middleware
leaves in the request state.

Counting (:mod:`aiprod.api.limiter`) is `limits`' sliding-window counter, in
Redis when ``AIPROD_REDIS_URL`` is set (every API process shares the
counts), else in process memory, and in memory while Redis fails: a store
that fails never lifts the limits.  Should even the memory fail, ``auth``
answers 503 and the other classes let the request through (logged).

Headers (draft-ietf-httpapi-ratelimit-headers-09, the structured-field
syntax): every limited answer carries ``RateLimit-Policy: "reads";q=600;w=60``
(each limit of the class) and ``RateLimit: "reads";r=599;t=60`` (the limit
nearest to running out: requests remaining, seconds until the window is
whole again).  A refusal answers 429 ``rate_limited`` with ``Retry-After``
(seconds until one more request fits) and ``details`` naming the class, the
key kind (address, credential, user) and the limit.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import math
import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from aiprod.api.limiter import Limiter, Outcome, Policy
from aiprod.api.openapi import amend_operations, error_entry
from aiprod.errors import RateLimited, error_body
from aiprod.identity import browser
from aiprod.ops import metrics

log = logging.getLogger("aiprod.api.ratelimit")

CLASSES = ("auth", "writes", "reads", "exports", "streams")
PER_USER = frozenset({"exports", "streams"})
"""Classes counted per user too (the hook in the request state)."""
USER_CHECK = "rate_limit_user"
"""Name, in the request state, of the per-user check (``identity.deps.limit_user``)."""

_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_EXPORT = re.compile(r"^/v1/(?:.+/)?exports?(?:/|$)")
_STREAM = re.compile(r"^/v1/(?:ws-ticket|ws|productions/[^/]+/(?:ws|events/stream))/?$")


def classify(method: str, path: str, websocket: bool = False) -> str | None:
    """The class of a request (None: not limited)."""
    if path.startswith("/health/") or path == "/health":
        return None
    if websocket or _STREAM.match(path):
        return "streams"
    if _EXPORT.match(path):
        return "exports"
    if path.startswith("/v1/auth/") and method not in _READ_METHODS:
        return "auth"
    return "reads" if method in _READ_METHODS else "writes"


# ---------------------------------------------------------------- the edge


def client_key(scope: Scope) -> str:
    """The address a request counts under: the peer (after the trusted
    proxies' headers), an IPv6 one by its /64."""
    client = scope.get("client")
    host = client[0] if client else ""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host or "unknown"
    if address.version == 6:
        mapped = address.ipv4_mapped
        if mapped is not None:
            return str(mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


def credential_key(scope: Scope) -> str | None:
    """A digest of the credential the request carries, if any: its bearer
    token, else the access token of the studio's session cookie."""
    auth = Headers(scope=scope).get("authorization")
    if not auth:
        cookie = browser.session_tokens(HTTPConnection(scope))
        return hashlib.sha256(cookie[0].encode()).hexdigest()[:32] if cookie else None
    scheme, _, value = auth.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return hashlib.sha256(value.strip().encode()).hexdigest()[:32]


@dataclass
class _Standing:
    """The request's worst outcome so far (the headers report it)."""

    policies: list[Policy]
    worst: Outcome | None = None

    def add(self, outcome: Outcome) -> None:
        if outcome.worse_than(self.worst):
            self.worst = outcome

    def headers(self) -> dict[str, str]:
        found = {"RateLimit-Policy": ", ".join(p.header() for p in self.policies)}
        if self.worst is not None:
            w = self.worst
            found["RateLimit"] = f'"{w.policy.name}";r={w.remaining};t={math.ceil(w.reset)}'
        return found


def _refusal(cls: str, outcome: Outcome) -> RateLimited:
    metrics.rate_limit_refused(cls, outcome.kind)
    retry = max(1, math.ceil(outcome.retry_after))
    return RateLimited(
        f"too many {cls} requests from this {outcome.kind}; retry in {retry} s",
        retry,
        details={"class": cls, "key": outcome.kind, "limit": str(outcome.policy)},
    )


class RateLimitMiddleware:
    """Count each request before the app sees it; refuse with 429 past a limit.

    The limiter is the app's (``app.state.rate_limiter``, built by the
    lifespan so that its connections belong to the serving loop); without one
    (limits switched off) requests pass untouched."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        limiter = _limiter(scope) if kind in ("http", "websocket") else None
        cls = (
            classify(scope.get("method", "GET"), scope.get("path", ""), kind == "websocket")
            if limiter is not None
            else None
        )
        if limiter is None or cls is None:
            await self.app(scope, receive, send)
            return
        standing = _Standing(limiter.policies[cls])
        keys = [("address", client_key(scope))]
        credential = credential_key(scope)
        if credential is not None:
            keys.append(("credential", credential))
        try:
            for key_kind, key in keys:
                outcome = await limiter.check(cls, key_kind, key)
                standing.add(outcome)
                if not outcome.allowed:
                    break  # a refused request counts no further
        except Exception:
            if await _failed(scope, receive, send, cls):
                return
        if standing.worst is not None and not standing.worst.allowed:
            await _refuse(scope, receive, send, _refusal(cls, standing.worst), standing)
            return

        if cls in PER_USER:

            async def check_user(user_id: uuid.UUID) -> None:
                try:
                    outcome = await limiter.check(cls, "user", str(user_id))
                except Exception:
                    log.exception("rate limits: the per-user count failed")
                    return
                standing.add(outcome)
                if not outcome.allowed:
                    raise _refusal(cls, outcome)

            scope.setdefault("state", {})[USER_CHECK] = check_user

        if kind != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in standing.headers().items():
                    headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _limiter(scope: Scope) -> Limiter | None:
    app = scope.get("app")
    state = getattr(app, "state", None)
    found = getattr(state, "rate_limiter", None)
    return found if isinstance(found, Limiter) else None


async def _refuse(
    scope: Scope, receive: Receive, send: Send, error: RateLimited, standing: _Standing
) -> None:
    headers = {**(error.headers or {}), **standing.headers()}
    body = error_body(error.code, error.message, error.details)
    if scope["type"] == "websocket":
        await _deny_websocket(scope, send, 429, body, headers)
        return
    await JSONResponse(body, status_code=429, headers=headers)(scope, receive, send)


async def _failed(scope: Scope, receive: Receive, send: Send, cls: str) -> bool:
    """The counting itself failed (memory included): `auth` fails closed with
    503, the rest go on.  True when the request was answered."""
    log.exception("rate limits: counting failed for a %s request", cls)
    if cls != "auth":
        return False
    body = error_body("unavailable", "rate limiting is unavailable; retry shortly")
    headers = {"Retry-After": "1"}
    if scope["type"] == "websocket":
        await _deny_websocket(scope, send, 503, body, headers)
    else:
        await JSONResponse(body, status_code=503, headers=headers)(scope, receive, send)
    return True


async def _deny_websocket(
    scope: Scope, send: Send, status: int, body: dict[str, Any], headers: dict[str, str]
) -> None:
    """Refuse the handshake with an HTTP answer where the server can send one
    (the ASGI denial-response extension), else close it (1008)."""
    if "websocket.http.response" not in scope.get("extensions", {}):
        await send({"type": "websocket.close", "code": 1008})
        return
    response = JSONResponse(body, status_code=status, headers=headers)
    await send(
        {
            "type": "websocket.http.response.start",
            "status": status,
            "headers": response.raw_headers,
        }
    )
    await send({"type": "websocket.http.response.body", "body": response.body})


# ----------------------------------------------------------------- OpenAPI


_HEADERS = {
    "Retry-After": {
        "description": "Seconds until one more request fits.",
        "schema": {"type": "integer"},
    },
    "RateLimit": {
        "description": 'The limit nearest to running out: `"class";r=remaining;t=seconds`.',
        "schema": {"type": "string"},
    },
    "RateLimit-Policy": {
        "description": 'Each limit of the class: `"class";q=quota;w=window seconds`.',
        "schema": {"type": "string"},
    },
}


def install_openapi(app: FastAPI) -> None:
    """Declare the 429 and its headers on every limited operation, and its
    class as ``x-aiprod-rate-limit``."""

    def limited(method: str, path: str, operation: dict[str, Any]) -> None:
        cls = classify(method.upper(), path)
        if cls is None:
            return
        operation["x-aiprod-rate-limit"] = cls
        entry = operation.setdefault("responses", {}).setdefault("429", error_entry(429))
        entry.setdefault("headers", {}).update(_HEADERS)

    amend_operations(app, limited)


UserCheck = Callable[[uuid.UUID], Awaitable[None]]

__all__ = [
    "CLASSES",
    "PER_USER",
    "USER_CHECK",
    "Limiter",
    "RateLimitMiddleware",
    "UserCheck",
    "classify",
    "client_key",
    "credential_key",
    "install_openapi",
]
