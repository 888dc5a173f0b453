"""The FastAPI application factory.

One factory for ``aiprod serve`` and the tests: everything the app needs comes
from ``Settings`` and is built in the lifespan (not at import), so two apps with
different settings can live in one process.  Startup fails closed: a weak or
world-readable signing key, a database that cannot be migrated or an artifact
store that cannot be opened stop the server instead of serving half-working.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

from fastapi import FastAPI

from aiprod import __version__
from aiprod.api import errors, health, middleware, ratelimit
from aiprod.api import openapi as api_openapi
from aiprod.api.observability import ObservabilityMiddleware
from aiprod.db.engine import Database
from aiprod.db.migrate import upgrade_async
from aiprod.events import endpoints as event_endpoints
from aiprod.events import sse as event_sse
from aiprod.events import websocket as event_websocket
from aiprod.events.runtime import EventsRuntime
from aiprod.events.webhooks import endpoints as webhook_endpoints
from aiprod.exports import endpoints as export_endpoints
from aiprod.identity import endpoints as identity_endpoints
from aiprod.identity.api_keys.rotation import RotationTask
from aiprod.identity.deps import check_routes
from aiprod.identity.service import IdentityService
from aiprod.jobs import deletion_endpoints, usage_endpoints
from aiprod.jobs import endpoints as job_endpoints
from aiprod.jobs.deletion import ProductionDeleter
from aiprod.jobs.retention import RetentionTask
from aiprod.jobs.service import EventHook, JobService
from aiprod.jobs.uploads import endpoints as media_endpoints
from aiprod.jobs.uploads import receive as media_receive
from aiprod.ops import endpoints as ops_endpoints
from aiprod.private_files import private_dir
from aiprod.settings import Settings, get_settings
from aiprod.storage.store import Storage
from aiprod.web import routes as web_routes

log = logging.getLogger("aiprod.api")

DESCRIPTION = """\
AIPROD turns a prompt or a script into a narrated video.  Productions run as
durable jobs: submit one, follow its events, optionally review and edit the
storyboard before rendering, then download the video, subtitles and thumbnails.

**Authentication.** `POST /v1/auth/login` returns a short-lived access token
(send it as `Authorization: Bearer <token>`) and a single-use refresh token
(trade it at `POST /v1/auth/refresh`).  Reusing a spent refresh token revokes
the whole login.

**Errors.** Every error answers `{"error": {"code", "message", "details"}}`
with a stable `code` (`not_found`, `validation_error`, `budget_exceeded`,
`idempotency_conflict`, `invalid_state`, …).

**Privacy.** Another user's production answers 404 exactly like a missing one.

**Limits.** Every route belongs to a rate-limit class (`x-aiprod-rate-limit`:
auth, writes, reads, exports, streams) counted per client address and per
credential; answers carry `RateLimit-Policy` and `RateLimit` headers, and a
refusal is 429 `rate_limited` with `Retry-After`.  Quotas per user
(`GET /v1/me/usage`) refuse a production before any work with
`quota_exceeded` (429 when waiting helps, 403 otherwise).

