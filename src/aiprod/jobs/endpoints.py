"""The productions API: submit, follow, steer and download.

Handlers validate, call :class:`JobService` and shape the answer; the rules of
the job lifecycle live in the service so workers and the API share them.

Ownership is enforced by passing the caller's id to every service call (None
for admins).  The service answers another user's job exactly like a missing
one, so ids cannot be probed; ``tests/api/test_access.py`` checks every route
under ``/v1/productions/{production_id}`` for this.
"""

from __future__ import annotations

import logging
import re
import uuid
from typing import Annotated, Any, cast

from fastapi import APIRouter, Header, Path, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import ValidationError

from aiprod import errors
from aiprod.db.paging import decode_cursor, page_of
from aiprod.errors import Invalid, NotFound, error_responses
from aiprod.identity.deps import (
    JobsApprove,
    JobsCreate,
    JobsRead,
    JobsUpdate,
    ResultsRead,
    owner_scope,
)
from aiprod.jobs.models import Job
from aiprod.jobs.schemas import (
    ArtifactList,
    ArtifactOut,
    EstimateResponse,
    EventOut,
    EventPage,
    JobOut,
    JobPage,
    JobStatus,
    PresetOut,
    RerenderRequest,
    SubmitResponse,
    content_type,
    safe_artifact_name,
)
from aiprod.jobs.service import JobService
from aiprod.production import backends
from aiprod.production.cost import BudgetExceeded, CostEstimate, fit_budget
from aiprod.production.models import ProductionRequest, Storyboard
from aiprod.production.presets import PRESETS
from aiprod.settings import Settings
from aiprod.storage.store import ArtifactNotFound, Storage

log = logging.getLogger("aiprod.api.jobs")

router = APIRouter(prefix="/v1/productions", tags=["productions"])
catalog = APIRouter(prefix="/v1", tags=["catalog"])

ProductionId = Annotated[uuid.UUID, Path(description="The production's id.")]
_READ_ERRORS = error_responses(401, 404, 422)
_ACTION_ERRORS = error_responses(401, 403, 404, 409, 413, 422)


def _jobs(request: Request) -> JobService:
    return cast(JobService, request.app.state.jobs)


def _settings(request: Request) -> Settings:
    return cast(Settings, request.app.state.settings)


def _storage(request: Request) -> Storage:
    return cast(Storage, request.app.state.storage)


def _root(request: Request) -> str:
    return str(request.scope.get("root_path", "")).rstrip("/")


def _out(request: Request, job: Job) -> JobOut:
    return JobOut.from_job(job, _root(request))


def _check_api_request(request: ProductionRequest) -> None:
    """What the schema cannot know: the API never reads server paths named by a
    client, and backend names must exist here."""
    if request.media:
        raise Invalid.at(
            ["body", "media"],
            "media files cannot be referenced over the API: the server would read "
            "paths on its own disk.  Leave `media` empty; uploads will come later.",
            "media_not_allowed",
        )
    for stage, name in request.backends.items():
        try:
            backends.check(stage, name)
        except backends.UnknownBackend as exc:
            raise Invalid.at(["body", "backends", stage], str(exc), "unknown_backend") from None


def _estimate(jobs: JobService, request: ProductionRequest) -> tuple[dict[str, Any], bool]:
    try:
        return jobs.estimate(request)
    except BudgetExceeded:
        raise
    except ValueError as exc:  # e.g. a backend with no price for its unit
        raise Invalid(f"cannot estimate this request: {exc}", "estimate_failed") from None


# ------------------------------------------------------------- productions


