"""Rate limits on every route, by class, per address, credential and user.

In process (no Redis) and through Redis (two app instances share the
counts; a Redis that dies mid-way leaves the limits in force, counted in
process, and the app answers no 500).  Answers carry ``RateLimit-Policy`` and
``RateLimit`` (draft-ietf-httpapi-ratelimit-headers, structured fields); a
refusal is 429 ``rate_limited`` with ``Retry-After``.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import ValidationError

from aiprod.api import ratelimit
from aiprod.api.app import create_app
from aiprod.api.limiter import Limiter, window_state
from aiprod.api.ratelimit import classify
from aiprod.settings import Settings
from tests.api.conftest import PASSWORD, Api, running
from tests.conftest import base_settings
from tests.events.conftest import RedisServer

_RATE = re.compile(r'^"(?P<name>[a-z0-9-]+)";r=(?P<r>\d+);t=(?P<t>\d+)$')


def limited(tmp_path: Path, database_url: str, **limits: str) -> Settings:
    return base_settings(
        tmp_path,
        database_url,
        rate_limits=limits,
        api_key_rotation_check_seconds=0,
        retention_check_seconds=0,
    )


def rate(r: httpx.Response) -> tuple[str, int, int]:
    m = _RATE.match(r.headers["RateLimit"])
    assert m is not None, r.headers["RateLimit"]
    return m["name"], int(m["r"]), int(m["t"])


@asynccontextmanager
async def client(app: FastAPI, address: str = "127.0.0.1") -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=(address, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://aiprod.test") as c:
        yield c


async def bearer(api: Api, role: str = "user") -> tuple[uuid.UUID, dict[str, str]]:
    user = await api.user(role)
    return user.id, await api.headers(user)


# ----------------------------------------------------------------- classes


def test_every_route_has_the_class_its_kind_says() -> None:
    """Derived from the OpenAPI tags, independently of the path rules:
    exports, events (streams), auth POSTs, then reads or writes by method."""
    app = create_app(Settings(_env_file=None, data_dir=Path("/nonexistent")))  # type: ignore[call-arg]
    schema = app.openapi()
    for path, item in schema["paths"].items():
        for method, op in item.items():
            tags = set(op.get("tags", []))
            if "health" in tags:
                expected = None
            elif "exports" in tags:
                expected = "exports"
            elif "events" in tags:
                expected = "streams"
            elif "auth" in tags and method != "get":
                expected = "auth"
            else:
                expected = "reads" if method in ("get", "head") else "writes"
            concrete = re.sub(r"\{[^}]+\}", "x", path)
            assert classify(method.upper(), concrete) == expected, (method, path)
            assert op.get("x-aiprod-rate-limit") == expected, (method, path)
            if expected is not None:
                declared = op["responses"]["429"]
                assert {"Retry-After", "RateLimit", "RateLimit-Policy"} <= set(declared["headers"])
    assert classify("GET", "/v1/ws", websocket=True) == "streams"
    assert classify("GET", "/v1/productions/x/ws", websocket=True) == "streams"
    assert classify("GET", "/v1/nowhere") == "reads"  # unknown paths are limited too
    assert classify("DELETE", "/v1/nowhere") == "writes"


def test_a_bad_limit_refuses_to_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIPROD_RATE_LIMITS", raising=False)  # the suite's generous ones
    for bad in ({"reads": "lots"}, {"reads": "10/fortnight"}, {"uploads": "1/second"}):
        with pytest.raises(ValidationError):
            Settings(_env_file=None, rate_limits=bad)  # type: ignore[call-arg]
    good = Settings(_env_file=None, rate_limits={"reads": "5/second;100/hour"})  # type: ignore[call-arg]
    assert good.rate_limits["reads"] == "5/second;100/hour"
    assert good.rate_limits["auth"] == "10/minute"  # the others keep their defaults


@pytest.mark.parametrize(
    ("window", "expected"),
    [
        ((0, 0.0, 0, 0.0), (5, 0.0, 0.0)),  # nothing counted
        ((0, 0.0, 5, 90.0), (0, 90.0, 30.0)),  # full now: wait for the window to turn
        ((10, 45.0, 0, 0.0), (0, 45.0, 15.0)),  # 7.5 of the previous must fade below 5
        ((10, 30.0, 2, 90.0), (0, 90.0, 12.0)),  # 5 + 2: the previous fades below 3
    ],
)
def test_the_sliding_window_arithmetic(
    window: tuple[int, float, int, float], expected: tuple[int, float, float]
) -> None:
    remaining, whole, wait = window_state(*window, 60, 5)
    assert (remaining, whole) == expected[:2]
    assert wait == pytest.approx(expected[2])


# ---------------------------------------------------------------- in process


async def test_reads_past_the_limit_answer_429_with_the_headers(
    tmp_path: Path, database_url: str
) -> None:
    async with running(limited(tmp_path, database_url, reads="3/minute")) as api:
        _, headers = await bearer(api)
        answers = [await api.client.get("/v1/me", headers=headers) for _ in range(4)]
        assert [r.status_code for r in answers] == [200, 200, 200, 429]
        for r in answers:
            assert r.headers["RateLimit-Policy"] == '"reads";q=3;w=60'
        assert [rate(r)[1] for r in answers] == [2, 1, 0, 0]
        assert all(0 < rate(r)[2] <= 120 for r in answers)
        refused = answers[-1]
        assert 1 <= int(refused.headers["Retry-After"]) <= 60
        error = refused.json()["error"]
        assert error["code"] == "rate_limited"
        assert error["details"] == {"class": "reads", "key": "address", "limit": "3 per 60 s"}
        assert refused.headers["X-Request-ID"]  # refused at the edge, inside its headers
        # Another class has its own count.
        r = await api.client.post("/v1/cost-estimate", json={"prompt": "bees"}, headers=headers)
        assert r.status_code == 200 and rate(r)[0] == "writes"
        # Health probes are never limited.
        r = await api.client.get("/health/live")
        assert r.status_code == 200 and "RateLimit" not in r.headers


async def test_addresses_and_credentials_count_apart(tmp_path: Path, database_url: str) -> None:
    """Per address: two credentials from one address share its count.  Per
    credential: one credential from two addresses shares its count."""
    async with running(limited(tmp_path, database_url, reads="2/minute")) as api:
        _, one = await bearer(api)
        _, two = await bearer(api)
        async with client(api.app, "10.0.0.1") as a, client(api.app, "10.0.0.2") as b:
            assert (await a.get("/v1/me", headers=one)).status_code == 200
            assert (await a.get("/v1/me", headers=two)).status_code == 200
            r = await a.get("/v1/me", headers=two)
            assert r.status_code == 429 and r.json()["error"]["details"]["key"] == "address"
            # A refused request counts no further: `two` has made one request.
            # From the fresh 10.0.0.2 it makes its second, then its credential refuses.
            assert (await b.get("/v1/me", headers=two)).status_code == 200
            r = await b.get("/v1/me", headers=two)
            assert r.status_code == 429 and r.json()["error"]["details"]["key"] == "credential"
        # An IPv6 host counts by its /64.
        async with client(api.app, "2001:db8::1") as c, client(api.app, "2001:db8::2") as d:
            assert (await c.get("/health/ready")).status_code in (200, 503)
            assert (await c.get("/v1/presets", headers=one)).status_code in (200, 429)
            await d.get("/v1/nowhere")
            r = await d.get("/v1/nowhere")
            assert r.status_code == 429 and r.json()["error"]["details"]["key"] == "address"


async def test_auth_is_limited_before_any_password_is_checked(
    tmp_path: Path, database_url: str
) -> None:
    """Brute force meets the rate limit first (the login throttle is still
    behind it); the refused attempt is not even looked at: no audit event."""
    async with running(limited(tmp_path, database_url, auth="2/minute")) as api:
        user = await api.user()
        body = {"email": user.email, "password": PASSWORD}
        codes = [(await api.client.post("/v1/auth/login", json=body)).status_code for _ in range(3)]
        assert codes == [200, 200, 429]
        events = await api.identity.audit.query(_filter("login."), 100)
        assert len(events) == 2


def _filter(prefix: str) -> Any:
    from aiprod.identity.audit import AuditFilter

    return AuditFilter(event=prefix)


async def test_exports_and_tickets_are_limited_per_user(tmp_path: Path, database_url: str) -> None:
    """Two logins of one user from two addresses: separate credentials and
    addresses, one user, one count."""
    settings = limited(tmp_path, database_url, exports="2/minute", streams="2/minute")
    async with running(settings) as api:
        user = await api.user()
        first, second = await api.headers(user), await api.headers(user)
        missing = f"/v1/productions/{uuid.uuid4()}/export"
        async with client(api.app, "10.0.1.1") as a, client(api.app, "10.0.1.2") as b:
            assert (await a.get(missing, headers=first)).status_code == 404
            assert (await b.get(missing, headers=second)).status_code == 404
            r = await b.get(missing, headers=second)
            assert r.status_code == 429, r.text
            assert r.json()["error"]["details"] == {
                "class": "exports",
                "key": "user",
                "limit": "2 per 60 s",
            }
            assert rate(r)[1] == 0 and int(r.headers["Retry-After"]) >= 1
            assert (await a.post("/v1/ws-ticket", headers=first)).status_code == 201
            assert (await b.post("/v1/ws-ticket", headers=second)).status_code == 201
            r = await a.post("/v1/ws-ticket", headers=first)
            assert r.status_code == 429 and r.json()["error"]["details"]["key"] == "user"
            # Another user is not affected.
            _, other = await bearer(api)
            async with client(api.app, "10.0.1.3") as c:
                assert (await c.post("/v1/ws-ticket", headers=other)).status_code == 201


async def test_limits_switched_off(tmp_path: Path, database_url: str) -> None:
    settings = limited(tmp_path, database_url, reads="1/minute").model_copy(
        update={"rate_limits_enabled": False}
    )
    async with running(settings) as api:
        _, headers = await bearer(api)
        for _ in range(3):
            r = await api.client.get("/v1/me", headers=headers)
            assert r.status_code == 200 and "RateLimit" not in r.headers


async def test_a_failing_count_closes_auth_and_opens_the_rest(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running(limited(tmp_path, database_url)) as api:
        _, headers = await bearer(api)

        async def broken(self: Limiter, cls: str, kind: str, key: str) -> Any:
            raise RuntimeError("the counter broke")

        monkeypatch.setattr(Limiter, "check", broken)
        r = await api.client.post("/v1/auth/login", json={"email": "a@b.c", "password": "x" * 12})
        assert r.status_code == 503 and r.json()["error"]["code"] == "unavailable"
        assert r.headers["Retry-After"] == "1"
        assert (await api.client.get("/v1/me", headers=headers)).status_code == 200
        r = await api.client.get(f"/v1/productions/{uuid.uuid4()}/export", headers=headers)
        assert r.status_code == 404  # the per-user count fails open too, logged


async def test_a_websocket_handshake_past_the_limit_is_refused() -> None:
    """At the ASGI edge: an HTTP 429 where the server can send one, else a close."""
    settings = Settings(_env_file=None, rate_limits={"streams": "1/minute"})  # type: ignore[call-arg]
    reached = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        reached.append(scope["path"])

    class State:
        rate_limiter = Limiter(settings)

    class App:
        state = State()

    middleware = ratelimit.RateLimitMiddleware(app)
    cases = (({"websocket.http.response": {}}, 429, "192.0.2.1"), ({}, 1008, "192.0.2.2"))
    for extensions, expected, address in cases:
        sent: list[dict[str, Any]] = []

        async def send(message: dict[str, Any], sent: list[dict[str, Any]] = sent) -> None:
            sent.append(message)

        async def receive() -> dict[str, Any]:
            return {"type": "websocket.connect"}

        scope = {
            "type": "websocket",
            "path": "/v1/ws",
            "app": App(),
            "client": (address, 1),
            "headers": [],
            "extensions": extensions,
        }
        await middleware(scope, receive, send)  # the first handshake passes
        await middleware(scope, receive, send)
        if expected == 429:
            assert sent[0]["type"] == "websocket.http.response.start"
            assert sent[0]["status"] == 429
            names = {k.decode().lower() for k, _ in sent[0]["headers"]}
            assert {"retry-after", "ratelimit", "ratelimit-policy"} <= names
        else:
            assert sent == [{"type": "websocket.close", "code": 1008}]
    assert reached == ["/v1/ws", "/v1/ws"]  # one per scope: the first handshake of each


# --------------------------------------------------------------------- Redis


async def test_two_app_instances_share_the_counts_through_redis(
    tmp_path: Path, database_url: str, redis_url: str
) -> None:
    settings = limited(tmp_path, database_url, reads="4/minute").model_copy(
        update={"redis_url": redis_url, "rate_limit_prefix": f"aiprod:test:{uuid.uuid4().hex}"}
    )
    async with running(settings) as first:
        _, headers = await bearer(first)
        second = create_app(settings)
        async with second.router.lifespan_context(second), client(second) as other:
            assert second.state.rate_limiter.backend == "redis"
            codes = []
            for i in range(5):
                c = first.client if i % 2 == 0 else other
                codes.append((await c.get("/v1/me", headers=headers)).status_code)
            assert codes == [200, 200, 200, 200, 429]
            r = await other.get("/v1/me", headers=headers)
            assert r.status_code == 429 and rate(r)[1] == 0
            assert second.state.rate_limiter.backend == "redis"


async def test_a_redis_that_dies_leaves_the_limits_in_force(
    tmp_path: Path, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Counting moves to the process (a warning says so), auth stays limited,
    nothing answers 500; Redis back, counting goes back to it."""
    server = RedisServer(tmp_path / "redis")
    server.start()
    try:
        settings = limited(tmp_path, database_url, auth="3/minute", reads="100/minute")
        settings = settings.model_copy(update={"redis_url": server.url})
        async with running(settings) as api:
            limiter: Limiter = api.app.state.rate_limiter
            user = await api.user()
            body = {"email": user.email, "password": PASSWORD}
            assert (await api.client.post("/v1/auth/login", json=body)).status_code == 200
            assert limiter.backend == "redis"
            server.stop()
            with caplog.at_level(logging.WARNING, logger="aiprod.api.ratelimit"):
                codes = [
                    (await api.client.post("/v1/auth/login", json=body)).status_code
                    for _ in range(4)
                ]
            assert codes == [200, 200, 200, 429]  # in process, from a fresh count
            assert limiter.backend == "memory"
            assert any("Redis failed" in r.message for r in caplog.records)
            _, headers = await bearer_after_limit(api)
            assert (await api.client.get("/v1/presets", headers=headers)).status_code == 200
            server.start()
            limiter._redis_back_at = 0.0  # do not wait out the retry period
            r = await api.client.get("/v1/presets", headers=headers)
            assert r.status_code == 200
            assert limiter.backend == "redis"
    finally:
        server.stop()


async def bearer_after_limit(api: Api) -> tuple[uuid.UUID, dict[str, str]]:
    """A credential made without the login route (which the test exhausted)."""
    user = await api.user()
    pair = await api.identity.sessions.login(user.email, PASSWORD, _ctx())
    return user.id, {"Authorization": f"Bearer {pair.access_token}"}


def _ctx() -> Any:
    from aiprod.identity.audit import AuditContext

    return AuditContext(ip="127.0.0.1")


async def test_processes_counting_in_memory_each_enforce_their_share(tmp_path: Path) -> None:
    """`aiprod serve` with N processes and no Redis: each allows 1/N of a
    limit, so that together they allow about the configured rate."""
    settings = Settings(
        data_dir=tmp_path, rate_limits={"reads": "10/minute"}, rate_limit_processes=3
    )
    limiter = Limiter(settings)
    allowed = [(await limiter.check("reads", "ip", "198.51.100.7")).allowed for _ in range(6)]
    assert allowed == [True] * 4 + [False] * 2  # ceil(10 / 3) = 4 in this process
    assert [p.item.amount for p in limiter.policies["reads"]] == [10]  # Redis counts the whole
