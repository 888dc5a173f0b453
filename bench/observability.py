"""What metrics and structured logs cost per request.

Drives ASGI apps directly (no sockets, no HTTP parsing: only the app's own
work is measured) and prints the median CPU microseconds per request (the
process's CPU time, all its threads: SQLite's included, and less disturbed
by neighbours on a shared machine than wall time):

* a bare ASGI app that answers 200 at once, without and with
  ``ObservabilityMiddleware`` (metrics only, then metrics and a JSON access
  line written to /dev/null): the middleware's own cost;
* the real app (``create_app``, SQLite, no worker) on ``GET /health/live`` and
  an authenticated ``GET /v1/productions/{id}``, without and with the
  middleware.

The two sides of each pair run in alternating blocks in the same process, so
drift (CPU frequency, caches, the GC) falls on both.  Usage::

    .venv/bin/python bench/observability.py [--requests 4000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from starlette.types import Receive, Scope, Send

from aiprod.api.app import create_app
from aiprod.api.observability import ObservabilityMiddleware
from aiprod.ops import logs
from aiprod.settings import Settings

Asgi = Callable[[Scope, Receive, Send], Awaitable[None]]
BLOCK = 200


def _scope(path: str, headers: list[tuple[bytes, bytes]]) -> Scope:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"bench"), *headers],
        "client": ("127.0.0.1", 40000),
        "server": ("bench", 80),
        "state": {},
    }


async def _receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _call(app: Asgi, path: str, headers: list[tuple[bytes, bytes]]) -> int:
    status = 0

    async def send(message: Any) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(_scope(path, headers), _receive, send)
    return status


async def _compare(
    sides: dict[str, Asgi], path: str, headers: list[tuple[bytes, bytes]], requests: int
) -> dict[str, float]:
    """Median CPU µs per request of each side, in alternating blocks."""
    for app in sides.values():  # warm up: routes, caches, first allocations
        for _ in range(50):
            assert await _call(app, path, headers) == 200
    samples: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(max(1, requests // BLOCK)):
        for name, app in sides.items():
            started = time.process_time()
            for _ in range(BLOCK):
                await _call(app, path, headers)
            samples[name].append((time.process_time() - started) / BLOCK * 1e6)
    return {name: statistics.median(values) for name, values in samples.items()}


async def _bare(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


def _without_middleware(app: FastAPI) -> FastAPI:
    ours: Any = ObservabilityMiddleware
    app.user_middleware = [m for m in app.user_middleware if m.cls is not ours]
    return app


async def _real(requests: int) -> list[tuple[str, dict[str, float]]]:
    folder = Path(tempfile.mkdtemp(prefix="aiprod-bench-"))
    settings = Settings(
        _env_file=None,
        data_dir=folder,
        workers=0,
        secret_key="bench-signing-key-" + "x" * 32,
        rate_limits_enabled=False,
        api_key_rotation_check_seconds=0,
        retention_check_seconds=0,
    )
    with_mw = create_app(settings)
    without = _without_middleware(create_app(settings))
    async with with_mw.router.lifespan_context(with_mw), without.router.lifespan_context(without):
        identity = with_mw.state.identity
        password = "bench password long enough"
        await identity.create_user("bench@example.com", password, role="user")
        transport = httpx.ASGITransport(app=with_mw)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            r = await client.post(
                "/v1/auth/login", json={"email": "bench@example.com", "password": password}
            )
            token = r.json()["access_token"]
            auth = {"Authorization": f"Bearer {token}"}
            r = await client.post("/v1/productions", json={"prompt": "Bees."}, headers=auth)
            job_id = r.json()["job"]["id"]
        bearer = [(b"authorization", f"Bearer {token}".encode())]
        sides: dict[str, Asgi] = {"without": without, "with": with_mw}
        return [
            ("GET /health/live", await _compare(sides, "/health/live", [], requests)),
            (
                "GET /v1/productions/{id} (bearer)",
                await _compare(sides, f"/v1/productions/{job_id}", bearer, requests // 4),
            ),
        ]


async def main(requests: int) -> None:
    with open(os.devnull, "w") as sink:
        logs.configure("json", "info", sink)
        bare = await _compare(
            {
                "bare": _bare,
                "metrics": ObservabilityMiddleware(_bare, access=False),
                "metrics+log": ObservabilityMiddleware(_bare, access=True),
            },
            "/x",
            [],
            requests,
        )
        print(f"median CPU µs per request ({requests} requests a side, blocks of {BLOCK})")
        print(
            f"  bare ASGI app            {bare['bare']:8.1f}   + metrics {bare['metrics']:8.1f}"
            f"   + metrics and JSON access line {bare['metrics+log']:8.1f}"
        )
        print(
            f"  middleware cost          metrics {bare['metrics'] - bare['bare']:6.1f}"
            f"   metrics and log {bare['metrics+log'] - bare['bare']:6.1f}"
        )
        for name, result in await _real(requests):
            extra = result["with"] - result["without"]
            print(
                f"  {name:33s} without {result['without']:8.1f}   with {result['with']:8.1f}"
                f"   (+{extra:.1f}, {extra / result['without'] * 100:.1f} %)"
            )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=4000)
    asyncio.run(main(parser.parse_args().requests))
