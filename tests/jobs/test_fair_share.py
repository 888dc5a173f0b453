"""Fair share: workers serve owners in turn, not the queue in order.

One user's many queued productions must not starve another user's single
one, whether the first user's jobs are still running (fewest running goes
first) or finish at once (the owner served longest ago goes first).  On
SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter

from aiprod.db.engine import Database
from aiprod.identity.models import User
from aiprod.jobs.models import Job
from aiprod.jobs.service import JobService
from aiprod.settings import Settings
from tests.jobs.conftest import make_request, new_user

W = "fair:1:aa"


async def _queue(service: JobService, owner: User, n: int) -> list[Job]:
    return [(await service.create(owner.id, make_request(seed=i), None))[0] for i in range(n)]


async def test_a_single_job_is_claimed_within_two_claims_behind_a_thousand_style_queue(
    service: JobService, db: Database, settings: Settings
) -> None:
    """A queues many jobs first, then B one: B's is among the first two claims,
    though every job of A's is older."""
    a, b = await new_user(db, settings), await new_user(db, settings)
    await _queue(service, a, 25)
    [single] = await _queue(service, b, 1)
    first = await service.claim(W)
    second = await service.claim(W)
    assert first is not None and second is not None
    assert single.id in {first.id, second.id}
    assert {first.owner_id, second.owner_id} == {a.id, b.id}


async def test_owners_take_turns_when_jobs_finish_at_once(
    service: JobService, db: Database, settings: Settings
) -> None:
    """One worker, each job done before the next claim (nobody has a job
    running): owners are served round robin, A's backlog waits its turn."""
    a, b, c = [await new_user(db, settings) for _ in range(3)]
    await _queue(service, a, 6)
    await _queue(service, b, 3)
    await _queue(service, c, 1)
    names = {a.id: "A", b.id: "B", c.id: "C"}
    served = []
    while (job := await service.claim(W)) is not None:
        served.append(names[job.owner_id])
        await service.complete(job.id, W, {}, [])
    assert served[:3] == ["A", "B", "C"]  # everyone once before anyone twice
    assert served == ["A", "B", "C", "A", "B", "A", "B", "A", "A", "A"]


async def test_within_an_owner_the_oldest_job_goes_first(
    service: JobService, db: Database, settings: Settings
) -> None:
    a = await new_user(db, settings)
    jobs = await _queue(service, a, 4)
    order = []
    while (job := await service.claim(W)) is not None:
        order.append(job.id)
    assert order == [j.id for j in jobs]


async def test_the_owner_with_fewer_running_jobs_goes_first(
    service: JobService, db: Database, settings: Settings
) -> None:
    """A has two running, B one: the next claim is B's though A's is older
    and A was served longer ago."""
    a, b = await new_user(db, settings), await new_user(db, settings)
    a_jobs = await _queue(service, a, 4)
    b_jobs = await _queue(service, b, 3)
    taken = [await service.claim(W) for _ in range(3)]  # A, B, A: A has 2 running, B 1
    assert [t.owner_id for t in taken if t is not None] == [a.id, b.id, a.id]
    nxt = await service.claim(W)
    assert nxt is not None and nxt.id == b_jobs[1].id  # B runs 1 < A's 2
    assert a_jobs[2].id not in {t.id for t in taken if t is not None}


async def test_racing_workers_share_fairly_and_claim_each_job_once(
    db: Database, db_url: str, settings: Settings
) -> None:
    """Six workers of two services race over A's 10 jobs and B's 2: every job
    once, and B's both among the first half."""
    service = JobService(db, settings)
    other = JobService(Database(db_url), settings)
    try:
        a, b = await new_user(db, settings), await new_user(db, settings)
        await _queue(service, a, 10)
        b_jobs = await _queue(service, b, 2)
        claimed = []
        for _ in range(2):  # two rounds of six racing claims
            got = await asyncio.gather(
                *((service, other)[i % 2].claim(f"w{i}:1:{uuid.uuid4().hex[:4]}") for i in range(6))
            )
            claimed.append([j for j in got if j is not None])
        ids = [j.id for r in claimed for j in r]
        assert all(n == 1 for n in Counter(ids).values())
        assert {j.id for j in b_jobs} <= {j.id for j in claimed[0]}
    finally:
        await other.db.dispose()
