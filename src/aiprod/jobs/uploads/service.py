"""The rules of user media: who sees which upload, quotas, what a production
may reference, and when an upload may be deleted.

Owner-scoped like productions: every call takes the caller's id (None for
admins), and another user's upload answers exactly like a missing one.  A
production may only reference its own owner's uploads, of the right kind
(pictures and clips on scenes, audio as the music bed); an upload that a
queued, running or paused production references cannot be deleted (409
``in_use``).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from aiprod.db.base import utcnow
from aiprod.db.engine import Database
from aiprod.db.paging import newest_first
from aiprod.errors import Conflict, Invalid, NotFound, TooLarge
from aiprod.jobs.models import Job, MediaFile
from aiprod.jobs.quotas import Quotas
from aiprod.jobs.uploads.formats import SUFFIXES, Sniffed
from aiprod.jobs.uploads.inspect import MediaInfo
from aiprod.jobs.uploads.receive import Received
from aiprod.production.models import ProductionRequest
from aiprod.settings import Settings
from aiprod.storage.store import Storage

ACTIVE = ("queued", "processing", "awaiting_approval")
"""Statuses of a production that will still read its media."""

SCENE_KINDS = ("image", "video")
MUSIC_KIND = "audio"


def media_key(owner_id: uuid.UUID, media_id: uuid.UUID, content_type: str) -> str:
    """Where an upload's bytes live: under its owner, named by id, never by the client."""
    return f"media/{owner_id}/{media_id}{SUFFIXES.get(content_type, '')}"


def referenced_ids(request: dict[str, Any]) -> Iterator[str]:
    """The upload ids a stored production request names (scenes and music)."""
    for m in request.get("media") or []:
        if isinstance(m, dict) and m.get("media_id"):
            yield str(m["media_id"])
    if request.get("music_media_id"):
        yield str(request["music_media_id"])


