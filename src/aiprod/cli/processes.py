"""`aiprod serve` on every core: several API processes on one port, the job
worker in a process of its own, and a supervisor over them.

Each API process listens on the port with its own socket (SO_REUSEPORT), so
the kernel spreads new connections evenly over them — with one shared
socket, the process awake first accepted a whole burst of connections and
kept them (measured: 109 % and 1 % CPU under 256 connections).  The
supervisor (the process the operator started) holds the port bound but not
listening, so that nothing else takes it between two processes, and never
serves a request itself.  It

* restarts a process that dies (a crash loop — five deaths of one slot within
  a minute — stops everything with an error rather than flapping forever);
* replaces a process whose resident memory passes its bound
  (``AIPROD_API_PROCESS_MAX_MB``, ``AIPROD_WORKER_PROCESS_MAX_MB``): the new one
  starts and is ready before the old one is asked to stop, so the port never
  goes unserved;
* on SIGHUP replaces every process the same way, one at a time (a graceful
  reload: new code and configuration, no refused connection);
* on SIGTERM or SIGINT asks every process to stop (API processes finish the
  requests in flight and close event streams with 1001; the worker hands its
  jobs back) and waits for them.

Their metrics are summed by whichever answers a scrape: the supervisor empties
a folder for prometheus-client's multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``,
else DATA_DIR/metrics) before starting them, and marks each process that
exits.  What must be shared between processes already is: sessions, revocations,
throttles and quotas live in the database; events cross processes through
Redis or the database; rate limits are shared through Redis, and without it
each process enforces its share of each limit.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
import time
from collections import deque
from dataclasses import dataclass, field
from multiprocessing.context import SpawnProcess
from multiprocessing.synchronize import Event as EventType
from pathlib import Path
from types import FrameType
from typing import Any

from aiprod.ops import metrics
from aiprod.settings import Settings

log = logging.getLogger("aiprod.supervisor")

READY_TIMEOUT = 60.0
CRASH_LIMIT = 5
CRASH_WINDOW = 60.0
CHECK_SECONDS = 0.5
MEMORY_CHECK_SECONDS = 5.0

_spawn = multiprocessing.get_context("spawn")


def rss_mb(pid: int) -> float:
    """Resident memory of a process in MiB (0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


# ------------------------------------------------------------ the children


def port_socket(host: str, port: int) -> socket.socket:
    """A socket on the shared port: SO_REUSEPORT, and TCP_NODELAY, which
    accepted connections inherit (without it an answer written in two parts,
    head and body, waits 40 ms for the client's delayed ACK)."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    return sock


def _api_main(settings: Settings, log_level: str, ready: EventType) -> None:
    """An API process: the app without an embedded worker, listening on the
    port beside its siblings."""
    import asyncio

    import uvicorn

    from aiprod.api.app import create_app
    from aiprod.cli.serve import server_config, tune_gc
    from aiprod.events.runtime import drain_streams_on_exit

    sock = port_socket(settings.host, settings.port)
    sock.listen(2048)
    app = create_app(settings, embedded_worker=False)
    server = uvicorn.Server(server_config(app, settings, log_level))
    drain_streams_on_exit(server, app)
    tune_gc()

    async def serve() -> None:
        task = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started and not task.done():
            await asyncio.sleep(0.05)
        if server.started:
            ready.set()
        await task

    asyncio.run(serve())


def _worker_main(settings: Settings, log_level: str, ready: EventType) -> None:
    """The job worker, as `aiprod worker` runs it."""
    import asyncio

    from aiprod.cli.operator import configure_logging, run_worker

    configure_logging(log_level)
    ready.set()
    asyncio.run(run_worker(settings, settings.workers))


# ------------------------------------------------------------ supervision


@dataclass
class Slot:
    """One place to keep a process running: an API process or the worker."""

    name: str
    kind: str  # "api" or "worker"
    max_mb: int
    process: SpawnProcess | None = None
    deaths: deque[float] = field(default_factory=deque)


class Supervisor:
    def __init__(self, settings: Settings, processes: int, log_level: str) -> None:
        self.settings = settings
        self.log_level = log_level
        self.slots = [
            Slot(f"api-{i + 1}", "api", settings.api_process_max_mb) for i in range(processes)
        ]
        if settings.workers > 0:
            self.slots.append(Slot("worker", "worker", settings.worker_process_max_mb))
        # One scrape of any process sums them all (prometheus-client's
        # multiprocess mode), in a folder emptied for this run.
        metrics.prepare_multiprocess_dir(
            Path(os.environ.get(metrics.MULTIPROC_ENV) or settings.data_dir / "metrics")
        )
        # Bound, never listening: it receives no connection, but nothing else
        # can take the port, and a port already taken fails here, at once.
        self.sock = port_socket(settings.host, settings.port)
        self.stopping = False
        self.reload = False
        self.failed: str | None = None

    # --------------------------------------------------------------- starting

    def _start(self, slot: Slot) -> SpawnProcess:
        ready = _spawn.Event()
        if slot.kind == "api":
            target: Any = _api_main
            args: tuple[Any, ...] = (self.settings, self.log_level, ready)
        else:
            target, args = _worker_main, (self.settings, self.log_level, ready)
        process = _spawn.Process(target=target, args=args, name=f"aiprod-{slot.name}")
        process.start()
        deadline = time.monotonic() + READY_TIMEOUT
        while not ready.wait(0.1):
            if not process.is_alive() or time.monotonic() > deadline or self.stopping:
                break
        log.info("%s started (pid %s)", slot.name, process.pid)
        return process

    def _stop(self, process: SpawnProcess, grace: float) -> None:
        if process.is_alive():
            os.kill(process.pid or 0, signal.SIGTERM)
        process.join(grace)
        if process.is_alive():
            log.warning("pid %s did not stop within %.0f s; killing it", process.pid, grace)
            process.kill()
            process.join(5)
        metrics.mark_process_dead(process.pid or 0)

    def _grace(self, slot: Slot) -> float:
        return self.settings.lease_seconds + 5 if slot.kind == "worker" else 30.0

    def replace(self, slot: Slot, why: str) -> None:
        """Start the successor, then stop the old process: no moment unserved."""
        log.info("replacing %s (%s)", slot.name, why)
        old = slot.process
        if slot.kind == "worker" and old is not None:
            # Two workers would be harmless (leases), but the old one's jobs
            # move faster to the new one when it has let them go first.
            self._stop(old, self._grace(slot))
            old = None
        slot.process = self._start(slot)
        if old is not None:
            self._stop(old, self._grace(slot))

    # --------------------------------------------------------------- the loop

    def _on_signal(self, sig: int, frame: FrameType | None) -> None:
        if sig == signal.SIGHUP:
            self.reload = True
        else:
            self.stopping = True

    def run(self) -> int:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, self._on_signal)
        for slot in self.slots:
            slot.process = self._start(slot)
        next_memory_check = time.monotonic() + MEMORY_CHECK_SECONDS
        try:
            while not self.stopping:
                time.sleep(CHECK_SECONDS)
                if self.reload:
                    self.reload = False
                    for slot in self.slots:
                        if not self.stopping:
                            self.replace(slot, "reload")
                self._revive()
                if time.monotonic() >= next_memory_check:
                    next_memory_check = time.monotonic() + MEMORY_CHECK_SECONDS
                    self._bound_memory()
        finally:
            self.shutdown()
        if self.failed is not None:
            log.error("%s", self.failed)
            return 1
        return 0

    def _revive(self) -> None:
        for slot in self.slots:
            process = slot.process
            if process is None or process.is_alive() or self.stopping:
                continue
            metrics.mark_process_dead(process.pid or 0)
            now = time.monotonic()
            slot.deaths.append(now)
            while slot.deaths and now - slot.deaths[0] > CRASH_WINDOW:
                slot.deaths.popleft()
            if len(slot.deaths) >= CRASH_LIMIT:
                self.failed = f"{slot.name} died {CRASH_LIMIT} times within a minute; stopping"
                self.stopping = True
                return
            log.warning("%s exited with %s; restarting it", slot.name, process.exitcode)
            slot.process = self._start(slot)

    def _bound_memory(self) -> None:
        for slot in self.slots:
            process = slot.process
            if process is None or slot.max_mb <= 0 or self.stopping:
                continue
            used = rss_mb(process.pid or 0)
            if used > slot.max_mb:
                self.replace(slot, f"{used:.0f} MiB resident, over its {slot.max_mb} MiB")

    def shutdown(self) -> None:
        for slot in self.slots:
            if slot.process is not None and slot.process.is_alive():
                os.kill(slot.process.pid or 0, signal.SIGTERM)
        for slot in self.slots:
            if slot.process is not None:
                self._stop(slot.process, self._grace(slot))
        self.sock.close()


def processes_for(settings: Settings) -> int:
    """API processes to run: the setting, or one per core (0: automatic)."""
    if settings.processes > 0:
        return settings.processes
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1)