@router.post(
    "",
    status_code=202,
    summary="Submit a production",
    response_model=SubmitResponse,
    responses={
        202: {
            "description": "Queued (or, with a replayed `Idempotency-Key`, the first job).",
            "headers": {
                "Location": {"description": "The job's URL.", "schema": {"type": "string"}},
                "Idempotent-Replayed": {
                    "description": "`true` when this is the answer to an earlier request.",
                    "schema": {"type": "string", "enum": ["true"]},
                },
            },
        },
        **error_responses(401, 403, 409, 413, 422),
    },
)
async def submit(
    request: Request,
    response: Response,
    body: ProductionRequest,
    user: JobsCreate,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            min_length=1,
            max_length=255,
            pattern=r"^[\x21-\x7e]+$",
            description="Client-chosen key: repeating the same request with it returns "
            "the first job (with `Idempotent-Replayed: true`) instead of a new one; "
            "reusing it with a different body answers 409 `idempotency_conflict`.",
        ),
    ] = None,
) -> SubmitResponse:
    """Queue a production (exactly one of `prompt` and `script`).  Answers 202 with
    the job, its cost estimate and whether it takes the fast track, and a
    `Location` header to poll.  A budget no render fits answers 422
    `budget_exceeded`; unknown fields and `media` answer 422."""
    _check_api_request(body)
    jobs = _jobs(request)
    try:
        job, created = await jobs.create(user.user_id, body, idempotency_key)
    except BudgetExceeded:
        raise
    except ValueError as exc:
        raise Invalid(f"cannot estimate this request: {exc}", "estimate_failed") from None
    out = _out(request, job)
    response.headers["Location"] = out.links.self
    if not created:
        response.headers["Idempotent-Replayed"] = "true"
    return SubmitResponse(
        job=out, estimate=CostEstimate.model_validate(job.estimate), fast_track=job.fast_track
    )


@router.get(
    "",
    summary="List productions",
    response_model=JobPage,
    responses=error_responses(401, 422),
)
async def list_productions(
    request: Request,
    user: JobsRead,
    limit: Annotated[
        int, Query(ge=1, description="Page size; values above the server's maximum are capped.")
    ] = 20,
    cursor: Annotated[
        str | None, Query(max_length=200, description="`next_cursor` of the previous page.")
    ] = None,
    status: Annotated[JobStatus | None, Query(description="Only jobs in this status.")] = None,
) -> JobPage:
    """Your productions, newest first (admins: everyone's), a page at a time.  The
    cursor marks a position, so jobs created while paging never shift pages."""
    limit = min(limit, _settings(request).page_size_max)
    before = decode_cursor(cursor)
    rows = await _jobs(request).list_jobs(owner_scope(user), limit + 1, before, status)
    page, next_cursor = page_of(rows, limit)
    return JobPage(items=[_out(request, j) for j in page], next_cursor=next_cursor)


@router.get(
    "/{production_id}",
    summary="Get a production",
    response_model=JobOut,
    responses=_READ_ERRORS,
)
async def get_production(request: Request, production_id: ProductionId, user: JobsRead) -> JobOut:
    """Status, stage, progress, ETA, estimate, QA summary and links."""
    return _out(request, await _jobs(request).get(production_id, owner_scope(user)))


@router.get(
    "/{production_id}/events",
    summary="Follow a production's events",
    response_model=EventPage,
    responses=_READ_ERRORS,
)
async def list_events(
    request: Request,
    production_id: ProductionId,
    user: JobsRead,
    after: Annotated[int, Query(ge=0, description="Only events with a larger `seq`.")] = 0,
    limit: Annotated[int, Query(ge=1, description="At most this many (capped).")] = 100,
) -> EventPage:
    """Transitions and progress steps in order.  Poll with `after=next_after` to
    receive each event exactly once."""
    jobs = _jobs(request)
    job = await jobs.get(production_id, owner_scope(user))
    limit = min(limit, _settings(request).page_size_max)
    rows = await jobs.events(job.id, after, limit + 1)
    page = rows[:limit]
    return EventPage(
        items=[EventOut.from_event(e) for e in page],
        next_after=page[-1].seq if page else after,
        has_more=len(rows) > limit,
    )


