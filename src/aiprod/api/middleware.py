"""The HTTP edge: body size cap, rate limits, request ids, security headers.

These are plain ASGI middlewares rather than ``BaseHTTPMiddleware`` so that
they never buffer a response (artifact downloads stream) and so that the body
cap can count bytes while the application reads them, which is the only way
to bound a chunked upload that sends no ``Content-Length``.
"""

from __future__ import annotations

import logging
import re
import uuid

from fastapi import FastAPI, HTTPException
from fastapi.responses import JSONResponse
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from aiprod.api.ratelimit import RateLimitMiddleware
from aiprod.errors import error_body

log = logging.getLogger("aiprod.api")

REQUEST_ID_HEADER = "X-Request-ID"
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


# --------------------------------------------------------------- body cap


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` when a streamed body passes the cap.

    It is an HTTPException so that FastAPI's body reader re-raises it (any
    other error there becomes a 400) and the installed handler answers 413 in
    the error shape."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            status_code=413,
            detail=f"request body exceeds the limit of {limit} bytes",
            headers={"Connection": "close"},
        )


class BodyLimitMiddleware:
    """Refuse bodies above `max_bytes`: at once when ``Content-Length`` says so,
    otherwise as soon as the bytes read pass the cap."""

    def __init__(
        self, app: ASGIApp, max_bytes: int, upload_paths: dict[str, int] | None = None
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.upload_paths = upload_paths or {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cap = self._cap(scope)
        if cap != self.max_bytes:
            await BodyLimitMiddleware(self.app, cap)(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length")
        if declared is not None:
            try:
                length = int(declared)
            except ValueError:
                length = -1
            if length < 0:
                await _error(scope, receive, send, 400, "bad_request", "invalid Content-Length")
                return
            if length > self.max_bytes:
                await self._too_large(scope, receive, send)
                return

        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            # Normally the exception handler answers; this covers code that
            # reads the body outside FastAPI's request handling.
            if started:
                raise
            await self._too_large(scope, receive, send)

    def _cap(self, scope: Scope) -> int:
        """The cap of this request: an upload route's own (a POST to exactly its
        path, below the mount point), else `max_bytes`."""
        if scope.get("method") != "POST" or not self.upload_paths:
            return self.max_bytes
        path: str = scope.get("path", "")
        root: str = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :]
        return self.upload_paths.get(path, self.max_bytes)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        await _error(
            scope,
            receive,
            send,
            413,
            "payload_too_large",
            f"request body exceeds the limit of {self.max_bytes} bytes",
            # The client may still be sending; do not reuse the connection.
            {"Connection": "close"},
        )


async def _error(
    scope: Scope,
    receive: Receive,
    send: Send,
    status: int,
    code: str,
    message: str,
    headers: dict[str, str] | None = None,
) -> None:
    response = JSONResponse(error_body(code, message), status_code=status, headers=headers)
    await response(scope, receive, send)


# ------------------------------------------------- request id and headers


HARDENING_HEADERS: tuple[tuple[str, str], ...] = (
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("X-Frame-Options", "DENY"),
    (
        "Permissions-Policy",
        "accelerometer=(), camera=(), geolocation=(), gyroscope=(), magnetometer=(), "
        "microphone=(), payment=(), usb=()",
    ),
    ("Cross-Origin-Opener-Policy", "same-origin"),
    ("Cross-Origin-Resource-Policy", "same-origin"),
)
"""On every answer: JSON, files, streams, errors and 500s alike."""

NO_DOCUMENT_CSP = "default-src 'none'; frame-ancestors 'none'; sandbox"
"""Answers that are data (JSON, CSV, ZIP, event streams) are never a page:
opened in a tab, they run nothing and load nothing."""
MEDIA_CSP = "frame-ancestors 'none'; sandbox"
"""A video, song or picture opened in a tab plays in the browser's own viewer
(which loads the file itself) and runs nothing."""


def _csp(content_type: str) -> str:
    """The policy of an answer that did not bring its own.  The pages
    (:mod:`aiprod.web.routes`) bring theirs; any other HTML is inert."""
    if content_type.startswith(("video/", "audio/", "image/")):
        return MEDIA_CSP
    return NO_DOCUMENT_CSP


class EdgeHeadersMiddleware:
    """Give every request an id (kept from the client when well-formed, so a
    proxy's id survives) and add browser-hardening headers to every answer.

    JSON answers carry user data and tokens, so they are never cached; no
    answer may be framed, and none but an HTML page may run as a document.
    Over https (directly, or behind a trusted proxy that says so) every answer
    also carries HSTS (`hsts`: ``AIPROD_HSTS``, preload-ready by default; empty: none)."""

    def __init__(self, app: ASGIApp, hsts: str = "") -> None:
        self.app = app
        self.hsts = hsts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = Headers(scope=scope).get(REQUEST_ID_HEADER)
        request_id = (
            incoming if incoming is not None and _REQUEST_ID.match(incoming) else uuid.uuid4().hex
        )
        scope.setdefault("state", {})["request_id"] = request_id

        https = scope.get("scheme") == "https"  # directly or behind a trusted proxy

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers[REQUEST_ID_HEADER] = request_id
                for name, value in HARDENING_HEADERS:
                    headers.setdefault(name, value)
                if https and self.hsts:
                    headers.setdefault("Strict-Transport-Security", self.hsts)
                content_type = headers.get("content-type", "")
                if content_type.startswith("application/json"):
                    headers.setdefault("Cache-Control", "no-store")
                headers.setdefault("Content-Security-Policy", _csp(content_type))
            await send(message)

        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send_with_headers(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            # Inside this middleware, so that a 500 carries the request id and
            # the hardening headers like every other answer (Starlette's own
            # server-error handler sits outside every middleware).
            log.exception(
                "unhandled error on %s %s (request %s)",
                scope.get("method"),
                scope.get("path"),
                request_id,
            )
            if started:
                raise  # the status line is gone; let the server close the connection
            body = error_body("internal_error", "internal server error", {"request_id": request_id})
            await JSONResponse(body, status_code=500)(scope, receive, tracking_send)


def install(
    app: FastAPI,
    max_body_bytes: int,
    trusted_proxies: list[str],
    upload_paths: dict[str, int] | None = None,
    rate_limits: bool = False,
    hsts: str = "",
) -> None:
    """Add the edge middlewares; headers outside the body cap so a 413 carries
    them too, and proxy headers outermost so every layer sees the real client.
    `rate_limits` adds the rate limits (:mod:`aiprod.api.ratelimit`) between
    the headers and the body cap: a 429 carries the request id and the
    hardening headers, and comes before a byte of the body is read.

    ``X-Forwarded-*`` is believed only from `trusted_proxies` (the server
    itself never applies uvicorn's default of trusting 127.0.0.1): otherwise a
    client could pick the address the login throttle and the audit log see.

    `upload_paths` maps the paths of upload routes (POST) to their own, larger
    cap: those routes stream to disk and count the bytes themselves."""
    app.add_middleware(BodyLimitMiddleware, max_bytes=max_body_bytes, upload_paths=upload_paths)
    if rate_limits:
        app.add_middleware(RateLimitMiddleware)
    app.add_middleware(EdgeHeadersMiddleware, hsts=hsts)
    if trusted_proxies:
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=trusted_proxies)
