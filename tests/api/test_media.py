"""User media over the API: uploads of every accepted kind, what is refused
(and with which code), owner scoping, deletion and 409 while in use, and one
production through the worker that shows an uploaded picture and plays an
uploaded song.  Every file is made in the test (``media_files``)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from aiprod.jobs.uploads.service import MediaService
from aiprod.production.media.audio import read_wav
from aiprod.production.media.probe import iter_frames
from aiprod.production.models import Storyboard
from aiprod.settings import Settings
from tests.api import media_files as mf
from tests.api.conftest import Api, running, storyboard
from tests.conftest import base_settings
from tests.jobs.conftest import SCRIPT, event_log, wait_status

CAP = 256 * 1024


@pytest.fixture
def media_settings(tmp_path: Path, database_url: str) -> Settings:
    return base_settings(tmp_path, database_url, media_max_bytes=CAP, page_size_max=50)


@pytest.fixture
async def api(media_settings: Settings) -> AsyncIterator[Api]:
    async with running(media_settings) as a:
        yield a


async def upload(
    api: Api,
    headers: dict[str, str],
    data: bytes,
    name: str = "file.bin",
    content_type: str = "application/octet-stream",
    **fields: str,
) -> Any:
    return await api.client.post(
        "/v1/media", files={"file": (name, data, content_type)}, data=fields, headers=headers
    )


async def uploaded(api: Api, headers: dict[str, str], data: bytes, **kw: Any) -> dict[str, Any]:
    r = await upload(api, headers, data, **kw)
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


KINDS = {
    "png": (mf.image, "image", "image/png"),
    "jpeg": (lambda: mf.image("JPEG"), "image", "image/jpeg"),
    "webp": (lambda: mf.image("WEBP"), "image", "image/webp"),
    "mp4": (mf.video, "video", "video/mp4"),
    "mov": (lambda: mf.video("mov"), "video", "video/quicktime"),
    "webm": (lambda: mf.video("webm", codec="libvpx-vp9"), "video", "video/webm"),
    "mkv": (lambda: mf.video("matroska"), "video", "video/x-matroska"),
    "wav": (mf.wav, "audio", "audio/wav"),
    "mp3": (lambda: mf.audio("mp3", "libmp3lame"), "audio", "audio/mpeg"),
    "m4a": (lambda: mf.audio("ipod", "aac"), "audio", "audio/mp4"),
    "opus": (lambda: mf.audio("ogg", "libopus"), "audio", "audio/ogg"),
    "flac": (lambda: mf.audio("flac", "flac"), "audio", "audio/flac"),
}


def service(api: Api) -> MediaService:
    return MediaService(api.db, api.storage, api.settings)


async def test_every_kind_uploads_sniffed_not_trusted(api: Api) -> None:
    user, headers = await api.account()
    for name, (make, kind, content_type) in KINDS.items():
        data = make()
        # The name and the declared type lie; the bytes decide.
        r = await upload(api, headers, data, name=f"../../{name}.txt", content_type="text/plain")
        assert r.status_code == 201, f"{name}: {r.text}"
        m = r.json()
        assert (m["kind"], m["content_type"]) == (kind, content_type), name
        assert m["bytes"] == len(data) and len(m["sha256"]) == 64
        assert m["filename"] == f"{name}.txt" and m["license"] == "user-supplied"
        assert r.headers["location"] == m["url"] == f"/v1/media/{m['id']}"
        if kind in ("image", "video"):
            assert (m["width"], m["height"]) == (64, 48), name
        if kind in ("video", "audio"):
            assert m["duration"] == pytest.approx(1.0, abs=0.05), name
        row = await service(api).get(uuid.UUID(m["id"]), user.id)
        assert row.key.startswith(f"media/{user.id}/{m['id']}.")
        assert await api.storage.get_bytes(row.key) == data
    # Nothing is left behind in the scratch folder.
    assert not any((api.settings.scratch_dir / "uploads").glob("*"))


async def test_license_and_filename(api: Api) -> None:
    _, headers = await api.account()
    m = await uploaded(
        api, headers, mf.image(), name="C:\\photos\\été *1?.png", license=" CC-BY 4.0 "
    )
    assert m["license"] == "CC-BY 4.0"
    assert m["filename"] == "été _1_.png"
    for bad in ("", "   ", "x" * 201, "tab\there"):
        r = await upload(api, headers, mf.image(), license=bad)
        assert r.status_code == 422, bad
        assert r.json()["error"]["details"][0]["loc"] == ["body", "license"]


async def test_listing_paging_and_owner_scoping(api: Api) -> None:
    _, alice = await api.account()
    _, bob = await api.account()
    _, admin = await api.account("admin")
    a = [await uploaded(api, alice, mf.image()) for _ in range(3)]
    b = await uploaded(api, bob, mf.wav())

    def ids(r: Any) -> list[str]:
        assert r.status_code == 200, r.text
        return [m["id"] for m in r.json()["items"]]

    first = await api.client.get("/v1/media?limit=2", headers=alice)
    assert ids(first) == [a[2]["id"], a[1]["id"]]
    cursor = first.json()["next_cursor"]
    rest = await api.client.get(f"/v1/media?limit=2&cursor={cursor}", headers=alice)
    assert ids(rest) == [a[0]["id"]] and rest.json()["next_cursor"] is None
    assert ids(await api.client.get("/v1/media", headers=bob)) == [b["id"]]
    assert ids(await api.client.get("/v1/media?kind=audio", headers=alice)) == []
    everyone = ids(await api.client.get("/v1/media", headers=admin))
    assert set(everyone) == {b["id"], *(m["id"] for m in a)}

    # Another user's upload is answered like a missing one, for reading and deleting.
    for method in ("GET", "DELETE"):
        theirs = await api.client.request(method, f"/v1/media/{a[0]['id']}", headers=bob)
        missing = await api.client.request(method, f"/v1/media/{uuid.uuid4()}", headers=bob)
        assert theirs.status_code == missing.status_code == 404
        assert theirs.json()["error"]["code"] == "not_found"
    assert (await api.client.get(f"/v1/media/{a[0]['id']}", headers=alice)).json() == a[0]
    assert (await api.client.get(f"/v1/media/{a[0]['id']}", headers=admin)).status_code == 200


def _multipart(data: bytes, boundary: str = "b0undary") -> bytes:
    return (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="x.png"\r\n'
            "Content-Type: image/png\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )


async def test_over_the_cap_is_413_while_streaming(api: Api) -> None:
    _, headers = await api.account()
    big = mf.image()[:16] + b"\x00" * (CAP + 1)
    r = await upload(api, headers, big)
    assert r.status_code == 413, r.text
    assert r.json()["error"] == {
        "code": "too_large",
        "message": f"the upload exceeds the limit of {CAP} bytes",
        "details": {"limit_bytes": CAP},
    }

    # Without Content-Length (chunked): stopped once the bytes pass the cap.
    body = _multipart(big)
    sent = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal sent
        for i in range(0, len(body), 16 * 1024):
            sent += 1
            yield body[i : i + 16 * 1024]

    r = await api.client.post(
        "/v1/media",
        content=chunks(),
        headers={**headers, "Content-Type": "multipart/form-data; boundary=b0undary"},
    )
    assert r.status_code == 413 and r.json()["error"]["code"] == "too_large", r.text
    # A file at the cap exactly is fine (as far as size goes: it is not a PNG).
    r = await upload(api, headers, mf.image()[:16] + b"\x00" * (CAP - 16))
    assert r.status_code == 422 and r.json()["error"]["details"][0]["type"] == "invalid_media"
    assert (await api.client.get("/v1/media", headers=headers)).json()["items"] == []


async def test_what_is_refused(api: Api) -> None:
    _, headers = await api.account()

    async def refused(data: bytes, status: int, code: str, **kw: Any) -> str:
        r = await upload(api, headers, data, **kw)
        assert r.status_code == status, r.text
        err = r.json()["error"]
        assert code in (err["code"], (err.get("details") or [{}])[0].get("type")), err
        return str(err["message"])

    text = b"just some notes, not a picture\n" * 20
    await refused(text, 415, "unsupported_media_type", name="photo.png", content_type="image/png")
    await refused(b"", 415, "unsupported_media_type")
    await refused(mf.image(size=(200, 200))[:150], 422, "invalid_media")  # truncated PNG
    await refused(mf.png_bomb(), 422, "invalid_media")  # 20000x20000 in ~50 kB
    big = mf.image(size=(8000, 6000))  # 48 MP of one colour: a small file
    assert len(big) < CAP
    await refused(big, 422, "invalid_media")
    mp4 = mf.video()
    await refused(mp4[: len(mp4) // 2], 422, "invalid_media")  # truncated MP4
    await refused(mf.video(size=(4100, 16), frames=2), 422, "invalid_media")  # too wide
    # Not multipart at all; multipart without a file; an unknown field.
    r = await api.client.post(
        "/v1/media", content=mf.image(), headers={**headers, "Content-Type": "image/png"}
    )
    assert r.status_code == 415 and r.json()["error"]["code"] == "unsupported_media_type"
    r = await api.client.post(
        "/v1/media", data={"license": "CC0"}, files={"x": ("a", b"1")}, headers=headers
    )
    assert r.status_code == 422
    r = await api.client.post("/v1/media", data={"license": "CC0"}, headers=headers)
    assert r.status_code in (415, 422)
    assert (await api.client.get("/v1/media", headers=headers)).json()["items"] == []


async def test_productions_reference_uploads_by_id(api: Api) -> None:
    _, alice = await api.account()
    _, bob = await api.account()
    photo = await uploaded(api, alice, mf.image())
    song = await uploaded(api, alice, mf.wav())
    bobs = await uploaded(api, bob, mf.image())

    async def submit(**body: Any) -> Any:
        payload = {"prompt": "How honeybees turn nectar into honey", **body}
        return await api.client.post("/v1/productions", json=payload, headers=alice)

    for body, loc, type_ in (
        (
            {"media": [{"scene": 0, "media_id": bobs["id"]}]},
            ["body", "media", 0, "media_id"],
            "unknown_media",
        ),
        (
            {"media": [{"scene": 0, "media_id": str(uuid.uuid4())}]},
            ["body", "media", 0, "media_id"],
            "unknown_media",
        ),
        (
            {"media": [{"scene": 0, "media_id": song["id"]}]},
            ["body", "media", 0, "media_id"],
            "wrong_media_kind",
        ),
        ({"music_media_id": photo["id"]}, ["body", "music_media_id"], "wrong_media_kind"),
        (
            {"media": [{"scene": 0, "path": "/etc/passwd.png"}]},
            ["body", "media", 0, "path"],
            "media_not_allowed",
        ),
        ({"music_file": "/etc/song.wav"}, ["body", "music_file"], "media_not_allowed"),
    ):
        r = await submit(**body)
        assert r.status_code == 422, (body, r.text)
        detail = r.json()["error"]["details"][0]
        assert (detail["loc"], detail["type"]) == (loc, type_), body

    r = await submit(media=[{"scene": 1, "media_id": photo["id"]}], music_media_id=song["id"])
    assert r.status_code == 202, r.text
    job = r.json()["job"]

    # In use while the production may still read it; free once it is cancelled.
    for m in (photo, song):
        r = await api.client.delete(f"/v1/media/{m['id']}", headers=alice)
        assert r.status_code == 409, r.text
        err = r.json()["error"]
        assert err["code"] == "in_use" and err["details"]["productions"] == [job["id"]]
    r = await api.client.post(f"/v1/productions/{job['id']}/cancel", headers=alice)
    assert r.status_code == 200
    row = await service(api).get(uuid.UUID(photo["id"]), None)
    r = await api.client.delete(f"/v1/media/{photo['id']}", headers=alice)
    assert r.status_code == 204
    assert (await api.client.get(f"/v1/media/{photo['id']}", headers=alice)).status_code == 404
    with pytest.raises(Exception, match="media"):
        await api.storage.get_bytes(row.key)


# ------------------------------------------------------ through the worker

MAGENTA = (220, 40, 160)


@pytest.mark.slow
async def test_a_production_shows_the_uploaded_picture_and_plays_the_uploaded_song(
    tmp_path: Path, database_url: str
) -> None:
    settings = base_settings(
        tmp_path,
        database_url,
        lease_seconds=5,
        heartbeat_seconds=0.2,
        poll_seconds=0.05,
        workers=1,
    )
    async with running(settings, embedded_worker=True) as api:
        _, headers = await api.account()
        photo = await uploaded(api, headers, mf.image("JPEG", (320, 240), MAGENTA))
        song = await uploaded(api, headers, mf.wav(seconds=1.5, freq=440.0))
        job = await api.submit(
            headers,
            prompt=None,
            script=SCRIPT,
            aspect="1:1",
            resolution="480p",
            fps=24,
            preset="quick_social",
            media=[{"scene": 1, "media_id": photo["id"]}],
            music_media_id=song["id"],
        )
        done = await wait_status(api.jobs, uuid.UUID(job["id"]), {"completed", "failed"}, 120)
        assert done.status == "completed", await event_log(api.jobs, done.id)

        # The stored plan names the upload by id, never a worker's scratch path.
        sb = (
            await api.client.get(f"/v1/productions/{job['id']}/storyboard", headers=headers)
        ).json()
        assert sb["scenes"][1]["media"]["media_id"] == photo["id"]
        assert sb["scenes"][1]["media"]["path"] is None

        clip = tmp_path / "clip.mp4"
        await api.storage.get_to_file(f"jobs/{job['id']}/work/clips/scene_001.mp4", clip)
        frames = list(iter_frames(clip, every_n=6))
        assert frames
        for frame in frames:
            top = frame[: frame.shape[0] // 2].reshape(-1, 3)  # above the lower third
            assert np.abs(np.median(top, axis=0) - MAGENTA).max() < 25

        bed = tmp_path / "music.wav"
        await api.storage.get_to_file(f"jobs/{job['id']}/work/music.wav", bed)
        samples, rate = read_wav(bed)
        assert len(samples) / rate == pytest.approx(
            Storyboard.model_validate(sb).duration, abs=0.05
        )
        mono = samples.mean(axis=1)
        middle = mono[len(mono) // 4 : len(mono) // 4 + rate]
        peak = np.argmax(np.abs(np.fft.rfft(middle))) * rate / len(middle)
        assert peak == pytest.approx(440, abs=5)  # the song, looped, not a composition

        # Finished: the uploads may go.
        for m in (photo, song):
            r = await api.client.delete(f"/v1/media/{m['id']}", headers=headers)
            assert r.status_code == 204, r.text


async def test_a_storyboard_edit_moves_uploads_but_names_no_other(api: Api) -> None:
    _, headers = await api.account()
    photo = await uploaded(api, headers, mf.image())
    other = await uploaded(api, headers, mf.image())
    job = await api.submit(headers, review=True, media=[{"scene": 0, "media_id": photo["id"]}])
    await api.to_review(job["id"])
    url = f"/v1/productions/{job['id']}/storyboard"
    sb = storyboard().model_dump(mode="json")
    # Moved to scene 2; a path sent along is dropped (the worker fills in its own).
    sb["scenes"][2]["media"] = {"scene": 2, "media_id": photo["id"], "path": "/etc/shadow.png"}
    r = await api.client.patch(url, json=sb, headers=headers)
    assert r.status_code == 200, r.text
    stored = (await api.client.get(url, headers=headers)).json()
    assert stored["scenes"][2]["media"]["media_id"] == photo["id"]
    assert stored["scenes"][2]["media"]["path"] is None
    # An upload the request did not bring, even the caller's own, is refused.
    sb["scenes"][2]["media"] = {"scene": 2, "media_id": other["id"]}
    r = await api.client.patch(url, json=sb, headers=headers)
    assert r.status_code == 409 and r.json()["error"]["code"] == "invalid_media"
