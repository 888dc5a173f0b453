"""Everything of one user as one ZIP, for data-protection access requests.

``GET /v1/admin/users/{id}/export`` (admin), typically before
``POST /v1/admin/users/{id}/erase``.  The archive holds:

* ``user.json`` — the account (no password hash), its API keys (metadata,
  never digests), sessions, external identities, webhook endpoints (no
  signing secrets), uploads and productions, each upload and production
  with the path of its files in the archive;
* ``media/<id><suffix>`` — every upload, as stored;
* ``productions/<id>/`` — each production's own export (``production.json``,
  ``scenes.csv``, ``events.csv``, its deliverable files);
* ``SHA256SUMS`` — every file above.

Like a production's ZIP it is laid out before streaming (size limit, Range,
ETag); ``as_of`` is the account's last change, so the same data gives the
same bytes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import select

from aiprod.events.models import WebhookEndpoint
from aiprod.exports import production
from aiprod.exports.archive import Member, ZipLayout
from aiprod.exports.writers import json_bytes
from aiprod.identity.models import ApiKey, AuthSession, ExternalIdentity, User
from aiprod.jobs.models import Job, MediaFile
from aiprod.jobs.service import JobService
from aiprod.storage.store import Storage

FORMAT = "aiprod.user-export"


T = TypeVar("T")


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _media_member(storage: Storage, row: MediaFile, name: str, size: int) -> Member:
    async def read(start: int, end: int) -> AsyncIterator[bytes]:
        async for chunk in storage.stream(row.key, start, end):
            yield chunk

    digest = f"{row.sha256}:{size}" if size == row.bytes else f"{row.key}:{size}:unverified"
    return Member(name, size, read, digest)


async def user_archive(user: User, jobs: JobService, storage: Storage) -> ZipLayout:
    """Gather the user's data and lay out the archive (nothing is streamed yet)."""
    uid = user.id
    async with jobs.db.session() as s:

        async def of_user(model: type[T], column: Any) -> list[T]:
            found = await s.execute(select(model).where(column == uid).order_by(model.id))  # type: ignore[attr-defined]
            return list(found.scalars())

        keys = await of_user(ApiKey, ApiKey.user_id)
        sessions = await of_user(AuthSession, AuthSession.user_id)
        identities = await of_user(ExternalIdentity, ExternalIdentity.user_id)
        hooks = await of_user(WebhookEndpoint, WebhookEndpoint.owner_id)
        media = await of_user(MediaFile, MediaFile.owner_id)
        owned = await of_user(Job, Job.owner_id)

    sizes = {o.key: o.size for o in await storage.listing(f"media/{uid}/")}
    members: list[Member] = []
    media_out: list[dict[str, Any]] = []
    for row in media:
        suffix = row.key.rsplit("/", 1)[-1].removeprefix(str(row.id))
        name = f"media/{row.id}{suffix}" if row.key in sizes else None
        if name is not None:
            members.append(_media_member(storage, row, name, sizes[row.key]))
        media_out.append(
            {
                "id": str(row.id),
                "kind": row.kind,
                "content_type": row.content_type,
                "bytes": row.bytes,
                "sha256": row.sha256,
                "width": row.width,
                "height": row.height,
                "duration": row.duration,
                "filename": row.filename,
                "license": row.license,
                "created_at": _iso(row.created_at),
                "archived_as": name,
            }
        )

    productions_out: list[dict[str, Any]] = []
    for job in owned:
        folder = f"productions/{job.id}/"
        data = await production.gather(job, jobs, storage)
        members += production.members(data, storage, folder, checksums=False)
        productions_out.append(
            {
                "id": str(job.id),
                "title": job.title,
                "status": job.status,
                "created_at": _iso(job.created_at),
                "folder": folder,
            }
        )

    doc = {
        "format": FORMAT,
        "version": 1,
        "as_of": _iso(user.updated_at),
        "user": {
            "id": str(uid),
            "email": user.email,
            "role": user.role,
            "is_active": user.is_active,
            "has_password": user.password_hash is not None,
            "created_at": _iso(user.created_at),
            "updated_at": _iso(user.updated_at),
        },
        "api_keys": [
            {
                "id": str(k.id),
                "lineage_id": str(k.lineage_id),
                "version": k.version,
                "name": k.name,
                "prefix": k.prefix,
                "scopes": k.scopes,
                "created_at": _iso(k.created_at),
                "expires_at": _iso(k.expires_at),
                "superseded_at": _iso(k.superseded_at),
                "revoked_at": _iso(k.revoked_at),
            }
            for k in keys
        ],
        "sessions": [
            {
                "id": str(x.id),
                "created_at": _iso(x.created_at),
                "refreshed_at": _iso(x.refreshed_at),
                "revoked_at": _iso(x.revoked_at),
                "revoked_reason": x.revoked_reason,
                "ip": x.ip,
                "user_agent": x.user_agent,
            }
            for x in sessions
        ],
        "external_identities": [
            {"issuer": i.issuer, "subject": i.subject, "created_at": _iso(i.created_at)}
            for i in identities
        ],
        "webhooks": [
            {
                "id": str(h.id),
                "url": h.url,
                "description": h.description,
                "event_types": h.event_types,
                "enabled": h.enabled,
                "created_at": _iso(h.created_at),
                "updated_at": _iso(h.updated_at),
            }
            for h in hooks
        ],
        "media": media_out,
        "productions": productions_out,
    }
    members.insert(0, Member.of_bytes("user.json", json_bytes(doc)))
    sums = [(m.digest.split(":", 1)[0], m.name) for m in members if ":unverified" not in m.digest]
    members.append(Member.of_bytes("SHA256SUMS", production.sha256sums(sums)))
    return ZipLayout(members, user.updated_at)


__all__ = ["FORMAT", "user_archive"]
