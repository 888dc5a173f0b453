"""The media API: upload a picture, a clip or a song; list, read and delete
your uploads.  Productions reference them by id (`media[].media_id` for
scenes, `music_media_id` for the music bed).

An upload is received as a stream (``receive``), sniffed from its bytes
(``formats``), decoded once under limits (``inspect``) and only then stored
(``service``); the limits are settings (``AIPROD_MEDIA_*``).  Reading,
listing and deleting are owner-scoped like productions (admins see all).
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal, cast

from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import BaseModel, Field

from aiprod.db.paging import decode_cursor, page_of
from aiprod.errors import Invalid, RateLimited, error_responses
from aiprod.identity.deps import MediaRead, MediaWrite, owner_scope
from aiprod.jobs.deps import Media, PageCursor, PageSize, RootPath, SettingsDep
from aiprod.jobs.models import MediaFile
from aiprod.jobs.uploads.formats import ACCEPTED, sniff
from aiprod.jobs.uploads.inspect import BadMedia, Limits, inspect
from aiprod.jobs.uploads.receive import LICENSE_MAX, UnsupportedMediaType, receive
from aiprod.settings import Settings

router = APIRouter(prefix="/v1/media", tags=["media"])

MediaKind = Literal["image", "video", "audio"]
MediaId = Annotated[uuid.UUID, Path(description="The upload's id.")]
RETRY_AFTER = 5  # seconds, when every upload slot is busy


class MediaOut(BaseModel):
    id: uuid.UUID
    kind: MediaKind = Field(
        description="What the bytes were found to be (never the client's word)."
    )
    content_type: str = Field(description="Sniffed from the file's magic bytes.")
    bytes: int = Field(ge=0)
    sha256: str
    width: int | None = Field(description="Pixels (images and video).")
    height: int | None = Field(description="Pixels (images and video).")
    duration: float | None = Field(description="Seconds (video and audio).")
    filename: str = Field(description="The uploaded file's name, sanitised; for display only.")
    license: str
    created_at: datetime
    url: str

    @classmethod
    def from_row(cls, row: MediaFile, root: str) -> MediaOut:
        return cls(
            id=row.id,
            kind=cast(MediaKind, row.kind),
            content_type=row.content_type,
            bytes=row.bytes,
            sha256=row.sha256,
            width=row.width,
            height=row.height,
            duration=row.duration,
            filename=row.filename,
            license=row.license,
            created_at=row.created_at,
            url=f"{root}/v1/media/{row.id}",
        )


class MediaPage(BaseModel):
    items: list[MediaOut]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next (older) page; null on the last page."
    )


def _slots(request: Request, settings: Settings) -> asyncio.Semaphore:
    """Uploads this process receives and decodes at once (made on first use)."""
    slots = getattr(request.app.state, "media_slots", None)
    if slots is None:
        slots = asyncio.Semaphore(settings.media_uploads_in_flight)
        request.app.state.media_slots = slots
    return cast(asyncio.Semaphore, slots)


_UPLOAD_BODY: dict[str, Any] = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["file"],
                "additionalProperties": False,
                "properties": {
                    "file": {
                        "type": "string",
                        "format": "binary",
                        "description": f"One file ({ACCEPTED}).",
                    },
                    "license": {
                        "type": "string",
                        "minLength": 1,
                        "maxLength": LICENSE_MAX,
                        "pattern": r"\S",
                        "description": "Who may use it and how (default `user-supplied`); "
                        "printable characters.",
                    },
                },
            }
        }
    },
}


@router.post(
    "",
    status_code=201,
    summary="Upload a picture, clip or song",
    response_model=MediaOut,
    openapi_extra={"requestBody": _UPLOAD_BODY},
    responses={
        201: {
            "description": "Stored.",
            "headers": {
                "Location": {"description": "The upload's URL.", "schema": {"type": "string"}}
            },
        },
        **error_responses(401, 403, 413, 415, 422, 429),
    },
)
async def upload(
    request: Request,
    response: Response,
    user: MediaWrite,
    media: Media,
    settings: SettingsDep,
    root: RootPath,
) -> MediaOut:
    """Send one file as `multipart/form-data` (field `file`, optional `license`).
    Its type is sniffed from its bytes (the name and Content-Type are ignored):
    anything else answers 415 `unsupported_media_type`.  Bodies over
    `AIPROD_MEDIA_MAX_BYTES` (default 200 MB) answer 413 `too_large`, also
    when sent without `Content-Length`; past your quota, 413
    `quota_exceeded`.  The file is decoded once: images up to
    `AIPROD_MEDIA_MAX_PIXELS` (40 MP), video up to
    `AIPROD_MEDIA_MAX_DIMENSION` (4096 px a side), video and audio up to
    `AIPROD_MEDIA_MAX_SECONDS` (600 s); a broken file, a decompression bomb
    or one over a limit answers 422 `invalid_media` with the reason.  While
    every upload slot of the server is busy: 429 with `Retry-After`."""
    slots = _slots(request, settings)
    if slots.locked():
        raise RateLimited("the server is receiving other uploads; retry shortly", RETRY_AFTER)
    async with slots:
        tmp = settings.scratch_dir / "uploads" / f"{uuid.uuid4().hex}.part"
        try:
            received = await receive(request, tmp, settings.media_max_bytes)
            sniffed = sniff(received.head)
            if sniffed is None:
                raise UnsupportedMediaType(
                    f"the file is not a supported picture, clip or song ({ACCEPTED})"
                )
            limits = Limits(
                settings.media_max_pixels, settings.media_max_dimension, settings.media_max_seconds
            )
            try:
                info = await asyncio.to_thread(inspect, tmp, sniffed, limits)
            except BadMedia as exc:
                raise Invalid.at(["body", "file"], str(exc), "invalid_media") from None
            row = await media.create(user.user_id, received, sniffed, info, received.license)
        finally:
            await asyncio.to_thread(tmp.unlink, True)
    out = MediaOut.from_row(row, root)
    response.headers["Location"] = out.url
    return out


@router.get(
    "",
    summary="List your uploads",
    response_model=MediaPage,
    responses=error_responses(401, 403, 422),
)
async def list_media(
    user: MediaRead,
    media: Media,
    settings: SettingsDep,
    root: RootPath,
    limit: PageSize = 20,
    cursor: PageCursor = None,
    kind: Annotated[MediaKind | None, Query(description="Only uploads of this kind.")] = None,
) -> MediaPage:
    """Your uploads, newest first (admins: everyone's), a page at a time."""
    limit = min(limit, settings.page_size_max)
    rows = await media.list_media(owner_scope(user), limit + 1, decode_cursor(cursor), kind)
    page, next_cursor = page_of(rows, limit)
    return MediaPage(items=[MediaOut.from_row(r, root) for r in page], next_cursor=next_cursor)


@router.get(
    "/{media_id}",
    summary="Get an upload",
    response_model=MediaOut,
    responses=error_responses(401, 403, 404, 422),
)
async def get_media(media_id: MediaId, user: MediaRead, media: Media, root: RootPath) -> MediaOut:
    """What the upload was found to be; another user's answers 404."""
    return MediaOut.from_row(await media.get(media_id, owner_scope(user)), root)


@router.delete(
    "/{media_id}",
    status_code=204,
    summary="Delete an upload",
    response_class=Response,
    responses=error_responses(401, 403, 404, 409, 422),
)
async def delete_media(media_id: MediaId, user: MediaWrite, media: Media) -> Response:
    """Remove the upload and its bytes.  While a queued, running or paused
    production references it: 409 `in_use` (with those productions' ids in
    `details.productions`).  Finished productions keep their rendered output."""
    await media.delete(media_id, owner_scope(user))
    return Response(status_code=204)


__all__ = ["MediaOut", "MediaPage", "router"]
