"""Content-addressed stage cache: keys, atomic entries, TTL."""

import json
import time
from pathlib import Path

from aiprod.production.cache import StageCache, cache_key, file_digest
from aiprod.production.models import Voice


def test_key_depends_on_every_input_and_backend_version() -> None:
    base = cache_key("narrate", "espeak", "1", {"text": "hi", "voice": Voice()})
    assert base == cache_key("narrate", "espeak", "1", {"voice": Voice(), "text": "hi"})
    assert base != cache_key("narrate", "espeak", "2", {"text": "hi", "voice": Voice()})
    assert base != cache_key("narrate", "other", "1", {"text": "hi", "voice": Voice()})
    assert base != cache_key("narrate", "espeak", "1", {"text": "hi", "voice": Voice(rate=170)})
    assert base != cache_key("visuals", "espeak", "1", {"text": "hi", "voice": Voice()})


def test_put_get_roundtrip_and_ttl(tmp_path: Path) -> None:
    cache = StageCache(tmp_path / "c", ttl_hours=1)
    src = tmp_path / "a.wav"
    src.write_bytes(b"RIFF" + b"\0" * 100)
    key = cache_key("s", "b", "1", {"x": 1})
    assert cache.get(key) is None
    entry = cache.put(key, [src], {"note": "n"})
    assert cache.get(key) == entry
    assert file_digest(entry / "a.wav") == file_digest(src)
    # Age the entry past its TTL: it is gone, and pruned from disk.
    meta = entry / "meta.json"
    data = json.loads(meta.read_text())
    data["created"] = time.time() - 3601
    meta.write_text(json.dumps(data))
    assert cache.get(key) is None
    assert not entry.exists()


def test_half_written_entry_is_not_trusted(tmp_path: Path) -> None:
    cache = StageCache(tmp_path / "c")
    key = cache_key("s", "b", "1", {})
    d = tmp_path / "c" / key[:2] / key
    d.mkdir(parents=True)
    (d / "a.wav").write_bytes(b"partial")  # no meta.json: a crash mid-write
    assert cache.get(key) is None


def test_concurrent_put_of_same_key_keeps_one(tmp_path: Path) -> None:
    cache = StageCache(tmp_path / "c")
    f = tmp_path / "f.txt"
    f.write_text("one")
    key = cache_key("s", "b", "1", {})
    first = cache.put(key, [f])
    f.write_text("two")
    second = cache.put(key, [f])
    assert first == second
    assert (first / "f.txt").read_text() == "one"
    assert not any((tmp_path / "c" / "tmp").iterdir())
