"""Load: `aiprod serve` as an operator starts it, driven by wrk on this machine.

For each database (SQLite, PostgreSQL) this starts `aiprod serve` with the
worker off (creates stay queued), seeds a user, a few hundred productions and
one rendered production (for artifact HEAD/Range), then runs wrk at fixed
connection counts against:

* ``health``: ``GET /health/live`` — no credential, no database: the baseline
  every other figure is a ratio of, measured in the same run;
* ``get``: an authenticated ``GET /v1/productions/{id}``;
* ``mix``: list with filters 20 %, get one 25 %, events after a sequence
  15 %, cost estimate 10 %, create 5 %, artifact HEAD 10 %, artifact Range
  15 % — authenticated, rate limits on (far above the load), quotas lifted.

Each run prints requests/s, p50/p95/p99 latency, errors (socket errors and
answers ≥ 400), CPU and peak RSS of each server process and of wrk, and on
PostgreSQL the most connections the server held at once.  Runs are repeated
(``--runs``) and the median run (by requests/s) is printed.

    .venv/bin/python bench/load.py                        # both databases, 64/256/1000
    .venv/bin/python bench/load.py --db sqlite --connections 64 --seconds 5
    .venv/bin/python bench/load.py --processes 1          # one API process

Needs wrk (Debian: `apt-get install wrk`) and, for PostgreSQL, the server at
127.0.0.1:5432 (``AIPROD_BENCH_PG``: an admin URL).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from aiprod.cli.processes import rss_mb

PASSWORD = "bench password, long enough"
SECRET_KEY = "bench-secret-key-" + "x" * 32
PG_ADMIN = os.environ.get("AIPROD_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
CLK_TCK = os.sysconf("SC_CLK_TCK")
LIMITLESS = {"running": None, "per_day": None, "storage_bytes": None, "spend_month_usd": None}

LUA = r"""
local requests = {}
local weights = {}
local total = 0
local function add(weight, method, path, headers, body)
  total = total + weight
  table.insert(weights, total)
  table.insert(requests, wrk.format(method, path, headers, body))
end
function init(args)
  local spec = loadfile(args[1])()
  for _, r in ipairs(spec) do add(r[1], r[2], r[3], r[4], r[5]) end
end
function request()
  local pick = math.random() * total
  for i, w in ipairs(weights) do
    if pick <= w then return requests[i] end
  end
  return requests[#requests]
end
function done(summary, latency, requests)
  io.write(string.format(
    'RESULT {"requests":%d,"seconds":%f,"p50":%d,"p95":%d,"p99":%d,' ..
    '"connect":%d,"read":%d,"write":%d,"timeout":%d,"status":%d}\n',
    summary.requests, summary.duration / 1e6,
    latency:percentile(50), latency:percentile(95), latency:percentile(99),
    summary.errors.connect, summary.errors.read, summary.errors.write,
    summary.errors.timeout, summary.errors.status))
end
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _lua_string(text: str) -> str:
    return json.dumps(text)  # a JSON string literal is a valid Lua string literal here


def _spec(requests: list[tuple[int, str, str, dict[str, str], str | None]]) -> str:
    rows = []
    for weight, method, path, headers, body in requests:
        head = ", ".join(f"[{_lua_string(k)}] = {_lua_string(v)}" for k, v in headers.items())
        rows.append(
            f"{{{weight}, {_lua_string(method)}, {_lua_string(path)}, {{{head}}}, "
            f"{_lua_string(body) if body is not None else 'nil'}}}"
        )
    return "return {\n" + ",\n".join(rows) + "\n}\n"


# ------------------------------------------------------------------ process stats


def _descendants(pid: int) -> list[int]:
    found: list[int] = []
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            for task in Path(f"/proc/{p}/task").iterdir():
                kids = [int(c) for c in (task / "children").read_text().split()]
                found += kids
                todo += kids
        except OSError:
            continue
    return found


def _cpu_ticks(pid: int) -> int:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12])  # utime + stime


def _name(pid: int) -> str:
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "?"
    text = b" ".join(cmd).decode(errors="replace")
    if "resource_tracker" in text:
        return "tracker"
    return "api" if "spawn_main" in text else "serve"


