"""Streaming a production's ZIP export: time and the server's peak memory.

A production of about ``--mb`` megabytes (a video of random bytes, so
nothing compresses, plus subtitles, poster and thumbnails) is stored the way
a worker stores it; ``aiprod serve`` (SQLite, local storage, no worker) runs
as a child process, and ``GET /v1/productions/{id}/export?format=zip`` is
downloaded over HTTP and thrown away.  Before each download the server's
peak-RSS counter is reset (``/proc/<pid>/clear_refs``); after it,
``VmHWM`` is the peak while streaming.  The same is measured for a small
production (``--small-mb``): if memory were proportional to the export, the
two peaks would differ by the difference in size.

Two ZIP paths are timed: artifacts whose CRC-32 the worker recorded (every
production made since exports exist: each file is read once), and
artifacts stored before that (the CRC is computed by reading the file once
more before its header is sent).

    .venv/bin/python bench/export.py               # 200 MB, 5 runs
    .venv/bin/python bench/export.py --mb 500 --runs 3

Linux only (``/proc``).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
import zlib
from pathlib import Path
from typing import Any

import httpx

SECRET_KEY = "bench-signing-key-" + "e" * 32
PASSWORD = "bench export password"
WORKER = "bench-worker"
MB = 1_000_000


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _random_file(path: Path, size: int) -> tuple[str, int, int]:
    """Write `size` random bytes; their SHA-256, size and CRC-32."""
    sha, crc, left = hashlib.sha256(), 0, size
    with path.open("wb") as f:
        while left:
            chunk = os.urandom(min(left, 8 << 20))
            f.write(chunk)
            sha.update(chunk)
            crc = zlib.crc32(chunk, crc)
            left -= len(chunk)
    return sha.hexdigest(), size, crc


async def _seed(data_dir: Path, sizes: list[int], scratch: Path) -> tuple[str, list[str]]:
    """A user and one completed production per (size, crc recorded?) pair."""
    from aiprod.db import migrate
    from aiprod.db.base import utcnow
    from aiprod.db.engine import Database
    from aiprod.identity import passwords
    from aiprod.identity.models import User
    from aiprod.jobs.service import JobService
    from aiprod.production.models import ProductionRequest
    from aiprod.settings import Settings
    from aiprod.storage.store import Storage

    settings = Settings(_env_file=None, data_dir=data_dir, secret_key=SECRET_KEY)
    data_dir.mkdir(parents=True, exist_ok=True)
    await migrate.upgrade_async(settings.sqlalchemy_url)
    db = Database(settings.sqlalchemy_url)
    storage = Storage(settings.artifact_url)
    email = f"bench-{secrets.token_hex(4)}@example.com"
    try:
        user = User(
            id=uuid.uuid4(),
            email=email,
            password_hash=passwords.hash_password(PASSWORD),
            role="user",
            is_active=True,
            created_at=utcnow(),
            updated_at=utcnow(),
        )
        async with db.transaction() as s:
            s.add(user)
        service = JobService(db, settings)
        request = ProductionRequest.model_validate({"prompt": "How honeybees make honey"})
        ids = []
        for size in sizes:
            for record_crc in (True, False):
                job, _ = await service.create(user.id, request, None)
                claimed = await service.claim(WORKER)
                assert claimed is not None and claimed.id == job.id
                files = {
                    "video.mp4": size - 300_000,
                    "poster.jpg": 150_000,
                    "thumbs/thumb_000.jpg": 50_000,
                    "thumbs/thumb_001.jpg": 50_000,
                    "thumbs/thumb_002.jpg": 50_000,
                    "subtitles.srt": 2_000,
                }
                rows: list[dict[str, Any]] = []
                for name, n in files.items():
                    path = scratch / "file.bin"
                    sha, n, crc = _random_file(path, n)
                    key = f"jobs/{job.id}/{name}"
                    await storage.put_file(key, path)
                    row: dict[str, Any] = {"name": name, "key": key, "sha256": sha, "bytes": n}
                    if record_crc:
                        row["crc32"] = crc
                    rows.append(row)
                await service.save_checkpoint(job.id, WORKER, "montage", rows)
                await service.complete(job.id, WORKER, {"passed": True, "checks": []}, list(files))
                ids.append(str(job.id))
        return email, ids
    finally:
        await db.dispose()


def _status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of a process, in bytes."""
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = int(value.split()[0]) * 1024
    return found


