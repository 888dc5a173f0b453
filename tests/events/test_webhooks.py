"""Webhooks against a local receiver on a real port: Standard Webhooks
signatures verify, failures are retried with backoff and recorded, replays
keep the message id, SSRF targets are refused."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from starlette.requests import Request
from starlette.responses import Response
from tests.events.conftest import Live, free_port, make_settings, serve
from tests.events.helpers import play_job


@dataclass
class Receiver:
    """Records every POST; `plan` decides each answer's status code."""

    port: int
    plan: Callable[[int], int] = lambda n: 200
    calls: list[dict[str, Any]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        body = await request.body()
        status = self.plan(len(self.calls) + 1)
        self.calls.append({"headers": dict(request.headers), "body": body, "status": status})
        await Response(b"nope" if status >= 300 else b"ok", status_code=status)(
            scope, receive, send
        )

    def of_type(self, type_: str) -> list[dict[str, Any]]:
        return [c for c in self.calls if json.loads(c["body"])["type"] == type_]


@contextlib.asynccontextmanager
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver(free_port())
    server = uvicorn.Server(
        uvicorn.Config(rec, host="127.0.0.1", port=rec.port, log_level="warning", lifespan="off")
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        yield rec
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


async def wait_for(check: Callable[[], Any], what: str, timeout: float = 20) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


@pytest.fixture
async def live(tmp_path: Path, database_url: str) -> AsyncIterator[Live]:
    async with serve(make_settings(tmp_path, database_url)) as s:
        yield s


async def test_signed_retried_recorded_and_replayed(live: Live) -> None:
    _, headers = await live.account()
    async with receiver() as rec:
        rec.plan = lambda n: 500 if n <= 2 else 200  # fails twice, then works
        r = await live.http.post(
            "/v1/webhooks",
            json={"url": rec.url, "event_types": ["job.completed"], "description": "ci"},
            headers=headers,
        )
        assert r.status_code == 201, r.text
        endpoint = r.json()
        secret = endpoint["secret"]
        assert secret.startswith("whsec_")
        job_id = await live.submit(headers)
        await play_job(live.jobs, job_id)

        await wait_for(lambda: len(rec.calls) >= 3, "three attempts")
        assert [c["status"] for c in rec.calls] == [500, 500, 200]
        ids = {c["headers"]["webhook-id"] for c in rec.calls}
        assert len(ids) == 1  # one message, three attempts
        last = rec.calls[-1]
        body = Webhook(secret).verify(last["body"], last["headers"])
        assert body["type"] == "job.completed"
        assert body["data"]["job_id"] == job_id and body["data"]["type"] == "job.completed"
        log = await live.log(headers, job_id)
        assert body["data"]["seq"] == log[-1]["seq"]
        with pytest.raises(WebhookVerificationError):
            Webhook("whsec_" + "A" * 32).verify(last["body"], last["headers"])

        async def succeeded() -> dict[str, Any] | None:
            r = await live.http.get(f"/v1/webhooks/{endpoint['id']}/deliveries", headers=headers)
            items = r.json()["items"]
            done = [d for d in items if d["status"] == "succeeded"]
            return done[0] if done else None

        delivery = await wait_for(succeeded, "the delivery to be recorded")
        assert delivery["attempts"] == 3
        assert delivery["last_status_code"] == 200 and delivery["last_error"] is None
        assert delivery["message_id"] == last["headers"]["webhook-id"]

        # Replay: the same message again, same id, new delivery record.
        r = await live.http.post(
            f"/v1/webhooks/{endpoint['id']}/deliveries/{delivery['id']}/replay", headers=headers
        )
        assert r.status_code == 202 and r.json()["replay_of"] == delivery["id"]
        await wait_for(lambda: len(rec.calls) >= 4, "the replay")
        replayed = rec.calls[3]
        assert replayed["headers"]["webhook-id"] == delivery["message_id"]
        assert Webhook(secret).verify(replayed["body"], replayed["headers"]) == body


async def test_failures_stop_after_max_attempts_and_only_chosen_types_go(
    tmp_path: Path, sqlite_url: str
) -> None:
    settings = make_settings(tmp_path, sqlite_url, webhook_max_attempts=2)
    async with serve(settings) as live, receiver() as rec:
        _, headers = await live.account()
        rec.plan = lambda n: 503
        r = await live.http.post(
            "/v1/webhooks",
            json={"url": rec.url, "event_types": ["job.queued", "job.started"]},
            headers=headers,
        )
        endpoint = r.json()
        job_id = await live.submit(headers)
        await play_job(live.jobs, job_id)

        async def failed() -> list[dict[str, Any]]:
            r = await live.http.get(f"/v1/webhooks/{endpoint['id']}/deliveries", headers=headers)
            return [d for d in r.json()["items"] if d["status"] == "failed"]

        done = await wait_for(lambda: _len_at_least(failed, 2), "two failed deliveries")
        assert {d["event_type"] for d in done} == {"job.queued", "job.started"}
        assert all(d["attempts"] == 2 and d["last_status_code"] == 503 for d in done)
        assert all(d["last_error"].startswith("HTTP 503") for d in done)
        assert {json.loads(c["body"])["type"] for c in rec.calls} == {"job.queued", "job.started"}
        assert len(rec.calls) == 4


async def _len_at_least(fetch: Callable[[], Any], n: int) -> list[dict[str, Any]] | None:
    items: list[dict[str, Any]] = await fetch()
    return items if len(items) >= n else None


async def test_private_targets_are_refused_unless_an_admin_allows_them(
    tmp_path: Path, sqlite_url: str
) -> None:
    settings = make_settings(tmp_path, sqlite_url, webhook_allow_private_networks=False)
    async with serve(settings) as live, receiver() as rec:
        _, user = await live.account()
        _, admin = await live.account("admin")
        for url in (
            rec.url,
            "http://localhost:9/x",
            "http://10.1.2.3/x",
            "http://169.254.169.254/latest/meta-data",
            "http://[::1]:8080/x",
            "http://[::ffff:127.0.0.1]/x",
            "http://0.0.0.0/",
        ):
            r = await live.http.post(
                "/v1/webhooks", json={"url": url, "event_types": ["*"]}, headers=user
            )
            assert r.status_code == 422, (url, r.text)
            assert r.json()["error"]["code"] == "ssrf_blocked", url
        for url in ("ftp://example.com/x", "http://user:pw@example.com/x", "/relative"):
            r = await live.http.post(
                "/v1/webhooks", json={"url": url, "event_types": ["*"]}, headers=user
            )
            assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_url", url
        r = await live.http.post(
            "/v1/webhooks", json={"url": rec.url, "event_types": ["job.nope"]}, headers=user
        )
        assert r.status_code == 422
        # Only an admin may allow private addresses, per endpoint.
        body = {"url": rec.url, "event_types": ["job.queued"], "allow_private": True}
        r = await live.http.post("/v1/webhooks", json=body, headers=user)
        assert r.status_code == 403
        r = await live.http.post("/v1/webhooks", json=body, headers=admin)
        assert r.status_code == 201, r.text
        await live.submit(admin)
        await wait_for(lambda: rec.calls, "the admin's delivery")
        # A public-looking endpoint whose address turns private is stopped at delivery.
        r = await live.http.post(
            "/v1/webhooks",
            json={"url": "http://93.184.215.14/x", "event_types": ["job.queued"]},
            headers=user,
        )
        assert r.status_code == 201, r.text
        hook = r.json()
        r = await live.http.patch(f"/v1/webhooks/{hook['id']}", json={"url": rec.url}, headers=user)
        assert r.status_code == 422 and r.json()["error"]["code"] == "ssrf_blocked"


async def test_endpoints_are_private_to_their_owner(live: Live) -> None:
    _, alice = await live.account()
    _, bob = await live.account()
    r = await live.http.post(
        "/v1/webhooks",
        json={"url": "https://hooks.example.com/a", "event_types": ["*"]},
        headers=alice,
    )
    hook = r.json()
    assert "secret" not in (await live.http.get("/v1/webhooks", headers=alice)).json()["items"][0]
    assert (await live.http.get("/v1/webhooks", headers=bob)).json()["items"] == []
    for method, path, body in (
        ("GET", f"/v1/webhooks/{hook['id']}", None),
        ("PATCH", f"/v1/webhooks/{hook['id']}", {"enabled": False}),
        ("DELETE", f"/v1/webhooks/{hook['id']}", None),
        ("GET", f"/v1/webhooks/{hook['id']}/deliveries", None),
        ("POST", f"/v1/webhooks/{hook['id']}/rotate-secret", None),
    ):
        r = await live.http.request(method, path, json=body, headers=bob)
        assert r.status_code == 404, (method, path, r.text)
    r = await live.http.post(f"/v1/webhooks/{hook['id']}/rotate-secret", headers=alice)
    assert r.status_code == 200 and r.json()["secret"] != hook["secret"]
    r = await live.http.patch(f"/v1/webhooks/{hook['id']}", json={"enabled": False}, headers=alice)
    assert r.json()["enabled"] is False
    r = await live.http.delete(f"/v1/webhooks/{hook['id']}", headers=alice)
    assert r.status_code == 204
    assert (await live.http.get(f"/v1/webhooks/{hook['id']}", headers=alice)).status_code == 404
