"""The wire format of live progress: typed, versioned JSON messages.

Every job event row (``job_events``) becomes one message with the same shape
on WebSocket, SSE and webhooks::

    {"v": 1, "type": "stage.progress", "job_id": "…", "seq": 12,
     "ts": "2026-11-24T07:07:10.031449Z", "status": "processing",
     "stage": "visuals", "progress": 42, "data": {…type-specific…}}

``seq`` is the event's number in the job's log (from 1, without gaps), so a
client that remembers the last ``seq`` it saw can resume exactly after it.
``v`` changes only for incompatible changes; new fields and new message
types may appear at any time, and clients must ignore what they do not know.

Control messages (``heartbeat``, ``subscribed``, ``resync``, ``error``,
``pong``) carry no ``seq``; the client sends ``auth``, ``resume`` and ``ping``.
``docs/websocket.md`` holds the JSON Schema of each (``python -m
aiprod.events.schemas`` prints them).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from aiprod.jobs.models import SEQ_MAX

PROTOCOL_VERSION = 1

MAX_SEQ = SEQ_MAX  # the database's bound (jobs.models)

JobStatus = Literal["queued", "processing", "awaiting_approval", "completed", "failed", "cancelled"]


class _Model(BaseModel):
    """Server → client: clients must ignore fields they do not know, so the
    schemas do not forbid them either."""


class _ClientModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Message(_Model):
    v: Literal[1] = Field(1, description="Protocol version (PROTOCOL_VERSION).")


class JobError(_Model):
    code: str = Field(description="Stable error code, e.g. `stage_error`, `qa_failed`.")
    message: str
    stage: str | None = None
    details: dict[str, Any] = Field(default_factory=dict)


# ------------------------------------------------------------ event data


class JobQueuedData(_Model):
    reason: Literal["submitted", "approved", "retry", "rerender", "released"] = Field(
        description="Why the job is (again) waiting for a worker."
    )
    fast_track: bool | None = Field(None, description="On submission: the fast path is taken.")
    review: bool | None = Field(None, description="On submission: pauses for approval.")
    retry_from: str | None = Field(None, description="On retry: the stage that failed.")
    rerender_scene: int | None = Field(None, description="On re-render: the scene changed.")
    released_by: str | None = Field(None, description="Released by a stopping worker.")


class JobStartedData(_Model):
    worker: str


class JobResumedData(_Model):
    worker: str
    attempt: int = Field(description="Attempts used so far (a dead worker counts as one).")


class StageStartedData(_Model):
    stage: str
    eta_seconds: float | None = Field(None, description="Seconds the whole job has left.")


class StageProgressData(_Model):
    stage: str
    value: float = Field(ge=0, description="Work of this stage done, in units of `total`.")
    total: float = Field(gt=0, description="Work of this stage in all.")
    eta_seconds: float | None = Field(None, description="Seconds the whole job has left.")


class StageCompletedData(_Model):
    stage: str
    artifacts: list[str] = Field(description="Files the stage produced (artifact names).")
    cached: int = Field(0, description="Units served from the stage cache.")
    units: int = Field(0, description="Units of work of the stage (scenes, tracks…).")
    eta_seconds: float | None = None


class StageFallbackData(_Model):
    stage: str
    provider: str = Field(description="The provider backend that failed.")
    backend: str = Field(description="The built-in backend that made the stage instead.")
    call: str = Field(description="The provider's call that failed, e.g. `chat.completions`.")
    reason: str = Field(description="Why it failed (never a credential).")


class EmptyData(_Model):
    pass


class StoryboardUpdatedData(_Model):
    scenes: int


class RetryScheduledData(_Model):
    error: JobError
    attempt: int
    retry_in: float = Field(description="Seconds until a worker may take the job again.")


class JobCompletedData(_Model):
    artifacts: list[str] = Field(description="Deliverables: video.mp4, subtitles, poster…")


class JobFailedData(_Model):
    error: JobError


# --------------------------------------------------------- job events


class _JobEventMessage(_Message):
    job_id: uuid.UUID
    seq: int = Field(ge=1, description="Number of the event in the job's log, without gaps.")
    ts: datetime = Field(description="When the event was recorded (UTC).")
    status: JobStatus = Field(description="The job's status after this event.")
    stage: str | None = Field(description="Stage running or last run.")
    progress: int = Field(ge=0, le=100, description="Whole job, percent.")


class JobQueued(_JobEventMessage):
    type: Literal["job.queued"] = "job.queued"
    data: JobQueuedData


class JobStarted(_JobEventMessage):
    type: Literal["job.started"] = "job.started"
    data: JobStartedData


class JobResumed(_JobEventMessage):
    type: Literal["job.resumed"] = "job.resumed"
    data: JobResumedData


class StageStarted(_JobEventMessage):
    type: Literal["stage.started"] = "stage.started"
    data: StageStartedData


class StageProgress(_JobEventMessage):
    type: Literal["stage.progress"] = "stage.progress"
    data: StageProgressData


class StageCompleted(_JobEventMessage):
    type: Literal["stage.completed"] = "stage.completed"
    data: StageCompletedData


class StageFallback(_JobEventMessage):
    """A provider failed and the stage's policy (`provider_fallback: builtin`)
    let the built-in backend make it instead; the manifest records it too."""

    type: Literal["stage.fallback"] = "stage.fallback"
    data: StageFallbackData


class JobAwaitingApproval(_JobEventMessage):
    type: Literal["job.awaiting_approval"] = "job.awaiting_approval"
    data: EmptyData


class JobStoryboardUpdated(_JobEventMessage):
    type: Literal["job.storyboard_updated"] = "job.storyboard_updated"
    data: StoryboardUpdatedData


class JobCancelRequested(_JobEventMessage):
    type: Literal["job.cancel_requested"] = "job.cancel_requested"
    data: EmptyData


class JobRetryScheduled(_JobEventMessage):
    type: Literal["job.retry_scheduled"] = "job.retry_scheduled"
    data: RetryScheduledData


class JobCompleted(_JobEventMessage):
    type: Literal["job.completed"] = "job.completed"
    data: JobCompletedData


class JobFailed(_JobEventMessage):
    type: Literal["job.failed"] = "job.failed"
    data: JobFailedData


class JobCancelled(_JobEventMessage):
    type: Literal["job.cancelled"] = "job.cancelled"
    data: EmptyData


class JobOtherEvent(_JobEventMessage):
    """An event type this server version has no schema for (never sent today)."""

    type: str
    data: dict[str, Any]


JOB_EVENT_MODELS: dict[str, type[_JobEventMessage]] = {
    m.model_fields["type"].default: m
    for m in (
        JobQueued,
        JobStarted,
        JobResumed,
        StageStarted,
        StageProgress,
        StageCompleted,
        StageFallback,
        JobAwaitingApproval,
        JobStoryboardUpdated,
        JobCancelRequested,
        JobRetryScheduled,
        JobCompleted,
        JobFailed,
        JobCancelled,
    )
}
JOB_EVENT_TYPES: tuple[str, ...] = tuple(JOB_EVENT_MODELS)
TERMINAL_EVENTS = frozenset({"job.completed", "job.failed", "job.cancelled"})

# ------------------------------------------------- control: server → client


class Heartbeat(_Message):
    type: Literal["heartbeat"] = "heartbeat"
    ts: datetime


class Subscribed(_Message):
    """Sent once authenticated: what the stream covers; replayed events follow."""

    type: Literal["subscribed"] = "subscribed"
    scope: Literal["job", "user", "all"] = Field(
        description="One job; every job of the user; every job (admins)."
    )
    job_id: uuid.UUID | None = None
    after: int | None = Field(None, description="Events after this `seq` are replayed first.")
    last_seq: int | None = Field(None, description="The job's last `seq` when subscribing.")


class Resync(_Message):
    """The client fell behind and live events were dropped for it; the server now
    replays the missing ones from the log, in order and without duplicates."""

    type: Literal["resync"] = "resync"
    reason: Literal["slow_consumer", "resume"] = "slow_consumer"
    job_id: uuid.UUID | None = None
    after: int | None = Field(None, description="Replay restarts after this `seq`.")


class ErrorMessage(_Message):
    type: Literal["error"] = "error"
    code: str = Field(description="`unauthorized`, `forbidden`, `not_found`, `bad_request`…")
    message: str
    job_id: uuid.UUID | None = None


class Pong(_Message):
    type: Literal["pong"] = "pong"


# ------------------------------------------------- control: client → server


class AuthMessage(_ClientModel):
    """First message when no ticket was given in the URL."""

    type: Literal["auth"]
    token: str = Field(min_length=1, max_length=8192, description="An access token or API key.")
    after: int | None = Field(
        None, ge=0, le=MAX_SEQ, description="Job stream: replay after this `seq`."
    )
    jobs: dict[uuid.UUID, Annotated[int, Field(le=MAX_SEQ)]] | None = Field(
        None, description="User stream: replay each job after its `seq`."
    )


class ResumeMessage(_ClientModel):
    type: Literal["resume"]
    after: int | None = Field(None, ge=0, le=MAX_SEQ)
    jobs: dict[uuid.UUID, Annotated[int, Field(le=MAX_SEQ)]] | None = None


class PingMessage(_ClientModel):
    type: Literal["ping"]


ClientMessage = AuthMessage | ResumeMessage | PingMessage
CLIENT_MESSAGE: TypeAdapter[AuthMessage | ResumeMessage | PingMessage] = TypeAdapter(ClientMessage)

CONTROL_MODELS: dict[str, type[BaseModel]] = {
    "heartbeat": Heartbeat,
    "subscribed": Subscribed,
    "resync": Resync,
    "error": ErrorMessage,
    "pong": Pong,
}
CLIENT_MODELS: dict[str, type[BaseModel]] = {
    "auth": AuthMessage,
    "resume": ResumeMessage,
    "ping": PingMessage,
}


# ---------------------------------------------------------------- building


def _queued(p: Mapping[str, Any]) -> dict[str, Any]:
    reason = "submitted"
    if p.get("approved"):
        reason = "approved"
    elif "retry_from" in p:
        reason = "retry"
    elif "rerender_scene" in p:
        reason = "rerender"
    elif "released_by" in p:
        reason = "released"
    keys = ("fast_track", "review", "retry_from", "rerender_scene", "released_by")
    return {"reason": reason, **{k: p[k] for k in keys if k in p}}


def _progress(p: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "stage": p.get("stage"),
        "value": float(p.get("fraction", 0.0)),
        "total": 1.0,
        "eta_seconds": p.get("eta"),
    }


def _stage_completed(p: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "stage": p.get("stage"),
        "artifacts": list(p.get("artifacts", [])),
        "cached": int(p.get("cached", 0)),
        "units": int(p.get("units", 0)),
        "eta_seconds": p.get("eta"),
    }


_DATA: dict[str, Callable[[Mapping[str, Any]], dict[str, Any]]] = {
    "job.queued": _queued,
    "job.started": lambda p: {"worker": str(p.get("worker", ""))},
    "job.resumed": lambda p: {"worker": str(p.get("worker", "")), "attempt": p.get("attempt", 0)},
    "stage.started": lambda p: {"stage": p.get("stage"), "eta_seconds": p.get("eta")},
    "stage.progress": _progress,
    "stage.completed": _stage_completed,
    "stage.fallback": lambda p: {
        k: p.get(k, "") for k in ("stage", "provider", "backend", "call", "reason")
    },
    "job.storyboard_updated": lambda p: {"scenes": p.get("scenes", 0)},
    "job.retry_scheduled": lambda p: {
        "error": p.get("error") or {"code": "unknown", "message": ""},
        "attempt": p.get("attempt", 0),
        "retry_in": p.get("retry_in", 0.0),
    },
    "job.completed": lambda p: {"artifacts": list(p.get("artifacts", []))},
    "job.failed": lambda p: {"error": p.get("error") or {"code": "unknown", "message": ""}},
}
_COMMON = frozenset({"status", "stage", "progress"})


def job_event_message(
    job_id: uuid.UUID,
    seq: int,
    type_: str,
    payload: Mapping[str, Any],
    created_at: datetime,
) -> _JobEventMessage:
    """The wire message of one ``job_events`` row (its payload as the service
    writes it: status, stage and progress plus the type's own fields)."""
    common: dict[str, Any] = {
        "job_id": job_id,
        "seq": seq,
        "ts": created_at,
        "status": payload.get("status", "queued"),
        "stage": payload.get("stage"),
        "progress": max(0, min(100, int(payload.get("progress", 0) or 0))),
    }
    model = JOB_EVENT_MODELS.get(type_)
    if model is None:
        data = {k: v for k, v in payload.items() if k not in _COMMON}
        return JobOtherEvent(type=type_, data=data, **common)
    build = _DATA.get(type_)
    return model.model_validate({"data": build(payload) if build is not None else {}, **common})


def job_event_json(
    job_id: uuid.UUID, seq: int, type_: str, payload: Mapping[str, Any], created_at: datetime
) -> str:
    return job_event_message(job_id, seq, type_, payload, created_at).model_dump_json()


def control_json(message: BaseModel) -> str:
    return message.model_dump_json()


def heartbeat_json() -> str:
    return Heartbeat(ts=datetime.now(UTC)).model_dump_json()


# ------------------------------------------------------------- JSON Schemas


def json_schemas() -> dict[str, dict[str, Any]]:
    """One JSON Schema per message type: job events, then server control
    messages, then client messages."""
    out: dict[str, dict[str, Any]] = {}
    for name, model in {**JOB_EVENT_MODELS, **CONTROL_MODELS, **CLIENT_MODELS}.items():
        out[name] = model.model_json_schema()
    return out


def schema_markdown() -> str:
    """The schema section of docs/websocket.md (kept in sync by a test)."""
    parts = []
    for name, schema in json_schemas().items():
        body = json.dumps(schema, indent=2, sort_keys=True)
        parts.append(f"### `{name}`\n\n```json\n{body}\n```\n")
    return "\n".join(parts)


if __name__ == "__main__":  # pragma: no cover
    print(schema_markdown())