def _download(client: httpx.Client, url: str) -> int:
    got = 0
    with client.stream("GET", url) as r:
        r.raise_for_status()
        for chunk in r.iter_raw(1 << 20):
            got += len(chunk)
        assert got == int(r.headers["content-length"])
    return got


def _measure(pid: int, client: httpx.Client, job_id: str, runs: int) -> dict[str, Any]:
    url = f"/v1/productions/{job_id}/export?format=zip"
    times, peaks, befores, size = [], [], [], 0
    for _ in range(runs):
        before = _status(pid)["VmRSS"]
        Path(f"/proc/{pid}/clear_refs").write_text("5")  # VmHWM := VmRSS
        t = time.perf_counter()
        size = _download(client, url)
        times.append(time.perf_counter() - t)
        peaks.append(_status(pid)["VmHWM"])
        befores.append(before)
    return {"size": size, "times": times, "peak": max(peaks), "before": min(befores)}


def _report(label: str, m: dict[str, Any]) -> None:
    t = m["times"]
    median = statistics.median(t)
    print(
        f"  {label}: archive {m['size'] / MB:.1f} MB; median {median:.2f} s "
        f"(min {min(t):.2f}, max {max(t):.2f}) = {m['size'] / MB / median:.0f} MB/s; "
        f"server RSS {m['before'] / MB:.0f} MB before, peak {m['peak'] / MB:.0f} MB "
        f"(+{(m['peak'] - m['before']) / MB:.1f} MB)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=int, default=200, help="size of the big production (MB)")
    parser.add_argument("--small-mb", type=int, default=20, help="size of the small one (MB)")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="aiprod-bench-export-") as tmp:
        folder = Path(tmp)
        data = folder / "data"
        sizes = [args.mb * MB, args.small_mb * MB]
        email, (big, big_legacy, small, _) = asyncio.run(_seed(data, sizes, folder))
        port = _free_port()
        env = {
            **os.environ,
            "AIPROD_DATA_DIR": str(data),
            "AIPROD_SECRET_KEY": SECRET_KEY,
            "AIPROD_PORT": str(port),
            "AIPROD_WORKERS": "0",
            "AIPROD_RETENTION_CHECK_SECONDS": "0",
            "AIPROD_API_KEY_ROTATION_CHECK_SECONDS": "0",
            "AIPROD_RATE_LIMITS_ENABLED": "false",  # the bench repeats one export
        }
        log = (folder / "server.log").open("wb")
        server = subprocess.Popen(
            [sys.executable, "-m", "aiprod.cli", "serve"], env=env, stdout=log, stderr=log
        )
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 90
            while True:
                try:
                    if httpx.get(f"{base}/health/live", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit((folder / "server.log").read_text()[-3000:])
                time.sleep(0.2)
            login = httpx.post(f"{base}/v1/auth/login", json={"email": email, "password": PASSWORD})
            token = login.json()["access_token"]
            headers = {"Authorization": f"Bearer {token}"}
            with httpx.Client(base_url=base, headers=headers, timeout=300) as client:
                _download(client, f"/v1/productions/{small}/export?format=zip")  # warm up
                print(
                    f"ZIP export streamed by `aiprod serve` (SQLite, local storage), "
                    f"{args.runs} runs each; python {sys.version.split()[0]}, "
                    f"{os.cpu_count()} CPUs"
                )
                _report(f"{args.mb} MB production", _measure(server.pid, client, big, args.runs))
                _report(
                    f"{args.mb} MB, CRCs not recorded (read twice)",
                    _measure(server.pid, client, big_legacy, args.runs),
                )
                _report(
                    f"{args.small_mb} MB production",
                    _measure(server.pid, client, small, args.runs),
                )
        finally:
            server.terminate()
            server.wait(timeout=60)


if __name__ == "__main__":
    main()
