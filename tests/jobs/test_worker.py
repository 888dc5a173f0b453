"""The job worker in process, on SQLite and PostgreSQL, with real (tiny) renders.

Three test doubles stand in for stage backends where a test needs control the
real ones do not give: ``FlakyRenderer`` fails a set number of times (counted
in a file) and then renders for real; ``GateRenderer`` holds a render until the
test opens it, reporting progress meanwhile (progress is where the pipeline
notices a cancel); ``StrictQA`` runs the real checks and adds one that cannot
pass.  They are registered through the public backend registry, as a plugin
would be.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, ClassVar

import obstore
import pytest
from sqlalchemy import update
from sqlalchemy.exc import OperationalError

from aiprod.db.engine import Database
from aiprod.identity.models import User
from aiprod.jobs.models import Job
from aiprod.jobs.service import JobService
from aiprod.jobs.worker import Worker, artifact_key
from aiprod.production import backends
from aiprod.production.media.probe import probe
from aiprod.production.models import STAGES, QACheck, QAReport, Scene, Storyboard
from aiprod.production.stages.qa import QAInput
from aiprod.production.stages.visuals import SceneContext
from aiprod.settings import Settings
from aiprod.storage.store import ArtifactNotFound, Storage
from tests.jobs.conftest import (
    event_log,
    event_types,
    expire_lease,
    make_request,
    review_request,
    wait_status,
    wait_until,
)

pytestmark = pytest.mark.slow

DONE = {"completed", "failed", "cancelled"}


# ------------------------------------------------------------ test doubles


class FlakyRenderer:
    """Fails its first `failures` renders with RuntimeError, then renders for real."""

    name = "flaky"
    version = "1"
    counter: ClassVar[Path] = Path("flaky-calls")
    failures: ClassVar[int] = 0

    def render(self, scene: Scene, ctx: SceneContext, out: Path, progress: Any) -> None:
        calls = int(self.counter.read_text()) if self.counter.exists() else 0
        self.counter.write_text(str(calls + 1))
        if calls < self.failures:
            raise RuntimeError(f"render backend unavailable (call {calls + 1})")
        backends.get("visuals", "motion").render(scene, ctx, out, progress)


class GateRenderer:
    """Holds each render until `opened` is set, reporting progress meanwhile."""

    name = "gate"
    version = "1"
    entered: ClassVar[threading.Event] = threading.Event()
    opened: ClassVar[threading.Event] = threading.Event()

    def render(self, scene: Scene, ctx: SceneContext, out: Path, progress: Any) -> None:
        self.entered.set()
        deadline = time.monotonic() + 60
        while not self.opened.wait(0.05):
            progress(0.0)
            if time.monotonic() > deadline:
                raise TimeoutError("the test never opened the gate")
        backends.get("visuals", "motion").render(scene, ctx, out, progress)


class StrictQA:
    """The real QA plus one blocking check that no video can pass."""

    name = "strict"
    version = "1"

    def check(self, inp: QAInput) -> QAReport:
        report: QAReport = backends.get("qa", "probe").check(inp)
        impossible = QACheck(
            name="impossible_width",
            passed=False,
            blocking=True,
            measured=f"{inp.spec.width} px",
            expected=">= 100000 px",
        )
        return QAReport(passed=False, checks=[*report.checks, impossible])


backends.register("visuals", "flaky", f"{__name__}:FlakyRenderer")
backends.register("visuals", "gate", f"{__name__}:GateRenderer")
backends.register("qa", "strict", f"{__name__}:StrictQA")


@pytest.fixture
def flaky(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> type[FlakyRenderer]:
    monkeypatch.setattr(FlakyRenderer, "counter", tmp_path / "flaky-calls")
    return FlakyRenderer


@pytest.fixture
def gate(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[GateRenderer]]:
    monkeypatch.setattr(GateRenderer, "entered", threading.Event())
    monkeypatch.setattr(GateRenderer, "opened", threading.Event())
    try:
        yield GateRenderer
    finally:
        GateRenderer.opened.set()  # never leave a pipeline thread waiting


@pytest.fixture
def worker(db: Database, storage: Storage, settings: Settings) -> Worker:
    return Worker(db, storage, settings)


@asynccontextmanager
async def running(worker: Worker) -> AsyncIterator[asyncio.Event]:
    """The worker's loop in the background; yields its stop event."""
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        yield stop
        assert not task.done(), "the worker loop ended on its own"
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=30)


