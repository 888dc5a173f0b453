"""Figures read when a scrape asks: the state of the database and the disk.

Counting these as they change would be wrong as soon as a second process (or
a worker on another host) changes them, so each scrape reads them where they
are true: one grouped query over the unfinished jobs (on the status index:
its cost follows the backlog, not the table), one over the worker heartbeats,
one over the live API keys, and a ``statvfs`` of the data folder.  A database
that does not answer is reported as ``aiprod_database_up 0`` beside the
counters, not as a failed scrape.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from prometheus_client.core import GaugeMetricFamily, Metric
from sqlalchemy import case, func, select

from aiprod import __version__
from aiprod.db.base import utcnow
from aiprod.db.engine import Database
from aiprod.identity.models import ApiKey
from aiprod.jobs.models import Job, WorkerBeat
from aiprod.settings import Settings

log = logging.getLogger("aiprod.ops.metrics")

ACTIVE = ("queued", "processing", "awaiting_approval")
"""The statuses a job leaves; finished ones are counted by ``aiprod_job_events_total``."""
QUERY_TIMEOUT_S = 5.0


@dataclass(eq=False)
class Snapshot:
    """A prometheus-client collector of families read once."""

    families: list[Metric] = field(default_factory=list)

    def collect(self) -> Iterator[Metric]:
        return iter(self.families)

    def gauge(self, name: str, doc: str, value: float | None) -> None:
        if value is not None:
            self.families.append(GaugeMetricFamily(name, doc, value=value))


async def take(db: Database, settings: Settings) -> Snapshot:
    """Read the figures now (see the module docstring)."""
    snap = Snapshot()
    info = GaugeMetricFamily("aiprod_build_info", "The running version.", labels=["version"])
    info.add_metric([__version__], 1)
    snap.families.append(info)
    try:
        await asyncio.wait_for(_database(db, settings, snap), QUERY_TIMEOUT_S)
        up = 1.0
    except Exception:
        log.warning("metrics: the database figures could not be read", exc_info=True)
        up = 0.0
    snap.gauge("aiprod_database_up", "1 when this scrape could read the database.", up)
    _disk(settings, snap)
    return snap


async def _database(db: Database, settings: Settings, snap: Snapshot) -> None:
    now = utcnow()
    alive_after = now - timedelta(seconds=3 * settings.heartbeat_seconds)
    jobs_q = (
        select(
            Job.status,
            Job.stage,
            func.count(),
            func.min(Job.next_attempt_at),
            func.sum(case((Job.next_attempt_at <= now, 1), else_=0)),
        )
        .where(Job.status.in_(ACTIVE))
        .group_by(Job.status, Job.stage)
    )
    workers_q = select(
        func.max(WorkerBeat.heartbeat_at),
        func.sum(case((WorkerBeat.heartbeat_at >= alive_after, 1), else_=0)),
    )
    keys_q = select(func.min(ApiKey.created_at)).where(
        ApiKey.revoked_at.is_(None),
        ApiKey.superseded_at.is_(None),
        ApiKey.digest.is_not(None),
        ApiKey.expires_at > now,
    )
    async with db.session() as s:
        job_rows = (await s.execute(jobs_q)).all()
        last_beat, alive = (await s.execute(workers_q)).one()
        oldest_key = (await s.execute(keys_q)).scalar_one_or_none()

    jobs = GaugeMetricFamily(
        "aiprod_jobs",
        "Unfinished jobs by status and stage (stage empty before the first one).",
        labels=["status", "stage"],
    )
    depth = 0
    oldest_due: datetime | None = None
    for status, stage, count, first_due, due in job_rows:
        jobs.add_metric([status, stage or ""], count)
        if status == "queued":
            depth += int(due or 0)
            if due and first_due is not None and (oldest_due is None or first_due < oldest_due):
                oldest_due = first_due
    snap.families.append(jobs)
    snap.gauge("aiprod_job_queue_depth", "Queued jobs due now, waiting for a worker.", float(depth))
    snap.gauge(
        "aiprod_job_queue_oldest_age_seconds",
        "How long the longest-waiting due job has waited (0: none waits).",
        _age(oldest_due, now),
    )
    snap.gauge(
        "aiprod_workers_alive",
        "Workers whose heartbeat is newer than three heartbeat intervals.",
        float(alive or 0),
    )
    if last_beat is not None:
        snap.gauge(
            "aiprod_worker_last_heartbeat_timestamp_seconds",
            "Unix time of the newest worker heartbeat.",
            last_beat.timestamp(),
        )
    snap.gauge(
        "aiprod_api_key_oldest_age_seconds",
        "Age of the oldest live API key version (none: 0).",
        _age(oldest_key, now),
    )
    snap.gauge(
        "aiprod_api_key_rotate_after_seconds",
        "Age at which the rotation task replaces a key (AIPROD_API_KEY_ROTATE_AFTER_DAYS).",
        settings.api_key_rotate_after_days * 86400.0,
    )


def _age(since: datetime | None, now: datetime) -> float:
    return max(0.0, (now - since).total_seconds()) if since is not None else 0.0


def _disk(settings: Settings, snap: Snapshot) -> None:
    try:
        usage = shutil.disk_usage(settings.data_dir)
    except OSError:
        return
    snap.gauge(
        "aiprod_data_dir_free_bytes",
        "Bytes free to this service on the data folder's file system.",
        float(usage.free),
    )
    snap.gauge(
        "aiprod_data_dir_capacity_bytes",
        "Size of the data folder's file system.",
        float(usage.total),
    )
    if settings.secret_key is None:  # the signing key is the file made once
        try:
            made = (settings.data_dir / "secret.key").stat().st_mtime
        except OSError:
            return
        snap.gauge(
            "aiprod_signing_key_age_seconds",
            "Age of the token-signing key file (DATA_DIR/secret.key).",
            max(0.0, time.time() - made),
        )
