"""End to end over real HTTP: `aiprod serve` (uvicorn on a free port, embedded
worker) in a subprocess, driven with httpx like a user would, on SQLite and on
PostgreSQL.  Also: restarting the server loses no job."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from aiprod.production.media.probe import probe
from tests.jobs.conftest import db_url, pg_database  # noqa: F401  (fixtures)

EMAIL = "e2e@example.com"
PASSWORD = "a long enough e2e password"
SCRIPT = "Honeybees leave the hive at dawn.\n\nBack home, the nectar becomes honey."


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def create_user(env: dict[str, str], email: str, password: str, *options: str) -> None:
    """`aiprod users create` as an operator runs it (e.g. options "--role", "admin")."""
    command = [sys.executable, "-m", "aiprod.cli", "users", "create", email, *options]
    created = subprocess.run(
        [*command, "--password-stdin"],
        input=f"{password}\n".encode(),
        env=env,
        capture_output=True,
        timeout=120,
    )
    assert created.returncode == 0, created.stderr.decode()


class Server:
    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env = env
        self.log = log
        self.port = int(env["AIPROD_PORT"])
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        out = self.log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "aiprod.cli", "serve"], env=self.env, stdout=out, stderr=out
        )
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"server exited with {self.proc.returncode}:\n{self.output()}")
            try:
                if httpx.get(f"{self.base}/health/live", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        pytest.fail(f"server did not come up:\n{self.output()}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


@pytest.fixture
def server(db_url: str, tmp_path: Path) -> Iterator[Server]:  # noqa: F811
    env = {
        **os.environ,
        "AIPROD_DATABASE_URL": db_url,
        "AIPROD_DATA_DIR": str(tmp_path / "data"),
        "AIPROD_PORT": str(free_port()),
        "AIPROD_WORKERS": "1",
        "AIPROD_LEASE_SECONDS": "5",
        "AIPROD_HEARTBEAT_SECONDS": "0.5",
        "AIPROD_POLL_SECONDS": "0.2",
    }
    create_user(env, EMAIL, PASSWORD)
    srv = Server(env, tmp_path / "server.log")
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


def login(client: httpx.Client) -> None:
    r = client.post("/v1/auth/login", json={"email": EMAIL, "password": PASSWORD})
    assert r.status_code == 200, r.text
    client.headers["Authorization"] = f"Bearer {r.json()['access_token']}"


def submit(client: httpx.Client, **extra: Any) -> str:
    body = {
        "script": SCRIPT,
        "resolution": "480p",
        "fps": 24,
        "preset": "quick_social",
        "music": "calm",
        **extra,
    }
    r = client.post("/v1/productions", json=body)
    assert r.status_code == 202, r.text
    return str(r.json()["job"]["id"])


def follow(
    client: httpx.Client, job_id: str, until: set[str], timeout: float = 180
) -> list[dict[str, Any]]:
    """Read the event log like a client would, after the last sequence number."""
    events: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        after = events[-1]["seq"] if events else 0
        r = client.get(f"/v1/productions/{job_id}/events", params={"after": after})
        assert r.status_code == 200, r.text
        body = r.json()
        page = body["items"]
        events += page
        if any(e["type"] in until for e in events):
            return events
        time.sleep(0.3)
    pytest.fail(f"no {until} within {timeout}s; events: {[e['type'] for e in events]}")


def test_login_submit_follow_and_download(server: Server, tmp_path: Path) -> None:
    with httpx.Client(base_url=server.base, timeout=30) as client:
        login(client)
        job_id = submit(client)
        events = follow(client, job_id, {"job.completed", "job.failed"})
        types = [e["type"] for e in events]
        assert types[-1] == "job.completed", server.output()
        assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
        for stage in ("plan", "narrate", "visuals", "music", "montage", "qa"):
            assert {"stage": stage, "type": "stage.completed"} in [
                {"stage": e["payload"].get("stage"), "type": e["type"]} for e in events
            ]
        job = client.get(f"/v1/productions/{job_id}").json()
        assert job["status"] == "completed" and job["progress"] == 100

        names = {
            a["name"] for a in client.get(f"/v1/productions/{job_id}/artifacts").json()["items"]
        }
        assert {
            "video.mp4",
            "subtitles.srt",
            "subtitles.vtt",
            "poster.jpg",
            "manifest.json",
        } <= names
        r = client.get(f"/v1/productions/{job_id}/artifacts/video.mp4")
        assert r.status_code == 200 and r.headers["content-type"] == "video/mp4"
        video = tmp_path / "video.mp4"
        video.write_bytes(r.content)
        info = probe(video)
        assert (info.video_codec, info.audio_codec, info.width, info.height) == (
            "h264",
            "aac",
            854,
            480,
        )
        assert info.duration > 4
        part = client.get(
            f"/v1/productions/{job_id}/artifacts/video.mp4", headers={"Range": "bytes=0-99"}
        )
        assert part.status_code == 206 and part.content == r.content[:100]


def test_restarting_the_server_loses_no_job(server: Server) -> None:
    with httpx.Client(base_url=server.base, timeout=30) as client:
        login(client)
        running = submit(client, music=None)
        follow(client, running, {"stage.started"}, timeout=120)
        queued = submit(client, title="second")  # waits: one worker slot
    server.stop(signal.SIGTERM)
    server.start()
    with httpx.Client(base_url=server.base, timeout=30) as client:
        login(client)
        for job_id in (running, queued):
            events = follow(client, job_id, {"job.completed", "job.failed"}, timeout=240)
            assert events[-1]["type"] == "job.completed", server.output()
            plans = [
                e
                for e in events
                if e["type"] == "stage.started" and e["payload"].get("stage") == "plan"
            ]
            assert len(plans) == 1  # a checkpointed stage is never done twice
