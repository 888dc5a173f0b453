"""Prometheus metrics: what the platform counts as it works, and the text a
scrape reads.

Counters and histograms are kept here, by the code that does the work (one
call at each place: :func:`observe_request`, :func:`job_event` ...).  Figures
that are the state of the database (jobs by status, the queue's depth and
oldest age, workers alive, key ages, free disk) are not counted at all: they
are read when a scrape asks (:mod:`aiprod.ops.snapshot`), so they are right
whichever process answers the scrape.

Several processes (``aiprod serve --processes N`` and its worker process):
prometheus-client's multiprocess mode.  The supervisor calls
:func:`prepare_multiprocess_dir` before it starts them (each process then
writes its samples to its own memory-mapped files in that private folder,
and a scrape sums every process's files) and :func:`mark_process_dead` when
one exits.  Without ``PROMETHEUS_MULTIPROC_DIR`` the samples live in this
process's default registry, with the process collector's CPU and memory.

The metrics are built on first use, not at import: a process that imported
this module before the folder was set (a supervisor that then forks) still
builds them in multiprocess mode in each child.
"""

from __future__ import annotations

import functools
import os
import shutil
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import Final

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
    values,
)
from prometheus_client import multiprocess as _multiprocess
from prometheus_client.registry import Collector

from aiprod.production import telemetry

MULTIPROC_ENV: Final = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"
"""The text format every Prometheus server reads (our names are all plain)."""

HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
"""Edges at the SLO's thresholds (0.25 s, 1 s) and around the hot routes' times."""
STAGE_BUCKETS = (0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)
LAG_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
PROVIDER_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
"""Methods counted by name; any other is counted as ``other`` (bounded labels)."""


class _Metrics:
    """Every counter and histogram, built together on first use."""

    def __init__(self) -> None:
        # ``*_created`` series double the series count and no query here reads them.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.http_requests = Counter(
            "aiprod_http_requests",
            "HTTP requests answered, by route template (never the raw path), method and status.",
            ["method", "route", "status"],
        )
        self.http_duration = Histogram(
            "aiprod_http_request_duration_seconds",
            "Time from a request's arrival to its last byte sent, by route template and method.",
            ["method", "route"],
            buckets=HTTP_BUCKETS,
        )
        self.http_in_progress = Gauge(
            "aiprod_http_requests_in_progress",
            "HTTP requests being answered now.",
            multiprocess_mode="livesum",
        )
        self.job_events = Counter(
            "aiprod_job_events",
            "Job events recorded, by type (job.queued, job.completed, stage.started ...).",
            ["type"],
        )
        self.lease_reclaims = Counter(
            "aiprod_job_lease_reclaims",
            "Jobs taken over from a worker whose lease ran out, by what became of them "
            "(resumed, or failed after too many lost workers).",
            ["outcome"],
        )
        self.worker_beats = Counter("aiprod_worker_heartbeats", "Worker heartbeats written.")
        self.stage_duration = Histogram(
            "aiprod_stage_duration_seconds",
            "Wall time of a production stage in a worker, by stage.",
            ["stage"],
            buckets=STAGE_BUCKETS,
        )
        self.cache_units = Counter(
            "aiprod_stage_cache_units",
            "Units of stage work (a scene's narration, a clip, the music ...) served from the "
            "stage cache (hit) or made (miss), by stage.",
            ["stage", "result"],
        )
        self.fanout_lag = Histogram(
            "aiprod_event_fanout_lag_seconds",
            "From an event's creation to its hand-out to this process's subscribers.",
            buckets=LAG_BUCKETS,
        )
        self.fanned_out = Counter(
            "aiprod_events_fanned_out", "Events handed out to this process's subscribers."
        )
        self.dropped = Counter(
            "aiprod_event_subscribers_dropped",
            "Subscribers that fell behind: their live queue was dropped and their stream "
            "resynchronised from the event log.",
            ["scope"],
        )
        self.webhooks = Counter(
            "aiprod_webhook_attempts",
            "Webhook delivery attempts, by outcome: succeeded, retrying (failed, tried "
            "again later) or failed (given up).",
            ["outcome"],
        )
        self.rate_limited = Counter(
            "aiprod_rate_limit_refusals",
            "Requests refused with 429, by rate-limit class and what was counted "
            "(address, credential, user).",
            ["class", "key"],
        )
        self.provider_requests = Counter(
            "aiprod_provider_requests",
            "HTTP exchanges with AI providers, by provider, call and outcome.",
            ["provider", "call", "outcome"],
        )
        self.provider_duration = Histogram(
            "aiprod_provider_request_duration_seconds",
            "Time of one HTTP exchange with an AI provider.",
            ["provider"],
            buckets=PROVIDER_BUCKETS,
        )
        self.provider_errors = Counter(
            "aiprod_provider_errors",
            "Provider calls that failed for good, by provider, call and kind "
            "(transient: worth retrying later; permanent).",
            ["provider", "call", "kind"],
        )
        self.provider_cost = Counter(
            "aiprod_provider_cost_usd", "USD charged by AI providers, by provider.", ["provider"]
        )
        self.provider_units = Counter(
            "aiprod_provider_units",
            "Units AI providers said they used (characters, seconds, images ...).",
            ["provider", "unit"],
        )
        # The request path's children, looked up once per label set.
        self.request_children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}


@functools.cache
def _m() -> _Metrics:
    return _Metrics()


# ------------------------------------------------------------- recording


