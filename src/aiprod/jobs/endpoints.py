"""The productions API: submit, follow, steer and download; the catalog.

Handlers validate, call a service and shape the answer: the rules of the job
lifecycle live in :class:`JobService` (workers share them), which files may be
served in :mod:`aiprod.jobs.artifacts`, what a request must satisfy beyond its
schema in :mod:`aiprod.jobs.checks`, and `Range`/`ETag` parsing in
:mod:`aiprod.http_ranges`.  Services arrive as dependencies (`Jobs`,
`ArtifactsDep`, … from :mod:`aiprod.jobs.deps`).

Ownership is enforced by passing the caller's id to every service call (None
for admins).  The service answers another user's job exactly like a missing
one, so ids cannot be probed; ``tests/api/test_access.py`` checks every route
under ``/v1/productions/{production_id}`` for this.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import ValidationError

from aiprod import http_ranges
from aiprod.errors import Invalid, NotFound, error_responses
from aiprod.identity.deps import (
    JobsApprove,
    JobsCreate,
    JobsRead,
    JobsUpdate,
    ResultsRead,
    owner_scope,
)
from aiprod.jobs import checks
from aiprod.jobs.artifacts import byte_span
from aiprod.jobs.catalog import catalog
from aiprod.jobs.deps import ArtifactsDep, Jobs, Media, PageCursor, PageSize, RootPath, SettingsDep
from aiprod.jobs.models import SEQ_MAX
from aiprod.jobs.schemas import (
    ArtifactList,
    ArtifactOut,
    EventOut,
    EventPage,
    JobOut,
    JobPage,
    JobStatus,
    RerenderRequest,
    SubmitResponse,
)
from aiprod.production.cost import BudgetExceeded, CostEstimate
from aiprod.production.models import ProductionRequest, Storyboard
from aiprod.search import listing
from aiprod.search.docs import FilterParam, QParam, SortParam

router = APIRouter(prefix="/v1/productions", tags=["productions"])

ProductionId = Annotated[uuid.UUID, Path(description="The production's id.")]
_READ_ERRORS = error_responses(401, 404, 422)
_ACTION_ERRORS = error_responses(401, 403, 404, 409, 413, 422)


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
    response: Response,
    body: ProductionRequest,
    user: JobsCreate,
    settings: SettingsDep,
    jobs: Jobs,
    media: Media,
    root: RootPath,
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
    `budget_exceeded`; unknown fields, a voice not listed by `GET /v1/voices`,
    a `media[].path` or `music_file` (server paths) and a `media_id` or
    `music_media_id` that is not an upload of yours of the right kind
    (`POST /v1/media`: pictures or clips on scenes, audio as music) answer 422."""
    await checks.production_request(body, user.user_id, media, settings)
    try:
        job, created = await jobs.create(user.user_id, body, idempotency_key)
    except BudgetExceeded:
        raise
    except ValueError as exc:
        raise Invalid(f"cannot estimate this request: {exc}", "estimate_failed") from None
    out = JobOut.from_job(job, root)
    response.headers["Location"] = out.links.self
    if not created:
        response.headers["Idempotent-Replayed"] = "true"
    return SubmitResponse(
        job=out, estimate=CostEstimate.model_validate(job.estimate), fast_track=job.fast_track
    )


@router.get(
    "",
    summary="List and search productions",
    response_model=JobPage,
    responses=error_responses(400, 401, 422),
)
async def list_productions(
    user: JobsRead,
    jobs: Jobs,
    settings: SettingsDep,
    root: RootPath,
    limit: PageSize = 20,
    cursor: PageCursor = None,
    status: Annotated[JobStatus | None, Query(description="Only jobs in this status.")] = None,
    filter_: FilterParam = "",
    q: QParam = "",
    sort: SortParam = "-created",
) -> JobPage:
    """Your productions (admins: everyone's), newest first unless `sort` says
    otherwise, a page at a time, narrowed by `filter` and `q`.  The cursor
    marks a position, so jobs created while paging never shift pages.  A
    filter, query or sort that cannot be read answers 400 `invalid_filter`
    with the position and what was expected there; a field that does not
    exist, or that you may not use, too."""
    limit = min(limit, settings.page_size_max)
    search = listing.Search(owner_scope(user), filter_, q, sort, status)
    rows, next_cursor = await listing.page(jobs.db, listing.prepare(search), limit, cursor)
    return JobPage(items=[JobOut.from_job(j, root) for j in rows], next_cursor=next_cursor)


