"""The worker's side of user media: bring a job's uploads into its scratch
folder and give the engine local paths.

The engine reads files (``UserMedia.path``, ``ProductionRequest.music_file``);
a production submitted over the API names uploads by id.  Before the pipeline
starts, every id the request names is looked up (it must still belong to the
job's owner), downloaded into ``<scratch>/uploads/`` and checked against the
SHA-256 recorded at upload, and the request and storyboard get the local
paths.  A deleted or altered upload fails the job as an invalid request
(ValueError), which retrying cannot help.

Stored storyboards never keep these paths (`strip_local_paths`): they name
the upload by id, and each worker fills in its own scratch folder.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

from aiprod.jobs.uploads.service import MediaService, local_name
from aiprod.production.cache import file_digest
from aiprod.production.models import ProductionRequest, Storyboard, UserMedia
from aiprod.storage.store import ArtifactNotFound

FOLDER = "uploads"


async def localize(
    media: MediaService,
    owner_id: uuid.UUID,
    request: ProductionRequest,
    storyboard: Storyboard | None,
    scratch: Path,
) -> tuple[ProductionRequest, Storyboard | None]:
    """`request` and `storyboard` with every upload fetched under `scratch`."""
    ids = {m.media_id for m in request.media if m.media_id is not None}
    if storyboard is not None:
        ids |= {s.media.media_id for s in storyboard.scenes if s.media and s.media.media_id}
    if request.music_media_id is not None:
        ids.add(request.music_media_id)
    if not ids:
        return request, storyboard
    rows = await media.owned(owner_id, ids)
    missing = ids - rows.keys()
    if missing:
        raise ValueError(
            f"media {', '.join(sorted(map(str, missing)))} no longer exist(s) "
            "(deleted after the production was submitted?)"
        )
    folder = scratch / FOLDER
    paths: dict[uuid.UUID, Path] = {}

    async def fetch(media_id: uuid.UUID) -> None:
        row = rows[media_id]
        path = folder / local_name(row)
        try:
            await media.storage.get_to_file(row.key, path)
        except ArtifactNotFound:
            raise ValueError(f"media {media_id} is missing from storage") from None
        if await asyncio.to_thread(file_digest, path) != row.sha256:
            raise ValueError(f"media {media_id} does not match its recorded SHA-256")
        paths[media_id] = path

    await asyncio.gather(*(fetch(i) for i in ids))

    def local(m: UserMedia) -> UserMedia:
        return m if m.media_id is None else m.model_copy(update={"file": paths[m.media_id]})

    request = request.model_copy(
        update={
            "media": [local(m) for m in request.media],
            "music_file": paths.get(request.music_media_id) if request.music_media_id else None,
        }
    )
    if storyboard is not None:
        storyboard = storyboard.model_copy(
            update={
                "scenes": [
                    s if s.media is None else s.model_copy(update={"media": local(s.media)})
                    for s in storyboard.scenes
                ]
            }
        )
    return request, storyboard


def strip_local_paths(storyboard: dict[str, Any]) -> dict[str, Any]:
    """A stored storyboard names uploads by id only: a worker's scratch path
    means nothing to the next worker, and nothing to the user."""
    for scene in storyboard.get("scenes") or []:
        media = scene.get("media") if isinstance(scene, dict) else None
        if isinstance(media, dict) and media.get("media_id"):
            media["path"] = None
    return storyboard


__all__ = ["FOLDER", "localize", "strip_local_paths"]
