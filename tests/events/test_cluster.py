"""Across processes, over real sockets: two `aiprod serve --workers 0` API
processes, one `aiprod worker` process, Redis.  Jobs are submitted to API A
and watched on API B, so every event crosses a process boundary.

* every event of a production arrives in order at the other API process;
* a client that disconnects mid-job and reconnects with its last sequence
  number gets exactly the missing events;
* 200 concurrent WebSocket clients on one job all receive all events;
* stopping Redis mid-job loses no event (SQLite: polling; PostgreSQL:
  LISTEN/NOTIFY), for a client that stays connected and for one that
  reconnects to the other API process;
* another user's job cannot be subscribed to.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.e2e.test_http import Server
from tests.events.conftest import RedisServer, collect, free_port, recv, seqs, ws_connect
from tests.jobs.conftest import db_url, pg_database  # noqa: F401  (fixtures)
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

PASSWORD = "a long enough cluster password"
SCRIPT = "Honeybees leave the hive at dawn.\n\nBack home, the nectar becomes honey."
DONE = {"job.completed", "job.failed", "job.cancelled"}
JOB_TIMEOUT = 240.0


class Worker:
    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env = env
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        out = self.log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "aiprod.cli", "worker", "--concurrency", "2"],
            env=self.env,
            stdout=out,
            stderr=out,
        )

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@dataclass
class Cluster:
    a: Server
    b: Server
    worker: Worker
    tokens: dict[str, str]
    logs: Path

    def ws(self, server: Server, path: str) -> str:
        return f"ws://127.0.0.1:{server.port}{path}"

    def headers(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}

    def submit(self, who: str = "alice", **extra: Any) -> str:
        body = {
            "script": SCRIPT,
            "resolution": "480p",
            "fps": 24,
            "preset": "quick_social",
            "music": None,
            **extra,
        }
        r = httpx.post(f"{self.a.base}/v1/productions", json=body, headers=self.headers(who))
        assert r.status_code == 202, r.text
        return str(r.json()["job"]["id"])

    async def log(self, job_id: str, who: str = "alice") -> list[dict[str, Any]]:
        """The job's event log (polling API of process A) once it is finished."""
        async with httpx.AsyncClient(base_url=self.a.base, headers=self.headers(who)) as c:
            deadline = time.monotonic() + JOB_TIMEOUT
            while True:
                r = await c.get(f"/v1/productions/{job_id}/events", params={"limit": 1000})
                items: list[dict[str, Any]] = r.json()["items"]
                if items and items[-1]["type"] in DONE:
                    return items
                if time.monotonic() > deadline:
                    pytest.fail(f"job did not finish: {[e['type'] for e in items]}")
                await asyncio.sleep(0.3)

    def output(self) -> str:
        parts = []
        for name in ("a.log", "b.log", "worker.log"):
            path = self.logs / name
            if path.exists():
                parts.append(f"--- {name}\n" + path.read_text(errors="replace")[-3000:])
        return "\n".join(parts)


def start_cluster(tmp: Path, database_url: str, redis_url: str) -> Cluster:
    env = {
        **os.environ,
        "AIPROD_DATABASE_URL": database_url,
        "AIPROD_DATA_DIR": str(tmp / "data"),
        "AIPROD_STORAGE_URL": str(tmp / "store"),
        "AIPROD_SECRET_KEY": "cluster-test-signing-key-" + "y" * 32,
        "AIPROD_REDIS_URL": redis_url,
        "AIPROD_EVENTS_CHANNEL": f"aiprod:test:{uuid.uuid4().hex[:12]}",
        "AIPROD_EVENTS_POLL_SECONDS": "0.1",
        "AIPROD_EVENTS_RECONCILE_SECONDS": "2",
        "AIPROD_WORKERS": "0",
        "AIPROD_LEASE_SECONDS": "10",
        "AIPROD_HEARTBEAT_SECONDS": "0.5",
        "AIPROD_POLL_SECONDS": "0.2",
        "AIPROD_WEBHOOKS_ENABLED": "false",
    }
    for email in ("alice@example.com", "bob@example.com"):
        created = subprocess.run(
            [sys.executable, "-m", "aiprod.cli", "users", "create", email, "--password-stdin"],
            input=f"{PASSWORD}\n".encode(),
            env=env,
            capture_output=True,
            timeout=120,
        )
        assert created.returncode == 0, created.stderr.decode()
    a = Server({**env, "AIPROD_PORT": str(free_port())}, tmp / "a.log")
    b = Server({**env, "AIPROD_PORT": str(free_port())}, tmp / "b.log")
    worker = Worker(env, tmp / "worker.log")
    a.start()
    b.start()
    worker.start()
    tokens = {}
    for who in ("alice", "bob"):
        r = httpx.post(
            f"{a.base}/v1/auth/login", json={"email": f"{who}@example.com", "password": PASSWORD}
        )
        assert r.status_code == 200, r.text
        tokens[who] = r.json()["access_token"]
    return Cluster(a, b, worker, tokens, tmp)


