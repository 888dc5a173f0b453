"""Filtering, full-text search, sorting and paging, on SQLite and PostgreSQL.

Every operator of the filter language against rows whose values are known;
owner scoping (a user's filter or query never reaches another user's rows);
stemming in English and French; the index following the job through its
writes (storyboard, title, deletion); keyset pages in every sort order.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete, func, select, text

from aiprod.db.base import utcnow
from aiprod.db.engine import Database
from aiprod.db.paging import BadCursor
from aiprod.identity.models import User
from aiprod.jobs.models import Job
from aiprod.jobs.service import JobService
from aiprod.search import listing
from aiprod.search.filters import InvalidFilter
from aiprod.settings import Settings
from tests.api.conftest import storyboard
from tests.jobs.conftest import make_request
from tests.search.conftest import add_job, found, new_user, titles

T0 = datetime(2026, 3, 14, 12, 0, tzinfo=UTC)


@pytest.fixture
async def owners(db: Database, settings: Settings) -> tuple[User, User]:
    return await new_user(db, settings), await new_user(db, settings)


async def _catalogue(db: Database, owner: uuid.UUID) -> None:
    """Five productions that differ in every filterable field."""
    await add_job(db, owner, title="alpha", created=T0 - timedelta(days=40), cost=0.10,
                  status="completed", stage="qa", completed_at=T0 - timedelta(days=39),
                  duration=10, aspect="16:9", resolution="720p", language="en",
                  voice={"name": "en-US"}, fast_track=True)  # fmt: skip
    await add_job(db, owner, title="bravo", created=T0 - timedelta(days=1), cost=0.25,
                  status="failed", stage="narrate", duration=45, aspect="9:16",
                  resolution="1080p", language="fr", voice={"name": "fr-FR"}, review=True,
                  preset="brand_campaign")  # fmt: skip
    await add_job(db, owner, title="charlie", created=T0, cost=0.50, status="processing",
                  stage="visuals", duration=90, aspect="1:1", resolution="480p",
                  language="en-GB", preset="brand_campaign")  # fmt: skip
    await add_job(db, owner, title="delta", created=T0 + timedelta(hours=1), cost=1.00,
                  status="cancelled", duration=20, language="de",
                  updated_at=T0 + timedelta(days=2))  # fmt: skip
    await add_job(db, owner, title="echo", created=T0 + timedelta(days=400), cost=2.5,
                  status="completed", stage="qa", completed_at=T0 + timedelta(days=401),
                  duration=30.5)  # fmt: skip


OPERATORS = [
    ("status:completed", {"alpha", "echo"}),
    ("status:failed|cancelled", {"bravo", "delta"}),
    ("stage:narrate|visuals", {"bravo", "charlie"}),
    ("preset:brand_campaign", {"bravo", "charlie"}),
    ("preset:premium_spot|quick_social", {"alpha", "delta", "echo"}),
    ("aspect:9:16", {"bravo"}),
    ('aspect:"16:9"|1:1', {"alpha", "charlie", "delta", "echo"}),
    ("resolution:1080p|480p", {"bravo", "charlie", "delta", "echo"}),
    ("language:en", {"alpha", "charlie", "echo"}),
    ("language:fr-CA", {"bravo"}),
    ("voice:fr-FR", {"bravo"}),
    ("fast_track:true", {"alpha"}),
    ("review:true", {"bravo"}),
    ("fast_track:false,review:false", {"charlie", "delta", "echo"}),
    # dates: a day, a month, a year are periods; a date-time is an instant
    ("created:2026-03-14", {"charlie", "delta"}),
    ("created:2026-03", {"bravo", "charlie", "delta"}),
    ("created:2027", {"echo"}),
    ("created:>2026-03-14", {"echo"}),
    ("created:>=2026-03-14", {"charlie", "delta", "echo"}),
    ("created:<2026-03-14", {"alpha", "bravo"}),
    ("created:<=2026-03-14", {"alpha", "bravo", "charlie", "delta"}),
    ("created<2026-03", {"alpha"}),
    ("created:2026-03-14T12:00:00Z", {"charlie"}),
    ("created:>2026-03-14T12:00:00+00:00", {"delta", "echo"}),
    ("created:>=2026-03-14T13:00:00+01:00", {"charlie", "delta", "echo"}),
    ("created:<=2026-03-14T12:00:00", {"alpha", "bravo", "charlie"}),
    ("completed:<2026-03", {"alpha"}),
    ("completed:>=2026-03", {"echo"}),
    ("completed:2026|2027", {"alpha", "echo"}),
    ("updated:>2026-03-15", {"delta", "echo"}),
    ("created:>=2026-03-01,created:<2026-04", {"bravo", "charlie", "delta"}),
    # numbers and durations
    ("cost:0.5", {"charlie"}),
    ("cost:>0.5", {"delta", "echo"}),
    ("cost:>=0.5", {"charlie", "delta", "echo"}),
    ("cost:<0.25", {"alpha"}),
    ("cost:<=0.25", {"alpha", "bravo"}),
    ("cost:<0.2|>2", {"alpha", "echo"}),
    ("duration:>1m", {"charlie"}),
    ("duration:>=45s", {"bravo", "charlie"}),
    ("duration:<20", {"alpha"}),
    ("duration:<=20s", {"alpha", "delta"}),
    ("duration:30.5", {"echo"}),
    ("duration:1m30s", {"charlie"}),
    ("duration:<0.005h", {"alpha"}),
    # title words, in any form; combinations
    ("title:charlie|echo", {"charlie", "echo"}),
    ("status:completed,cost:>1", {"echo"}),
    ("status:completed|failed,language:en|fr,duration:<40", {"alpha", "echo"}),
]


@pytest.mark.parametrize(("filter_", "expected"), OPERATORS, ids=[f for f, _ in OPERATORS])
async def test_every_operator(
    db: Database, owners: tuple[User, User], filter_: str, expected: set[str]
) -> None:
    mine, other = owners
    await _catalogue(db, mine.id)
    await _catalogue(db, other.id)  # the same rows for someone else: never found
    assert await titles(db, mine.id, filter_) == expected
    # an admin sees both copies
    assert {str(j.title) for j in await found(db, None, filter_)} == expected
    assert len(await found(db, None, filter_)) == 2 * len(expected)


async def test_filters_never_reach_another_users_rows(
    db: Database, owners: tuple[User, User]
) -> None:
    mine, other = owners
    await add_job(db, mine.id, title="my honey", script="Bees make honey.")
    theirs = await add_job(db, other.id, title="their honey", script="Bees make honey.")
    assert await titles(db, mine.id) == {"my honey"}
    assert await titles(db, mine.id, q="honey") == {"my honey"}
    assert await titles(db, mine.id, "title:honey|their") == {"my honey"}
    assert await titles(db, mine.id, "status:queued|failed|completed") == {"my honey"}
    for name in (str(other.id), other.email):
        with pytest.raises(InvalidFilter) as caught:
            await found(db, mine.id, f"owner:{name}")
        assert "owner is for admins" in caught.value.expected
    # an admin narrows to one owner by id or by email
    assert [j.id for j in await found(db, None, f"owner:{other.id}")] == [theirs.id]
    assert [j.id for j in await found(db, None, f"owner:{other.email.upper()}")] == [theirs.id]
    both = f"owner:{other.id}|{mine.email}"
    assert {str(j.title) for j in await found(db, None, both)} == {"my honey", "their honey"}


async def test_full_text_stems_english_and_french(db: Database, user: User) -> None:
    await add_job(db, user.id, title="Morning", script="The dog runs along the beach at dawn.")
    await add_job(
        db,
        user.id,
        title="Camargue",
        script="Les chevaux sauvages galopaient dans les marais.",
        language="fr",
    )
    await add_job(db, user.id, title="Plain", script="Nothing about animals here.")
    assert await titles(db, user.id, q="running") == {"Morning"}
    assert await titles(db, user.id, q="RUN beaches") == {"Morning"}
    assert await titles(db, user.id, q="cheval") == {"Camargue"}
    assert await titles(db, user.id, q="cheval sauvage") == {"Camargue"}
    assert await titles(db, user.id, q="chevaux galoper") == {"Camargue"}
    assert await titles(db, user.id, q="dog cheval") == set()  # every word must match
    assert await titles(db, user.id, q="animal") == {"Plain"}
    assert await titles(db, user.id, q="morning") == {"Morning"}  # the title is searched
    assert await titles(db, user.id, q="unicorns") == set()
    # combined with filters, and `title:` searches the title only
    assert await titles(db, user.id, "language:fr", q="chevaux") == {"Camargue"}
    assert await titles(db, user.id, "language:en", q="chevaux") == set()
    assert await titles(db, user.id, "title:mornings") == {"Morning"}
    assert await titles(db, user.id, "title:dog") == set()


async def test_a_query_of_stop_words_alone_matches_nothing(db: Database, user: User) -> None:
    await add_job(db, user.id, title="The", script="The the the.")
    assert await titles(db, user.id, q="the") == set()


async def test_odd_words_are_read_not_failed(db: Database, user: User) -> None:
    """Words of any script, very long ones, digits, and FTS or tsquery syntax
    characters are words or separators, never query syntax."""
    long_word = "\U0001f600" * 10 + "𝔸" * 600  # letters of 4 bytes: PostgreSQL's 2 KB limit
    await add_job(db, user.id, title="猫と犬", script=f"Ünïcode 2026 {long_word} AND OR NOT")
    assert await titles(db, user.id, q="猫と犬") == {"猫と犬"}
    assert await titles(db, user.id, q="2026 ünïcode") == {"猫と犬"}
    assert await titles(db, user.id, q='"AND" OR (NOT) *:A & !x | y') == set()
    assert await titles(db, user.id, q="𝔸" * 600) == {"猫と犬"}
    assert await titles(db, user.id, f'title:"{long_word}"') == set()


async def test_malformed_queries_and_sorts_are_refused(user: User) -> None:
    with pytest.raises(InvalidFilter) as caught:
        listing.prepare(listing.Search(user.id, q="!!!"))
    assert (caught.value.parameter, caught.value.position) == ("q", 0)
    with pytest.raises(InvalidFilter) as caught:
        listing.prepare(listing.Search(user.id, q=" ".join(["bee"] * 40)))
    assert caught.value.position == 4 * 32
    with pytest.raises(InvalidFilter) as caught:
        listing.prepare(listing.Search(user.id, sort="title"))
    assert caught.value.parameter == "sort" and "-created" in caught.value.expected


async def test_the_index_follows_the_job(db: Database, user: User, settings: Settings) -> None:
    """Submit, plan (the storyboard's narration), edit, delete: the index is
    rewritten in each write's transaction."""
    service = JobService(db, settings)
    job, _ = await service.create(user.id, make_request(script="Pollen on the wind."), None)
    assert await titles(db, user.id, q="pollen") == {job.title}
    assert job.language == "en" and job.cost > 0 and job.duration > 0

    claimed = await service.claim("w1")
    assert claimed is not None
    plan = storyboard(title="Meadows").model_dump(mode="json")
    plan["scenes"][0]["narration"] = "Butterflies drink nectar."
    await service.save_checkpoint(job.id, "w1", "plan", [], storyboard=plan)
    assert await titles(db, user.id, q="butterfly") == {"Meadows"}
    assert await titles(db, user.id, "title:meadow") == {"Meadows"}
    # 3 scenes of 5 s, less two crossfades of 0.5 s
    assert await titles(db, user.id, "duration:14") == {"Meadows"}
    assert await titles(db, user.id, q="pollen") == {"Meadows"}  # the script still counts

    async with db.transaction() as s:
        row = await s.get(Job, job.id)
        assert row is not None
        sb = dict(plan, title="Rivers")
        sb["scenes"] = [dict(sc, narration="Salmon swim upstream.") for sc in plan["scenes"]]
        row.storyboard = sb
        row.title = "Rivers"
    assert await titles(db, user.id, q="butterfly") == set()
    assert await titles(db, user.id, q="salmon") == {"Rivers"}

    async with db.transaction() as s:
        await s.execute(delete(Job).where(Job.id == job.id))
    assert await titles(db, user.id, q="salmon") == set()
    if db.url.startswith("sqlite"):  # the index's own rows went with the job
        async with db.session() as s:
            left = await s.execute(text("SELECT count(*) FROM jobs_fts_rows"))
            assert left.scalar_one() == 0


async def test_a_failed_write_leaves_no_index_entry(db: Database, user: User) -> None:
    async def write_then_fail() -> None:
        async with db.transaction() as s:
            s.add(_job(user.id, "Otters hold hands."))
            await s.flush()  # the index entry is written here, in the transaction
            raise RuntimeError("rolled back")

    with pytest.raises(RuntimeError):
        await write_then_fail()
    assert await titles(db, user.id, q="otter") == set()
    async with db.session() as s:
        assert (await s.execute(select(func.count()).select_from(Job))).scalar_one() == 0


@pytest.mark.parametrize("sort", listing.SORTS)
async def test_keyset_pages_in_every_order(db: Database, user: User, sort: str) -> None:
    """Pages of 2 walk every row once, in the sort's order (ties broken by id;
    rows never completed come last either way), and stay stable while rows are
    added at the front."""
    for i in range(7):
        done = T0 + timedelta(hours=i % 3) if i % 2 else None
        await add_job(db, user.id, title=f"p{i}", created=T0 + timedelta(minutes=i % 4),
                      cost=[0.1, 0.2, 0.1, 0.3, 0.2, 0.1, 0.4][i], duration=10 + i % 3,
                      completed_at=done, updated_at=T0 - timedelta(minutes=i))  # fmt: skip
    everything = await found(db, user.id, sort=sort)
    name = sort.removeprefix("-")
    column = {"created": "created_at", "updated": "updated_at", "completed": "completed_at"}
    key = column.get(name, name)
    valued = [j for j in everything if getattr(j, key) is not None]
    expected = sorted(valued, key=lambda j: (getattr(j, key), j.id), reverse=sort[0] == "-")
    empty = sorted((j for j in everything if getattr(j, key) is None), key=lambda j: j.id)
    expected += empty[::-1] if sort[0] == "-" else empty
    assert [j.id for j in everything] == [j.id for j in expected]

    prepared = listing.prepare(listing.Search(user.id, sort=sort))
    seen: list[uuid.UUID] = []
    cursor: str | None = None
    while True:
        rows, cursor = await listing.page(db, prepared, 2, cursor)
        seen += [j.id for j in rows]
        if len(seen) == 2:  # a row added now sorts first in most orders: no page shifts
            await add_job(db, user.id, title="late", created=utcnow(), cost=0.0)
        if cursor is None:
            break
    late = [j.id for j in await found(db, user.id, "title:late")]
    assert [i for i in seen if i not in late] == [j.id for j in expected]

    other = "cost" if name != "cost" else "-duration"
    _, first = await listing.page(db, prepared, 2, None)
    elsewhere = listing.prepare(listing.Search(user.id, sort=other))
    with pytest.raises(BadCursor):
        await listing.page(db, elsewhere, 2, first)


async def test_stream_yields_every_match_in_order(db: Database, user: User) -> None:
    for i in range(11):
        await add_job(db, user.id, title=f"s{i}", created=T0 + timedelta(seconds=i),
                      status="completed" if i % 2 else "failed")  # fmt: skip
    search = listing.Search(user.id, "status:completed", sort="created")
    streamed = [j.title async for j in listing.stream(db, search, batch=2)]
    assert streamed == [f"s{i}" for i in range(1, 11, 2)]
    assert [j.title async for j in listing.stream(db, listing.Search(user.id, q="zzz"))] == []


def _job(owner: uuid.UUID, script: str) -> Job:
    now = utcnow()
    return Job(
        id=uuid.uuid4(),
        owner_id=owner,
        title="t",
        request=make_request(script=script).model_dump(mode="json"),
        estimate={"total": 0.01},
        request_hash="0" * 64,
        next_attempt_at=now,
        created_at=now,
        updated_at=now,
    )
