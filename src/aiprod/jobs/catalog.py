"""The catalog: what a request may choose (presets, narrator voices) and what
it would cost, without submitting anything.

`GET /v1/voices` is the list that submit, cost estimate, storyboard edits and
re-renders check voices against (:mod:`aiprod.jobs.voices`); their 422
`unknown_voice` points here.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response

from aiprod.errors import Invalid, NotFound, error_responses
from aiprod.identity.deps import JobsRead
from aiprod.jobs import checks, voices
from aiprod.jobs.deps import Jobs, Media, SettingsDep
from aiprod.jobs.schemas import EstimateResponse, PresetOut, VoiceList, VoiceOut
from aiprod.jobs.service import JobService
from aiprod.production import backends
from aiprod.production.cost import BudgetExceeded, CostEstimate
from aiprod.production.models import VOICE_NAME, ProductionRequest
from aiprod.production.presets import PRESETS

catalog = APIRouter(prefix="/v1", tags=["catalog"])


NarratorBackend = Annotated[
    str | None,
    Query(
        max_length=64,
        description="A narrator backend (`backends.narrate` of a request); default: "
        "the default narrator.",
    ),
]


def _estimate(jobs: JobService, request: ProductionRequest) -> tuple[dict[str, Any], bool]:
    try:
        return jobs.estimate(request)
    except BudgetExceeded:
        raise
    except ValueError as exc:  # e.g. a backend with no price for its unit
        raise Invalid(f"cannot estimate this request: {exc}", "estimate_failed") from None


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
    body: ProductionRequest, user: JobsRead, jobs: Jobs, media: Media, settings: SettingsDep
) -> EstimateResponse:
    """The estimate and fast-track decision `POST /v1/productions` would make for
    this body (budget downgrades applied; 422 `budget_exceeded` when nothing
    fits; 422 as at submit for media, backends and voices).  Creates no job."""
    await checks.production_request(body, user.user_id, media, settings)
    estimate, fast = _estimate(jobs, body)
    return EstimateResponse(estimate=CostEstimate.model_validate(estimate), fast_track=fast)


@catalog.get(
    "/voices",
    summary="List narrator voices",
    response_model=VoiceList,
    responses=error_responses(401, 422, 503),
)
async def list_voices(
    user: JobsRead,
    settings: SettingsDep,
    backend: NarratorBackend = None,
    language: Annotated[
        str | None,
        Query(
            min_length=2,
            max_length=16,
            pattern=r"^[A-Za-z\-]+$",
            description="Only voices of this language (`de` also lists `de-AT` …).",
        ),
    ] = None,
) -> VoiceList:
    """The voices `voice.name` may name (with a `+variant` of `variants`): what
    submit, cost estimate, storyboard edits and re-renders accept.  Without
    `backend`, the default narrator's voices and then those of each remote
    narrator configured on this server (their `engine` is the
    `backends.narrate` that speaks them)."""
    try:
        found = await voices.listing(backend, settings)
    except backends.UnknownBackend as exc:
        raise Invalid.at(["query", "backend"], str(exc), "unknown_backend") from None
    items = [
        VoiceOut.model_validate(v.model_dump())
        for v in found.voices
        if language is None or _same_language(v.language, language)
    ]
    return VoiceList(backend=found.backend, items=items, variants=list(found.variants))


@catalog.get(
    "/voices/{voice_id}/preview",
    summary="Hear a voice",
    response_class=Response,
    responses={
        200: {
            "description": "A few seconds of the voice reading a sample sentence in its "
            "language (mono 16-bit PCM WAV).",
            "content": {"audio/wav": {"schema": {"type": "string", "format": "binary"}}},
        },
        **error_responses(401, 404, 422),
    },
)
async def preview_voice(
    voice_id: Annotated[
        str,
        Path(
            min_length=1,
            max_length=64,
            pattern=VOICE_NAME,
            description="A name of `GET /v1/voices`, optionally with a variant: `en+f3`.",
        ),
    ],
    user: JobsRead,
    backend: NarratorBackend = None,
) -> Response:
    """The voice reading one sentence, to choose by ear; the same permission as
    the voice list.  Made once per server process and then served from memory.
    A name the list does not hold answers 404."""
    try:
        found = await voices.installed(backend)
    except backends.UnknownBackend as exc:
        raise Invalid.at(["query", "backend"], str(exc), "unknown_backend") from None
    if not found.knows(voice_id):
        raise NotFound(
            f"the {found.backend} narrator has no voice {voice_id!r}; "
            f"GET {voices.VOICES_URL} lists them",
            "unknown_voice",
        )
    data = await asyncio.to_thread(voices.preview, found.backend, voice_id)
    return Response(
        data,
        media_type="audio/wav",
        headers={
            "Cache-Control": "private, max-age=86400",
            "Content-Disposition": f'inline; filename="{voice_id}.wav"',
        },
    )


def _same_language(voice: str, wanted: str) -> bool:
    voice, wanted = voice.lower(), wanted.lower()
    return voice == wanted or voice.startswith(wanted + "-")


__all__ = ["catalog"]