def stop_cluster(cluster: Cluster) -> None:
    cluster.worker.stop()
    cluster.a.stop()
    cluster.b.stop()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    from tests.events.conftest import REDIS_URL, _redis_ping, in_ci

    problem = _redis_ping(REDIS_URL)
    if problem is not None:
        if in_ci():
            pytest.fail(f"Redis at {REDIS_URL} is unreachable ({problem}); CI=true needs it")
        pytest.skip(f"Redis at {REDIS_URL} is unreachable ({problem})")
    tmp = tmp_path_factory.mktemp("cluster")
    c = start_cluster(tmp, f"sqlite+aiosqlite:///{tmp / 'cluster.db'}", REDIS_URL)
    try:
        yield c
    finally:
        stop_cluster(c)


async def auth(ws: ClientConnection, token: str, **extra: Any) -> dict[str, Any]:
    await ws.send(json.dumps({"type": "auth", "token": token, **extra}))
    hello = await recv(ws, timeout=20)
    assert hello["type"] == "subscribed", hello
    return hello


async def follow(
    cluster: Cluster, server: Server, job_id: str, after: int = 0, who: str = "alice"
) -> list[dict[str, Any]]:
    url = cluster.ws(server, f"/v1/productions/{job_id}/ws")
    async with await ws_connect(url) as ws:
        await auth(ws, cluster.tokens[who], after=after)
        return await collect(ws, until=DONE, timeout=JOB_TIMEOUT)


def assert_exact(got: list[dict[str, Any]], log: list[dict[str, Any]], cluster: Cluster) -> None:
    """Every event of the log, once, in order, with the same type."""
    assert seqs(got) == [e["seq"] for e in log] == list(range(1, len(log) + 1)), cluster.output()
    assert [m["type"] for m in got] == [e["type"] for e in log]
    assert log[-1]["type"] == "job.completed", cluster.output()


async def test_every_event_arrives_in_order_at_the_other_api_process(cluster: Cluster) -> None:
    job_id = cluster.submit()
    got = await follow(cluster, cluster.b, job_id)
    log = await cluster.log(job_id)
    assert_exact(got, log, cluster)
    stages = [m["data"]["stage"] for m in got if m["type"] == "stage.completed"]
    assert stages == ["plan", "narrate", "visuals", "music", "montage", "qa"]


async def test_reconnecting_with_the_last_seq_gets_exactly_the_missing_events(
    cluster: Cluster,
) -> None:
    job_id = cluster.submit()
    url = cluster.ws(cluster.b, f"/v1/productions/{job_id}/ws")
    async with await ws_connect(url) as ws:
        await auth(ws, cluster.tokens["alice"])
        first = await collect(ws, until={"stage.completed"}, timeout=JOB_TIMEOUT)
    last = first[-1]["seq"]
    # Events go on while nobody listens: wait until some were missed.
    async with httpx.AsyncClient(base_url=cluster.a.base, headers=cluster.headers("alice")) as c:
        deadline = time.monotonic() + JOB_TIMEOUT
        while True:
            r = await c.get(f"/v1/productions/{job_id}/events", params={"after": last})
            assert r.status_code == 200, r.text
            if r.json()["items"]:
                break
            assert time.monotonic() < deadline, "no event after the disconnect"
            await asyncio.sleep(0.1)
    # Back, on the other process this time, with a ticket from the first.
    r = httpx.post(f"{cluster.a.base}/v1/ws-ticket", headers=cluster.headers("alice"))
    ticket = r.json()["ticket"]
    url = cluster.ws(cluster.b, f"/v1/productions/{job_id}/ws?after={last}&ticket={ticket}")
    async with await ws_connect(url) as ws:
        hello = await recv(ws)
        assert hello["after"] == last
        rest = await collect(ws, until=DONE, timeout=JOB_TIMEOUT)
    assert rest[0]["seq"] == last + 1
    assert_exact(first + rest, await cluster.log(job_id), cluster)


