"""The wire format: every event the job service writes has a typed, versioned
message; the documented JSON Schemas are the ones the code produces."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from tests.events.helpers import WORKER, play_stages
from tests.jobs.conftest import (  # noqa: F401  (fixtures)
    db,
    db_url,
    expire_lease,
    make_request,
    new_user,
    pg_database,
    review_request,
    settings,
)

from aiprod.db.engine import Database
from aiprod.events.bus import EventPublisher
from aiprod.events.envelope import Envelope
from aiprod.events.event_log import EventLog
from aiprod.events.schemas import (
    CONTROL_MODELS,
    JOB_EVENT_MODELS,
    JobOtherEvent,
    job_event_message,
    schema_markdown,
)
from aiprod.jobs.service import JobService
from aiprod.production.models import Storyboard

DOCS = Path(__file__).resolve().parents[2] / "docs" / "websocket.md"


async def _every_event_type(service: JobService, owner: uuid.UUID) -> list[uuid.UUID]:
    """Drive jobs through every transition the service knows."""
    a, _ = await service.create(owner, make_request(), None)
    await service.claim(WORKER)
    await play_stages(service, str(a.id), steps=1, stages=("plan",))
    fallback = {"provider": "pexels", "backend": "motion", "call": "search", "reason": "HTTP 503"}
    await service.stage_event(a.id, WORKER, "stage.fallback", "visuals", 40, None, fallback)
    await service.fail(a.id, WORKER, "narrate", "tts", "boom", transient=True)  # retry_scheduled
    b, _ = await service.create(owner, review_request(title="b"), None)
    async with service.db.transaction() as s:  # make b the next claim
        from aiprod.jobs.models import Job

        job_a = await s.get(Job, a.id)
        assert job_a is not None
        job_a.next_attempt_at = job_a.next_attempt_at.replace(year=2999)
    await service.claim(WORKER)
    await service.save_checkpoint(
        b.id, WORKER, "plan", [], storyboard=_storyboard().model_dump(mode="json")
    )
    await service.pause_for_review(b.id, WORKER)
    await service.update_storyboard(b.id, owner, _storyboard())
    await service.approve(b.id, owner)
    await service.claim(WORKER)
    await service.cancel(b.id, owner)  # cancel_requested
    await service.finish_cancel(b.id, WORKER)
    c, _ = await service.create(owner, make_request(title="c"), None)
    await service.claim(WORKER)
    await service.fail(c.id, WORKER, "qa", "qa_failed", "too quiet", transient=False)
    await service.retry(c.id, owner)
    await service.claim(WORKER)
    await service.release(c.id, WORKER)
    await service.claim(WORKER)
    await expire_lease(service.db, c.id)  # its worker "died": the next claim resumes it
    await service.claim(WORKER)
    plan = _storyboard().model_dump(mode="json")
    await service.save_checkpoint(c.id, WORKER, "plan", [], storyboard=plan)
    await service.complete(c.id, WORKER, {"passed": True}, ["video.mp4"])
    await service.rerender(c.id, owner, 0, {"narration": "again"})
    return [a.id, b.id, c.id]


def _storyboard() -> Storyboard:
    return Storyboard.model_validate(
        {
            "title": "t",
            "scenes": [{"index": 0, "narration": "Bees.", "visual": "a hive", "duration": 5.0}],
        }
    )


async def test_every_service_event_has_a_typed_message(
    db: Database,  # noqa: F811
    settings: Any,  # noqa: F811
) -> None:
    published: list[Envelope] = []
    service = JobService(db, settings, EventPublisher(settings.events_channel, [published.extend]))
    owner = await new_user(db, settings)
    jobs = await _every_event_type(service, owner.id)
    store = EventLog(db)
    stored = [env for j in jobs for env in await store.all_after(j, 0)]
    types = {e.type for e in stored}
    assert types == set(JOB_EVENT_MODELS), set(JOB_EVENT_MODELS) - types
    # Published after each commit: exactly the stored events, each job in order.
    assert sorted(published, key=_key) == sorted(stored, key=_key)
    for j in jobs:
        mine = [e.seq for e in published if e.job_id == j]
        assert mine == sorted(mine)
    for env in stored:
        message = json.loads(env.text)
        model = JOB_EVENT_MODELS[env.type]
        model.model_validate(message)  # the documented schema holds
        assert message["v"] == 1 and message["job_id"] == str(env.job_id)
        assert message["seq"] == env.seq
    reasons = {json.loads(e.text)["data"]["reason"] for e in stored if e.type == "job.queued"}
    assert reasons == {"submitted", "approved", "retry", "released", "rerender"}
    failed = next(json.loads(e.text) for e in stored if e.type == "job.failed")
    assert failed["data"]["error"]["code"] == "qa_failed"


def test_unknown_types_still_travel() -> None:
    msg = job_event_message(uuid.uuid4(), 3, "job.shiny", {"status": "queued", "x": 1}, _now())
    assert isinstance(msg, JobOtherEvent) and msg.data == {"x": 1}


def test_envelopes_round_trip() -> None:
    env = Envelope(uuid.uuid4(), uuid.uuid4(), 7, "stage.progress", '{"a": "b c"}')
    assert Envelope.decode(env.encode()) == env
    assert Envelope.decode(env.hint().encode()).text == ""
    with pytest.raises(ValueError):
        Envelope.decode("2 x")


def test_the_documented_schemas_are_current() -> None:
    text = DOCS.read_text()
    assert schema_markdown() in text, (
        "docs/websocket.md is out of date: paste `python -m aiprod.events.schemas` into it"
    )
    for name in (*JOB_EVENT_MODELS, *CONTROL_MODELS, "auth", "resume", "ping"):
        assert f"### `{name}`" in text


def _key(e: Envelope) -> tuple[str, int]:
    return (str(e.job_id), e.seq)


def _now() -> Any:
    from aiprod.db.base import utcnow

    return utcnow()
