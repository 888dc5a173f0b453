"""Liveness and readiness probes.

``/health/live`` says only that the process answers (restart it if not).
``/health/ready`` says whether it can do useful work: the database answers,
the artifact store takes a write, and, when this deployment expects workers,
one of them has beaten recently, because an API that accepts jobs nobody will
run is not ready.  Readiness is unauthenticated (load balancers call it), so
failures name the part and the exception type but never paths or hosts.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Literal, cast

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field
from sqlalchemy import text

from aiprod.db.engine import Database
from aiprod.errors import Unavailable, error_responses
from aiprod.jobs.service import JobService
from aiprod.settings import Settings
from aiprod.storage.store import Storage

log = logging.getLogger("aiprod.api.health")

CHECK_TIMEOUT_S = 5.0
"""A probe that hangs is a failed probe: orchestrators time out at ~10 s."""

router = APIRouter(prefix="/health", tags=["health"])


class Live(BaseModel):
    status: Literal["ok"] = "ok"


class Ready(BaseModel):
    status: Literal["ok"] = "ok"
    checks: dict[str, str] = Field(
        description="Each part checked and its state (`ok`, or `not expected` for workers)."
    )


@router.get(
    "/live",
    summary="Liveness probe",
    response_model=Live,
    description="Answers 200 while the process serves requests; touches no dependency.",
)
async def live() -> Live:
    return Live()


@router.get(
    "/ready",
    summary="Readiness probe",
    response_model=Ready,
    responses=error_responses(503),
    description=(
        "200 when the database answers `SELECT 1`, the artifact store accepts a write, "
        "and (when workers are expected) a worker heartbeat is newer than three "
        "heartbeat intervals.  Otherwise 503 whose message names every failing part; "
        "`details.checks` holds each part's state."
    ),
)
async def ready(request: Request) -> Ready:
    state = request.app.state
    settings = cast(Settings, state.settings)
    db = cast(Database, state.db)
    storage = cast(Storage, state.storage)
    jobs = cast(JobService, state.jobs)

    async def database() -> str:
        async with db.session() as s:
            await s.execute(text("SELECT 1"))
        return "ok"

    async def store() -> str:
        await storage.check()
        return "ok"

    async def worker() -> str:
        if not state.worker_expected:
            return "not expected"
        beat = await jobs.last_worker_beat()
        if beat is None:
            raise _NotHealthy("no worker has reported")
        age = (datetime.now(UTC) - beat).total_seconds()
        limit = 3 * settings.heartbeat_seconds
        if age > limit:
            raise _NotHealthy(f"last heartbeat {age:.0f}s ago (limit {limit:g}s)")
        return "ok"

    probes: dict[str, Callable[[], Awaitable[str]]] = {
        "database": database,
        "storage": store,
        "worker": worker,
    }
    results = await asyncio.gather(*(_run(name, p) for name, p in probes.items()))
    checks = dict(zip(probes, results, strict=True))
    failing = [name for name, result in checks.items() if result.startswith("failed")]
    if failing:
        raise Unavailable(
            f"not ready: {', '.join(failing)}", details={"failing": failing, "checks": checks}
        )
    return Ready(checks=checks)


class _NotHealthy(Exception):
    """A probe's own verdict, whose message is safe to publish."""


async def _run(name: str, probe: Callable[[], Awaitable[str]]) -> str:
    try:
        return await asyncio.wait_for(probe(), CHECK_TIMEOUT_S)
    except _NotHealthy as exc:
        return f"failed: {exc}"
    except TimeoutError:
        return f"failed: no answer within {CHECK_TIMEOUT_S:g}s"
    except Exception as exc:
        log.warning("readiness check %s failed", name, exc_info=True)
        return f"failed: {type(exc).__name__}"