class MediaService:
    def __init__(self, db: Database, storage: Storage, settings: Settings) -> None:
        self.db = db
        self.storage = storage
        self.settings = settings

    # ------------------------------------------------------------- writing

    async def create(
        self,
        owner_id: uuid.UUID,
        received: Received,
        sniffed: Sniffed,
        info: MediaInfo,
        license: str | None,
    ) -> MediaFile:
        """Store a checked upload (object first, then its row)."""
        await self._check_quota(owner_id, received.size)
        media_id = uuid.uuid4()
        row = MediaFile(
            id=media_id,
            owner_id=owner_id,
            kind=info.kind,
            content_type=info.content_type,
            bytes=received.size,
            sha256=received.sha256,
            width=info.width,
            height=info.height,
            duration=info.duration,
            filename=received.filename,
            license=license or "user-supplied",
            key=media_key(owner_id, media_id, info.content_type),
            created_at=utcnow(),
        )
        await self.storage.put_file(row.key, received.path)
        try:
            async with self.db.transaction() as s:
                s.add(row)
        except BaseException:
            await self.storage.delete(row.key)
            raise
        return row

    async def _check_quota(self, owner_id: uuid.UUID, size: int) -> None:
        """The uploads' own cap (413, ``AIPROD_MEDIA_QUOTA_BYTES``), then the
        user's storage quota over productions and uploads together (403,
        :mod:`aiprod.jobs.quotas`)."""
        quota = self.settings.media_quota_bytes
        async with self.db.session() as s:
            if quota > 0:
                used = await s.scalar(
                    select(func.coalesce(func.sum(MediaFile.bytes), 0)).where(
                        MediaFile.owner_id == owner_id
                    )
                )
                if int(used or 0) + size > quota:
                    raise TooLarge(
                        f"your uploads would exceed your quota of {quota} bytes; delete some first",
                        "quota_exceeded",
                        details={"quota_bytes": quota, "used_bytes": int(used or 0)},
                    )
            await Quotas(self.settings).check_upload(s, owner_id, size)

    async def delete(self, media_id: uuid.UUID, owner_id: uuid.UUID | None) -> None:
        """Remove the upload and its bytes, unless a production still needs it."""
        row = await self.get(media_id, owner_id)
        users = await self._active_users(row)
        if users:
            raise Conflict(
                f"media {media_id} is used by {len(users)} production(s) that have not "
                "finished; cancel them or wait",
                "in_use",
                details={"productions": users},
            )
        async with self.db.transaction() as s:
            found = await s.get(MediaFile, media_id)
            if found is not None:
                await s.delete(found)
        await self.storage.delete(row.key)

    async def _active_users(self, row: MediaFile) -> list[str]:
        q = select(Job.id, Job.request).where(Job.owner_id == row.owner_id, Job.status.in_(ACTIVE))
        async with self.db.session() as s:
            jobs = (await s.execute(q)).all()
        wanted = str(row.id)
        return [str(jid) for jid, request in jobs if wanted in set(referenced_ids(request))]

    # ------------------------------------------------------------- reading

    async def get(self, media_id: uuid.UUID, owner_id: uuid.UUID | None) -> MediaFile:
        async with self.db.session() as s:
            row = await s.get(MediaFile, media_id)
        if row is None or (owner_id is not None and row.owner_id != owner_id):
            raise NotFound(f"media {media_id} not found")
        return row

    async def list_media(
        self,
        owner_id: uuid.UUID | None,
        limit: int,
        before: tuple[datetime, uuid.UUID] | None = None,
        kind: str | None = None,
    ) -> list[MediaFile]:
        """Newest first, keyset-paginated on (created_at, id)."""
        q = newest_first(select(MediaFile), MediaFile, before)
        if owner_id is not None:
            q = q.where(MediaFile.owner_id == owner_id)
        if kind is not None:
            q = q.where(MediaFile.kind == kind)
        async with self.db.session() as s:
            return list((await s.execute(q.limit(limit))).scalars())

    async def owned(self, owner_id: uuid.UUID, ids: set[uuid.UUID]) -> dict[uuid.UUID, MediaFile]:
        """Those of `ids` that `owner_id` uploaded."""
        if not ids:
            return {}
        q = select(MediaFile).where(MediaFile.id.in_(ids), MediaFile.owner_id == owner_id)
        async with self.db.session() as s:
            return {m.id: m for m in (await s.execute(q)).scalars()}

    # ------------------------------------------------- production requests

    async def check_request(self, owner_id: uuid.UUID, request: ProductionRequest) -> None:
        """A submitted request names only `owner_id`'s uploads, each of the kind
        its place needs; Invalid (422) pointing at the first that does not."""
        wanted = {m.media_id for m in request.media if m.media_id is not None}
        if request.music_media_id is not None:
            wanted.add(request.music_media_id)
        rows = await self.owned(owner_id, wanted)
        for i, m in enumerate(request.media):
            if m.media_id is None:
                continue
            _expect(rows.get(m.media_id), ["body", "media", i, "media_id"], SCENE_KINDS)
        if request.music_media_id is not None:
            row = rows.get(request.music_media_id)
            _expect(row, ["body", "music_media_id"], (MUSIC_KIND,))


def _expect(row: MediaFile | None, loc: list[str | int], kinds: tuple[str, ...]) -> None:
    if row is None:
        raise Invalid.at(
            loc, "no such media of yours: upload it with POST /v1/media first", "unknown_media"
        )
    if row.kind not in kinds:
        raise Invalid.at(
            loc,
            f"media {row.id} is {row.kind}; this place takes {' or '.join(kinds)}",
            "wrong_media_kind",
        )


def local_name(row: MediaFile) -> Path:
    """The file name a fetched upload gets in a job's scratch folder."""
    return Path(f"{row.id}{SUFFIXES.get(row.content_type, '')}")


__all__ = [
    "ACTIVE",
    "MUSIC_KIND",
    "SCENE_KINDS",
    "MediaService",
    "local_name",
    "media_key",
    "referenced_ids",
]