@router.get(
    "/{production_id}/storyboard",
    summary="Get the storyboard",
    response_model=Storyboard,
    responses=_READ_ERRORS,
)
async def get_storyboard(
    request: Request, production_id: ProductionId, user: JobsRead
) -> Storyboard:
    """The plan: scenes with narration, visuals, timing.  404 until planning has
    finished.  Edit it with PATCH while the job awaits approval."""
    job = await _jobs(request).get(production_id, owner_scope(user))
    if job.storyboard is None:
        raise NotFound("this production has no storyboard yet (planning has not finished)")
    return Storyboard.model_validate(job.storyboard)


@router.patch(
    "/{production_id}/storyboard",
    summary="Replace the storyboard before approval",
    response_model=JobOut,
    responses=_ACTION_ERRORS,
)
async def update_storyboard(
    request: Request, production_id: ProductionId, body: Storyboard, user: JobsUpdate
) -> JobOut:
    """Only while the job is `awaiting_approval` (else 409).  The new plan must
    fit the request's preset (scenes, duration) and budget (else 422); media may
    only move between scenes."""
    jobs = _jobs(request)
    scope = owner_scope(user)
    job = await jobs.get(production_id, scope)
    if job.status == "awaiting_approval":  # otherwise the service answers 409 first
        _check_storyboard(jobs, ProductionRequest.model_validate(job.request), body)
    return _out(request, await jobs.update_storyboard(production_id, scope, body))


def _check_storyboard(jobs: JobService, request: ProductionRequest, sb: Storyboard) -> None:
    preset = PRESETS[request.preset]
    if len(sb.scenes) > preset.max_scenes:
        raise Invalid.at(
            ["body", "scenes"],
            f"{len(sb.scenes)} scenes exceed the {preset.name} preset's cap of {preset.max_scenes}",
            "too_many_scenes",
        )
    if sb.duration > preset.max_duration:
        raise Invalid.at(
            ["body", "scenes"],
            f"the storyboard runs {sb.duration:.1f}s, above the {preset.name} preset's cap "
            f"of {preset.max_duration:g}s",
            "too_long",
        )
    fit_budget(request, jobs.prices, sb)  # BudgetExceeded → 422 budget_exceeded


@router.post(
    "/{production_id}/approve",
    status_code=202,
    summary="Approve the storyboard",
    response_model=JobOut,
    responses=_ACTION_ERRORS,
)
async def approve(request: Request, production_id: ProductionId, user: JobsApprove) -> JobOut:
    """Queue a job paused at `awaiting_approval` to render its storyboard."""
    return _out(request, await _jobs(request).approve(production_id, owner_scope(user)))


@router.post(
    "/{production_id}/cancel",
    summary="Cancel a production",
    response_model=JobOut,
    responses={
        202: {"model": JobOut, "description": "Running: its worker stops within a heartbeat."},
        **_ACTION_ERRORS,
    },
)
async def cancel(
    request: Request, response: Response, production_id: ProductionId, user: JobsUpdate
) -> JobOut:
    """A queued or paused job is cancelled at once (200).  A running one is
    asked to stop (202; `status` stays `processing` until its worker stops).
    Finished jobs answer 409."""
    job = await _jobs(request).cancel(production_id, owner_scope(user))
    if job.status == "processing":
        response.status_code = 202
    return _out(request, job)


@router.post(
    "/{production_id}/retry",
    status_code=202,
    summary="Retry a failed production",
    response_model=JobOut,
    responses=_ACTION_ERRORS,
)
async def retry(request: Request, production_id: ProductionId, user: JobsUpdate) -> JobOut:
    """Queue a `failed` job again; it resumes after its last finished stage."""
    return _out(request, await _jobs(request).retry(production_id, owner_scope(user)))


