"""The job lifecycle rules (JobService) on SQLite and PostgreSQL.

These tests drive the service directly, without rendering anything: the state
machine, the event log's numbering, idempotent submission, exclusive claims,
leases, heartbeats and retry backoff.  Concurrency is real (asyncio.gather over
several connections and two engines), because the guarantees under test are
the ones that only matter when two writers collide.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from aiprod.db.base import utcnow
from aiprod.db.engine import Database
from aiprod.identity.models import User
from aiprod.jobs import state
from aiprod.jobs.models import Checkpoint, Job
from aiprod.jobs.service import Conflict, JobService, LeaseLost
from aiprod.production.backends.planner import BuiltinPlanner
from aiprod.production.models import Storyboard
from aiprod.settings import Settings
from tests.jobs.conftest import event_types, expire_lease, make_request, new_user, wait_until

# The lifecycle as the product defines it, written out independently of
# aiprod.jobs.state so that a change to the table has to change this too.
LEGAL = {
    ("queued", "processing"),  # a worker claims it
    ("queued", "cancelled"),  # cancelled before it started
    ("processing", "awaiting_approval"),  # planned; the review gate pauses it
    ("processing", "completed"),
    ("processing", "failed"),
    ("processing", "cancelled"),  # the worker finished a requested cancel
    ("processing", "queued"),  # transient failure: waits for its retry
    ("awaiting_approval", "queued"),  # approved
    ("awaiting_approval", "cancelled"),
    ("failed", "queued"),  # retried by the user
    ("completed", "queued"),  # a scene re-rendered
}


def storyboard() -> Storyboard:
    return BuiltinPlanner().plan(make_request())


async def job_in(
    service: JobService, user: User, status: str, worker: str = "worker-a:1:aa"
) -> Job:
    """A job driven to `status` through the service's own API.

    Claims take the oldest runnable job, so callers make sure no other job is
    queued when they ask for a non-queued status.
    """
    job, _ = await service.create(user.id, make_request(), None)
    if status == "queued":
        return job
    if status == "cancelled":
        return await service.cancel(job.id, None)
    claimed = await service.claim(worker)
    assert claimed is not None and claimed.id == job.id
    sb = storyboard().model_dump(mode="json")
    if status == "awaiting_approval":
        await service.save_checkpoint(job.id, worker, "plan", [], storyboard=sb)
        await service.pause_for_review(job.id, worker)
    elif status == "completed":
        await service.save_checkpoint(job.id, worker, "plan", [], storyboard=sb)
        await service.save_checkpoint(job.id, worker, "narrate", [], storyboard=sb)
        await service.complete(job.id, worker, qa={"passed": True, "checks": []}, artifacts=[])
    elif status == "failed":
        await service.fail(job.id, worker, "visuals", "stage_error", "boom", transient=False)
    else:
        assert status == "processing"
    job = await service.get(job.id, None)
    assert job.status == status
    return job


# ------------------------------------------------------------ state machine


@pytest.mark.parametrize(("current", "target"), list(itertools.product(state.STATUSES, repeat=2)))
def test_state_machine_allows_exactly_the_lifecycle(current: str, target: str) -> None:
    if (current, target) in LEGAL:
        state.check(current, target)
    else:
        with pytest.raises(state.IllegalTransition) as info:
            state.check(current, target)
        assert current in str(info.value) and target in str(info.value)


def test_terminal_states() -> None:
    assert {"completed", "failed", "cancelled"} == state.TERMINAL
    assert not state.TRANSITIONS["cancelled"]


W = "worker-a:1:aa"


async def _claim_and_pause(s: JobService, j: Job) -> None:
    await s.claim(W)
    await s.save_checkpoint(j.id, W, "plan", [], storyboard=storyboard().model_dump(mode="json"))
    await s.pause_for_review(j.id, W)


# (name, status before, action, status after, event the action records)
LEGAL_ACTIONS = [
    ("claim", "queued", lambda s, j: s.claim(W), "processing", "job.started"),
    ("cancel queued", "queued", lambda s, j: s.cancel(j.id, None), "cancelled", "job.cancelled"),
    ("pause", "processing", lambda s, j: s.pause_for_review(j.id, W), "awaiting_approval", None),
    (
        "complete",
        "processing",
        lambda s, j: s.complete(j.id, W, qa={"passed": True, "checks": []}, artifacts=["v.mp4"]),
        "completed",
        "job.completed",
    ),
    (
        "fail permanently",
        "processing",
        lambda s, j: s.fail(j.id, W, "plan", "invalid_request", "no", transient=False),
        "failed",
        "job.failed",
    ),
    (
        "fail transiently",
        "processing",
        lambda s, j: s.fail(j.id, W, "visuals", "stage_error", "io", transient=True),
        "queued",
        "job.retry_scheduled",
    ),
    (
        "finish cancel",
        "processing",
        lambda s, j: s.finish_cancel(j.id, W),
        "cancelled",
        "job.cancelled",
    ),
    ("approve", "awaiting_approval", lambda s, j: s.approve(j.id, None), "queued", "job.queued"),
    (
        "cancel paused",
        "awaiting_approval",
        lambda s, j: s.cancel(j.id, None),
        "cancelled",
        "job.cancelled",
    ),
    ("retry", "failed", lambda s, j: s.retry(j.id, None), "queued", "job.queued"),
    (
        "rerender",
        "completed",
        lambda s, j: s.rerender(j.id, None, 0, {"on_screen_text": "New"}),
        "queued",
        "job.queued",
    ),
]


@pytest.mark.parametrize(
    ("before", "action", "after", "event"),
    [pytest.param(*case[1:], id=case[0]) for case in LEGAL_ACTIONS],
)
async def test_each_legal_transition_through_the_service(
    service: JobService, user: User, before: str, action: object, after: str, event: str | None
) -> None:
    job = await job_in(service, user, before)
    seq = job.last_seq
    await action(service, job)  # type: ignore[operator]
    job = await service.get(job.id, None)
    assert job.status == after
    assert job.last_seq > seq
    events = await service.events(job.id, after=seq)
    assert events[-1].type == (event or f"job.{after}")
    assert events[-1].payload["status"] == after
    assert (before, after) in LEGAL
    if after in ("completed", "failed", "cancelled", "awaiting_approval", "queued"):
        assert job.lease_owner is None


# Every user action and the statuses it is allowed from.
USER_ACTIONS = {
    "cancel": ({"queued", "processing", "awaiting_approval"}, lambda s, j: s.cancel(j.id, None)),
    "approve": ({"awaiting_approval"}, lambda s, j: s.approve(j.id, None)),
    "retry": ({"failed"}, lambda s, j: s.retry(j.id, None)),
    "rerender": (
        {"completed", "failed"},
        lambda s, j: s.rerender(j.id, None, 0, {"on_screen_text": "x"}),
    ),
    "edit": (
        {"awaiting_approval"},
        lambda s, j: s.update_storyboard(j.id, None, storyboard()),
    ),
}
# Worker calls need a job that is processing under the caller's lease.
WORKER_ACTIONS = {
    "stage_event": lambda s, j, w: s.stage_event(j.id, w, "stage.started", "plan", 1, None),
    "save_checkpoint": lambda s, j, w: s.save_checkpoint(j.id, w, "plan", []),
    "pause": lambda s, j, w: s.pause_for_review(j.id, w),
    "complete": lambda s, j, w: s.complete(j.id, w, qa={}, artifacts=[]),
    "fail": lambda s, j, w: s.fail(j.id, w, None, "stage_error", "x", transient=True),
    "finish_cancel": lambda s, j, w: s.finish_cancel(j.id, w),
}


@pytest.mark.parametrize("status", state.STATUSES)
async def test_illegal_actions_change_nothing(service: JobService, user: User, status: str) -> None:
    job = await job_in(service, user, status)
    seq = job.last_seq
    for name, (allowed, action) in USER_ACTIONS.items():
        if status in allowed:
            continue
        with pytest.raises(Conflict) as info:
            await action(service, job)  # type: ignore[no-untyped-call]
        assert info.value.code == "invalid_state", name
    # A worker that does not hold the lease may do nothing, whatever the status;
    # the lease holder may not act on a job that is no longer processing.
    holders = ["someone-else:2:bb"] + ([] if status == "processing" else [W])
    for worker, action in itertools.product(holders, WORKER_ACTIONS.values()):
        with pytest.raises(LeaseLost):
            await action(service, job, worker)
    after = await service.get(job.id, None)
    assert (after.status, after.last_seq) == (status, seq)
    if status in state.TERMINAL - {"completed", "failed"}:
        assert await service.claim("late:3:cc") is None


async def test_cancel_of_a_running_job_is_a_request(service: JobService, user: User) -> None:
    job = await job_in(service, user, "processing")
    job = await service.cancel(job.id, None)
    assert job.status == "processing" and job.cancel_requested
    assert (await event_types(service, job.id))[-1] == "job.cancel_requested"
    assert await service.heartbeat(job.id, W) == (True, True)
    await service.finish_cancel(job.id, W)
    assert (await service.get(job.id, None)).status == "cancelled"


async def test_storyboard_edit_keeps_only_the_plan_checkpoint(
    service: JobService, user: User
) -> None:
    job = await job_in(service, user, "awaiting_approval")
    edited = storyboard()
    edited.scenes[0].on_screen_text = "Edited"
    edited.title = "An edited title"
    await service.update_storyboard(job.id, None, edited)
    job = await service.get(job.id, None)
    assert job.storyboard is not None
    assert job.storyboard["scenes"][0]["on_screen_text"] == "Edited"
    assert job.title == "An edited title"
    assert [c.stage for c in await service.checkpoints(job.id)] == ["plan"]


async def test_rerender_resets_the_job_for_one_scene(service: JobService, user: User) -> None:
    job = await job_in(service, user, "completed")
    await service.rerender(job.id, None, 1, {"on_screen_text": "Again"})
    job = await service.get(job.id, None)
    assert job.status == "queued" and job.qa is None and job.attempts == 0
    assert job.storyboard is not None
    assert job.storyboard["scenes"][1]["on_screen_text"] == "Again"
    assert [c.stage for c in await service.checkpoints(job.id)] == ["plan"]


# ---------------------------------------------------------------- events


async def test_events_are_numbered_without_gaps_under_concurrent_writers(
    db_url: str, service: JobService, user: User, settings: Settings
) -> None:
    """Two engines (as two processes would be) and many tasks write to two jobs
    at once; each job's log must still read 1..n."""
    other_db = Database(db_url)
    try:
        other = JobService(other_db, settings)
        a, _ = await service.create(user.id, make_request(), None)
        b, _ = await service.create(user.id, make_request(seed=1), None)
        for job in (a, b):
            claimed = await service.claim(f"w-{job.id}")
            assert claimed is not None
        owner = {j.id: f"w-{j.id}" for j in (a, b)}

        async def write(svc: JobService, job_id: uuid.UUID, i: int) -> None:
            await svc.stage_event(job_id, owner[job_id], "stage.progress", "visuals", i, None)

        writes = [
            write(svc, job_id, i) for i in range(15) for svc in (service, other) for job_id in owner
        ]
        writes += [other.cancel(a.id, None), service.cancel(b.id, None)]  # type: ignore[list-item]
        await asyncio.gather(*writes)
        for job in (a, b):
            seqs = [e.seq for e in await service.events(job.id)]
            # 1 queued + 1 started + 30 progress + 1 cancel_requested
            assert seqs == list(range(1, 34))
            assert (await service.get(job.id, None)).last_seq == 33
    finally:
        await other_db.dispose()


