"""WebSocket streams against a live server (real sockets), on SQLite and
PostgreSQL: authentication, origins, ownership, replay, resume, heartbeats,
live delivery from this process and from "another process"."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import pytest
from tests.events.conftest import (
    PASSWORD,
    Live,
    collect,
    make_settings,
    recv,
    seqs,
    serve,
    ws_connect,
)
from tests.events.helpers import foreign_writer, play_job, play_stages
from tests.jobs.conftest import make_request
from websockets.exceptions import ConnectionClosed, InvalidStatus

from aiprod.events import websocket as ws_module


@pytest.fixture
async def live(tmp_path: Path, database_url: str) -> Live:  # type: ignore[misc]
    async with serve(make_settings(tmp_path, database_url)) as server:
        yield server


async def _closed_with(ws: object, code: int) -> str:
    """Read until the server closes; return the reason after checking the code."""

    async def drain() -> None:
        for _ in range(10):
            await asyncio.wait_for(ws.recv(), timeout=10)  # type: ignore[attr-defined]

    with pytest.raises(ConnectionClosed) as info:
        await drain()
    assert info.value.rcvd is not None
    assert info.value.rcvd.code == code, info.value
    return str(info.value.rcvd.reason)


async def test_replays_then_streams_live_events_in_order(live: Live) -> None:
    _, headers = await live.account()
    job_id = await live.submit(headers)
    ticket = await live.ticket(headers)
    async with await ws_connect(f"{live.ws_base}/v1/productions/{job_id}/ws?ticket={ticket}") as ws:
        hello = await recv(ws)
        assert hello == {
            "v": 1,
            "type": "subscribed",
            "scope": "job",
            "job_id": job_id,
            "after": 0,
            "last_seq": 1,
        }
        first = await collect(ws, count=1)
        assert first[0]["type"] == "job.queued" and first[0]["seq"] == 1
        assert first[0]["data"]["reason"] == "submitted"
        await play_job(live.jobs, job_id)
        rest = await collect(ws, until={"job.completed"})
    got = first + rest
    log = await live.log(headers, job_id)
    assert seqs(got) == [e["seq"] for e in log] == list(range(1, len(log) + 1))
    assert [m["type"] for m in got] == [e["type"] for e in log]
    progress = next(m for m in got if m["type"] == "stage.progress")
    assert set(progress["data"]) == {"stage", "value", "total", "eta_seconds"}
    done = next(m for m in got if m["type"] == "stage.completed")
    assert done["data"]["artifacts"] == ["plan.json"]
    assert got[-1]["data"] == {"artifacts": ["video.mp4"]} and got[-1]["status"] == "completed"


async def test_events_written_by_another_process_arrive(live: Live) -> None:
    """No Redis here: the API finds another process's events through the
    database (NOTIFY on PostgreSQL, polling by sequence on SQLite)."""
    _, headers = await live.account()
    job_id = await live.submit(headers)
    async with await ws_connect(f"{live.ws_base}/v1/productions/{job_id}/ws") as ws:
        await ws.send(json.dumps({"type": "auth", "token": headers["Authorization"][7:]}))
        assert (await recv(ws))["type"] == "subscribed"
        async with foreign_writer(live.settings) as other:
            await play_job(other, job_id)
        got = await collect(ws, until={"job.completed"})
    log = await live.log(headers, job_id)
    assert seqs(got) == list(range(1, len(log) + 1))
    assert live.bus.mode() == ("listen" if live.bus.postgres else "poll")


async def test_after_and_resume_replay_exactly_the_missing_events(live: Live) -> None:
    _, headers = await live.account()
    job_id = await live.submit(headers)
    await live.jobs.claim("test-worker")
    await play_stages(live.jobs, job_id, stages=("plan",))
    token = headers["Authorization"][7:]
    async with await ws_connect(f"{live.ws_base}/v1/productions/{job_id}/ws?after=3") as ws:
        await ws.send(json.dumps({"type": "auth", "token": token}))
        assert (await recv(ws))["after"] == 3
        got = await collect(ws, until={"stage.completed"})
        assert seqs(got) == list(range(4, 8))
        # Ask again from 5: exactly 6 and 7 come back, then live ones.
        await ws.send(json.dumps({"type": "resume", "after": 5}))
        again = await collect(ws, count=2)
        assert seqs(again) == [6, 7]
        await ws.send(json.dumps({"type": "ping"}))
        assert (await collect(ws, count=1, skip=frozenset({"heartbeat"})))[0]["type"] == "pong"
        await play_stages(live.jobs, job_id, stages=("narrate",))
        live_events = await collect(ws, until={"stage.completed"})
        assert seqs(live_events) == list(range(8, 13))


async def test_first_message_auth_in_the_auth_message_can_carry_after(live: Live) -> None:
    _, headers = await live.account()
    job_id = await live.submit(headers)
    await live.jobs.claim("test-worker")
    async with await ws_connect(f"{live.ws_base}/v1/productions/{job_id}/ws") as ws:
        await ws.send(
            json.dumps({"type": "auth", "token": headers["Authorization"][7:], "after": 1})
        )
        assert (await recv(ws))["after"] == 1
        got = await collect(ws, count=1)
        assert got[0]["seq"] == 2 and got[0]["type"] == "job.started"


async def test_another_users_job_looks_exactly_like_a_missing_one(live: Live) -> None:
    _, alice = await live.account()
    _, bob = await live.account()
    _, admin = await live.account("admin")
    job_id = await live.submit(alice)
    missing = str(uuid.uuid4())
    answers = []
    for target in (job_id, missing, "not-a-uuid"):
        ticket = await live.ticket(bob)
        ws = await ws_connect(f"{live.ws_base}/v1/productions/{target}/ws?ticket={ticket}")
        error = await recv(ws)
        reason = await _closed_with(ws, 4404)
        answers.append(
            (
                error["code"],
                error["message"].replace(target, "<id>"),
                reason.replace(target, "<id>"),
            )
        )
    assert answers[0] == answers[1] == answers[2]
    assert answers[0][0] == "not_found"
    # SSE says the same: 404, as for any other route of the job.
    for target in (job_id, missing):
        r = await live.http.get(f"/v1/productions/{target}/events/stream", headers=bob)
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    # The owner and an admin may watch it.
    for headers in (alice, admin):
        ticket = await live.ticket(headers)
        async with await ws_connect(
            f"{live.ws_base}/v1/productions/{job_id}/ws?ticket={ticket}"
        ) as ws:
            assert (await recv(ws))["type"] == "subscribed"
            assert (await collect(ws, count=1))[0]["seq"] == 1


async def test_credentials_are_checked(live: Live, monkeypatch: pytest.MonkeyPatch) -> None:
    _, headers = await live.account()
    job_id = await live.submit(headers)
    url = f"{live.ws_base}/v1/productions/{job_id}/ws"
    # A bad token, a bad ticket, a used ticket, a first message that is no auth.
    ws = await ws_connect(url)
    await ws.send(json.dumps({"type": "auth", "token": "nope"}))
    assert (await recv(ws))["code"] == "unauthorized"
    await _closed_with(ws, 4401)
    ws = await ws_connect(f"{url}?ticket=wst_forged")
    assert (await recv(ws))["code"] == "unauthorized"
    await _closed_with(ws, 4401)
    ticket = await live.ticket(headers)
    async with await ws_connect(f"{url}?ticket={ticket}") as ok:
        assert (await recv(ok))["type"] == "subscribed"
    ws = await ws_connect(f"{url}?ticket={ticket}")  # single use
    assert "already used" in (await recv(ws))["message"]
    await _closed_with(ws, 4401)
    ws = await ws_connect(url)
    await ws.send(json.dumps({"type": "ping"}))
    assert (await recv(ws))["code"] == "unauthorized"
    await _closed_with(ws, 4401)
    # Silence: the server does not wait forever for credentials.
    monkeypatch.setattr(ws_module, "AUTH_TIMEOUT", 0.3)
    ws = await ws_connect(url)
    await _closed_with(ws, 4408)
    # Tickets need a bearer credential; they cannot be chained.
    r = await live.http.post("/v1/ws-ticket")
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"


async def test_a_credential_without_jobs_read_is_refused(
    live: Live, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, headers = await live.account()
    job_id = await live.submit(headers)
    ticket = await live.ticket(headers)
    monkeypatch.setattr(ws_module.auth, "may_read", lambda principal: False)
    ws = await ws_connect(f"{live.ws_base}/v1/productions/{job_id}/ws?ticket={ticket}")
    assert (await recv(ws))["code"] == "forbidden"
    await _closed_with(ws, 4403)


async def test_origins_are_checked(tmp_path: Path, sqlite_url: str) -> None:
    settings = make_settings(tmp_path, sqlite_url, allowed_origins=["https://studio.example"])
    async with serve(settings) as live:
        _, headers = await live.account()
        job_id = await live.submit(headers)
        url = f"{live.ws_base}/v1/productions/{job_id}/ws"
        with pytest.raises(InvalidStatus) as refused:
            await ws_connect(url, origin="https://evil.example")
        assert refused.value.response.status_code == 403
        assert json.loads(refused.value.response.body)["error"]["code"] == "forbidden"
        for origin in ("https://studio.example", live.base, None):
            ticket = await live.ticket(headers)
            async with await ws_connect(f"{url}?ticket={ticket}", origin=origin) as ws:
                assert (await recv(ws))["type"] == "subscribed"
        r = await live.http.get(
            f"/v1/productions/{job_id}/events/stream",
            headers={**headers, "Origin": "https://evil.example"},
        )
        assert r.status_code == 403


async def test_heartbeats_while_idle(tmp_path: Path, sqlite_url: str) -> None:
    async with serve(make_settings(tmp_path, sqlite_url, events_heartbeat_seconds=0.2)) as live:
        _, headers = await live.account()
        job_id = await live.submit(headers)
        ticket = await live.ticket(headers)
        async with await ws_connect(
            f"{live.ws_base}/v1/productions/{job_id}/ws?ticket={ticket}"
        ) as ws:
            types = [(await recv(ws))["type"] for _ in range(4)]
        assert types[:2] == ["subscribed", "job.queued"]
        assert types[2:] == ["heartbeat", "heartbeat"]


async def test_a_slow_consumer_is_told_to_resync_and_loses_nothing(
    tmp_path: Path, sqlite_url: str
) -> None:
    """A burst of 60 events in one transaction overflows a queue of 8: the
    stream drops its queue (memory stays bounded), says `resync`, and replays
    from the log, so the client still gets every event once, in order."""
    async with serve(make_settings(tmp_path, sqlite_url, events_queue_size=8)) as live:
        _, headers = await live.account()
        job_id = await live.submit(headers)
        ticket = await live.ticket(headers)
        async with await ws_connect(
            f"{live.ws_base}/v1/productions/{job_id}/ws?ticket={ticket}"
        ) as ws:
            await collect(ws, count=1)
            jid = uuid.UUID(job_id)
            async with live.jobs.db.transaction() as s:
                from aiprod.jobs.models import Job

                job = await s.get(Job, jid)
                assert job is not None
                for i in range(60):
                    await live.jobs._event(s, job, "job.storyboard_updated", {"scenes": i})
            got = await collect(ws, count=61, skip=frozenset({"heartbeat"}))
        assert got[0]["type"] == "resync" and got[0]["reason"] == "slow_consumer"
        assert seqs(got[1:]) == list(range(2, 62))
        assert live.bus.overflows >= 1


async def test_user_stream_carries_every_job_of_the_user_and_only_theirs(live: Live) -> None:
    _, alice = await live.account()
    _, bob = await live.account()
    ticket = await live.ticket(alice)
    async with await ws_connect(f"{live.ws_base}/v1/ws?ticket={ticket}") as ws:
        assert (await recv(ws)) == {
            "v": 1,
            "type": "subscribed",
            "scope": "user",
            "job_id": None,
            "after": None,
            "last_seq": None,
        }
        first = await live.submit(alice)
        await live.submit(bob)
        second = await live.submit(alice, prompt="A second production")
        got = await collect(ws, count=2)
        assert {(m["job_id"], m["seq"]) for m in got} == {(first, 1), (second, 1)}
        # Resume names jobs: another user's is refused like a missing one.
        bobs = await live.submit(bob, prompt="bob's")
        await ws.send(json.dumps({"type": "resume", "jobs": {first: 0, bobs: 0}}))
        again = await collect(ws, count=2)
        kinds = sorted((m["type"], m.get("job_id")) for m in again)
        assert kinds == [("error", bobs), ("job.queued", first)]


async def test_a_rolled_back_event_is_never_published(live: Live) -> None:
    _, headers = await live.account()
    job_id = await live.submit(headers)
    ticket = await live.ticket(headers)
    async with await ws_connect(f"{live.ws_base}/v1/productions/{job_id}/ws?ticket={ticket}") as ws:
        await collect(ws, count=1)
        from aiprod.jobs.models import Job

        async def write_then_fail() -> None:
            async with live.jobs.db.transaction() as s:
                job = await s.get(Job, uuid.UUID(job_id))
                assert job is not None
                await live.jobs._event(s, job, "job.storyboard_updated", {"scenes": 99})
                raise RuntimeError("rolled back")

        with pytest.raises(RuntimeError):
            await write_then_fail()
        await live.jobs.claim("test-worker")  # the next real event reuses seq 2
        got = await collect(ws, count=1)
    assert got[0]["seq"] == 2 and got[0]["type"] == "job.started"


async def test_user_stream_finds_another_process_events_in_the_database(live: Live) -> None:
    """No push from the writer (SQLite) or only NOTIFY (PostgreSQL): the user
    stream still gets the events of jobs it had never seen, in order."""
    owner, alice = await live.account()
    _, admin = await live.account("admin")
    tickets = [await live.ticket(alice), await live.ticket(admin)]
    async with (
        await ws_connect(f"{live.ws_base}/v1/ws?ticket={tickets[0]}") as mine,
        await ws_connect(f"{live.ws_base}/v1/ws?ticket={tickets[1]}") as everyone,
    ):
        assert (await recv(mine))["scope"] == "user"
        assert (await recv(everyone))["scope"] == "all"
        async with foreign_writer(live.settings) as other:
            job, _ = await other.create(owner.id, make_request(), None)
            await play_job(other, str(job.id), stages=("plan",))
        for ws in (mine, everyone):
            got = await collect(ws, until={"job.completed"})
            assert {m["job_id"] for m in got} == {str(job.id)}
            assert seqs(got) == list(range(1, len(got) + 1))


async def test_the_studios_session_cookie_opens_a_socket_from_its_own_origin(
    tmp_path: Path, sqlite_url: str
) -> None:
    """A browser signed in with the cookie needs no ticket; the Origin is
    checked first, and a revoked session stops opening sockets at once."""
    async with serve(make_settings(tmp_path, sqlite_url)) as live:
        user, headers = await live.account()
        job_id = await live.submit(headers)
        r = await live.http.post(
            "/v1/auth/session",
            json={"email": user.email, "password": PASSWORD},
            headers={"Origin": live.base},
        )
        assert r.status_code == 200, r.text
        cookie = {"Cookie": f"aiprod_session={live.http.cookies['aiprod_session']}"}
        url = f"{live.ws_base}/v1/productions/{job_id}/ws"
        async with await ws_connect(url, origin=live.base, additional_headers=cookie) as ws:
            assert (await recv(ws))["type"] == "subscribed"
            assert (await recv(ws))["type"] == "job.queued"
        with pytest.raises(InvalidStatus) as refused:
            await ws_connect(url, origin="https://evil.example", additional_headers=cookie)
        assert refused.value.response.status_code == 403
        await live.http.post("/v1/auth/revoke", json={}, headers=headers)
        ws = await ws_connect(url, origin=live.base, additional_headers=cookie)
        assert (await recv(ws))["code"] == "unauthorized"
        await _closed_with(ws, 4401)
