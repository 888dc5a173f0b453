"""What the API accepts beyond what the schema can say.

The models in ``production.models`` check each field; these checks need the
installation (registered backends, installed voices), the caller's uploads
or the job (its preset and budget), and they are the API's alone: the CLI may
name local media files, a client of the server never may (it names uploads of
``POST /v1/media`` by id).
"""

from __future__ import annotations

import uuid

from aiprod.errors import Invalid
from aiprod.jobs import voices
from aiprod.jobs.schemas import RerenderRequest
from aiprod.jobs.uploads.service import MediaService
from aiprod.production import backends
from aiprod.production.cost import PriceTable, fit_budget
from aiprod.production.models import ProductionRequest, Storyboard
from aiprod.production.presets import PRESETS
from aiprod.settings import Settings


async def production_request(
    request: ProductionRequest, owner_id: uuid.UUID, media: MediaService, settings: Settings
) -> None:
    """A submitted (or estimated) request: the API never reads server paths
        named by a client (uploads are named by id, and must be the caller's, of
        the right kind), backend names must exist here (a provider's configured),
    and so must its voice."""
    for i, m in enumerate(request.media):
        if m.file is not None:
            raise Invalid.at(
                ["body", "media", i, "path"],
                "files on the server cannot be named over the API: upload the file with "
                "POST /v1/media and give its `media_id`",
                "media_not_allowed",
            )
    if request.music_file is not None:
        raise Invalid.at(
            ["body", "music_file"],
            "files on the server cannot be named over the API: upload the song with "
            "POST /v1/media and give its id as `music_media_id`",
            "media_not_allowed",
        )
    await media.check_request(owner_id, request)
    for stage, name in request.backends.items():
        try:
            backends.check(stage, name, settings)
        except backends.UnknownBackend as exc:
            raise Invalid.at(["body", "backends", stage], str(exc), exc.code) from None
    await voices.check_request(request, settings)


async def storyboard(request: ProductionRequest, sb: Storyboard, prices: PriceTable) -> None:
    """An edited storyboard must fit the request's preset (scenes, duration)
    and budget, and speak with installed voices."""
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
    await voices.check_storyboard(request, sb)
    fit_budget(request, prices, sb)  # BudgetExceeded → 422 budget_exceeded


async def scene_changes(request: ProductionRequest, changes: RerenderRequest) -> None:
    """A re-render's changes: a new voice must be installed and read the language."""
    await voices.check(
        voices.narrator_name(request), [(["body", "voice"], changes.voice)], request.language
    )


__all__ = ["production_request", "scene_changes", "storyboard"]