def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    """One HTTP request answered.  `route` must be a template or a fixed name."""
    m = _m()
    key = (method, route, status)
    children = m.request_children.get(key)
    if children is None:
        name = method if method in METHODS else "other"
        children = (
            m.http_requests.labels(name, route, str(status)),
            m.http_duration.labels(name, route),
        )
        m.request_children[key] = children
    children[0].inc()
    children[1].observe(seconds)


def requests_in_progress() -> Gauge:
    """The gauge of requests being answered (``with ...track_inprogress()``)."""
    return _m().http_in_progress


def job_event(type_: str) -> None:
    _m().job_events.labels(type_).inc()


def lease_reclaimed(outcome: str) -> None:
    _m().lease_reclaims.labels(outcome).inc()


def worker_heartbeat() -> None:
    _m().worker_beats.inc()


def stage_finished(stage: str, seconds: float | None, units: int, cached: int) -> None:
    """A stage done in a worker: its wall time (None: not measured) and its
    units of work, `cached` of them served from the stage cache."""
    m = _m()
    if seconds is not None:
        m.stage_duration.labels(stage).observe(seconds)
    if cached:
        m.cache_units.labels(stage, "hit").inc(cached)
    if units > cached:
        m.cache_units.labels(stage, "miss").inc(units - cached)


def event_fanned_out(lag_seconds: float | None) -> None:
    m = _m()
    m.fanned_out.inc()
    if lag_seconds is not None:
        m.fanout_lag.observe(max(0.0, lag_seconds))


def subscriber_dropped(scope: str) -> None:
    _m().dropped.labels(scope).inc()


def webhook_attempt(outcome: str) -> None:
    _m().webhooks.labels(outcome).inc()


def rate_limit_refused(cls: str, key: str) -> None:
    _m().rate_limited.labels(cls, key).inc()


class EngineRecorder:
    """The engine's :class:`aiprod.production.telemetry.Recorder`: provider calls."""

    def provider_attempt(self, provider: str, call: str, outcome: str, seconds: float) -> None:
        m = _m()
        m.provider_requests.labels(provider, call, outcome).inc()
        m.provider_duration.labels(provider).observe(seconds)

    def provider_error(self, provider: str, call: str, transient: bool) -> None:
        _m().provider_errors.labels(provider, call, "transient" if transient else "permanent").inc()

    def provider_charge(self, provider: str, unit: str, units: float, cost: float) -> None:
        m = _m()
        m.provider_units.labels(provider, unit).inc(max(0.0, units))
        m.provider_cost.labels(provider).inc(max(0.0, cost))


def install_engine_recorder() -> None:
    """Count what the engine reports (called where the platform runs productions)."""
    telemetry.install(EngineRecorder())


# ------------------------------------------------------------ processes


def multiprocess_dir() -> Path | None:
    found = os.environ.get(MULTIPROC_ENV)
    return Path(found) if found else None


def prepare_multiprocess_dir(path: Path) -> Path:
    """Make `path` an empty folder only this user can read (0700) and switch
    this process, and every process it starts from now on, to multiprocess
    mode.  Called once by the supervisor before it starts the API and worker
    processes: files left by a previous run would be summed into this one."""
    path = Path(path)
    if path.is_symlink() or (path.exists() and not path.is_dir()):
        raise ValueError(f"{path} is not a folder")
    if path.exists():
        strangers = [p.name for p in path.iterdir() if p.suffix != ".db" or not p.is_file()]
        if strangers:  # not a folder of ours: never empty it
            raise ValueError(f"{path} holds files that are not metrics: {strangers[:3]}")
        shutil.rmtree(path)
    path.mkdir(mode=0o700, parents=True)
    path.chmod(stat.S_IRWXU)  # whatever the umask
    os.environ[MULTIPROC_ENV] = str(path)
    # prometheus-client picks the kind of value when it is first imported;
    # a process that imported it before the folder existed switches now.
    if not getattr(values.ValueClass, "_multiprocess", False):
        values.ValueClass = values.MultiProcessValue()  # type: ignore[no-untyped-call]
    return path


def mark_process_dead(pid: int) -> None:
    """A process of the group exited: its live gauges (requests in progress)
    leave the sums.  Its counters stay, so totals never go backwards."""
    path = multiprocess_dir()
    if path is not None:
        _multiprocess.mark_process_dead(pid, str(path))  # type: ignore[no-untyped-call]


# ------------------------------------------------------------ exposition


def exposition(extra: Iterable[Collector] = ()) -> bytes:
    """The text format of every metric: this process's (or, in multiprocess
    mode, every process's of the group, summed) and `extra`'s, read now."""
    _m()  # every family is listed, even before its first sample
    path = multiprocess_dir()
    if path is not None:
        registry = CollectorRegistry()
        _multiprocess.MultiProcessCollector(registry, str(path))  # type: ignore[no-untyped-call]
        text = generate_latest(registry)
    else:
        text = generate_latest(REGISTRY)
    more = CollectorRegistry(auto_describe=False)
    for collector in extra:
        more.register(collector)
    return text + generate_latest(more)


__all__ = [
    "CONTENT_TYPE",
    "MULTIPROC_ENV",
    "EngineRecorder",
    "event_fanned_out",
    "exposition",
    "install_engine_recorder",
    "job_event",
    "lease_reclaimed",
    "mark_process_dead",
    "multiprocess_dir",
    "observe_request",
    "prepare_multiprocess_dir",
    "rate_limit_refused",
    "requests_in_progress",
    "stage_finished",
    "subscriber_dropped",
    "webhook_attempt",
    "worker_heartbeat",
]