@router.get(
    "/{production_id}",
    summary="Get a production",
    response_model=JobOut,
    responses=_READ_ERRORS,
)
async def get_production(
    production_id: ProductionId, user: JobsRead, jobs: Jobs, root: RootPath
) -> JobOut:
    """Status, stage, progress, ETA, estimate, QA summary and links."""
    return JobOut.from_job(await jobs.get(production_id, owner_scope(user)), root)


@router.get(
    "/{production_id}/events",
    summary="Follow a production's events",
    response_model=EventPage,
    responses=_READ_ERRORS,
)
async def list_events(
    production_id: ProductionId,
    user: JobsRead,
    jobs: Jobs,
    settings: SettingsDep,
    after: Annotated[
        int, Query(ge=0, le=SEQ_MAX, description="Only events with a larger `seq`.")
    ] = 0,
    limit: PageSize = 100,
) -> EventPage:
    """Transitions and progress steps in order.  Poll with `after=next_after` to
    receive each event exactly once."""
    job = await jobs.get(production_id, owner_scope(user))
    limit = min(limit, settings.page_size_max)
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
async def get_storyboard(production_id: ProductionId, user: JobsRead, jobs: Jobs) -> Storyboard:
    """The plan: scenes with narration, visuals, timing.  404 until planning has
    finished.  Edit it with PATCH while the job awaits approval."""
    job = await jobs.get(production_id, owner_scope(user))
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
    production_id: ProductionId, body: Storyboard, user: JobsUpdate, jobs: Jobs, root: RootPath
) -> JobOut:
    """Only while the job is `awaiting_approval` (else 409).  The new plan must
    fit the request's preset (scenes, duration) and budget, and its scene voices
    be installed (else 422); media may only move between scenes."""
    scope = owner_scope(user)
    job = await jobs.get(production_id, scope)
    if job.status == "awaiting_approval":  # otherwise the service answers 409 first
        request = ProductionRequest.model_validate(job.request)
        await checks.storyboard(request, body, jobs.prices)
    return JobOut.from_job(await jobs.update_storyboard(production_id, scope, body), root)


@router.post(
    "/{production_id}/approve",
    status_code=202,
    summary="Approve the storyboard",
    response_model=JobOut,
    responses=_ACTION_ERRORS,
)
async def approve(
    production_id: ProductionId, user: JobsApprove, jobs: Jobs, root: RootPath
) -> JobOut:
    """Queue a job paused at `awaiting_approval` to render its storyboard."""
    return JobOut.from_job(await jobs.approve(production_id, owner_scope(user)), root)


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
    response: Response, production_id: ProductionId, user: JobsUpdate, jobs: Jobs, root: RootPath
) -> JobOut:
    """A queued or paused job is cancelled at once (200).  A running one is
    asked to stop (202; `status` stays `processing` until its worker stops).
    Finished jobs answer 409."""
    job = await jobs.cancel(production_id, owner_scope(user))
    if job.status == "processing":
        response.status_code = 202
    return JobOut.from_job(job, root)


@router.post(
    "/{production_id}/retry",
    status_code=202,
    summary="Retry a failed production",
    response_model=JobOut,
    responses=_ACTION_ERRORS,
)
async def retry(
    production_id: ProductionId, user: JobsUpdate, jobs: Jobs, root: RootPath
) -> JobOut:
    """Queue a `failed` job again; it resumes after its last finished stage."""
    return JobOut.from_job(await jobs.retry(production_id, owner_scope(user)), root)