@router.post(
    "/{production_id}/scenes/{index}/rerender",
    status_code=202,
    summary="Change one scene and render again",
    response_model=JobOut,
    responses=_ACTION_ERRORS,
)
async def rerender(
    request: Request,
    production_id: ProductionId,
    index: Annotated[int, Path(ge=0, le=10_000, description="Zero-based scene index.")],
    body: RerenderRequest,
    user: JobsUpdate,
) -> JobOut:
    """For a `completed` or `failed` job: apply the changes to scene `index` and
    queue the job.  Cached stages serve every other scene, so only this scene
    and the final montage are made again.  Unknown scene: 404."""
    try:
        job = await _jobs(request).rerender(production_id, owner_scope(user), index, body.changes())
    except ValidationError as exc:
        details = [
            {"loc": ["body", *e.get("loc", ())], "msg": e.get("msg", ""), "type": e.get("type")}
            for e in exc.errors()
        ]
        raise Invalid("the changed scene is invalid", details=details) from None
    return _out(request, job)


# --------------------------------------------------------------- artifacts


async def _artifacts(jobs: JobService, job: Job) -> dict[str, tuple[str, dict[str, Any]]]:
    """name → (stage, artifact) from the job's checkpoints; a later stage's entry
    replaces an earlier one of the same name.  Entries whose key is not inside
    the job's own storage folder are dropped: the API never serves a key a row
    merely names."""
    prefix = f"jobs/{job.id}/"
    found: dict[str, tuple[str, dict[str, Any]]] = {}
    for cp in await jobs.checkpoints(job.id):
        for art in cp.artifacts:
            name, key = art.get("name"), art.get("key")
            if not isinstance(name, str) or not isinstance(key, str):
                continue
            if not safe_artifact_name(name) or key != prefix + name:
                log.warning("job %s: ignoring artifact %r with key %r", job.id, name, key)
                continue
            found[name] = (cp.stage, art)
    return found


@router.get(
    "/{production_id}/artifacts",
    tags=["artifacts"],
    summary="List a production's files",
    response_model=ArtifactList,
    responses=_READ_ERRORS,
)
async def list_artifacts(
    request: Request, production_id: ProductionId, user: ResultsRead
) -> ArtifactList:
    """Every file recorded by the job's finished stages (final video, subtitles,
    thumbnails, intermediate clips …) with size, SHA-256, type and download URL."""
    jobs = _jobs(request)
    job = await jobs.get(production_id, owner_scope(user))
    base = f"{_root(request)}/v1/productions/{job.id}/artifacts/"
    items = [
        ArtifactOut(
            name=name,
            stage=stage,
            bytes=int(art.get("bytes", 0)),
            sha256=str(art.get("sha256", "")),
            content_type=content_type(name),
            url=base + name,
        )
        for name, (stage, art) in sorted((await _artifacts(jobs, job)).items())
    ]
    return ArtifactList(items=items)


_BINARY = {"schema": {"type": "string", "format": "binary"}}


