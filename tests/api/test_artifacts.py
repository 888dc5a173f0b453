"""Listing and downloading a production's files, with byte ranges."""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from pathlib import Path
from typing import Any

import obstore
import pytest

from aiprod.settings import Settings
from aiprod.storage.store import CHUNK
from tests.api.conftest import Api, running

VIDEO = bytes(range(256)) * (CHUNK // 256 + 2048)  # a bit over one storage chunk
FILES = {
    "video.mp4": VIDEO,
    "subtitles.srt": b"1\n00:00:00,000 --> 00:00:01,000\nHello\n",
    "subtitles.vtt": b"WEBVTT\n\n00:00.000 --> 00:01.000\nHello\n",
    "thumbs/thumb_000.jpg": b"\xff\xd8\xff\xe0fakejpeg",
    "work/clips/scene_000.mp4": b"clip",
    "qa.json": b'{"passed": true}',
    "work/narration/scene_000.wav": b"RIFFfake",
}
TYPES = {
    "video.mp4": "video/mp4",
    "subtitles.srt": "application/x-subrip",
    "subtitles.vtt": "text/vtt; charset=utf-8",
    "thumbs/thumb_000.jpg": "image/jpeg",
    "work/clips/scene_000.mp4": "video/mp4",
    "qa.json": "application/json",
    "work/narration/scene_000.wav": "audio/wav",
}


@pytest.fixture
async def done(api: Api) -> tuple[Api, dict[str, str], str]:
    """A completed job with stored files, plus checkpoint rows that must not be
    served: a key outside the job's folder and a traversal name."""
    _, headers = await api.account()
    job = await api.submit(headers)
    other = uuid.uuid4()
    await api.storage.put_bytes(f"jobs/{other}/secret.txt", b"someone else's")
    extra = [
        {"name": "stolen.txt", "key": f"jobs/{other}/secret.txt", "sha256": "0", "bytes": 14},
        {
            "name": "../escape.txt",
            "key": f"jobs/{job['id']}/../escape.txt",
            "sha256": "0",
            "bytes": 1,
        },
    ]
    await api.complete(job["id"], FILES, extra)
    return api, headers, f"/v1/productions/{job['id']}/artifacts"


async def test_listing(done: tuple[Api, dict[str, str], str]) -> None:
    api, headers, base = done
    r = await api.client.get(base, headers=headers)
    assert r.status_code == 200
    items = {a["name"]: a for a in r.json()["items"]}
    assert set(items) == set(FILES)  # the foreign key and the traversal name are dropped
    for name, data in FILES.items():
        a = items[name]
        assert a["bytes"] == len(data)
        assert a["sha256"] == hashlib.sha256(data).hexdigest()
        assert a["content_type"] == TYPES[name]
        assert a["stage"] == "montage"
        assert a["url"] == f"{base}/{name}"


@pytest.mark.parametrize("name", sorted(FILES))
async def test_full_download(done: tuple[Api, dict[str, str], str], name: str) -> None:
    api, headers, base = done
    r = await api.client.get(f"{base}/{name}", headers=headers)
    assert r.status_code == 200
    assert r.content == FILES[name]
    assert r.headers["content-type"] == TYPES[name]
    assert r.headers["content-length"] == str(len(FILES[name]))
    assert r.headers["accept-ranges"] == "bytes"
    assert r.headers["etag"] == f'"{hashlib.sha256(FILES[name]).hexdigest()}"'
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["content-disposition"].startswith("inline; filename=")


@pytest.mark.parametrize(
    ("header", "start", "end"),
    [
        ("bytes=10-19", 10, 20),
        ("bytes=0-0", 0, 1),
        ("bytes=1000-", 1000, len(VIDEO)),
        ("bytes=-16", len(VIDEO) - 16, len(VIDEO)),
        (f"bytes=-{len(VIDEO) * 2}", 0, len(VIDEO)),
        (f"bytes={CHUNK - 5}-{CHUNK + 5}", CHUNK - 5, CHUNK + 6),  # across a storage chunk
        (f"bytes=5-{len(VIDEO) * 3}", 5, len(VIDEO)),
    ],
    ids=["closed", "first-byte", "open", "suffix", "suffix-longer", "chunk-edge", "clamped"],
)
async def test_range(
    done: tuple[Api, dict[str, str], str], header: str, start: int, end: int
) -> None:
    api, headers, base = done
    r = await api.client.get(f"{base}/video.mp4", headers={**headers, "Range": header})
    assert r.status_code == 206, r.text
    assert r.content == VIDEO[start:end]
    assert r.headers["content-range"] == f"bytes {start}-{end - 1}/{len(VIDEO)}"
    assert r.headers["content-length"] == str(end - start)
    assert r.headers["accept-ranges"] == "bytes"
    assert r.headers["content-type"] == "video/mp4"


@pytest.mark.parametrize(
    "header", [f"bytes={len(VIDEO)}-", f"bytes={len(VIDEO) + 7}-9999999", "bytes=-0"]
)
async def test_unsatisfiable_range_is_416(
    done: tuple[Api, dict[str, str], str], header: str
) -> None:
    api, headers, base = done
    r = await api.client.get(f"{base}/video.mp4", headers={**headers, "Range": header})
    assert r.status_code == 416
    assert r.headers["content-range"] == f"bytes */{len(VIDEO)}"
    assert r.json()["error"]["code"] == "range_not_satisfiable"


@pytest.mark.parametrize("header", ["bytes=0-1,5-6", "items=0-5", "bytes=9-3", "bytes=x-y"])
async def test_ranges_we_ignore_serve_the_whole_file(
    done: tuple[Api, dict[str, str], str], header: str
) -> None:
    api, headers, base = done
    r = await api.client.get(f"{base}/subtitles.srt", headers={**headers, "Range": header})
    assert r.status_code == 200
    assert r.content == FILES["subtitles.srt"]


async def test_etag_revalidation(done: tuple[Api, dict[str, str], str]) -> None:
    api, headers, base = done
    etag = (await api.client.get(f"{base}/qa.json", headers=headers)).headers["etag"]
    r = await api.client.get(f"{base}/qa.json", headers={**headers, "If-None-Match": etag})
    assert r.status_code == 304
    assert r.content == b""
    r = await api.client.get(f"{base}/qa.json", headers={**headers, "If-None-Match": '"other"'})
    assert r.status_code == 200


@pytest.mark.parametrize(
    "path",
    [
        "nothing.mp4",
        "stolen.txt",
        "..%2Fescape.txt",
        "%2e%2e/escape.txt",
        "thumbs%2F..%2Fvideo.mp4",
        "%2Fetc%2Fpasswd",
        "work/clips/",
        "..%2F..%2F..%2Fsecret.key",
    ],
)
async def test_unlisted_and_traversal_names_are_404(
    done: tuple[Api, dict[str, str], str], path: str
) -> None:
    api, headers, base = done
    r = await api.client.get(f"{base}/{path}", headers=headers)
    assert r.status_code == 404, (path, r.status_code, r.content[:100])
    assert r.json()["error"]["code"] == "not_found"


async def test_listed_but_missing_from_storage_is_404(
    done: tuple[Api, dict[str, str], str],
) -> None:
    api, headers, base = done
    job_id = base.split("/")[3]
    await obstore.delete_async(api.storage.store, f"jobs/{job_id}/qa.json")
    r = await api.client.get(f"{base}/qa.json", headers=headers)
    assert r.status_code == 404


async def test_no_artifacts_before_anything_ran(api: Api) -> None:
    _, headers = await api.account()
    job = await api.submit(headers)
    r = await api.client.get(f"/v1/productions/{job['id']}/artifacts", headers=headers)
    assert r.json() == {"items": []}
    r = await api.client.get(f"/v1/productions/{job['id']}/artifacts/video.mp4", headers=headers)
    assert r.status_code == 404


async def test_later_checkpoint_replaces_earlier_entry(api: Api) -> None:
    _, headers = await api.account()
    job = await api.submit(headers)
    await api.complete(job["id"], {"video.mp4": b"first"})
    jid = uuid.UUID(job["id"])
    # A re-render's montage writes a new video under the same name.
    data: dict[str, Any] = {"name": "video.mp4", "key": f"jobs/{jid}/video.mp4"}
    await api.client.post(
        f"/v1/productions/{jid}/scenes/0/rerender", json={"visual": "x"}, headers=headers
    )
    await api.claim(job["id"])
    await api.storage.put_bytes(data["key"], b"second")
    data |= {"sha256": hashlib.sha256(b"second").hexdigest(), "bytes": 6}
    await api.jobs.save_checkpoint(jid, "test-worker", "montage", [data])
    r = await api.client.get(f"/v1/productions/{jid}/artifacts/video.mp4", headers=headers)
    assert r.content == b"second"
    assert r.headers["etag"] == f'"{data["sha256"]}"'


@pytest.mark.slow
async def test_real_render_end_to_end(tmp_path: Path) -> None:
    """The embedded worker renders a short production; its files are served."""
    settings = Settings(
        _env_file=None,
        data_dir=tmp_path / "data",
        secret_key="test-signing-key-" + "x" * 32,
        workers=1,
        poll_seconds=0.2,
        heartbeat_seconds=1.0,
    )
    async with running(settings) as api:
        _, headers = await api.account()
        job = await api.submit(
            headers,
            prompt="Honeybees dance to tell each other where flowers are",
            preset="quick_social",
            duration=6,
            resolution="480p",
            fps=24,
        )
        url = f"/v1/productions/{job['id']}"
        deadline = time.monotonic() + 300
        status = job["status"]
        while status not in ("completed", "failed") and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
            status = (await api.client.get(url, headers=headers)).json()["status"]
        done = (await api.client.get(url, headers=headers)).json()
        assert status == "completed", done
        assert done["progress"] == 100
        assert done["qa"]["passed"] is True

        listing = (await api.client.get(f"{url}/artifacts", headers=headers)).json()["items"]
        files = {a["name"]: a for a in listing}
        assert "video.mp4" in files, sorted(files)
        video = files["video.mp4"]
        head = await api.client.get(
            f"{url}/artifacts/video.mp4", headers={**headers, "Range": "bytes=0-99"}
        )
        assert head.status_code == 206
        assert head.content[4:8] == b"ftyp"
        full = await api.client.get(f"{url}/artifacts/video.mp4", headers=headers)
        assert len(full.content) == video["bytes"]
        assert hashlib.sha256(full.content).hexdigest() == video["sha256"]
        events = (await api.client.get(f"{url}/events", headers=headers)).json()["items"]
        assert events[-1]["type"] == "job.completed"


async def test_head_says_what_get_would_without_a_body(
    done: tuple[Api, dict[str, str], str],
) -> None:
    api, headers, base = done
    got = await api.client.get(f"{base}/video.mp4", headers=headers)
    head = await api.client.head(f"{base}/video.mp4", headers=headers)
    assert head.status_code == 200 and head.content == b""
    for name in ("content-length", "content-type", "etag", "accept-ranges"):
        assert head.headers[name] == got.headers[name], name
    ranged = await api.client.head(f"{base}/video.mp4", headers={**headers, "Range": "bytes=0-9"})
    assert ranged.status_code == 206 and ranged.headers["content-range"].startswith("bytes 0-9/")
    assert (await api.client.head(f"{base}/nope.mp4", headers=headers)).status_code == 404
    assert (await api.client.head(f"{base}/video.mp4")).status_code == 401
