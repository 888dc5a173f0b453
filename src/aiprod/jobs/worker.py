"""The job worker: claims jobs, runs the production pipeline, checkpoints every stage.

Size (~580 lines): one job's whole life (claim, lease and heartbeat, run,
checkpoint, finish or retry) reads best in one place; checkpoint files live in
``jobs/checkpoints.py`` and the lease queries in ``jobs/leases.py``.

Why it is built this way:

* The pipeline is synchronous, CPU-bound code, so it runs in a thread
  (``asyncio.to_thread``) while the event loop keeps the lease alive, writes
  progress events and moves artifacts to and from storage.
* Every finished stage is uploaded and recorded as a checkpoint *before* the
  next stage starts: ``on_stage_done`` blocks the pipeline thread until the
  checkpoint is committed.  A worker that dies loses at most the stage it was
  in; the next one downloads the checkpoints into a fresh scratch folder,
  writes ``work/state.json`` and the pipeline carries on after the last one
  (the transfers and the checkpoint rows: :mod:`aiprod.jobs.checkpoints`).
  The user's uploads a request names are fetched into the same folder first
  (:mod:`aiprod.jobs.uploads.fetch`), so the engine reads local files only.
* Cancellation, a lost lease and shutdown all reach the pipeline the same way,
  through a ``threading.Event`` that its ``should_cancel`` reads at every
  progress step.  What happens afterwards depends on *why* it was set: a user's
  cancel deletes the job's outputs, a lost lease leaves the job to the worker
  that owns it now, and a shutdown releases it (queued again) for any worker
  to resume.
* The worker never lets an exception escape its loop: a database that blips
  during a heartbeat or a claim is logged and retried, because a dead worker
  strands its jobs until their leases expire.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

from aiprod.db.engine import Database
from aiprod.jobs.artifacts import artifact_key
from aiprod.jobs.cache_refs import JobCache
from aiprod.jobs.checkpoints import CheckpointFiles
from aiprod.jobs.models import Job
from aiprod.jobs.service import EventHook, JobService, LeaseLost
from aiprod.jobs.uploads import fetch as uploads
from aiprod.jobs.uploads.service import MediaService
from aiprod.ops import context as log_context
from aiprod.ops import metrics
from aiprod.production.models import ProductionRequest, Storyboard
from aiprod.production.pipeline import (
    Cancelled,
    Pipeline,
    ProductionResult,
    ProgressEvent,
    QAFailed,
)
from aiprod.production.providers.client import ProviderError
from aiprod.settings import Settings
from aiprod.storage.store import Storage

log = logging.getLogger("aiprod.worker")

AbortReason = Literal["cancel", "lease", "shutdown"]
T = TypeVar("T")

PROGRESS_INTERVAL = 1.0
"""Seconds between two ``stage.progress`` events of a job: enough for a progress
bar, few enough that the event log stays readable and the database idle."""

MAX_CLAIM_BACKOFF = 30.0


def make_worker_id() -> str:
    """``host:pid:random``: readable in the jobs table, unique across restarts."""
    host = (socket.gethostname() or "host")[:40]
    return f"{host}:{os.getpid()}:{secrets.token_hex(4)}"


def _fresh_dir(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)


@dataclass(frozen=True)
class _StageEvent:
    type: str
    stage: str
    progress: int
    eta: float | None
    payload: dict[str, Any]


@dataclass
class _Run:
    """What the worker knows about one job while it processes it.

    ``abort_event`` is read by the pipeline thread; everything else is written
    either on the loop or by the pipeline thread before it hands control back
    (``run_coroutine_threadsafe(...).result()``), so no further locking is needed.
    """

    job_id: uuid.UUID
    outdir: Path
    loop: asyncio.AbstractEventLoop
    events: asyncio.Queue[_StageEvent | None] = field(default_factory=asyncio.Queue)
    abort_event: threading.Event = field(default_factory=threading.Event)
    reason: AbortReason | None = None
    stage: str | None = None
    artifacts: dict[str, dict[str, Any]] = field(default_factory=dict)
    stage_names: dict[str, list[str]] = field(default_factory=dict)
    last_percent: int = -1
    last_progress_at: float = 0.0
    stage_started: float | None = None

    def abort(self, reason: AbortReason) -> None:
        """Ask the pipeline to stop at its next progress step; the first reason wins."""
        if self.reason is None:
            self.reason = reason
        self.abort_event.set()


class Worker:
    """Runs jobs from the database until told to stop.

    Up to ``concurrency`` jobs run at once: by default ``settings.workers``,
    and never fewer than one (``AIPROD_WORKERS=0`` means "embed no worker",
    which the API decides by not creating one, not "a worker that runs
    nothing").  ``worker_id`` (``host:pid:random``) is the lease owner name;
    ``process`` expects a job claimed under it.  ``on_event`` publishes the
    events it records (see :data:`aiprod.jobs.service.EventHook`).
    """

    def __init__(
        self,
        db: Database,
        storage: Storage,
        settings: Settings,
        concurrency: int | None = None,
        on_event: EventHook | None = None,
    ) -> None:
        self.db = db
        self.storage = storage
        self.settings = settings
        self.concurrency = max(1, settings.workers if concurrency is None else concurrency)
        self.service = JobService(db, settings, on_event)
        self.worker_id = make_worker_id()
        self.checkpoints = CheckpointFiles(self.service, storage, self.worker_id)
        self.media = MediaService(db, storage, settings)
        self.hostname = socket.gethostname() or "host"
        self.pid = os.getpid()
        self._runs: dict[uuid.UUID, _Run] = {}
        metrics.install_engine_recorder()  # provider calls made by the pipelines

    # ------------------------------------------------------------------ loop

    async def run(self, stop: asyncio.Event) -> None:
        """Claim and process jobs until `stop` is set.

        On stop, in-flight pipelines are told to stop at their next progress
        step and their jobs are released (queued again).  Their finished stages
        are already checkpointed, so whichever worker claims them next resumes
        them, instead of a shutdown waiting as long as a render takes.
        """
        log.info("worker %s started (concurrency %d)", self.worker_id, self.concurrency)
        stop_wait = asyncio.create_task(stop.wait())
        beat = asyncio.create_task(self._beat_loop())
        active: set[asyncio.Task[None]] = set()
        failures = 0
        try:
            while not stop.is_set():
                if len(active) >= self.concurrency:
                    await asyncio.wait({*active, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
                    continue
                try:
                    job = await self.service.claim(self.worker_id)
                except Exception:
                    failures += 1
                    backoff = self.settings.poll_seconds * 2 ** min(failures, 16)
                    delay = min(backoff, MAX_CLAIM_BACKOFF)
                    log.warning(
                        "worker %s could not claim a job (retrying in %.1fs)",
                        self.worker_id,
                        delay,
                        exc_info=True,
                    )
                    await asyncio.wait({stop_wait}, timeout=delay)
                    continue
                failures = 0
                if job is None:
                    await asyncio.wait({stop_wait}, timeout=self.settings.poll_seconds)
                    continue
                task = asyncio.create_task(self.process(job), name=f"job-{job.id}")
                active.add(task)
                task.add_done_callback(active.discard)
        finally:
            for run in list(self._runs.values()):
                run.abort("shutdown")
            if active:
                await asyncio.gather(*active, return_exceptions=True)
            for t in (beat, stop_wait):
                t.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await t
            log.info("worker %s stopped", self.worker_id)

    async def _beat_loop(self) -> None:
        """Tell operators (and /health/ready) that this worker is alive."""
        while True:
            try:
                await self.service.beat(self.worker_id, self.hostname, self.pid)
                metrics.worker_heartbeat()
            except Exception:
                log.warning("worker %s: heartbeat row not written", self.worker_id, exc_info=True)
            await asyncio.sleep(self.settings.heartbeat_seconds)

    # ------------------------------------------------------------- one job

    async def process(self, job: Job) -> None:
        """Run one claimed job to its next resting state.  Never raises: every
        outcome is recorded on the job (or deliberately left to another worker).
        Its log lines (the pipeline's included) carry the job's id, its owner's
        and the submitting request's id."""
        with log_context.job_context(job.id, job.request_id, job.owner_id):
            await self._process(job)

    async def _process(self, job: Job) -> None:
        outdir = self.settings.scratch_dir / str(job.id)
        run = _Run(job_id=job.id, outdir=outdir, loop=asyncio.get_running_loop())
        if job.cancel_requested:  # asked while its previous worker was dying
            run.abort("cancel")
        self._runs[job.id] = run
        heartbeat = asyncio.create_task(self._heartbeat(run))
        writer = asyncio.create_task(self._write_events(run))
        log.info("worker %s: job %s (attempt %d)", self.worker_id, job.id, job.attempts + 1)
        try:
            await self._execute(job, run, writer)
        except Exception:
            # Recording the outcome failed (database down?).  The job stays
            # processing; its lease runs out and another worker resumes it.
            log.exception("worker %s: job %s: could not record its outcome", self.worker_id, job.id)
        finally:
            heartbeat.cancel()
            if not writer.done():
                writer.cancel()
            for t in (heartbeat, writer):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await t
            self._runs.pop(job.id, None)
            await asyncio.to_thread(shutil.rmtree, outdir, True)

    async def _execute(self, job: Job, run: _Run, writer: asyncio.Task[None]) -> None:
        review_gate = job.review and not job.approved
        try:
            if run.abort_event.is_set():
                raise Cancelled("cancel requested before the job started")
            await asyncio.to_thread(_fresh_dir, run.outdir)
            checkpointed = await self._restore(run, job.failed_stage)
            storyboard = (
                Storyboard.model_validate(job.storyboard)
                if job.storyboard is not None and "plan" in checkpointed
                else None
            )
            request = ProductionRequest.model_validate(job.request)
            request, storyboard = await uploads.localize(
                self.media, job.owner_id, request, storyboard, run.outdir
            )
            result = await self._in_thread(
                run,
                lambda: self._produce(request, run, storyboard, "plan" if review_gate else None),
            )
        except Cancelled:
            await self._drain(run, writer)
            await self._after_cancelled(run)
            return
        except LeaseLost:
            log.warning("worker %s: job %s: lease lost; stopping", self.worker_id, job.id)
            return
        except QAFailed as exc:
            await self._drain(run, writer)
            await self._fail(
                run,
                "qa",
                "qa_failed",
                str(exc),
                transient=False,
                details=exc.report.model_dump(mode="json"),
            )
            return
        except ProviderError as exc:
            # A remote service failed (after the client's retries) and the
            # stage may not fall back: name the provider, the call and why.
            await self._drain(run, writer)
            await self._fail(
                run,
                run.stage,
                "provider_error",
                str(exc),
                transient=exc.transient,
                details=exc.details(),
            )
            return
        except ValueError as exc:
            # PlanningError, BudgetExceeded, UnknownBackend, unreadable media,
            # an invalid stored request or storyboard: retrying cannot help.
            await self._drain(run, writer)
            await self._fail(run, run.stage, "invalid_request", str(exc), transient=False)
            return
        except Exception as exc:
            await self._drain(run, writer)
            if run.reason == "lease":
                log.warning(
                    "worker %s: job %s failed after losing its lease", self.worker_id, job.id
                )
                return
            log.warning(
                "worker %s: job %s: %s failed",
                self.worker_id,
                job.id,
                run.stage or "setup",
                exc_info=True,
            )
            message = f"{type(exc).__name__}: {exc}"
            await self._fail(run, run.stage, "stage_error", message, transient=True)
            return
        await self._drain(run, writer)
        if result is None:
            await self._guard(run, self.service.pause_for_review(job.id, self.worker_id))
            log.info("worker %s: job %s awaits approval", self.worker_id, job.id)
            return
        deliverables = [n for n in run.artifacts if not n.startswith("work/")]
        await self._guard(
            run,
            self.service.complete(
                job.id,
                self.worker_id,
                qa=result.qa.model_dump(mode="json"),
                artifacts=deliverables,
            ),
        )
        log.info("worker %s: job %s completed", self.worker_id, job.id)

    def _produce(
        self,
        request: ProductionRequest,
        run: _Run,
        storyboard: Storyboard | None,
        stop_after: str | None,
    ) -> ProductionResult | None:
        """The pipeline thread's whole job (construction included: it validates
        backends and the budget, whose errors are the request's fault)."""
        cfg = self.settings
        pipeline = Pipeline(
            request,
            run.outdir,
            settings=cfg,
            # Marks the entries this job uses, so deleting it can free them.
            cache=JobCache(cfg.stage_cache_dir, cfg.cache_ttl_hours, run.job_id)
            if cfg.cache_enabled
            else None,
            resume=True,
            on_progress=lambda ev: self._on_progress(run, ev),
            should_cancel=run.abort_event.is_set,
            on_stage_done=lambda stage, files: self._on_stage_done(run, stage, files),
        )
        return pipeline.run(storyboard=storyboard, stop_after=stop_after)

    async def _in_thread(self, run: _Run, fn: Callable[[], T]) -> T:
        """Run `fn` in a thread.  If this task is cancelled (the loop is going
        away), stop the pipeline and wait for the thread: it may still need the
        loop to finish an upload, and its scratch folder must outlive it."""
        task = asyncio.ensure_future(asyncio.to_thread(fn))
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            run.abort("shutdown")
            await asyncio.wait({task}, timeout=self.settings.lease_seconds)
            raise

    # ---------------------------------------------------- outcome helpers

    async def _after_cancelled(self, run: _Run) -> None:
        if run.reason == "cancel":
            await asyncio.to_thread(shutil.rmtree, run.outdir, True)
            removed = await self.storage.delete_prefix(f"jobs/{run.job_id}/")
            await self._guard(run, self.service.finish_cancel(run.job_id, self.worker_id))
            log.info(
                "worker %s: job %s cancelled (%d stored files removed)",
                self.worker_id,
                run.job_id,
                removed,
            )
        elif run.reason == "lease":
            log.warning("worker %s: job %s: lease lost; stopping", self.worker_id, run.job_id)
        else:
            await self._guard(run, self.service.release(run.job_id, self.worker_id))
            log.info(
                "worker %s: job %s interrupted by shutdown; released, it resumes from its "
                "last checkpoint on the next worker",
                self.worker_id,
                run.job_id,
            )

    async def _fail(
        self,
        run: _Run,
        stage: str | None,
        code: str,
        message: str,
        *,
        transient: bool,
        details: dict[str, Any] | None = None,
    ) -> None:
        status = await self._guard(
            run,
            self.service.fail(
                run.job_id,
                self.worker_id,
                stage,
                code,
                message,
                transient=transient,
                details=details,
            ),
        )
        log.info(
            "worker %s: job %s: %s at %s -> %s",
            self.worker_id,
            run.job_id,
            code,
            stage or "setup",
            status or "unrecorded",
        )

    async def _guard(self, run: _Run, call: Awaitable[T]) -> T | None:
        """Record an outcome; a lost lease means another worker owns the job now."""
        try:
            return await call
        except LeaseLost:
            log.warning(
                "worker %s: job %s: lease lost before its outcome was recorded",
                self.worker_id,
                run.job_id,
            )
            return None

    # ------------------------------------------------------------ lease

    async def _heartbeat(self, run: _Run) -> None:
        """Renew the lease; stop the pipeline when the job is cancelled or the
        lease is gone.  Database errors are survivable until the lease would
        have run out: from then on another worker may own the job."""
        last_ok = time.monotonic()
        while True:
            await asyncio.sleep(self.settings.heartbeat_seconds)
            try:
                ours, cancel = await self.service.heartbeat(run.job_id, self.worker_id)
            except Exception:
                log.warning("worker %s: job %s: heartbeat failed", self.worker_id, run.job_id)
                if time.monotonic() - last_ok > self.settings.lease_seconds:
                    run.abort("lease")
                continue
            last_ok = time.monotonic()
            if not ours:
                run.abort("lease")
                return
            if cancel:
                run.abort("cancel")

    # ----------------------------------------------------------- events

    def _on_progress(self, run: _Run, ev: ProgressEvent) -> None:
        """Pipeline thread → loop, without blocking the render.  Progress steps
        are thinned to one per second and whole percent."""
        percent = max(0, min(100, int(ev.overall * 100)))
        payload: dict[str, Any]
        if ev.status == "started":
            run.stage = ev.stage
            run.stage_started = time.monotonic()
            payload = {}
        elif ev.status == "fallback":
            payload = dict(ev.detail)
        elif ev.status == "completed":
            began, run.stage_started = run.stage_started, None
            took = time.monotonic() - began if began is not None else None
            metrics.stage_finished(ev.stage, took, ev.units, ev.cached)
            payload = {
                "cached": ev.cached,
                "units": ev.units,
                "artifacts": run.stage_names.get(ev.stage, []),
            }
        else:
            now = time.monotonic()
            if percent == run.last_percent or now - run.last_progress_at < PROGRESS_INTERVAL:
                return
            run.last_progress_at = now
            payload = {"fraction": round(ev.fraction, 3)}
        run.last_percent = percent
        eta = round(ev.eta, 1) if ev.eta is not None else None
        item = _StageEvent(f"stage.{ev.status}", ev.stage, percent, eta, payload)
        try:
            # FIFO: call_soon_threadsafe keeps the pipeline's order.
            run.loop.call_soon_threadsafe(run.events.put_nowait, item)
        except RuntimeError:  # the loop is closed: nobody is left to tell
            log.debug("job %s: dropped %s (loop closed)", run.job_id, item.type)

    async def _write_events(self, run: _Run) -> None:
        """One writer per job so that the event log keeps the pipeline's order."""
        while True:
            item = await run.events.get()
            if item is None:
                return
            if run.reason == "lease":
                continue
            try:
                await self.service.stage_event(
                    run.job_id,
                    self.worker_id,
                    item.type,
                    item.stage,
                    item.progress,
                    item.eta,
                    item.payload,
                )
            except LeaseLost:
                run.abort("lease")
            except Exception:
                log.warning(
                    "worker %s: job %s: %s not recorded",
                    self.worker_id,
                    run.job_id,
                    item.type,
                    exc_info=True,
                )

    async def _drain(self, run: _Run, writer: asyncio.Task[None]) -> None:
        """Write every pending event before the job's final transition."""
        if writer.done():
            return
        run.events.put_nowait(None)
        with contextlib.suppress(Exception):
            await writer

    # ------------------------------------------------------- checkpoints

    def _on_stage_done(self, run: _Run, stage: str, files: list[Path]) -> None:
        """Pipeline thread: block until the stage's checkpoint is durable, so a
        crash in the next stage never loses this one."""
        future = asyncio.run_coroutine_threadsafe(self._checkpoint(run, stage, files), run.loop)
        future.result()

    async def _checkpoint(self, run: _Run, stage: str, files: Sequence[Path]) -> None:
        artifacts = await self.checkpoints.save(run.job_id, run.outdir, stage, files)
        run.stage_names[stage] = [a["name"] for a in artifacts]
        for a in artifacts:
            run.artifacts[a["name"]] = a
        log.debug("job %s: %s checkpointed (%d files)", run.job_id, stage, len(artifacts))

    async def _restore(self, run: _Run, redo_from: str | None) -> set[str]:
        """Bring the checkpointed stages back into the scratch folder (see
        :meth:`CheckpointFiles.restore`); the stages that have a checkpoint row."""
        restored = await self.checkpoints.restore(run.job_id, run.outdir, redo_from)
        run.artifacts.update(restored.artifacts)
        run.stage_names.update(restored.stage_names)
        return restored.stages


__all__ = ["Worker", "artifact_key", "make_worker_id"]
