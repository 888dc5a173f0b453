"""What the rate-limit check adds to a request, in process and through Redis.

    .venv/bin/python bench/ratelimit.py [--n 2000] [--redis-url redis://127.0.0.1:6379/0]

Drives a bare ASGI app (it answers 200 at once) through
``aiprod.api.ratelimit.RateLimitMiddleware`` and without it, and prints the
median and 95th percentile microseconds per request of each, and the
difference: the check's own cost.  Each request presents a bearer credential,
so it counts under its address and its credential (two keys, as a
signed-in client's do); limits are set far above `n` so none is refused.
With a reachable Redis the same runs against it too.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from typing import Any

from aiprod.api.limiter import Limiter
from aiprod.api.ratelimit import RateLimitMiddleware
from aiprod.settings import Settings

HIGH = "100000000/minute"


async def _ok(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


def _scope(app: Any) -> dict[str, Any]:
    return {
        "type": "http",
        "method": "GET",
        "path": "/v1/me",
        "headers": [(b"authorization", b"Bearer bench-token-0123456789")],
        "client": ("192.0.2.7", 5000),
        "app": app,
    }


async def _receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _send(message: Any) -> None:
    return None


async def _times(asgi: Any, app: Any, n: int) -> list[float]:
    scope = _scope(app)
    for _ in range(50):  # warm up (connections, scripts)
        await asgi(dict(scope), _receive, _send)
    out = []
    for _ in range(n):
        start = time.perf_counter()
        await asgi(dict(scope), _receive, _send)
        out.append((time.perf_counter() - start) * 1e6)
    return out


def _line(label: str, samples: list[float]) -> str:
    q = statistics.quantiles(samples, n=20)
    return f"{label:34s} median {statistics.median(samples):8.1f} µs   p95 {q[18]:8.1f} µs"


async def _run(n: int, redis_url: str | None) -> None:
    bare = await _times(_ok, None, n)
    print(_line("no rate limits", bare))
    backends: list[tuple[str, str | None]] = [("in process (memory)", None)]
    if redis_url:
        backends.append((f"Redis {redis_url}", redis_url))
    for label, url in backends:
        settings = Settings(
            _env_file=None,
            redis_url=url,
            rate_limit_prefix=f"aiprod:bench:{uuid.uuid4().hex}",
            rate_limits=dict.fromkeys(("auth", "writes", "reads", "exports", "streams"), HIGH),
        )
        limiter = Limiter(settings)

        class State:
            rate_limiter = limiter

        class App:
            state = State()

        try:
            samples = await _times(RateLimitMiddleware(_ok), App(), n)
        finally:
            await limiter.close()
        if url is not None and limiter.backend != "redis":
            print(f"{label}: unreachable, skipped")
            continue
        print(_line(label, samples))
        added = statistics.median(samples) - statistics.median(bare)
        print(f"{'':34s} added by the check: {added:8.1f} µs per request (2 keys)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args()
    asyncio.run(_run(args.n, args.redis_url or None))


if __name__ == "__main__":
    main()
