"""Bodies of the productions API and the shaping of stored rows into them.

Responses are built from the rows here, not in the endpoints, so every route
that returns a job returns exactly the same document.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal, cast, get_args

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.json_schema import SkipJsonSchema

from aiprod.jobs.models import Job, JobEvent
from aiprod.jobs.state import STATUSES
from aiprod.production.cost import CostEstimate
from aiprod.production.models import CameraMove, QualityTier, Transition, VisualStyle, Voice

JobStatus = Literal["queued", "processing", "awaiting_approval", "completed", "failed", "cancelled"]
assert set(get_args(JobStatus)) == set(STATUSES), "JobStatus is out of date"


class JobError(BaseModel):
    code: str
    message: str
    stage: str | None = None
    details: dict[str, Any] = Field(default_factory=dict)


class QASummary(BaseModel):
    passed: bool
    failed: list[str] = Field(description="Blocking checks that failed.")
    warnings: list[str] = Field(description="Non-blocking checks that failed.")


class JobLinks(BaseModel):
    self: str
    events: str
    storyboard: str
    artifacts: str


class JobOut(BaseModel):
    id: uuid.UUID
    status: JobStatus
    stage: str | None = Field(description="Stage running or last run.")
    progress: int = Field(ge=0, le=100)
    eta_seconds: float | None
    title: str | None
    duration: float = Field(
        description="Seconds of video: the storyboard's once planned, else what the estimate "
        "assumes (`estimate.seconds` is the render's wall time)."
    )
    language: str
    subtitles_burned: bool = Field(description="Subtitles drawn into the picture.")
    has_storyboard: bool = Field(description="Planning is done: `links.storyboard` answers.")
    fast_track: bool = Field(description="Simple request: fastest path, no review gate.")
    review: bool = Field(description="Pauses for storyboard approval after planning.")
    estimate: CostEstimate
    error: JobError | None
    qa: QASummary | None
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None
    links: JobLinks

    @classmethod
    def from_job(cls, job: Job, root: str = "") -> JobOut:
        base = f"{root}/v1/productions/{job.id}"
        estimate = CostEstimate.model_validate(job.estimate)
        return cls(
            id=job.id,
            status=cast(JobStatus, job.status),
            stage=job.stage,
            progress=job.progress,
            eta_seconds=job.eta_seconds,
            title=job.title,
            duration=job.duration,
            language=job.language,
            subtitles_burned=bool((job.request.get("subtitles") or {}).get("burn_in", True)),
            has_storyboard=job.storyboard is not None,
            fast_track=job.fast_track,
            review=job.review,
            estimate=estimate,
            error=JobError.model_validate(job.error) if job.error else None,
            qa=_qa_summary(job.qa),
            created_at=job.created_at,
            updated_at=job.updated_at,
            completed_at=job.completed_at,
            links=JobLinks(
                self=base,
                events=f"{base}/events",
                storyboard=f"{base}/storyboard",
                artifacts=f"{base}/artifacts",
            ),
        )


def _qa_summary(qa: dict[str, Any] | None) -> QASummary | None:
    if not qa:
        return None
    checks = [c for c in qa.get("checks", []) if isinstance(c, dict)]
    failed = [c for c in checks if not c.get("passed", False)]
    return QASummary(
        passed=bool(qa.get("passed", False)),
        failed=[str(c.get("name")) for c in failed if c.get("blocking", True)],
        warnings=[str(c.get("name")) for c in failed if not c.get("blocking", True)],
    )


class SubmitResponse(BaseModel):
    job: JobOut
    estimate: CostEstimate = Field(description="Cost and time predicted at submission.")
    fast_track: bool


class EstimateResponse(BaseModel):
    estimate: CostEstimate
    fast_track: bool


class JobPage(BaseModel):
    items: list[JobOut]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next (older) page; null on the last page."
    )


class EventOut(BaseModel):
    seq: int = Field(description="Position in the job's log, from 1, without gaps.")
    type: str
    payload: dict[str, Any]
    created_at: datetime

    @classmethod
    def from_event(cls, ev: JobEvent) -> EventOut:
        return cls(seq=ev.seq, type=ev.type, payload=ev.payload, created_at=ev.created_at)


class EventPage(BaseModel):
    items: list[EventOut]
    next_after: int = Field(description="Pass as `after` to continue (poll) from here.")
    has_more: bool = Field(description="More events are already available.")


class ArtifactOut(BaseModel):
    name: str = Field(examples=["video.mp4"])
    stage: str = Field(description="The stage that produced it.")
    bytes: int
    sha256: str
    content_type: str
    url: str


class ArtifactList(BaseModel):
    items: list[ArtifactOut]


class RerenderRequest(BaseModel):
    """Fields of one scene to change; those left out keep their value."""

    # At least one field; only `voice` and `style` may be null (the others: omit them).
    model_config = ConfigDict(extra="forbid", json_schema_extra={"minProperties": 1})

    narration: Annotated[str, Field(max_length=2000)] | SkipJsonSchema[None] = None
    visual: Annotated[str, Field(max_length=1000)] | SkipJsonSchema[None] = None
    on_screen_text: Annotated[str, Field(max_length=200)] | SkipJsonSchema[None] = None
    voice: Voice | None = Field(None, description="null clears the scene's override.")
    style: VisualStyle | None = Field(None, description="null clears the scene's override.")
    camera: CameraMove | SkipJsonSchema[None] = None
    transition: Transition | SkipJsonSchema[None] = None
    duration: (
        Annotated[float, Field(gt=0.5, le=120, allow_inf_nan=False)] | SkipJsonSchema[None]
    ) = None

    @model_validator(mode="before")
    @classmethod
    def _nulls(cls, data: Any) -> Any:
        if isinstance(data, dict):
            if not data:
                raise ValueError("give at least one field to change")
            nullable = {"voice", "style"}
            bad = sorted(k for k, v in data.items() if v is None and k not in nullable)
            if bad:
                raise ValueError(f"{', '.join(bad)} cannot be null")
        return data

    def changes(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_unset=True)


class PresetOut(BaseModel):
    name: str
    description: str
    default_duration: float
    max_duration: float
    max_scenes: int
    quality: QualityTier
    resolutions: list[str]


class VoiceOut(BaseModel):
    name: str = Field(
        description="What `voice.name` accepts, e.g. `hibari-heart` or `en-US`.",
        examples=["hibari-heart"],
    )
    language: str = Field(description="The voice's main language (BCP 47-like).")
    gender: str = Field(description="`male`, `female`, or empty when the backend does not say.")
    description: str = ""
    engine: str = Field(
        "",
        description="The engine that speaks it: `hibari` (neural) or `espeak` (eSpeak NG) "
        "offline, or a configured service: `openai-speech`, `elevenlabs` (name it in the "
        "request's `backends.narrate`).",
    )
    sample_rate: int = Field(0, description="Hz of the narration it writes; 0 when unknown.")
    licence: str = Field("", description="Licence of the voice's data (model, voice files).")
    any_language: bool = Field(
        False,
        description="Whether it also reads text of other languages, with its own language's "
        "rules (eSpeak NG voices).  Otherwise a request in another language is refused "
        "(422 `voice_language`).",
    )


class VoiceList(BaseModel):
    backend: str = Field(description="The narrator backend these voices belong to.")
    items: list[VoiceOut]
    variants: list[str] = Field(
        description="Timbres a name may add after `+` (`en+f3`); empty when the backend has none."
    )
