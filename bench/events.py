"""Event delivery latency: publish → WebSocket client receipt, by subscriber count.

One API process (``aiprod serve --workers 0``, SQLite, Redis fan-out) serves
N WebSocket clients, all on one job, opened by a separate client process.
This process plays the worker: it writes ``stage.progress`` events through
the real ``JobService`` and publisher (commit, then Redis), and notes the
time each event is published, right after its transaction commits.  The
clients note when each event arrives; latency is arrival − publish (one
machine, one clock), over every (client, event) pair.  Prints p50, p99 and
max per subscriber count.

    .venv/bin/python bench/events.py                       # 1, 100, 1000
    .venv/bin/python bench/events.py --subscribers 1000 --events 60
    .venv/bin/python bench/events.py --redis ''           # no Redis: DB polling

Redis defaults to redis://127.0.0.1:6379/0 (``AIPROD_BENCH_REDIS``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

PASSWORD = "bench password, long enough"
SEQ = re.compile(r'"seq":(\d+)')
FIRST_SEQ = 2  # job.queued and job.started exist before the clients connect
ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[k]


# ------------------------------------------------------------------- clients


async def _clients(url: str, token: str, count: int, last: int, after: int, out: Path) -> None:
    """Child process: open `count` sockets, say READY, record arrivals until
    every socket has seen seq `last`, write them to `out` as JSON."""
    from websockets.asyncio.client import connect

    arrivals: list[list[tuple[int, float]]] = [[] for _ in range(count)]
    ready = 0
    all_ready = asyncio.Event()

    sem = asyncio.Semaphore(64)  # handshakes in waves, not a SYN flood

    async def one(i: int) -> None:
        nonlocal ready
        async with sem:
            # No compression, like the server (browsers would offer it in vain).
            ws = await connect(url, open_timeout=120, max_queue=None, compression=None)
            await ws.send(json.dumps({"type": "auth", "token": token, "after": after}))
            while json.loads(await ws.recv())["type"] != "subscribed":
                pass
        ready += 1
        if ready == count:
            all_ready.set()
        mine = arrivals[i]
        async with ws:
            while True:
                raw = await ws.recv(decode=True)
                now = time.time()
                found = SEQ.search(str(raw))  # cheaper than parsing the whole message
                if found is None:  # heartbeats
                    continue
                seq = int(found.group(1))
                mine.append((seq, now))
                if seq >= last:
                    return

    tasks = [asyncio.ensure_future(one(i)) for i in range(count)]
    await asyncio.wait_for(all_ready.wait(), timeout=300)
    print("READY", flush=True)
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=600)
    out.write_text(json.dumps(arrivals))


# -------------------------------------------------------------------- server


class Api:
    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env = env
        self.port = int(env["AIPROD_PORT"])
        out = log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "aiprod.cli", "serve", "--log-level", "warning"],
            env=env,
            stdout=out,
            stderr=out,
        )

    def wait(self) -> None:
        import httpx

        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"the API exited with {self.proc.returncode}")
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/health/live").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise SystemExit("the API did not start")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


async def _run(
    subscribers: int, events: int, interval: float, redis_url: str | None
) -> dict[str, Any]:
    import httpx

    from aiprod.db.engine import Database
    from aiprod.events.bus import EventPublisher, Sink
    from aiprod.events.envelope import Envelope
    from aiprod.events.transports.redis import RedisPublisher
    from aiprod.identity.service import IdentityService
    from aiprod.jobs.service import JobService
    from aiprod.production.models import ProductionRequest
    from aiprod.settings import Settings

    with tempfile.TemporaryDirectory() as tmp:
        channel = f"aiprod:bench:{uuid.uuid4().hex[:8]}"
        env = {
            **os.environ,
            "AIPROD_DATA_DIR": str(Path(tmp) / "data"),
            "AIPROD_DATABASE_URL": f"sqlite+aiosqlite:///{tmp}/bench.db",
            "AIPROD_SECRET_KEY": "bench-signing-key-" + "z" * 32,
            "AIPROD_PORT": str(_free_port()),
            "AIPROD_WORKERS": "0",
            "AIPROD_EVENTS_CHANNEL": channel,
            "AIPROD_EVENTS_HEARTBEAT_SECONDS": "60",
            "AIPROD_EVENTS_QUEUE_SIZE": "4096",
            "AIPROD_WEBHOOKS_ENABLED": "false",
        }
        if redis_url:
            env["AIPROD_REDIS_URL"] = redis_url
        api = Api(env, Path(tmp) / "api.log")
        try:
            api.wait()
            settings = Settings(
                _env_file=None,
                data_dir=Path(tmp) / "data",
                database_url=env["AIPROD_DATABASE_URL"],
                secret_key=env["AIPROD_SECRET_KEY"],
                events_channel=channel,
                redis_url=redis_url or None,
            )
            db = Database(settings.sqlalchemy_url)
            published: dict[int, float] = {}

            def note(envs: list[Envelope]) -> None:
                now = time.time()
                for e in envs:
                    published[e.seq] = now

            redis = RedisPublisher(redis_url, channel) if redis_url else None
            sinks: list[Sink] = [note]
            if redis is not None:
                sinks.append(redis)
            if redis is not None:
                await redis.start()
            jobs = JobService(db, settings, EventPublisher(channel, sinks))
            identity = IdentityService(db, settings)
            user = await identity.create_user(f"bench-{uuid.uuid4().hex[:6]}@x.io", PASSWORD)
            request = ProductionRequest.model_validate({"prompt": "Bees", "preset": "quick_social"})
            job, _ = await jobs.create(user.id, request, None)
            assert await jobs.claim("bench") is not None  # seqs 1, 2
            base = f"http://127.0.0.1:{api.port}"
            token = httpx.post(
                f"{base}/v1/auth/login", json={"email": user.email, "password": PASSWORD}
            ).json()["access_token"]
            last = FIRST_SEQ + events
            results = Path(tmp) / "arrivals.json"
            child = subprocess.Popen(
                [
                    sys.executable,
                    __file__,
                    "--client",
                    f"ws://127.0.0.1:{api.port}/v1/productions/{job.id}/ws",
                    token,
                    str(subscribers),
                    str(last),
                    str(results),
                ],
                stdout=subprocess.PIPE,
                text=True,
            )
            assert child.stdout is not None
            line = await asyncio.to_thread(child.stdout.readline)
            if line.strip() != "READY":
                raise SystemExit(f"clients failed: {line!r}")
            await asyncio.sleep(0.5)
            for i in range(events):
                await jobs.stage_event(
                    job.id, "bench", "stage.progress", "visuals", i, 1.0, {"fraction": i / events}
                )
                await asyncio.sleep(interval)
            await asyncio.to_thread(child.communicate, None, 600)
            if child.returncode != 0:
                raise SystemExit(f"the client process failed ({child.returncode})")
            arrivals: list[list[list[float]]] = json.loads(results.read_text())
            if redis is not None:
                await redis.stop()
            await db.dispose()
        finally:
            api.stop()
    latencies = [
        (at - published[int(seq)]) * 1000 for per in arrivals for seq, at in per if seq > FIRST_SEQ
    ]
    complete = all(
        sorted(int(s) for s, _ in per if s > FIRST_SEQ) == list(range(FIRST_SEQ + 1, last + 1))
        for per in arrivals
    )
    if os.environ.get("AIPROD_BENCH_DEBUG"):
        for seq in range(FIRST_SEQ + 1, last + 1):
            lat = [(at - published[seq]) * 1000 for per in arrivals for s, at in per if s == seq]
            print(
                f"  seq {seq}: min {min(lat):.1f} p50 {statistics.median(lat):.1f} "
                f"max {max(lat):.1f}",
                file=sys.stderr,
            )
    return {
        "subscribers": subscribers,
        "events": events,
        "samples": len(latencies),
        "complete": complete,
        "p50_ms": statistics.median(latencies),
        "p99_ms": _percentile(latencies, 0.99),
        "max_ms": max(latencies),
    }


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--client":
        url, token, count, last = sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
        _loop_run(_clients(url, token, count, last, FIRST_SEQ, Path(sys.argv[6])))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscribers", default="1,100,1000")
    parser.add_argument("--events", type=int, default=40)
    parser.add_argument("--interval", type=float, default=0.1, help="seconds between events")
    parser.add_argument(
        "--redis",
        default=os.environ.get("AIPROD_BENCH_REDIS", "redis://127.0.0.1:6379/0"),
        help="Redis URL; empty: none (the API polls the database)",
    )
    args = parser.parse_args()
    print(
        f"event delivery latency, publish (after commit) → client receipt; "
        f"{args.events} events, {args.interval * 1000:.0f} ms apart; "
        f"fan-out: {'Redis' if args.redis else 'database polling'}"
    )
    print(f"{'subscribers':>11} {'samples':>8} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}  all")
    for n in (int(x) for x in args.subscribers.split(",")):
        r = _loop_run(_run(n, args.events, args.interval, args.redis or None))
        print(
            f"{r['subscribers']:>11} {r['samples']:>8} {r['p50_ms']:>8.1f} {r['p99_ms']:>8.1f} "
            f"{r['max_ms']:>8.1f}  {'yes' if r['complete'] else 'NO'}",
            flush=True,
        )


def _loop_run(coro: Any) -> Any:
    try:
        import uvloop

        return uvloop.run(coro)
    except ImportError:  # pragma: no cover
        return asyncio.run(coro)


if __name__ == "__main__":
    main()