async def finished(service: JobService, job: Job, timeout: float = 90) -> Job:
    return await wait_status(service, job.id, DONE, timeout)


async def wait_entered(gate: type[GateRenderer], service: JobService, job: Job) -> None:
    async def check() -> bool:
        return gate.entered.is_set()

    await wait_until(
        check, timeout=60, what="the visuals render to start", service=service, job_id=job.id
    )


def stored_keys(storage: Storage, prefix: str) -> list[str]:
    return [m["path"] for batch in obstore.list(storage.store, prefix=prefix) for m in batch]


def starts(types_: list[str], events: list[Any], stage: str) -> int:
    return sum(
        1
        for t, e in zip(types_, events, strict=True)
        if t == "stage.started" and e.payload["stage"] == stage
    )


# --------------------------------------------------------------- end to end


async def test_worker_makes_the_video_end_to_end(
    service: JobService,
    storage: Storage,
    user: User,
    worker: Worker,
    settings: Settings,
    tmp_path: Path,
) -> None:
    job, _ = await service.create(user.id, make_request(), None)
    async with running(worker):
        done = await finished(service, job)
    log = await event_log(service, job.id)
    assert done.status == "completed", log
    assert done.progress == 100 and done.qa is not None and done.qa["passed"]
    assert done.lease_owner is None and done.completed_at is not None

    # A checkpoint per stage, each file in storage under jobs/<id>/<name>; a
    # file rewritten by a later stage (storyboard.json) matches its last version.
    checkpoints = await service.checkpoints(job.id)
    assert [c.stage for c in checkpoints] == list(STAGES), log
    latest: dict[str, dict[str, Any]] = {}
    for c in checkpoints:
        for a in c.artifacts:
            assert a["key"] == artifact_key(job.id, a["name"])
            latest[a["name"]] = a
    for name, a in latest.items():
        data = await storage.get_bytes(a["key"])
        assert len(data) == a["bytes"], name
        assert hashlib.sha256(data).hexdigest() == a["sha256"], name
    names = set(latest)
    assert {"video.mp4", "poster.jpg", "storyboard.json", "qa.json", "manifest.json"} <= names
    assert any(n.startswith("work/clips/") for n in names)
    assert any(n.startswith("work/narration/") for n in names)

    video = tmp_path / "video.mp4"
    await storage.get_to_file(artifact_key(job.id, "video.mp4"), video)
    info = probe(video)
    assert (info.video_codec, info.audio_codec) == ("h264", "aac")
    assert (info.width, info.height, round(info.fps)) == (480, 480, 24)
    sb = Storyboard.model_validate(done.storyboard)
    assert info.duration == pytest.approx(sb.duration, rel=0.05)
    assert (
        Storyboard.model_validate_json(
            await storage.get_bytes(artifact_key(job.id, "storyboard.json"))
        )
        == sb
    )

    # The event log tells the story in order, numbered without gaps.
    events = await service.events(job.id)
    types_ = [e.type for e in events]
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert types_[:2] == ["job.queued", "job.started"] and types_[-1] == "job.completed"
    stage_marks = [
        (e.type, e.payload["stage"])
        for e in events
        if e.type in ("stage.started", "stage.completed")
    ]
    assert stage_marks == [(t, s) for s in STAGES for t in ("stage.started", "stage.completed")]
    progress = [e.payload["progress"] for e in events if e.type.startswith("stage.")]
    assert progress == sorted(progress) and progress[-1] == 100
    completed = {e.payload["stage"]: e.payload for e in events if e.type == "stage.completed"}
    assert completed["narrate"]["units"] == len(sb.scenes)
    assert completed["narrate"]["cached"] == 0
    assert "video.mp4" in completed["montage"]["artifacts"]
    assert "video.mp4" in events[-1].payload["artifacts"]
    assert not any(n.startswith("work/") for n in events[-1].payload["artifacts"])

    assert not (settings.scratch_dir / str(job.id)).exists()  # outputs live in storage
    assert await service.last_worker_beat() is not None


# ------------------------------------------------------------------ retries