**Idempotency.** Send `Idempotency-Key` with `POST /v1/productions` to make
retries safe.  **Pagination.** Lists are keyset-paginated with an opaque
`cursor`.
"""

TAGS = [
    {"name": "auth", "description": "Log in, rotate tokens, log out, who am I."},
    {"name": "api-keys", "description": "Scoped API keys with rotation (secret shown once)."},
    {"name": "admin", "description": "Users and roles, key rotation, the audit log."},
    {"name": "productions", "description": "Submit, follow, review and steer productions."},
    {"name": "artifacts", "description": "Files a production made: video, subtitles, …"},
    {"name": "media", "description": "Your pictures, clips and songs for productions."},
    {"name": "exports", "description": "A production as JSON, CSV or ZIP; a user's data."},
    {"name": "catalog", "description": "Presets and cost estimates."},
    {"name": "health", "description": "Probes for load balancers and orchestrators."},
    {
        "name": "events",
        "description": "Live progress: SSE stream and tickets for WebSocket/SSE streams "
        "(protocol: docs/websocket.md).",
    },
    {"name": "webhooks", "description": "Signed, retried event deliveries to your endpoints."},
    {"name": "metrics", "description": "Prometheus metrics, for a scraper or an admin."},
]


def create_app(settings: Settings | None = None, *, embedded_worker: bool | None = None) -> FastAPI:
    """Build the app.

    `embedded_worker`: None runs a worker inside the server when
    ``settings.workers > 0``; False never does (workers run as their own
    processes); True always does, with at least one slot.  Readiness expects a
    live worker whenever one is embedded or ``settings.workers > 0``.
    """
    cfg = settings if settings is not None else get_settings()
    run_worker = cfg.workers > 0 if embedded_worker is None else embedded_worker
    worker_expected = run_worker or cfg.workers > 0

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        private_dir(cfg.data_dir)  # database, signing key, artifacts: this user's only
        app.state.rate_limiter = ratelimit.Limiter(cfg) if cfg.rate_limits_enabled else None
        db = Database(cfg.sqlalchemy_url)
        try:
            # First, before touching anything: refuses a weak signing key.
            identity = IdentityService(db, cfg)
            await upgrade_async(cfg.sqlalchemy_url)
            storage = Storage(cfg.artifact_url)
            app.state.settings = cfg
            app.state.metrics_token = ops_endpoints.scrape_token(cfg)
            app.state.db = db
            app.state.storage = storage
            app.state.identity = identity
            events = await EventsRuntime.start(db, cfg)
            app.state.events = events.bus
            app.state.webhooks = events.webhooks
            app.state.webhook_dispatcher = events.dispatcher
            app.state.jobs = JobService(db, cfg, events.publisher)
            app.state.deleter = ProductionDeleter(app.state.jobs, storage, identity.audit, cfg)
            app.state.worker_expected = worker_expected
            stop = asyncio.Event()
            task = _start_worker(db, storage, cfg, stop, events.publisher) if run_worker else None
            period = cfg.api_key_rotation_check_seconds
            rotation = RotationTask(identity, period) if period > 0 else None
            every = cfg.retention_check_seconds
            retention = (
                RetentionTask(app.state.deleter, cfg.retention_days, every) if every > 0 else None
            )
            try:
                yield
            finally:
                if rotation is not None:
                    await rotation.close()
                if retention is not None:
                    await retention.close()
                try:
                    if task is not None:
                        await _stop_worker(task, stop, cfg.lease_seconds)
                finally:
                    await events.stop()
        finally:
            await db.dispose()
            if app.state.rate_limiter is not None:
                await app.state.rate_limiter.close()

    app = FastAPI(
        title="AIPROD API",
        version=__version__,
        description=DESCRIPTION,
        openapi_tags=TAGS,
        lifespan=lifespan,
        # Served from files in the package by aiprod.web (FastAPI's load a CDN).
        docs_url=None,
        redoc_url=None,
    )
    errors.install(app)
    middleware.install(
        app,
        cfg.max_body_bytes,
        cfg.trusted_proxies,
        # The upload route streams and caps its own body (413 `too_large`).
        {"/v1/media": cfg.media_max_bytes + 2 * media_receive.OVERHEAD},
        rate_limits=cfg.rate_limits_enabled,
        hsts=cfg.hsts,
    )
    app.add_middleware(ObservabilityMiddleware, access=cfg.access_log)  # outermost
    app.include_router(health.router)
    app.include_router(identity_endpoints.router)
    app.include_router(job_endpoints.router)
    app.include_router(job_endpoints.catalog)
    app.include_router(deletion_endpoints.router)
    app.include_router(export_endpoints.router)
    app.include_router(media_endpoints.router)
    app.include_router(event_sse.router)
    app.include_router(event_websocket.router)
    app.include_router(event_endpoints.tickets)
    app.include_router(webhook_endpoints.router)
    app.include_router(usage_endpoints.router)
    app.include_router(ops_endpoints.router)
    web_routes.install(app)
    check_routes(app)  # deny by default: every /v1 route declares its permission
    api_openapi.install(app)
    ratelimit.install_openapi(app)
    return app


def _start_worker(
    db: Database,
    storage: Storage,
    settings: Settings,
    stop: asyncio.Event,
    on_event: EventHook | None = None,
) -> asyncio.Task[None]:
    # Imported here: API-only deployments never load the rendering stack.
    from aiprod.jobs.worker import Worker

    worker = Worker(db, storage, settings, max(1, settings.workers), on_event)
    task = asyncio.create_task(worker.run(stop), name="aiprod-embedded-worker")
    task.add_done_callback(_worker_exited)
    return task


def _worker_exited(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        # Readiness turns 503 once its heartbeat is stale; say why here.
        log.error("embedded worker stopped", exc_info=task.exception())


async def _stop_worker(task: asyncio.Task[None], stop: asyncio.Event, grace: float) -> None:
    """Ask the worker to stop and give it up to a lease to hand its jobs back;
    a job it abandons is resumed by the next worker once the lease runs out."""
    stop.set()
    done, _ = await asyncio.wait({task}, timeout=grace)
    if not done:
        log.warning("embedded worker did not stop within %.0fs; cancelling it", grace)
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task