async def test_events_can_be_read_after_a_sequence_number(service: JobService, user: User) -> None:
    job = await job_in(service, user, "completed")
    all_events = await service.events(job.id)
    tail = await service.events(job.id, after=2)
    assert [e.seq for e in tail] == [e.seq for e in all_events if e.seq > 2]
    assert [e.type for e in all_events][:2] == ["job.queued", "job.started"]


# ------------------------------------------------------------ idempotency


async def test_same_key_and_body_returns_the_same_job(service: JobService, user: User) -> None:
    first, created = await service.create(user.id, make_request(), "key-1")
    again, created_again = await service.create(user.id, make_request(), "key-1")
    assert created and not created_again
    assert again.id == first.id
    assert await event_types(service, first.id) == ["job.queued"]


async def test_same_key_with_another_body_conflicts(service: JobService, user: User) -> None:
    await service.create(user.id, make_request(), "key-1")
    with pytest.raises(Conflict) as info:
        await service.create(user.id, make_request(seed=7), "key-1")
    assert info.value.code == "idempotency_conflict"


async def test_keys_belong_to_their_owner(
    db: Database, service: JobService, user: User, settings: Settings
) -> None:
    other = await new_user(db, settings)
    mine, _ = await service.create(user.id, make_request(), "shared-key")
    theirs, created = await service.create(other.id, make_request(), "shared-key")
    assert created and theirs.id != mine.id


