"""Server-Sent Events against a live server: ids are sequence numbers,
Last-Event-ID resumes, the stream ends with the job, 204 stops EventSource."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.events.conftest import Live, make_settings, serve
from tests.events.helpers import play_job


@pytest.fixture
async def live(tmp_path: Path, database_url: str) -> AsyncIterator[Live]:
    async with serve(make_settings(tmp_path, database_url, events_heartbeat_seconds=0.3)) as s:
        yield s


async def sse_events(response: httpx.Response) -> AsyncIterator[dict[str, Any]]:
    """Parse a text/event-stream into {id, event, data, retry}."""
    fields: dict[str, Any] = {}
    async for line in response.aiter_lines():
        if line == "":
            if fields:
                yield fields
                fields = {}
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        fields[name] = value.removeprefix(" ")


async def read_stream(
    live: Live, job_id: str, headers: dict[str, str], *, params: dict[str, str] | None = None
) -> tuple[int, list[dict[str, Any]]]:
    """Read the whole stream (it ends after the job's last event)."""
    out: list[dict[str, Any]] = []

    async def run() -> int:
        async with live.http.stream(
            "GET", f"/v1/productions/{job_id}/events/stream", headers=headers, params=params
        ) as r:
            if r.status_code != 200:
                await r.aread()
                return r.status_code
            assert r.headers["content-type"].startswith("text/event-stream")
            assert r.headers["cache-control"] == "no-cache"
            async for ev in sse_events(r):
                out.append(ev)
            return r.status_code

    status = await asyncio.wait_for(run(), timeout=30)
    return status, out


async def test_stream_resume_and_end(live: Live) -> None:
    _, headers = await live.account()
    job_id = await live.submit(headers)
    events: list[dict[str, Any]] = []
    heartbeat = asyncio.Event()

    async def read() -> int:
        url = f"/v1/productions/{job_id}/events/stream"
        async with live.http.stream("GET", url, headers=headers) as r:
            assert r.headers["content-type"].startswith("text/event-stream")
            async for ev in sse_events(r):
                events.append(ev)
                if ev.get("event") == "heartbeat" and "id" not in ev:
                    heartbeat.set()
            return r.status_code

    reader = asyncio.create_task(asyncio.wait_for(read(), timeout=30))
    # The stream is open and idle: heartbeats flow.  Wait for one (bounded).
    beat = asyncio.create_task(heartbeat.wait())
    done, _ = await asyncio.wait({reader, beat}, timeout=10, return_when=asyncio.FIRST_COMPLETED)
    if reader in done:
        pytest.fail(f"the stream ended before a heartbeat: {reader.result()}, {events}")
    assert beat in done, f"no heartbeat within 10 s; got {events}"
    await play_job(live.jobs, job_id)
    status = await reader
    assert status == 200
    assert events[0] == {"retry": "2000"}
    job_events = [e for e in events if "id" in e]
    log = await live.log(headers, job_id)
    assert [int(e["id"]) for e in job_events] == [x["seq"] for x in log]
    assert [e["event"] for e in job_events] == [x["type"] for x in log]
    for e in job_events:
        data = json.loads(e["data"])
        assert data["seq"] == int(e["id"]) and data["type"] == e["event"]
        assert data["job_id"] == job_id
    assert job_events[-1]["event"] == "job.completed"

    # Reconnecting as EventSource does: only what comes after Last-Event-ID.
    status, again = await read_stream(live, job_id, {**headers, "Last-Event-ID": "3"})
    assert status == 200
    assert [int(e["id"]) for e in again if "id" in e] == [x["seq"] for x in log][3:]
    # Nothing left: 204 tells EventSource to stop reconnecting.
    last = str(log[-1]["seq"])
    status, _ = await read_stream(live, job_id, {**headers, "Last-Event-ID": last})
    assert status == 204
    status, _ = await read_stream(live, job_id, headers, params={"after": last})
    assert status == 204


async def test_stream_authentication(live: Live) -> None:
    _, headers = await live.account()
    job_id = await live.submit(headers)
    r = await live.http.get(f"/v1/productions/{job_id}/events/stream")
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    bad = {"Authorization": "Bearer nope"}
    r = await live.http.get(f"/v1/productions/{job_id}/events/stream", headers=bad)
    assert r.status_code == 401
    r = await live.http.get(
        f"/v1/productions/{job_id}/events/stream",
        headers={**headers, "Last-Event-ID": "x"},
    )
    assert r.status_code == 422

    ticket = await live.ticket(headers)
    await live.jobs.claim("test-worker")
    async with live.http.stream(
        "GET", f"/v1/productions/{job_id}/events/stream", params={"ticket": ticket}
    ) as stream:
        assert stream.status_code == 200
        seen = []
        async for ev in sse_events(stream):
            if "id" in ev:
                seen.append(ev["event"])
            if len(seen) == 2:
                break
    assert seen == ["job.queued", "job.started"]
    r = await live.http.get(f"/v1/productions/{job_id}/events/stream", params={"ticket": ticket})
    assert r.status_code == 401  # single use
