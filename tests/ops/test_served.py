"""As an operator runs it: `aiprod serve` (API only) and `aiprod worker`, two
processes sharing one metrics folder, each writing JSON log lines to its
stderr.  One production goes through; then

* a scrape of the API process shows what both processes did (its requests,
  the worker's heartbeats, stages and cache use), summed from the folder;
* every line of both processes is JSON; the access line of the submission
  carries the request id the client got back, and so do the worker's lines
  for that job;
* no secret (password, tokens, the API key, the webhook's secret, the scrape
  token) appears anywhere in what either process wrote.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.test_http import SCRIPT, create_user, free_port
from tests.ops.conftest import SCRAPE_TOKEN, parse, value

EMAIL = "ops@example.com"
PASSWORD = "a long enough ops password"


class Process:
    def __init__(self, args: list[str], env: dict[str, str], out: Path) -> None:
        self.out, self.err = out.with_suffix(".out"), out.with_suffix(".err")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "aiprod.cli", *args],
            env=env,
            stdout=self.out.open("wb"),
            stderr=self.err.open("wb"),
        )

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def lines(self) -> list[str]:
        return [x for x in self.err.read_text(errors="replace").splitlines() if x.strip()]

    def everything(self) -> str:
        return self.out.read_text(errors="replace") + self.err.read_text(errors="replace")


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[tuple[str, Process, Process]]:
    folder = tmp_path / "metrics"
    folder.mkdir(mode=0o700)
    token = tmp_path / "scrape.token"
    token.write_text(SCRAPE_TOKEN)
    env = {
        **os.environ,
        "AIPROD_DATA_DIR": str(tmp_path / "data"),
        "AIPROD_PORT": str(free_port()),
        "AIPROD_PROCESSES": "1",
        "AIPROD_LOG_FORMAT": "json",
        "AIPROD_METRICS_TOKEN_FILE": str(token),
        "AIPROD_HEARTBEAT_SECONDS": "0.5",
        "AIPROD_POLL_SECONDS": "0.2",
        "AIPROD_LEASE_SECONDS": "5",
        "AIPROD_WEBHOOK_ALLOW_PRIVATE_NETWORKS": "true",
        "AIPROD_WEBHOOK_RETRY_BASE_SECONDS": "0.2",
        "PROMETHEUS_MULTIPROC_DIR": str(folder),
    }
    env.pop("AIPROD_DATABASE_URL", None)  # the data folder's SQLite
    create_user(env, EMAIL, PASSWORD, "--role", "admin")
    api = Process(["serve", "--workers", "0"], env, tmp_path / "api")
    worker = Process(["worker", "--concurrency", "1"], env, tmp_path / "worker")
    base = f"http://127.0.0.1:{env['AIPROD_PORT']}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert api.proc.poll() is None, api.everything()[-4000:]
            try:
                if httpx.get(f"{base}/health/live", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, api.everything()[-4000:]
            time.sleep(0.2)
        yield base, api, worker
    finally:
        api.stop()
        worker.stop()


def wait_for(client: httpx.Client, job_id: str, timeout: float = 180) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        job: dict[str, Any] = client.get(f"/v1/productions/{job_id}").json()
        if job["status"] in ("completed", "failed", "cancelled"):
            return job
        assert time.monotonic() < deadline, job
        time.sleep(0.3)


@pytest.mark.slow
def test_two_processes_one_scrape_json_lines_and_no_secret(
    deployment: tuple[str, Process, Process],
) -> None:
    base, api, worker = deployment
    secrets = [PASSWORD, SCRAPE_TOKEN]
    with httpx.Client(base_url=base, timeout=30) as client:
        r = client.post("/v1/auth/login", json={"email": EMAIL, "password": PASSWORD})
        assert r.status_code == 200, r.text
        tokens = r.json()
        secrets += [tokens["access_token"], tokens["refresh_token"]]
        session = {"Authorization": f"Bearer {tokens['access_token']}"}
        r = client.post("/v1/api-keys", json={"name": "ops"}, headers=session)
        assert r.status_code == 201, r.text
        key = r.json()["secret"]
        secrets.append(key)
        r = client.post(
            "/v1/webhooks",
            json={"url": "http://127.0.0.1:9/hook", "event_types": ["job.completed"]},
            headers=session,
        )
        assert r.status_code == 201, r.text
        secrets.append(r.json()["secret"])

        client.headers["Authorization"] = f"Bearer {key}"
        body = {"script": SCRIPT, "resolution": "480p", "fps": 24, "preset": "quick_social"}
        r = client.post("/v1/productions", json=body)
        assert r.status_code == 202, r.text
        rid = r.headers["x-request-id"]
        job_id = r.json()["job"]["id"]
        job = wait_for(client, job_id)
        assert job["status"] == "completed", job

        scrape = httpx.get(
            f"{base}/metrics", headers={"Authorization": f"Bearer {SCRAPE_TOKEN}"}, timeout=30
        )
        assert scrape.status_code == 200, scrape.text
    samples = parse(scrape.text)

    # What the API process counted ...
    submit = {"method": "POST", "route": "/v1/productions", "status": "202"}
    assert value(samples, "aiprod_http_requests_total", **submit) == 1
    # ... and the worker process, in the same scrape.
    assert value(samples, "aiprod_worker_heartbeats_total") >= 1
    assert value(samples, "aiprod_job_events_total", type="job.completed") == 1
    for stage in ("plan", "narrate", "visuals", "montage"):
        assert value(samples, "aiprod_stage_duration_seconds_count", stage=stage) == 1, stage
    made = value(samples, "aiprod_stage_cache_units_total", stage="narrate", result="miss")
    assert made >= 1
    assert value(samples, "aiprod_workers_alive") == 1
    assert value(samples, "aiprod_jobs", status="queued", stage="") == 0

    api.stop()
    worker.stop()
    parsed: dict[str, list[dict[str, Any]]] = {}
    for name, proc in (("api", api), ("worker", worker)):
        parsed[name] = []
        for line in proc.lines():
            try:
                parsed[name].append(json.loads(line))
            except ValueError:
                pytest.fail(f"{name} wrote a line that is not JSON: {line!r}")
    submitted = [e for e in parsed["api"] if e.get("request_id") == rid]
    assert [e["message"] for e in submitted] == ["POST /v1/productions 202"]
    assert submitted[0]["logger"] == "aiprod.access" and submitted[0]["status"] == 202
    for_job = [e for e in parsed["worker"] if e.get("job_id") == job_id]
    assert len(for_job) >= 2, parsed["worker"]  # claimed ... completed
    assert all(e.get("request_id") == rid for e in for_job), for_job
    assert any("completed" in e["message"] for e in for_job)

    written = api.everything() + worker.everything()
    assert [s for s in secrets if s in written] == []