async def test_concurrent_creates_with_one_key_make_one_job(
    db_url: str, db: Database, service: JobService, user: User, settings: Settings
) -> None:
    other_db = Database(db_url)
    try:
        services = [service, JobService(other_db, settings)]
        results = await asyncio.gather(
            *(services[i % 2].create(user.id, make_request(), "race") for i in range(10))
        )
    finally:
        await other_db.dispose()
    assert len({job.id for job, _ in results}) == 1
    assert sum(created for _, created in results) == 1
    async with db.session() as s:
        count = (
            await s.execute(select(func.count()).select_from(Job).where(Job.owner_id == user.id))
        ).scalar_one()
    assert count == 1


# ------------------------------------------------------------------ claims


async def test_racing_workers_claim_each_job_once(
    db_url: str, service: JobService, user: User, settings: Settings
) -> None:
    jobs = [(await service.create(user.id, make_request(seed=i), None))[0] for i in range(8)]
    # Leases that outlast a slow machine: an expired one is rightly claimable again.
    lasting = settings.model_copy(update={"lease_seconds": 600})
    service = JobService(service.db, lasting)
    other_db = Database(db_url)
    try:
        services = [service, JobService(other_db, lasting)]
        claimed: list[Job] = []
        for _ in range(10):  # rounds until every job is taken
            batch = await asyncio.gather(
                *(services[i % 2].claim(f"worker-{i}:1:x") for i in range(12))
            )
            claimed += [j for j in batch if j is not None]
            if len(claimed) >= len(jobs):
                break
    finally:
        await other_db.dispose()
    counts = Counter(j.id for j in claimed)
    assert set(counts) == {j.id for j in jobs}
    assert all(n == 1 for n in counts.values()), counts
    for job in jobs:
        stored = await service.get(job.id, None)
        assert stored.status == "processing"
        assert stored.lease_owner == next(c.lease_owner for c in claimed if c.id == job.id)
        assert (await event_types(service, job.id)).count("job.started") == 1
    assert await service.claim("late:1:x") is None


