"""`aiprod serve` on several processes: one port served by two API processes
and a worker process; a process that dies is replaced, SIGHUP replaces them
all without refusing a request, SIGTERM stops everything; sessions and
revocations hold across processes."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.test_http import Server, free_port

pytestmark = pytest.mark.xdist_group("processes")


def children(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        found |= {int(p) for p in text}
    return found


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def workers_of(pid: int) -> set[int]:
    """The supervisor's API and worker processes (not multiprocessing's tracker)."""
    return {c for c in children(pid) if "spawn_main" in _cmdline(c)}


def wait_for(check: object, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.2)
    pytest.fail("the supervisor did not get there in time")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    env = {
        **os.environ,
        "AIPROD_DATA_DIR": str(tmp_path / "data"),
        "AIPROD_PORT": str(free_port()),
        "AIPROD_PROCESSES": "2",
        "AIPROD_WORKERS": "1",
    }
    srv = Server(env, tmp_path / "server.log")
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


def _hammer(base: str, stop: threading.Event, statuses: list[int]) -> None:
    """Requests back to back on keep-alive connections.  A process that stops
    closes its idle connections, and a request sent at that moment meets the
    close: like a browser, the client sends such an idempotent request again
    at once, on a new connection.  A refusal on the new one counts as 0."""
    with httpx.Client(base_url=base, timeout=10) as client:
        while not stop.is_set():
            for attempt in (1, 2):
                try:
                    statuses.append(client.get("/health/live").status_code)
                    break
                except httpx.TransportError:
                    if attempt == 2:
                        statuses.append(0)


def test_two_api_processes_and_a_worker_are_supervised(server: Server) -> None:
    assert server.proc is not None
    sup = server.proc.pid
    wait_for(lambda: len(workers_of(sup)) == 3)  # two API processes, one worker
    # The worker lives in its own process and reports to readiness.
    wait_for(lambda: httpx.get(f"{server.base}/health/ready").status_code == 200)

    # A session opened through one process is honoured and revoked in all.
    email = "admin@localhost"
    password = next(
        line.split(":", 1)[1].strip()
        for line in server.log.read_text().splitlines()
        if line.startswith("one-time password:")
    )
    with httpx.Client(base_url=server.base, timeout=10) as client:
        token = client.post("/v1/auth/login", json={"email": email, "password": password}).json()
        headers = {"Authorization": f"Bearer {token['access_token']}"}
        # A connection each: the kernel hands them to either process.
        once = {**headers, "Connection": "close"}
        assert all(client.get("/v1/me", headers=once).status_code == 200 for _ in range(20))
        # One scrape of either API process counts the requests of both, and
        # the worker process's heartbeats.
        admin = client.post("/v1/auth/login", json={"email": email, "password": password})
        scrape = {"Authorization": f"Bearer {admin.json()['access_token']}"}
        text = client.get("/metrics", headers=scrape).text
        me = [
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("aiprod_http_requests_total{")
            and 'route="/v1/me"' in line
            and 'status="200"' in line
        ]
        assert sum(me) == 20, text[-3000:]
        beats = [
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("aiprod_worker_heartbeats_total")
        ]
        assert beats and beats[0] > 0  # counted in the worker process, which serves no scrape
        client.post("/v1/auth/revoke", json={}, headers=headers)
        assert {client.get("/v1/me", headers=headers).status_code for _ in range(20)} == {401}

    # A process killed outright is replaced.
    before = workers_of(sup)
    victim = min(before)
    os.kill(victim, signal.SIGKILL)
    wait_for(lambda: victim not in workers_of(sup) and len(workers_of(sup)) == 3)

    # SIGHUP: every process replaced, one at a time, and no request refused.
    statuses: list[int] = []
    stop = threading.Event()
    hammer = threading.Thread(target=_hammer, args=(server.base, stop, statuses))
    hammer.start()
    old = workers_of(sup)
    os.kill(sup, signal.SIGHUP)
    wait_for(lambda: not (workers_of(sup) & old) and len(workers_of(sup)) == 3, timeout=120)
    time.sleep(0.5)
    stop.set()
    hammer.join()
    assert statuses and set(statuses) == {200}, f"{len(statuses)} requests: {set(statuses)}"

    # SIGTERM: everything stops, nothing is left behind.
    last = workers_of(sup)
    server.stop()
    assert server.proc.returncode == 0, server.output()
    assert not any(Path(f"/proc/{pid}").exists() for pid in last)


def test_a_process_over_its_memory_bound_is_replaced(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "AIPROD_DATA_DIR": str(tmp_path / "data"),
        "AIPROD_PORT": str(free_port()),
        "AIPROD_PROCESSES": "2",
        "AIPROD_WORKERS": "0",
        "AIPROD_API_PROCESS_MAX_MB": "60",  # below what an API process needs
    }
    srv = Server(env, tmp_path / "server.log")
    srv.start()
    try:
        assert srv.proc is not None
        first = workers_of(srv.proc.pid)
        wait_for(lambda: not (workers_of(srv.proc.pid) & first))  # type: ignore[union-attr]
        assert "MiB resident, over its 60 MiB" in srv.log.read_text()
        assert httpx.get(f"{srv.base}/health/live").status_code == 200
    finally:
        srv.stop()
