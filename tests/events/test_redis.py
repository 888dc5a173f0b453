"""Redis pub/sub between "processes" (a live server and a separate writer with
its own engine and publisher), and the fall back to the database when Redis
dies: no event is lost, none is duplicated, order holds."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from tests.events.conftest import (
    Live,
    RedisServer,
    collect,
    make_settings,
    recv,
    seqs,
    serve,
    ws_connect,
)
from tests.events.helpers import WORKER, foreign_writer, play_stages


async def _wait_mode(live: Live, mode: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while live.bus.mode() != mode:
        if time.monotonic() > deadline:
            pytest.fail(f"the bus stayed in {live.bus.mode()} mode, expected {mode}")
        await asyncio.sleep(0.05)


async def test_redis_carries_another_process_events(
    tmp_path: Path, sqlite_url: str, redis_url: str
) -> None:
    # The database safety net runs once a minute here: only Redis can be fast.
    settings = make_settings(tmp_path, sqlite_url, redis_url=redis_url, events_reconcile_seconds=60)
    async with serve(settings) as live:
        await _wait_mode(live, "redis")
        _, headers = await live.account()
        job_id = await live.submit(headers)
        ticket = await live.ticket(headers)
        async with await ws_connect(
            f"{live.ws_base}/v1/productions/{job_id}/ws?ticket={ticket}"
        ) as ws:
            assert (await recv(ws))["type"] == "subscribed"
            await collect(ws, count=1)
            async with foreign_writer(settings, redis_url=redis_url) as other:
                assert await other.claim(WORKER) is not None
                await play_stages(other, job_id)
                got = await collect(ws, until={"stage.completed"}, count=16, timeout=20)
        assert seqs(got) == list(range(2, 2 + len(got)))
        assert live.bus.reconciled == 0  # Redis brought them all


async def test_redis_dying_mid_job_loses_nothing(
    tmp_path: Path, database_url: str, private_redis: RedisServer
) -> None:
    settings = make_settings(
        tmp_path, database_url, redis_url=private_redis.url, events_reconcile_seconds=60
    )
    async with serve(settings) as live:
        await _wait_mode(live, "redis")
        _, headers = await live.account()
        job_id = await live.submit(headers)
        ticket = await live.ticket(headers)
        async with (
            await ws_connect(f"{live.ws_base}/v1/productions/{job_id}/ws?ticket={ticket}") as ws,
            foreign_writer(settings, redis_url=private_redis.url) as other,
        ):
            assert await other.claim(WORKER) is not None
            await play_stages(other, job_id, stages=("plan",))
            before = await collect(ws, until={"stage.completed"})
            private_redis.stop()
            await play_stages(other, job_id, stages=("narrate",))
            during = await collect(ws, until={"stage.completed"})
            fallback = "listen" if live.bus.postgres else "poll"
            assert live.bus.mode() == fallback
            private_redis.start()  # same port: the bus finds it again
            await _wait_mode(live, "redis")
            await play_stages(other, job_id, stages=("visuals",))
            after = await collect(ws, until={"stage.completed"})
        got = before + during + after
        log = await live.log(headers, job_id)
        assert seqs(got) == [e["seq"] for e in log] == list(range(1, len(log) + 1))