async def test_jobs_are_claimed_oldest_first_and_only_when_due(
    db: Database, user: User, settings: Settings
) -> None:
    # A long backoff, so that "not due yet" does not depend on the machine's speed.
    service = JobService(db, settings.model_copy(update={"retry_backoff_seconds": 60.0}))
    first, _ = await service.create(user.id, make_request(), None)
    second, _ = await service.create(user.id, make_request(seed=2), None)
    taken = await service.claim(W)
    assert taken is not None and taken.id == first.id
    await service.fail(first.id, W, "visuals", "stage_error", "io", transient=True)
    # `first` waits for its backoff, so the next claim takes `second`...
    taken = await service.claim(W)
    assert taken is not None and taken.id == second.id
    assert await service.claim(W) is None  # ...and then there is nothing due.


async def test_an_expired_lease_makes_the_job_claimable_and_resumed(
    service: JobService, user: User, settings: Settings
) -> None:
    """Real time, not a forged timestamp: proves the UTC handling of leases."""
    job = await job_in(service, user, "processing", worker="dead:1:aa")
    assert await service.claim("alive:2:bb") is None  # the lease still holds
    resumed: Job | None = None

    async def claimed() -> bool:
        nonlocal resumed
        resumed = await service.claim("alive:2:bb")
        return resumed is not None

    await wait_until(
        claimed, timeout=settings.lease_seconds + 30, what="the lease to expire", interval=0.1
    )
    assert resumed is not None and resumed.id == job.id
    assert resumed.status == "processing" and resumed.lease_owner == "alive:2:bb"
    events = await service.events(job.id)
    assert [e.type for e in events][-1] == "job.resumed"
    assert events[-1].payload["worker"] == "alive:2:bb"
    # The dead worker, should it wake up, learns that it lost the job.
    assert await service.heartbeat(job.id, "dead:1:aa") == (False, False)
    with pytest.raises(LeaseLost):
        await service.stage_event(job.id, "dead:1:aa", "stage.started", "narrate", 10, None)
    with pytest.raises(LeaseLost):
        await service.complete(job.id, "dead:1:aa", qa={}, artifacts=[])


async def test_a_forged_expiry_is_resumed_once(
    db: Database, service: JobService, user: User
) -> None:
    job = await job_in(service, user, "processing", worker="dead:1:aa")
    await expire_lease(db, job.id)
    got = await asyncio.gather(*(service.claim(f"w{i}:1:x") for i in range(6)))
    assert [j.id for j in got if j is not None] == [job.id]
    assert (await event_types(service, job.id)).count("job.resumed") == 1