@dataclass
class Sampler:
    """Peak RSS of the server's processes and PostgreSQL connections, sampled."""

    server_pid: int
    pg_url: str | None
    peak_rss: dict[int, float] = field(default_factory=dict)
    peak_connections: int = 0
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        ticks = 0
        while not self.stop.wait(0.2):
            for pid in [self.server_pid, *_descendants(self.server_pid)]:
                self.peak_rss[pid] = max(self.peak_rss.get(pid, 0.0), rss_mb(pid))
            ticks += 1
            # A psql per sample costs CPU on the measured machine: once a second.
            if self.pg_url is not None and ticks % 5 == 1:
                self.peak_connections = max(self.peak_connections, _pg_connections(self.pg_url))


def _psql(sql: str, check: bool = False) -> str:
    out = subprocess.run(
        ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-tAqc", sql],
        capture_output=True,
        text=True,
        check=check,
    )
    return out.stdout.strip()


def _pg_connections(url: str) -> int:
    db = url.rsplit("/", 1)[1]
    try:
        return int(_psql(f"select count(*) from pg_stat_activity where datname = '{db}'"))
    except ValueError:
        return 0


# ------------------------------------------------------------------ one run


@dataclass
class Run:
    scenario: str
    connections: int
    rps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    errors: int
    requests: int
    cpu: dict[str, float]
    rss: dict[str, float]
    connections_db: int