async def test_200_clients_on_one_job_all_receive_every_event(cluster: Cluster) -> None:
    job_id = cluster.submit()
    token = cluster.tokens["alice"]

    async def client(i: int) -> list[dict[str, Any]]:
        server = cluster.a if i % 2 else cluster.b
        url = cluster.ws(server, f"/v1/productions/{job_id}/ws")
        async with await ws_connect(url) as ws:
            await auth(ws, token)
            return await collect(ws, until=DONE, timeout=JOB_TIMEOUT)

    results = await asyncio.gather(*(client(i) for i in range(200)))
    log = await cluster.log(job_id)
    for got in results:
        assert_exact(got, log, cluster)


async def test_another_users_job_cannot_be_subscribed(cluster: Cluster) -> None:
    job_id = cluster.submit(who="alice", title="alice's")
    refusals = []
    for target in (job_id, str(uuid.uuid4())):
        url = cluster.ws(cluster.b, f"/v1/productions/{target}/ws")
        ws = await ws_connect(url)
        await ws.send(json.dumps({"type": "auth", "token": cluster.tokens["bob"]}))
        error = await recv(ws)
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), timeout=10)
        assert closed.value.rcvd is not None
        refusals.append(
            (error["code"], error["message"].replace(target, "?"), closed.value.rcvd.code)
        )
    assert refusals[0] == refusals[1] == ("not_found", "production ? not found", 4404)
    # Bob's user stream never carries Alice's events.
    url = cluster.ws(cluster.b, "/v1/ws")
    async with await ws_connect(url) as ws:
        await auth(ws, cluster.tokens["bob"], jobs={job_id: 0})
        msg = await recv(ws)
        assert msg["type"] == "error" and msg["code"] == "not_found"
        mine = cluster.submit(who="bob", title="bob's")
        first = await collect(ws, count=1, timeout=60)
        assert first[0]["job_id"] == mine
    await cluster.log(job_id)  # let it finish before the cluster moves on
    await cluster.log(mine, who="bob")


async def test_stopping_redis_mid_job_loses_no_event(
    tmp_path: Path,
    db_url: str,  # noqa: F811
    private_redis: RedisServer,
) -> None:
    cluster = start_cluster(tmp_path, db_url, private_redis.url)
    try:
        job_id = cluster.submit()
        token = cluster.tokens["alice"]
        stays = await ws_connect(cluster.ws(cluster.b, f"/v1/productions/{job_id}/ws"))
        leaves = await ws_connect(cluster.ws(cluster.a, f"/v1/productions/{job_id}/ws"))
        async with stays, leaves:
            await auth(stays, token)
            await auth(leaves, token)
            early = await collect(stays, until={"stage.completed"}, timeout=JOB_TIMEOUT)
            private_redis.stop()  # mid-job: the plan is done, the rest is not
            gone = await collect(leaves, count=len(early), timeout=JOB_TIMEOUT)
            await leaves.close()
            late = await collect(stays, until=DONE, timeout=JOB_TIMEOUT)
        # The one that left resyncs by sequence number on the other process.
        back = await follow(cluster, cluster.b, job_id, after=gone[-1]["seq"])
        log = await cluster.log(job_id)
        assert_exact(early + late, log, cluster)
        assert_exact(gone + back, log, cluster)
    finally:
        stop_cluster(cluster)


def test_the_example_client_follows_a_production_to_the_end(cluster: Cluster) -> None:
    example = Path(__file__).resolve().parents[2] / "examples" / "live_progress.py"
    body = json.dumps({"script": SCRIPT, "resolution": "480p", "fps": 24, "preset": "quick_social"})
    run = subprocess.run(
        [
            *(sys.executable, str(example), "--base", cluster.b.base),
            *("--token", cluster.tokens["alice"], "--body", body),
        ],
        capture_output=True,
        text=True,
        timeout=JOB_TIMEOUT,
    )
    assert run.returncode == 0, run.stdout + run.stderr + cluster.output()
    lines = run.stdout.splitlines()
    assert lines[0].startswith("submitted ")
    assert "[  1]   0%  job.queued" in lines[1]
    assert lines[-1].endswith("completed: " + ", ".join(_deliverables(lines[-1])))
    assert "montage completed" in run.stdout


def _deliverables(line: str) -> list[str]:
    return line.rsplit("completed: ", 1)[1].split(", ")