async def test_a_job_that_keeps_killing_its_workers_fails_at_last(
    db: Database, service: JobService, user: User, settings: Settings
) -> None:
    """Dying while holding the lease counts as an attempt (OOM, segfault...)."""
    job = await job_in(service, user, "processing", worker="dead:0:aa")
    for i in range(1, settings.max_attempts):
        await expire_lease(db, job.id)
        taken = await service.claim(f"w{i}:1:x")
        assert taken is not None and taken.attempts == i
    await expire_lease(db, job.id)
    assert await service.claim("last:1:x") is None
    failed = await service.get(job.id, None)
    assert failed.status == "failed"
    assert failed.error is not None and failed.error["code"] == "worker_lost"
    assert (await event_types(service, job.id))[-1] == "job.failed"


async def test_release_requeues_at_once_for_the_next_worker(
    service: JobService, user: User
) -> None:
    job = await job_in(service, user, "processing", worker="leaving:1:aa")
    await service.release(job.id, "leaving:1:aa")
    assert (await service.get(job.id, None)).status == "queued"
    taken = await service.claim("next:2:bb")
    assert taken is not None and taken.id == job.id
    assert (await event_types(service, job.id))[-2:] == ["job.queued", "job.started"]
    with pytest.raises(LeaseLost):
        await service.release(job.id, "leaving:1:aa")


# ------------------------------------------------------------ heartbeats


async def test_heartbeat_extends_the_lease_and_reports_cancel(
    db: Database, service: JobService, user: User
) -> None:
    job = await job_in(service, user, "processing")
    before = job.lease_expires_at
    assert before is not None
    await asyncio.sleep(0.05)
    assert await service.heartbeat(job.id, W) == (True, False)
    after = (await service.get(job.id, None)).lease_expires_at
    assert after is not None and after > before
    assert after > utcnow() + timedelta(seconds=1)
    await service.cancel(job.id, None)
    assert await service.heartbeat(job.id, W) == (True, True)
    assert await service.heartbeat(job.id, "stranger:1:x") == (False, False)


async def test_worker_beats_are_recorded(service: JobService) -> None:
    assert await service.last_worker_beat() is None
    await service.beat("host:1:aa", "host", 1)
    first = await service.last_worker_beat()
    await asyncio.sleep(0.01)
    await service.beat("host:1:aa", "host", 1)
    second = await service.last_worker_beat()
    assert first is not None and second is not None and second > first


# ------------------------------------------------------------------ retries


async def test_transient_failures_back_off_then_fail_after_max_attempts(
    service: JobService, user: User, settings: Settings
) -> None:
    base = settings.retry_backoff_seconds
    job = await job_in(service, user, "processing")
    for attempt in range(1, settings.max_attempts + 1):
        before = utcnow()
        status = await service.fail(job.id, W, "visuals", "stage_error", "io", transient=True)
        stored = await service.get(job.id, None)
        assert stored.attempts == attempt
        assert stored.error is not None and stored.error["stage"] == "visuals"
        if attempt == settings.max_attempts:
            assert status == "failed" and stored.failed_stage == "visuals"
            break
        assert status == "queued"
        backoff = base * 2 ** (attempt - 1)  # exponential
        assert stored.next_attempt_at >= before + timedelta(seconds=backoff)
        assert stored.next_attempt_at <= utcnow() + timedelta(seconds=backoff)

        async def claimed() -> bool:
            return await service.claim(W) is not None

        await wait_until(claimed, timeout=10, what=f"retry {attempt} to become due")
        assert utcnow() >= stored.next_attempt_at
    events = await service.events(job.id)
    retries = [e.payload for e in events if e.type == "job.retry_scheduled"]
    assert [p["retry_in"] for p in retries] == [base, 2 * base]
    assert [p["attempt"] for p in retries] == [1, 2]
    assert events[-1].type == "job.failed"
    # The user may retry a failed job: attempts start over.
    job = await service.retry(job.id, None)
    assert (job.status, job.attempts, job.error) == ("queued", 0, None)


async def test_checkpoints_replace_earlier_ones_of_the_same_stage(
    db: Database, service: JobService, user: User
) -> None:
    job = await job_in(service, user, "processing")
    art = {"name": "storyboard.json", "key": "k", "sha256": "0" * 64, "bytes": 1}
    await service.save_checkpoint(job.id, W, "plan", [art])
    await service.save_checkpoint(job.id, W, "plan", [{**art, "bytes": 2}])
    async with db.session() as s:
        rows = (await s.execute(select(Checkpoint).where(Checkpoint.job_id == job.id))).scalars()
        assert [(c.stage, c.artifacts[0]["bytes"]) for c in rows] == [("plan", 2)]