@router.get(
    "/{production_id}/artifacts/{name:path}",
    tags=["artifacts"],
    summary="Download a file",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "The whole file.",
            "content": dict.fromkeys(("video/mp4", "application/octet-stream"), _BINARY),
        },
        206: {"description": "The requested byte range.", "content": {"video/mp4": _BINARY}},
        304: {"description": "Unchanged since the `If-None-Match` ETag."},
        **error_responses(401, 404, 416, 422),
    },
)
async def get_artifact(
    request: Request,
    production_id: ProductionId,
    name: Annotated[str, Path(description="A name from the artifact list, e.g. `video.mp4`.")],
    user: ResultsRead,
    range_: Annotated[
        str | None,
        Header(
            alias="Range",
            description="One range: `bytes=a-b`, `bytes=a-` or `bytes=-n` (last n bytes).",
        ),
    ] = None,
    if_none_match: Annotated[str | None, Header(alias="If-None-Match")] = None,
) -> Response:
    """Stream one file listed by the job's checkpoints.  Supports a single byte
    range (206; 416 when outside the file) so video players can seek; the ETag
    is the file's SHA-256.  Any name not in the list answers 404."""
    jobs = _jobs(request)
    job = await jobs.get(production_id, owner_scope(user))
    entry = (await _artifacts(jobs, job)).get(name) if safe_artifact_name(name) else None
    if entry is None:
        raise NotFound(f"artifact {name!r} not found for production {job.id}")
    art = entry[1]
    key = str(art["key"])
    storage = _storage(request)
    try:
        size = await storage.size(key)
    except ArtifactNotFound:
        log.error("job %s: artifact %s is listed but missing from storage", job.id, key)
        raise NotFound(f"artifact {name!r} is no longer stored") from None

    headers = {
        "Accept-Ranges": "bytes",
        "Cache-Control": "private, no-cache",
        "Content-Disposition": f'inline; filename="{_filename(name)}"',
    }
    sha = art.get("sha256")
    if isinstance(sha, str) and sha:
        headers["ETag"] = f'"{sha}"'
        if if_none_match is not None and (
            if_none_match.strip() == "*" or headers["ETag"] in _etags(if_none_match)
        ):
            return Response(status_code=304, headers=headers)

    status, start, end = 200, 0, size
    if range_ is not None:
        try:
            span = parse_range(range_, size)
        except Unsatisfiable:
            raise errors.Unsatisfiable(
                f"range {range_!r} is outside the file ({size} bytes)",
                headers={"Content-Range": f"bytes */{size}", "Accept-Ranges": "bytes"},
            ) from None
        if span is not None:
            status, (start, end) = 206, span
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
    headers["Content-Length"] = str(end - start)
    return StreamingResponse(
        storage.stream(key, start, end),
        status_code=status,
        media_type=content_type(name),
        headers=headers,
    )


class Unsatisfiable(Exception):
    """The range lies outside the representation (RFC 9110 §15.5.17)."""


_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def parse_range(header: str, size: int) -> tuple[int, int] | None:
    """A single byte range as [start, end), None to ignore the header (another
    unit, several ranges, or malformed: RFC 9110 lets us send the whole file),
    or Unsatisfiable."""
    m = _RANGE.match(header.strip())
    if m is None:
        return None
    first, last = m.groups()
    if not first:
        if not last:
            return None
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise Unsatisfiable
        return max(0, size - suffix), size
    start = int(first)
    if last and int(last) < start:
        return None
    if start >= size:
        raise Unsatisfiable
    end = min(int(last) + 1, size) if last else size
    return start, end


def _etags(header: str) -> set[str]:
    return {t.strip().removeprefix("W/") for t in header.split(",")}


_UNSAFE_FILENAME = re.compile(r"[^A-Za-z0-9._-]")


def _filename(name: str) -> str:
    return _UNSAFE_FILENAME.sub("_", name.rsplit("/", 1)[-1]) or "artifact"


# ----------------------------------------------------------------- catalog


@catalog.get(
    "/presets",
    summary="List presets",
    response_model=list[PresetOut],
    responses=error_responses(401),
)
async def list_presets(user: JobsRead) -> list[PresetOut]:
    """Named bundles of defaults and caps a request picks with `preset`."""
    return [
        PresetOut(
            name=p.name,
            description=p.description,
            default_duration=p.default_duration,
            max_duration=p.max_duration,
            max_scenes=p.max_scenes,
            quality=p.quality,
            resolutions=list(p.resolutions),
        )
        for p in PRESETS.values()
    ]


@catalog.post(
    "/cost-estimate",
    summary="Estimate cost without submitting",
    response_model=EstimateResponse,
    responses=error_responses(401, 413, 422),
)
async def cost_estimate(
    request: Request, body: ProductionRequest, user: JobsRead
) -> EstimateResponse:
    """The estimate and fast-track decision `POST /v1/productions` would make for
    this body (budget downgrades applied; 422 `budget_exceeded` when nothing
    fits).  Creates no job."""
    _check_api_request(body)
    estimate, fast = _estimate(_jobs(request), body)
    return EstimateResponse(estimate=CostEstimate.model_validate(estimate), fast_track=fast)