async def test_transient_failures_are_retried_and_resume_after_checkpoints(
    service: JobService, user: User, worker: Worker, flaky: type[FlakyRenderer]
) -> None:
    flaky.failures = 2
    job, _ = await service.create(user.id, make_request(backends={"visuals": "flaky"}), None)
    async with running(worker):
        done = await finished(service, job)
    log = await event_log(service, job.id)
    assert done.status == "completed", log
    assert done.attempts == 2
    events = await service.events(job.id)
    types_ = [e.type for e in events]
    retries = [e.payload for e in events if e.type == "job.retry_scheduled"]
    assert [r["retry_in"] for r in retries] == [0.2, 0.4], log
    assert all(r["error"]["code"] == "stage_error" for r in retries)
    assert all(r["error"]["stage"] == "visuals" for r in retries)
    assert "RuntimeError" in retries[0]["error"]["message"]
    # Plan and narrate were checkpointed on the first attempt and never redone.
    assert starts(types_, events, "plan") == 1
    assert starts(types_, events, "narrate") == 1
    assert starts(types_, events, "visuals") == 3
    assert types_.count("job.started") == 3


async def test_failures_stop_after_max_attempts(
    service: JobService,
    user: User,
    worker: Worker,
    flaky: type[FlakyRenderer],
    settings: Settings,
) -> None:
    flaky.failures = 1000
    job, _ = await service.create(user.id, make_request(backends={"visuals": "flaky"}), None)
    async with running(worker):
        done = await finished(service, job)
    log = await event_log(service, job.id)
    assert done.status == "failed", log
    assert done.attempts == settings.max_attempts
    assert done.failed_stage == "visuals"
    assert done.error is not None and done.error["code"] == "stage_error"
    types_ = await event_types(service, job.id)
    assert types_.count("job.retry_scheduled") == settings.max_attempts - 1
    assert types_[-1] == "job.failed"
    assert int(flaky.counter.read_text()) == settings.max_attempts


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"script": "\n".join(f"[scene]\nScene {i}." for i in range(12))}, id="plan"),
        pytest.param({"backends": {"montage": "no-such-backend"}}, id="backend"),
    ],
)
async def test_invalid_requests_fail_without_retry(
    service: JobService, user: User, worker: Worker, changes: dict[str, Any]
) -> None:
    job, _ = await service.create(user.id, make_request(**changes), None)
    async with running(worker):
        done = await finished(service, job)
    assert done.status == "failed", await event_log(service, job.id)
    assert done.attempts == 1
    assert done.error is not None and done.error["code"] == "invalid_request"
    assert "job.retry_scheduled" not in await event_types(service, job.id)


async def test_qa_failure_is_final_and_keeps_the_artifacts(
    service: JobService, storage: Storage, user: User, worker: Worker
) -> None:
    job, _ = await service.create(user.id, make_request(backends={"qa": "strict"}), None)
    async with running(worker):
        done = await finished(service, job)
    assert done.status == "failed", await event_log(service, job.id)
    assert done.attempts == 1 and done.failed_stage == "qa"
    assert done.error is not None and done.error["code"] == "qa_failed"
    failing = [c for c in done.error["details"]["checks"] if c["blocking"] and not c["passed"]]
    assert [c["name"] for c in failing] == ["impossible_width"]
    for name in ("video.mp4", "qa.json", "storyboard.json"):
        assert await storage.size(artifact_key(job.id, name)) > 0

    # A retry checks again (from the failed stage) instead of replaying the verdict.
    await service.retry(job.id, None)
    async with running(worker):
        again = await finished(service, job)
    events = await service.events(job.id)
    types_ = [e.type for e in events]
    assert again.status == "failed" and again.error is not None
    assert again.error["code"] == "qa_failed"
    assert starts(types_, events, "qa") == 2
    assert starts(types_, events, "montage") == 1


# ------------------------------------------------------------- review gate