def _wrk(
    base: str,
    spec: Path,
    script: Path,
    connections: int,
    seconds: float,
    server: int,
    pg: str | None,
) -> Run:
    pids = [server, *_descendants(server)]
    before = {p: _cpu_ticks(p) for p in pids}
    sampler = Sampler(server, pg)
    thread = threading.Thread(target=sampler.run, daemon=True)
    thread.start()
    started = time.monotonic()
    wrk = subprocess.Popen(
        [
            "wrk",
            "-t2",
            f"-c{connections}",
            f"-d{round(seconds)}s",
            "--timeout",
            "10s",
            "-s",
            str(script),
            base,
            "--",
            str(spec),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    out, _ = wrk.communicate()
    wall = time.monotonic() - started
    sampler.stop.set()
    thread.join()
    line = next((x for x in out.splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        raise SystemExit(f"wrk said:\n{out}")
    r = json.loads(line.removeprefix("RESULT "))
    cpu: dict[str, float] = {}
    rss: dict[str, float] = {}
    for pid in pids:
        label = f"{_name(pid)}:{pid}"
        if _name(pid) == "tracker":
            continue
        cpu[label] = (_cpu_ticks(pid) - before.get(pid, 0)) / CLK_TCK / wall
        rss[label] = sampler.peak_rss.get(pid, 0.0)
    errors = r["connect"] + r["read"] + r["write"] + r["timeout"] + r["status"]
    return Run(
        scenario=spec.stem,
        connections=connections,
        rps=r["requests"] / r["seconds"],
        p50_ms=r["p50"] / 1000,
        p95_ms=r["p95"] / 1000,
        p99_ms=r["p99"] / 1000,
        errors=errors,
        requests=r["requests"],
        cpu=cpu,
        rss=rss,
        connections_db=sampler.peak_connections,
    )


# ------------------------------------------------------------------ the server


class Served:
    def __init__(self, folder: Path, database_url: str, processes: int, workers: int) -> None:
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {
            **os.environ,
            "AIPROD_DATA_DIR": str(folder / "data"),
            "AIPROD_DATABASE_URL": database_url,
            "AIPROD_SECRET_KEY": SECRET_KEY,
            "AIPROD_PORT": str(self.port),
            "AIPROD_WORKERS": str(workers),
            "AIPROD_PROCESSES": str(processes),
            "AIPROD_RETENTION_CHECK_SECONDS": "0",
            "AIPROD_API_KEY_ROTATION_CHECK_SECONDS": "0",
            "AIPROD_NEURAL_NARRATION": "false",
            # On, as in production, but far above the load: the bench is one address.
            "AIPROD_RATE_LIMITS": json.dumps(dict.fromkeys(_CLASSES, "100000000/minute")),
            "AIPROD_QUOTAS": json.dumps(dict.fromkeys(("admin", "user"), LIMITLESS)),
        }
        self.log = folder / f"server-{self.port}.log"
        out = self.log.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "aiprod.cli", "serve", "--log-level", "warning"],
            env=env,
            stdout=out,
            stderr=out,
        )
        self.started = time.monotonic()
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{self.base}/health/live", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise SystemExit(self.log.read_text()[-3000:])
            time.sleep(0.05)
        self.ready_seconds = time.monotonic() - self.started

    def password(self) -> str | None:
        for line in self.log.read_text().splitlines():
            if line.startswith("one-time password:"):
                return line.split(":", 1)[1].strip()
        return None

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


_CLASSES = ("auth", "writes", "reads", "exports", "streams")


def _login(srv: Served, admin_password: str) -> dict[str, str]:
    body = {"email": "admin@localhost", "password": admin_password}
    tokens = httpx.post(f"{srv.base}/v1/auth/login", json=body, timeout=60).json()
    return {"Authorization": f"Bearer {tokens['access_token']}"}


def _seed(srv: Served, admin_password: str, productions: int) -> dict[str, Any]:
    """Queued productions (the worker is off) and a token to read them."""
    h = _login(srv, admin_password)
    with httpx.Client(base_url=srv.base, timeout=120) as c:
        ids = []
        for i in range(productions):
            body = {"prompt": f"Bench production number {i} about honeybees", "duration": 5}
            r = c.post("/v1/productions", json=body, headers=h)
            r.raise_for_status()
            ids.append(r.json()["job"]["id"])
        return {"headers": h, "ids": ids}


def _render_one(srv: Served, headers: dict[str, str]) -> str:
    """One real production, for its artifacts (the worker is on here)."""
    with httpx.Client(base_url=srv.base, timeout=60, headers=headers) as c:
        r = c.post("/v1/productions", json={"prompt": "Honeybees in spring", "duration": 5})
        job = r.json()["job"]["id"]
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            status = c.get(f"/v1/productions/{job}").json()["status"]
            if status == "completed":
                return str(job)
            if status in ("failed", "cancelled"):
                raise SystemExit(f"the seed render {status}: {srv.log.read_text()[-2000:]}")
            time.sleep(1)
    raise SystemExit("the seed render did not finish in 10 minutes")


def _scenarios(folder: Path, seed: dict[str, Any], rendered: str) -> dict[str, Path]:
    h = seed["headers"]
    one = seed["ids"][len(seed["ids"]) // 2]
    jh = {**h, "Content-Type": "application/json"}
    estimate = json.dumps({"prompt": "A short film about bees", "duration": 20})
    create = json.dumps({"prompt": "A short film about bees", "duration": 5})
    Row = tuple[int, str, str, dict[str, str], str | None]
    specs: dict[str, list[Row]] = {
        "health": [(1, "GET", "/health/live", {}, None)],
        "get": [(1, "GET", f"/v1/productions/{one}", h, None)],
        "mix": [
            (20, "GET", "/v1/productions?status=queued&limit=20&q=honeybees", h, None),
            (25, "GET", f"/v1/productions/{one}", h, None),
            (15, "GET", f"/v1/productions/{one}/events?after=1", h, None),
            (10, "POST", "/v1/cost-estimate", jh, estimate),
            (5, "POST", "/v1/productions", jh, create),
            (10, "HEAD", f"/v1/productions/{rendered}/artifacts/video.mp4", h, None),
            (
                15,
                "GET",
                f"/v1/productions/{rendered}/artifacts/video.mp4",
                {**h, "Range": "bytes=0-65535"},
                None,
            ),
        ],
    }
    paths = {}
    for name, rows in specs.items():
        path = folder / f"{name}.lua"
        path.write_text(_spec(rows))
        paths[name] = path
    return paths


def _check_mix(base: str, seed: dict[str, Any], rendered: str) -> None:
    """Every request of the mix answers what it should before it is timed."""
    h = seed["headers"]
    with httpx.Client(base_url=base, headers=h, timeout=30) as c:
        assert c.get("/v1/productions?status=queued&limit=20&q=honeybees").status_code == 200
        assert c.head(f"/v1/productions/{rendered}/artifacts/video.mp4").status_code == 200
        r = c.get(
            f"/v1/productions/{rendered}/artifacts/video.mp4", headers={"Range": "bytes=0-65535"}
        )
        assert r.status_code == 206, r.text


# ------------------------------------------------------------------ databases


def _pg_database() -> tuple[str, str]:
    name = f"aiprod_load_{uuid.uuid4().hex[:8]}"
    _psql(f"create database {name}", check=True)
    return name, f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"


def _pg_drop(name: str) -> None:
    _psql(f"drop database if exists {name} with (force)")


# ------------------------------------------------------------------ main


def _report(run: Run, baseline: float | None) -> None:
    ratio = f"  ({run.rps / baseline:.2f}× health)" if baseline else ""
    procs = ", ".join(
        f"{k.split(':')[0]} {run.cpu[k] * 100:.0f}% {run.rss[k]:.0f} MB" for k in sorted(run.cpu)
    )
    db = f", db connections ≤ {run.connections_db}" if run.connections_db else ""
    print(
        f"  {run.scenario:<6} c={run.connections:<5} {run.rps:8.0f} req/s{ratio}  "
        f"p50 {run.p50_ms:6.1f} ms  p95 {run.p95_ms:6.1f} ms  p99 {run.p99_ms:7.1f} ms  "
        f"errors {run.errors}/{run.requests} ({100 * run.errors / max(1, run.requests):.3f} %)"
    )
    print(f"         processes: {procs}{db}")


def _bench_database(db: str, args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="aiprod-bench-load-") as tmp:
        folder = Path(tmp)
        pg_name = None
        if db == "postgresql":
            pg_name, url = _pg_database()
        else:
            url = f"sqlite+aiosqlite:///{folder}/data/aiprod.db"
            (folder / "data").mkdir()
        try:
            seeder = Served(folder, url, processes=1, workers=1)
            try:
                password = seeder.password()
                assert password is not None, seeder.log.read_text()[-2000:]
                rendered = _render_one(seeder, _login(seeder, password))
            finally:
                seeder.stop()
            srv = Served(folder, url, processes=args.processes, workers=0)
            try:
                seed = _seed(srv, password, args.productions)
                print(
                    f"\n{db}: aiprod serve --processes {args.processes or 'auto'} --workers 0, "
                    f"ready in {srv.ready_seconds:.1f} s; {args.productions + 1} productions; "
                    f"wrk -t2, {args.seconds} s per run, median of {args.runs} runs"
                )
                _check_mix(srv.base, seed, rendered)
                scripts = _scenarios(folder, seed, rendered)
                lua = folder / "mix.lua.driver"
                lua.write_text(LUA)
                for connections in args.connections:
                    baseline = None
                    for scenario in ("health", "get", "mix"):
                        runs = [
                            _wrk(
                                srv.base,
                                scripts[scenario],
                                lua,
                                connections,
                                args.seconds,
                                srv.proc.pid,
                                url.replace("+asyncpg", "") if pg_name else None,
                            )
                            for _ in range(args.runs)
                        ]
                        median = sorted(runs, key=lambda r: r.rps)[len(runs) // 2]
                        _report(median, baseline)
                        if scenario == "health":
                            baseline = statistics.median(r.rps for r in runs)
            finally:
                srv.stop()
        finally:
            if pg_name is not None:
                _pg_drop(pg_name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--connections", type=int, nargs="+", default=[64, 256, 1000])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--processes", type=int, default=0, help="0: one per core")
    parser.add_argument("--productions", type=int, default=300)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is missing: apt-get install wrk")
    print(
        f"bench/load.py on {os.cpu_count()} CPUs, python {sys.version.split()[0]} "
        "(the load generator runs on the same machine)"
    )
    for db in ("sqlite", "postgresql") if args.db == "both" else (args.db,):
        _bench_database(db, args)


if __name__ == "__main__":
    main()
