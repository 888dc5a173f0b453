"""The HTTP edge's measurements: one count and one latency sample per request
(by route template, never the raw path: an id in a path would make a metric
series per production), one access-log line per request, and the request's
log context.

Outermost of the middlewares, so that what it times and counts is what the
client got, a 413 of the body cap and a 429 of the rate limits included.  A
plain ASGI middleware like the others (:mod:`aiprod.api.middleware`): it
never buffers a body.  WebSocket upgrades pass untouched (they are counted by
the event streams, not as requests).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from aiprod.ops import context, metrics

access_log = logging.getLogger("aiprod.access")

UNMATCHED = "<unmatched>"
"""The route of a request no route matched (a 404 of the router)."""


class ObservabilityMiddleware:
    """Count, time and log every HTTP request (see the module docstring).
    `access` writes the access-log line (``AIPROD_ACCESS_LOG``)."""

    def __init__(self, app: ASGIApp, access: bool = True) -> None:
        self.app = app
        self.access = access

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 0
        sent = 0

        async def measuring_send(message: Message) -> None:
            nonlocal status, sent
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
            await send(message)

        token = context.bind_request(scope)
        in_progress = metrics.requests_in_progress()
        in_progress.inc()
        try:
            await self.app(scope, receive, measuring_send)
        finally:
            in_progress.dec()
            elapsed = time.perf_counter() - started
            status = status or 500  # nothing was sent: the server answers 500 or drops it
            route = context.route_template(scope) or UNMATCHED
            metrics.observe_request(scope["method"], route, status, elapsed)
            if self.access and access_log.isEnabledFor(logging.INFO):
                _access_line(scope, route, status, elapsed, sent)
            context.unbind_request(token)


def _access_line(scope: Scope, route: str, status: int, elapsed: float, sent: int) -> None:
    """``GET /v1/productions/… 200``, with its fields.  The path is logged
    without its query string (where tickets and signed-URL signatures travel)."""
    client = scope.get("client")
    fields: dict[str, Any] = {
        "method": scope["method"],
        "path": scope.get("path", ""),
        "status": status,
        "duration_ms": round(elapsed * 1000, 2),
        "bytes": sent,
        "client": client[0] if client else None,
    }
    level = logging.ERROR if status >= 500 else logging.INFO
    # Built directly: Logger.log would walk the stack for the caller's file
    # and line, which no access line shows (the most costly part of a line).
    record = access_log.makeRecord(
        access_log.name,
        level,
        __file__,
        0,
        "%s %s %d",
        (scope["method"], route, status),
        None,
        extra=fields,
    )
    access_log.handle(record)