async def test_review_gate_pauses_after_plan_and_approval_finishes(
    service: JobService, storage: Storage, user: User, worker: Worker
) -> None:
    job, _ = await service.create(user.id, review_request(), None)
    assert job.review
    async with running(worker):
        paused = await wait_status(service, job.id, {"awaiting_approval", *DONE})
        log = await event_log(service, job.id)
        assert paused.status == "awaiting_approval", log
        assert [c.stage for c in await service.checkpoints(job.id)] == ["plan"]
        assert paused.storyboard is not None and paused.lease_owner is None
        types_ = await event_types(service, job.id)
        assert "stage.completed" in types_ and types_[-1] == "job.awaiting_approval"

        # The reviewer edits the plan (stored in the database) and approves it.
        edited = Storyboard.model_validate(paused.storyboard)
        edited.scenes[0].on_screen_text = "Reviewed"
        await service.update_storyboard(job.id, None, edited)
        await service.approve(job.id, None)
        done = await finished(service, job)
    assert done.status == "completed", await event_log(service, job.id)
    final = Storyboard.model_validate_json(
        await storage.get_bytes(artifact_key(job.id, "storyboard.json"))
    )
    assert final.scenes[0].on_screen_text == "Reviewed"
    events = await service.events(job.id)
    types_ = [e.type for e in events]
    assert starts(types_, events, "plan") == 1  # the approved plan was not redone
    assert starts(types_, events, "montage") == 1
    assert [c.stage for c in await service.checkpoints(job.id)] == list(STAGES)


# -------------------------------------------------- cancel, lease, shutdown


async def test_cancel_stops_a_running_job_and_removes_its_files(
    service: JobService,
    storage: Storage,
    user: User,
    worker: Worker,
    settings: Settings,
    gate: type[GateRenderer],
) -> None:
    job, _ = await service.create(user.id, make_request(backends={"visuals": "gate"}), None)
    async with running(worker):
        await wait_entered(gate, service, job)
        assert stored_keys(storage, f"jobs/{job.id}/")  # plan and narrate are stored
        await service.cancel(job.id, None)  # how fast: bench/worker.py
        done = await wait_status(service, job.id, DONE)
    assert done.status == "cancelled", await event_log(service, job.id)
    assert stored_keys(storage, f"jobs/{job.id}/") == []
    with pytest.raises(ArtifactNotFound):
        await storage.size(artifact_key(job.id, "storyboard.json"))
    assert not (settings.scratch_dir / str(job.id)).exists()
    types_ = await event_types(service, job.id)
    assert "job.cancel_requested" in types_ and types_[-1] == "job.cancelled"
    assert "job.failed" not in types_


async def test_a_cancel_asked_of_a_dead_worker_is_finished_by_the_next(
    db: Database, service: JobService, storage: Storage, user: User, worker: Worker
) -> None:
    job, _ = await service.create(user.id, make_request(), None)
    assert await service.claim("dead:1:aa") is not None
    await storage.put_bytes(artifact_key(job.id, "storyboard.json"), b"{}")
    await service.cancel(job.id, None)  # the dead worker never hears of it
    await expire_lease(db, job.id)
    async with running(worker):
        done = await wait_status(service, job.id, DONE, timeout=20)
    types_ = await event_types(service, job.id)
    assert done.status == "cancelled", await event_log(service, job.id)
    assert "job.resumed" in types_ and "stage.started" not in types_
    assert stored_keys(storage, f"jobs/{job.id}/") == []


async def test_concurrent_jobs_run_side_by_side(
    db: Database,
    storage: Storage,
    service: JobService,
    user: User,
    settings: Settings,
    gate: type[GateRenderer],
) -> None:
    jobs = [
        (await service.create(user.id, make_request(seed=i, backends={"visuals": "gate"}), None))[0]
        for i in range(2)
    ]
    worker = Worker(db, storage, settings, concurrency=2)

    async def both_rendering() -> bool:
        for job in jobs:
            events = await service.events(job.id)
            if ("stage.started", "visuals") not in [(e.type, e.payload["stage"]) for e in events]:
                return False
        return True

    async with running(worker):
        await wait_until(both_rendering, timeout=60, what="both jobs to be rendering at once")
        for job in jobs:
            await service.cancel(job.id, None)
        for job in jobs:
            done = await wait_status(service, job.id, DONE, timeout=10)
            assert done.status == "cancelled", await event_log(service, job.id)


async def test_a_lost_lease_stops_the_worker_without_touching_the_job(
    db: Database,
    service: JobService,
    user: User,
    worker: Worker,
    settings: Settings,
    gate: type[GateRenderer],
) -> None:
    job, _ = await service.create(user.id, make_request(backends={"visuals": "gate"}), None)
    scratch = settings.scratch_dir / str(job.id)
    async with running(worker):
        await wait_entered(gate, service, job)
        async with db.transaction() as s:  # another worker took the job over
            await s.execute(update(Job).where(Job.id == job.id).values(lease_owner="thief:9:ff"))
        seq = (await service.get(job.id, None)).last_seq

        async def gone() -> bool:
            return not scratch.exists()

        await wait_until(
            gone, timeout=10, what="the worker to let go", service=service, job_id=job.id
        )
        stored = await service.get(job.id, None)
    assert (stored.status, stored.lease_owner, stored.attempts) == ("processing", "thief:9:ff", 0)
    assert stored.last_seq == seq  # nothing written on the new owner's job
    assert stored.error is None


