"""The export routes: the listing (CSV, NDJSON), one production (JSON, CSV,
ZIP) and, for admins, one user.

Handlers fetch with the caller's scope (another user's production answers
404), gather through :mod:`aiprod.exports.production` or
:mod:`aiprod.exports.user`, and send through :mod:`aiprod.exports.delivery`
(size limit, ETag, Range).  Rate limits per user are for a later change.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Path, Query, Request, Response
from fastapi.responses import StreamingResponse

from aiprod.errors import NotFound, error_responses
from aiprod.exports import listing as bulk
from aiprod.exports import production
from aiprod.exports.archive import ZipLayout
from aiprod.exports.delivery import BytesBody, respond
from aiprod.exports.listing import BulkFormat
from aiprod.exports.schemas import ProductionExport
from aiprod.exports.user import user_archive
from aiprod.exports.writers import csv_bytes, json_bytes
from aiprod.identity.deps import (
    Identity,
    JobsRead,
    ResultsRead,
    audit_context,
    owner_scope,
    require,
)
from aiprod.identity.permissions import Principal
from aiprod.jobs.deps import Jobs, SettingsDep, StorageDep
from aiprod.jobs.schemas import JobStatus
from aiprod.search import listing
from aiprod.search.docs import FilterParam, QParam, SortParam

router = APIRouter(prefix="/v1", tags=["exports"])

ProductionId = Annotated[uuid.UUID, Path(description="The production's id.")]
UserId = Annotated[uuid.UUID, Path(description="The user's id.")]
AdminUsers = Annotated[Principal, require("admin:users")]
RangeHeader = Annotated[
    str | None,
    Header(
        alias="Range",
        description="One range: `bytes=a-b`, `bytes=a-` or `bytes=-n`, to resume a download.",
    ),
]
IfRange = Annotated[
    str | None,
    Header(
        alias="If-Range",
        description="The `ETag` of the part already received: the range is sent only if the "
        "export is still that version, else the whole export (200).",
    ),
]
IfNoneMatch = Annotated[str | None, Header(alias="If-None-Match")]

_BINARY = {"schema": {"type": "string", "format": "binary"}}
_TOO_LARGE = {
    "model": error_responses(413)[413]["model"],
    "description": "The export is larger than `AIPROD_EXPORT_MAX_BYTES` (`export_too_large`, "
    "with `details.bytes` and `details.limit_bytes`); nothing was streamed.",
}
_COMMON: dict[int | str, dict[str, Any]] = {
    206: {
        "description": "The requested byte range (`Content-Range`).",
        "content": {"application/zip": _BINARY},
    },
    304: {"description": "Unchanged since the `If-None-Match` ETag."},
    **error_responses(401, 403, 404, 416, 422),
    413: _TOO_LARGE,
}

MEDIA_TYPES = {
    "json": "application/json",
    "csv": "text/csv; charset=utf-8",
    "ndjson": "application/x-ndjson",
    "zip": "application/zip",
}


@router.get(
    "/exports/productions",
    tags=["productions"],
    summary="Export the listing",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "Every production the search matches, one per line: `csv` "
            "(header first) or `ndjson` (one JSON object per line).",
            "content": {
                "text/csv": {"schema": {"type": "string"}},
                "application/x-ndjson": {"schema": {"type": "string"}},
            },
        },
        **error_responses(400, 401, 403, 422),
    },
)
async def export_listing(
    user: JobsRead,
    jobs: Jobs,
    format: Annotated[BulkFormat, Query(description="`csv` or `ndjson`.")] = "csv",
    status: Annotated[JobStatus | None, Query(description="Only jobs in this status.")] = None,
    filter_: FilterParam = "",
    q: QParam = "",
    sort: SortParam = "-created",
) -> StreamingResponse:
    """Every production `GET /v1/productions` would list for the same `filter`,
    `q`, `sort` and `status` (yours; an admin's: everyone's), streamed whole
    as CSV or NDJSON (columns: `exports.listing.COLUMNS`, documented in
    docs/api.md), with constant memory however many rows.  A filter that
    cannot be read answers 400 `invalid_filter` before anything is sent."""
    search = listing.Search(owner_scope(user), filter_, q, sort, status)
    listing.prepare(search)  # a bad filter is a 400 now, not a broken stream later
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return StreamingResponse(
        bulk.lines(jobs.db, search, format),
        media_type=MEDIA_TYPES[format],
        headers={
            "content-disposition": f'attachment; filename="aiprod-productions-{stamp}.{format}"',
            "cache-control": "no-store",
        },
    )


@router.get(
    "/productions/{production_id}/export",
    tags=["productions"],
    summary="Export a production",
    response_class=Response,
    responses={
        200: {
            "model": ProductionExport,
            "description": "`json`: the whole production as one document (schema "
            "`ProductionExport`); `csv`: one row per scene; `zip`: everything.",
            "content": {"text/csv": {"schema": {"type": "string"}}, "application/zip": _BINARY},
        },
        **_COMMON,
    },
)
async def export_production(
    production_id: ProductionId,
    user: ResultsRead,
    _: JobsRead,
    jobs: Jobs,
    storage: StorageDep,
    settings: SettingsDep,
    format: Annotated[
        Literal["json", "csv", "zip"], Query(description="`json`, `csv` or `zip`.")
    ] = "json",
    range_: RangeHeader = None,
    if_range: IfRange = None,
    if_none_match: IfNoneMatch = None,
) -> Response:
    """Everything about one production.

    * `json` — job, request, storyboard, QA report, cost, manifest, the whole
      event log and the list of files (schema `ProductionExport`).
    * `csv` — one row per scene: timings, narration, voice, backends and
      costs (stage costs allocated to scenes; see docs/api.md).
    * `zip` — video, subtitles, poster, thumbnails, every JSON, the JSON export
      and both CSVs (scenes, events), and `SHA256SUMS`, in a folder
      `aiprod-<id>/`.  Stored (uncompressed) members, ZIP64 beyond 4 GiB,
      streamed with constant memory.

    Every format has an exact `Content-Length` and a strong `ETag` and can be
    resumed with one `Range` (206) guarded by `If-Range`.  Larger than
    `AIPROD_EXPORT_MAX_BYTES` (default 10 GB): 413 `export_too_large`
    before any byte is sent."""
    job = await jobs.get(production_id, owner_scope(user))
    data = await production.gather(job, jobs, storage)
    name = f"aiprod-{job.id}"
    body: BytesBody | ZipLayout
    if format == "json":
        body = BytesBody(json_bytes(production.document(data)))
    elif format == "csv":
        body = BytesBody(csv_bytes(*production.scene_table(data)))
    else:
        modified = job.completed_at or job.updated_at
        body = ZipLayout(production.members(data, storage, f"{name}/"), modified)
    return respond(
        body,
        filename=f"{name}.{format}",
        media_type=MEDIA_TYPES[format],
        limit=settings.export_max_bytes,
        range_=range_,
        if_range=if_range,
        if_none_match=if_none_match,
    )


@router.get(
    "/admin/users/{user_id}/export",
    tags=["admin"],
    summary="Export everything of a user",
    response_class=Response,
    responses={
        200: {"description": "The ZIP.", "content": {"application/zip": _BINARY}},
        **_COMMON,
    },
)
async def export_user(
    request: Request,
    user_id: UserId,
    principal: AdminUsers,
    identity: Identity,
    jobs: Jobs,
    storage: StorageDep,
    settings: SettingsDep,
    range_: RangeHeader = None,
    if_range: IfRange = None,
    if_none_match: IfNoneMatch = None,
) -> Response:
    """For a data-protection access request: the account, its API keys (no
    secrets), sessions, external identities, webhooks (no signing secrets),
    uploads with their files, and every production's export, as one ZIP
    (see docs/api.md).  Audited (`user.exported`).  Same size limit, `ETag`
    and `Range` as a production's export."""
    user = await identity.users.get_user(user_id)
    if user is None:
        raise NotFound(f"user {user_id} not found")
    layout = await user_archive(user, jobs, storage)
    response = respond(
        layout,
        filename=f"aiprod-user-{user.id}.zip",
        media_type="application/zip",
        limit=settings.export_max_bytes,
        range_=range_,
        if_range=if_range,
        if_none_match=if_none_match,
    )
    await identity.audit.log(
        "user.exported",
        "success",
        audit_context(request, principal),
        subject_type="user",
        subject_id=user.id,
        details={"bytes": layout.size, "status": response.status_code},
    )
    return response


__all__ = ["router"]
