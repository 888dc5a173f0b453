"""Resume positions and page sizes beyond 64 bits are invalid input (422, or a
clean `bad_request` on a WebSocket), not a 500 from deep inside a query."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from tests.events.conftest import Live, make_settings, recv, serve, ws_connect
from websockets.exceptions import ConnectionClosed

HUGE = 2**64
FAR = str(10**19)  # 20 digits, over 2^63-1


@pytest.fixture
async def live(tmp_path: Path, database_url: str) -> AsyncIterator[Live]:
    async with serve(make_settings(tmp_path, database_url)) as s:
        yield s


async def _closed_with(ws: object, code: int) -> None:
    async def drain() -> None:
        for _ in range(10):
            await asyncio.wait_for(ws.recv(), timeout=10)  # type: ignore[attr-defined]

    with pytest.raises(ConnectionClosed) as info:
        await drain()
    assert info.value.rcvd is not None and info.value.rcvd.code == code


async def test_http_resume_positions_and_page_sizes_are_bounded(live: Live) -> None:
    _, headers = await live.account()
    job_id = await live.submit(headers)
    stream = f"/v1/productions/{job_id}/events/stream"
    for params, extra in (({"after": str(HUGE)}, {}), ({}, {"Last-Event-ID": FAR})):
        r = await live.http.get(stream, params=params, headers={**headers, **extra})
        assert r.status_code == 422, (params, extra, r.status_code, r.text[:200])
    r = await live.http.post(
        "/v1/webhooks",
        json={"url": "https://hooks.example.com/x", "event_types": ["*"]},
        headers=headers,
    )
    hook = r.json()["id"]
    r = await live.http.get(
        f"/v1/webhooks/{hook}/deliveries", params={"limit": str(HUGE)}, headers=headers
    )
    assert r.status_code == 422, r.text
    schema = live.app.openapi()["paths"]["/v1/productions/{production_id}/events/stream"]
    [after] = [p for p in schema["get"]["parameters"] if p["name"] == "after"]
    assert after["schema"]["anyOf"][0]["maximum"] == 2**31 - 1


async def test_websocket_resume_positions_are_bounded(live: Live) -> None:
    _, headers = await live.account()
    job_id = await live.submit(headers)
    url = f"{live.ws_base}/v1/productions/{job_id}/ws"
    token = headers["Authorization"].removeprefix("Bearer ")
    # In the URL.
    ws = await ws_connect(f"{url}?after={FAR}&ticket={await live.ticket(headers)}")
    assert (await recv(ws))["code"] == "bad_request"
    await _closed_with(ws, 4400)
    # In the auth message, of a job stream and of a user stream.
    for where, first in (
        (url, {"type": "auth", "token": token, "after": HUGE}),
        (f"{live.ws_base}/v1/ws", {"type": "auth", "token": token, "jobs": {job_id: HUGE}}),
    ):
        ws = await ws_connect(where)
        await ws.send(json.dumps(first))
        refused = await recv(ws)
        assert refused["code"] == "bad_request", refused
        await _closed_with(ws, 4400)
    # In a resume message: refused, and the stream goes on.
    async with await ws_connect(f"{url}?ticket={await live.ticket(headers)}") as ws:
        assert (await recv(ws))["type"] == "subscribed"
        await ws.send(json.dumps({"type": "resume", "after": HUGE}))
        while (msg := await recv(ws))["type"] != "error":
            pass
        assert msg["code"] == "bad_request" and "unknown message" not in msg["message"]
        await ws.send(json.dumps({"type": "ping"}))
        while (await recv(ws))["type"] != "pong":
            pass
