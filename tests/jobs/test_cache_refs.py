"""Which stage-cache entries each job used: marked on read and write, released
on deletion (removing the entries nobody else uses), safe against a job that
looks an entry up while another job's deletion removes it."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path

from aiprod.jobs.cache_refs import USED_BY, JobCache, entries_used_by, release
from aiprod.production.cache import StageCache


def _put(cache: StageCache, key: str, tmp: Path) -> Path:
    src = tmp / f"{key}-{uuid.uuid4().hex}.bin"
    src.write_bytes(key.encode())
    return cache.put(key, [src], {"stage": "narrate"}, names=["000.bin"])


def test_marks_follow_reads_and_writes(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    a, b = uuid.uuid4(), uuid.uuid4()
    ca, cb = JobCache(root, 1.0, a), JobCache(root, 1.0, b)
    entry = _put(ca, "ab" * 32, tmp_path)
    _put(ca, "cd" * 32, tmp_path)
    assert cb.get("ab" * 32) == entry  # a hit marks the reader too
    assert cb.get("ef" * 32) is None  # a miss marks nothing
    assert entries_used_by(root, a) == ["ab" * 32, "cd" * 32]
    assert entries_used_by(root, b) == ["ab" * 32]
    assert sorted(p.name for p in (entry / USED_BY).iterdir()) == sorted([str(a), str(b)])

    assert release(root, a) == 1  # "cd" was a's alone; "ab" is b's too
    assert not (root / "cd" / ("cd" * 32)).exists()
    assert (entry / "000.bin").read_bytes() == ("ab" * 32).encode()
    assert StageCache(root).get("ab" * 32) == entry  # still a valid entry
    assert release(root, a) == 0  # idempotent
    assert release(root, b) == 1 and not entry.exists()
    assert entries_used_by(root, b) == []
    assert release(root, uuid.uuid4()) == 0  # a job that never used the cache


def test_an_unmarked_entry_is_left_to_its_ttl(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    old = _put(StageCache(root), "aa" * 32, tmp_path)  # made before marks existed
    job = uuid.uuid4()
    assert JobCache(root, 1.0, job).get("aa" * 32) == old
    assert release(root, job) == 1  # now marked by that job alone: freed with it
    legacy = _put(StageCache(root), "bb" * 32, tmp_path)
    assert release(root, uuid.uuid4()) == 0 and legacy.exists()


def test_a_lookup_racing_a_release_is_a_hit_that_stays_or_a_clean_miss(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    for round_ in range(20):
        key = f"{round_:02d}" * 32
        owner, reader = uuid.uuid4(), uuid.uuid4()
        _put(JobCache(root, 1.0, owner), key, tmp_path)
        found: list[Path | None] = []
        cache = JobCache(root, 1.0, reader)
        t = threading.Thread(target=lambda: found.append(cache.get(key)))  # noqa: B023 (joined below)
        t.start()
        release(root, owner)
        t.join()
        (entry,) = found
        if entry is not None:  # the reader marked it first: it must still be whole
            assert (entry / "000.bin").exists() and (entry / USED_BY / str(reader)).exists()
        else:
            assert not (root / key[:2] / key).exists()
