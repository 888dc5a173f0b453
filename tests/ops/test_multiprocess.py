"""Several processes, one set of metrics: prometheus-client's multiprocess
mode as ``aiprod serve --processes N`` sets it up (`prepare_multiprocess_dir`
before the processes start, `mark_process_dead` as they exit).  Real
processes write to one folder; the scrape sums them."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from prometheus_client import values

from aiprod.ops import metrics
from tests.ops.conftest import parse, value

CHILD = textwrap.dedent(
    """
    import os, sys
    from aiprod.ops import metrics
    for _ in range(int(sys.argv[1])):
        metrics.observe_request("GET", "/v1/productions/{production_id}", 200, 0.02)
        metrics.job_event("job.completed")
    metrics.worker_heartbeat()
    metrics.requests_in_progress().inc()  # left "in flight": a live gauge of this pid
    print(os.getpid())
    """
)


def run_child(folder: Path, count: int) -> int:
    env = {**os.environ, metrics.MULTIPROC_ENV: str(folder)}
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(count)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return int(done.stdout.strip())


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder prepared as the supervisor prepares it.  This test process
    stays in single-process mode: its environment and value class are put
    back afterwards."""
    monkeypatch.setenv(metrics.MULTIPROC_ENV, "")
    monkeypatch.setattr(values, "ValueClass", values.ValueClass)
    path = metrics.prepare_multiprocess_dir(tmp_path / "metrics")
    assert os.environ[metrics.MULTIPROC_ENV] == str(path)
    monkeypatch.setattr(values, "ValueClass", values.MutexValue)
    return path


def test_two_processes_are_summed_by_one_scrape(folder: Path) -> None:
    first = run_child(folder, 2)
    second = run_child(folder, 3)
    assert first != second
    assert {p.name for p in folder.iterdir()} >= {f"counter_{first}.db", f"counter_{second}.db"}

    samples = parse(metrics.exposition().decode())
    route = {"method": "GET", "route": "/v1/productions/{production_id}"}
    assert value(samples, "aiprod_http_requests_total", **route, status="200") == 5
    assert value(samples, "aiprod_http_request_duration_seconds_count", **route) == 5
    assert value(samples, "aiprod_http_request_duration_seconds_bucket", **route, le="0.025") == 5
    assert value(samples, "aiprod_job_events_total", type="job.completed") == 5
    assert value(samples, "aiprod_worker_heartbeats_total") == 2
    assert value(samples, "aiprod_http_requests_in_progress") == 2

    # One process exits: its live gauge leaves the sum, its counts stay.
    metrics.mark_process_dead(first)
    samples = parse(metrics.exposition().decode())
    assert value(samples, "aiprod_http_requests_in_progress") == 1
    assert value(samples, "aiprod_http_requests_total", **route, status="200") == 5


def test_the_folder_is_private_and_starts_empty(folder: Path) -> None:
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    run_child(folder, 1)
    assert any(folder.iterdir())
    # A new run starts from nothing: last run's samples are not summed in.
    metrics.prepare_multiprocess_dir(folder)
    assert list(folder.iterdir()) == []
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700


def test_a_folder_of_something_else_is_never_emptied(folder: Path, tmp_path: Path) -> None:
    other = tmp_path / "data"
    other.mkdir()
    (other / "aiprod.db").write_text("")
    (other / "secret.key").write_text("x")
    with pytest.raises(ValueError, match="not metrics"):
        metrics.prepare_multiprocess_dir(other)
    assert (other / "secret.key").exists()