@router.post(
    "/{production_id}/scenes/{index}/rerender",
    status_code=202,
    summary="Change one scene and render again",
    response_model=JobOut,
    responses=_ACTION_ERRORS,
)
async def rerender(
    production_id: ProductionId,
    index: Annotated[int, Path(ge=0, le=10_000, description="Zero-based scene index.")],
    body: RerenderRequest,
    user: JobsUpdate,
    jobs: Jobs,
    root: RootPath,
) -> JobOut:
    """For a `completed` or `failed` job: apply the changes to scene `index` and
    queue the job.  Cached stages serve every other scene, so only this scene
    and the final montage are made again.  Unknown scene: 404; a voice not
    listed by `GET /v1/voices`: 422."""
    scope = owner_scope(user)
    job = await jobs.get(production_id, scope)
    if job.status in ("completed", "failed"):  # otherwise the service answers 409 first
        await checks.scene_changes(ProductionRequest.model_validate(job.request), body)
    try:
        job = await jobs.rerender(production_id, scope, index, body.changes())
    except ValidationError as exc:
        details = [
            {"loc": ["body", *e.get("loc", ())], "msg": e.get("msg", ""), "type": e.get("type")}
            for e in exc.errors()
        ]
        raise Invalid("the changed scene is invalid", details=details) from None
    return JobOut.from_job(job, root)


# --------------------------------------------------------------- artifacts


@router.get(
    "/{production_id}/artifacts",
    tags=["artifacts"],
    summary="List a production's files",
    response_model=ArtifactList,
    responses=_READ_ERRORS,
)
async def list_artifacts(
    production_id: ProductionId,
    user: ResultsRead,
    jobs: Jobs,
    artifacts: ArtifactsDep,
    root: RootPath,
) -> ArtifactList:
    """Every file recorded by the job's finished stages (final video, subtitles,
    thumbnails, intermediate clips …) with size, SHA-256, type and download URL."""
    job = await jobs.get(production_id, owner_scope(user))
    base = f"{root}/v1/productions/{job.id}/artifacts/"
    items = [
        ArtifactOut(
            name=a.name,
            stage=a.stage,
            bytes=a.bytes,
            sha256=a.sha256,
            content_type=a.content_type,
            url=base + a.name,
        )
        for a in await artifacts.listing(job)
    ]
    return ArtifactList(items=items)


_BINARY = {"schema": {"type": "string", "format": "binary"}}


_ARTIFACT_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The whole file.",
        "content": dict.fromkeys(("video/mp4", "application/octet-stream"), _BINARY),
    },
    206: {"description": "The requested byte range.", "content": {"video/mp4": _BINARY}},
    304: {"description": "Unchanged since the `If-None-Match` ETag."},
    **error_responses(401, 404, 416, 422),
}


@router.head(
    "/{production_id}/artifacts/{name:path}",
    tags=["artifacts"],
    summary="A file's headers",
    description="What `GET` would answer (size, type, ETag, a range's status), with no body "
    "and without reading the file.",
    response_class=Response,
    responses=_ARTIFACT_RESPONSES,
)
@router.get(
    "/{production_id}/artifacts/{name:path}",
    tags=["artifacts"],
    summary="Download a file",
    response_class=StreamingResponse,
    responses=_ARTIFACT_RESPONSES,
)
async def get_artifact(
    request: Request,
    production_id: ProductionId,
    name: Annotated[str, Path(description="A name from the artifact list, e.g. `video.mp4`.")],
    user: ResultsRead,
    jobs: Jobs,
    artifacts: ArtifactsDep,
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
    range (206; 416 when it starts beyond the file, however many digits its
    positions have; other forms are ignored and the whole file is sent) so
    video players can seek; the ETag is the file's SHA-256.  Any name not in
    the list answers 404."""
    job = await jobs.get(production_id, owner_scope(user))
    art = await artifacts.find(job, name)
    size = await artifacts.size(job, art)
    headers = {
        "Accept-Ranges": "bytes",
        "Cache-Control": "private, no-cache",
        "Content-Disposition": f'inline; filename="{art.filename}"',
    }
    if art.sha256:
        headers["ETag"] = http_ranges.quote_etag(art.sha256)
        if if_none_match is not None and http_ranges.etag_matches(if_none_match, headers["ETag"]):
            return Response(status_code=304, headers=headers)

    status, start, end, extra = byte_span(range_, size, "the file")
    headers.update(extra)
    headers["Content-Length"] = str(end - start)
    if request.method == "HEAD":
        return Response(status_code=status, media_type=art.content_type, headers=headers)
    return StreamingResponse(
        artifacts.stream(art, start, end),
        status_code=status,
        media_type=art.content_type,
        headers=headers,
    )


__all__ = ["catalog", "router"]