@pytest.mark.parametrize("damaged", [False, True], ids=["intact", "damaged"])
async def test_shutdown_leaves_the_job_to_resume_elsewhere(
    db: Database,
    storage: Storage,
    service: JobService,
    user: User,
    worker: Worker,
    settings: Settings,
    gate: type[GateRenderer],
    damaged: bool,
) -> None:
    """Stopped mid-render, the job is released (queued again) and resumes on
    another worker after its checkpoints.  If a checkpointed file went missing
    from storage meanwhile, that stage is redone rather than trusted."""
    job, _ = await service.create(user.id, make_request(backends={"visuals": "gate"}), None)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    await wait_entered(gate, service, job)
    stop.set()
    await asyncio.wait_for(task, timeout=10)
    stopped = await service.get(job.id, None)
    assert (stopped.status, stopped.attempts, stopped.error) == ("queued", 0, None)
    assert stopped.lease_owner is None
    assert [c.stage for c in await service.checkpoints(job.id)] == ["plan", "narrate"]
    assert not (settings.scratch_dir / str(job.id)).exists()

    if damaged:
        await obstore.delete_async(storage.store, artifact_key(job.id, "work/narration.json"))
    gate.opened.set()
    async with running(Worker(db, storage, settings)):
        done = await finished(service, job)
    assert done.status == "completed", await event_log(service, job.id)
    events = await service.events(job.id)
    types_ = [e.type for e in events]
    assert types_.count("job.started") == 2  # released, then claimed afresh
    assert starts(types_, events, "plan") == 1
    assert starts(types_, events, "narrate") == (2 if damaged else 1)
    assert starts(types_, events, "visuals") == 2
    if damaged:  # redone, from the stage cache
        resumed = events[len(types_) - 1 - types_[::-1].index("job.started") :]
        redone = [e.payload for e in resumed if e.type == "stage.completed"]
        assert (redone[0]["stage"], redone[0]["cached"], redone[0]["units"]) == ("narrate", 2, 2)


async def test_rerender_remakes_only_the_changed_scene(
    service: JobService, storage: Storage, user: User, worker: Worker
) -> None:
    job, _ = await service.create(user.id, make_request(), None)
    async with running(worker):
        first = await finished(service, job)
        assert first.status == "completed", await event_log(service, job.id)
        seq = first.last_seq
        await service.rerender(job.id, None, 1, {"on_screen_text": "Changed"})
        done = await finished(service, job)
    assert done.status == "completed", await event_log(service, job.id)
    events = await service.events(job.id, after=seq)
    completed = {e.payload["stage"]: e.payload for e in events if e.type == "stage.completed"}
    assert "plan" not in completed  # the stored storyboard is the plan now
    assert completed["narrate"]["cached"] == completed["narrate"]["units"] == 2
    assert (completed["visuals"]["cached"], completed["visuals"]["units"]) == (1, 2)
    final = Storyboard.model_validate_json(
        await storage.get_bytes(artifact_key(job.id, "storyboard.json"))
    )
    assert final.scenes[1].on_screen_text == "Changed"


async def test_database_errors_in_heartbeats_do_not_kill_the_worker(
    service: JobService,
    user: User,
    worker: Worker,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: dict[str, int] = {"heartbeat": 0, "beat": 0, "claim": 0}

    def flaky(name: str, failures: int) -> None:
        real = getattr(worker.service, name)

        async def call(*args: Any, **kwargs: Any) -> Any:
            calls[name] += 1
            if calls[name] <= failures:
                raise OperationalError("SELECT 1", {}, ConnectionError("database went away"))
            return await real(*args, **kwargs)

        monkeypatch.setattr(worker.service, name, call)

    flaky("heartbeat", 3)
    flaky("beat", 2)
    flaky("claim", 2)
    job, _ = await service.create(user.id, make_request(), None)
    async with running(worker):
        done = await finished(service, job)
    assert done.status == "completed", await event_log(service, job.id)
    assert calls["heartbeat"] > 3 and calls["claim"] > 2, calls
