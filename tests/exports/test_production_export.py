"""GET /v1/productions/{id}/export: the JSON validates against its published
schema, the CSV parses with the stdlib, the ZIP holds a video that PyAV
decodes and files that match their recorded hashes, every format resumes
with Range/If-Range, and an export over the limit answers 413 before
streaming."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import uuid
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import jsonschema
import pytest

from aiprod.exports.schemas import ProductionExport, schema_json
from aiprod.settings import Settings
from tests.api.conftest import Api, running, storyboard
from tests.api.media_files import image, video

VIDEO = video(frames=24)
FILES: dict[str, bytes] = {
    "video.mp4": VIDEO,
    "poster.jpg": image("JPEG"),
    "thumbs/thumb_000.jpg": image("JPEG", color=(10, 20, 30)),
    "subtitles.srt": b"1\n00:00:00,000 --> 00:00:01,000\nBees\n",
    "subtitles.vtt": b"WEBVTT\n\n00:00.000 --> 00:01.000\nBees\n",
    "qa.json": b'{"passed": true, "checks": []}',
    "storyboard.json": storyboard().model_dump_json().encode(),
    "work/clips/scene_000.mp4": VIDEO,
}
COST = {
    "actual": [
        {"stage": "plan", "backend": "template", "cost": 0.001, "cache": {"hits": 0}},
        {"stage": "narrate", "backend": "espeak", "cost": 0.003, "cache": {"hits": 1}},
        {"stage": "visuals", "backend": "motion", "cost": 0.006, "cache": {}},
        {"stage": "montage", "backend": "pyav", "cost": 0.002, "cache": {}},
    ],
    "actual_total": 0.012,
    "charges": [],
    "budget": None,
    "fast_track": True,
}


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class Done:
    api: Api
    headers: dict[str, str]
    job_id: str
    files: dict[str, bytes]

    @property
    def url(self) -> str:
        return f"/v1/productions/{self.job_id}/export"


async def _finished(api: Api) -> Done:
    _, headers = await api.account()
    job = await api.submit(headers)
    files = dict(FILES)
    files["cost.json"] = json.dumps({"estimate": job["estimate"], **COST}).encode()
    manifest = {
        "aiprod": "test",
        "title": "Honeybees",
        "qa_passed": True,
        "backends": {"narrate": {"backend": "espeak"}},
        "assets": [
            {"path": n, "bytes": len(d), "sha256": _sha(d), "stage": "montage"}
            for n, d in sorted(files.items())
        ],
    }
    files["manifest.json"] = json.dumps(manifest).encode()
    await api.complete(job["id"], files)
    return Done(api, headers, job["id"], files)


@pytest.fixture
async def done(api: Api) -> Done:
    return await _finished(api)


def _validator(api: Api) -> jsonschema.protocols.Validator:
    """The published schema, straight from the OpenAPI document."""
    doc = api.app.openapi()
    schema = {"$ref": "#/components/schemas/ProductionExport", "components": doc["components"]}
    return jsonschema.Draft202012Validator(schema)


async def test_the_json_export_validates_against_its_published_schema(done: Done) -> None:
    r = await done.api.client.get(done.url, headers=done.headers)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/json"
    assert r.headers["content-disposition"] == f'attachment; filename="aiprod-{done.job_id}.json"'
    doc = r.json()
    _validator(done.api).validate(doc)
    jsonschema.validate(doc, ProductionExport.model_json_schema(mode="serialization"))
    broken = {**doc, "job": {**doc["job"], "status": "exploded"}}
    assert not _validator(done.api).is_valid(broken)  # the schema does constrain
    assert doc["format"] == "aiprod.production-export" and doc["version"] == 1
    assert doc["job"]["id"] == done.job_id and doc["job"]["status"] == "completed"
    assert doc["storyboard"]["title"] == "Honeybees" and doc["qa"]["passed"] is True
    assert doc["cost"]["actual_total"] == 0.012
    assert doc["manifest"]["assets"][0]["sha256"]
    seqs = [e["seq"] for e in doc["events"]]
    assert seqs == list(range(1, len(seqs) + 1)) and doc["events"][-1]["type"] == "job.completed"
    files = {f["name"]: f for f in doc["files"]}
    assert set(files) == set(done.files)
    assert files["video.mp4"]["sha256"] == _sha(VIDEO)
    assert files["video.mp4"]["archived_as"] == "video.mp4"
    assert files["work/clips/scene_000.mp4"]["archived_as"] is None
    # The same production exports to the same bytes (resumable, cacheable).
    again = await done.api.client.get(done.url, headers=done.headers)
    assert again.content == r.content and again.headers["etag"] == r.headers["etag"]


async def test_a_queued_production_exports_too(api: Api) -> None:
    _, headers = await api.account()
    job = await api.submit(headers)
    r = await api.client.get(f"/v1/productions/{job['id']}/export", headers=headers)
    assert r.status_code == 200, r.text
    doc = r.json()
    _validator(api).validate(doc)
    assert doc["storyboard"] is None and doc["files"] == [] and doc["cost"] is None
    r = await api.client.get(f"/v1/productions/{job['id']}/export?format=csv", headers=headers)
    assert r.status_code == 200 and r.text.strip() == ",".join(_header(r.text))


def _header(text: str) -> list[str]:
    return next(csv.reader(io.StringIO(text, newline="")))


async def test_the_csv_has_one_row_per_scene(done: Done) -> None:
    r = await done.api.client.get(done.url + "?format=csv", headers=done.headers)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "text/csv; charset=utf-8"
    assert r.headers["content-disposition"].endswith(f'filename="aiprod-{done.job_id}.csv"')
    rows = list(csv.DictReader(io.StringIO(r.content.decode("utf-8"), newline="")))
    sb = storyboard()
    assert [int(x["scene"]) for x in rows] == [s.index for s in sb.scenes]
    for row, scene, start in zip(rows, sb.scenes, sb.starts(), strict=True):
        assert float(row["start_seconds"]) == pytest.approx(start)
        assert float(row["end_seconds"]) == pytest.approx(start + scene.duration)
        assert row["narration"] == scene.narration
        assert (row["narrate_backend"], row["visuals_backend"]) == ("espeak", "motion")
        assert row["voice"] == "en"
    total = sum(float(x["total_cost_usd"]) for x in rows)
    assert total == pytest.approx(COST["actual_total"], abs=1e-6)
    parts = sum(
        float(x[c])
        for x in rows
        for c in ("narrate_cost_usd", "visuals_cost_usd", "other_cost_usd")
    )
    assert parts == pytest.approx(total, abs=1e-6)


async def test_the_zip_holds_everything_and_its_video_plays(done: Done, tmp_path: Path) -> None:
    r = await done.api.client.get(done.url + "?format=zip", headers=done.headers)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/zip"
    assert r.headers["content-length"] == str(len(r.content))
    assert r.headers["content-disposition"] == f'attachment; filename="aiprod-{done.job_id}.zip"'
    root = f"aiprod-{done.job_id}/"
    with zipfile.ZipFile(io.BytesIO(r.content)) as z:
        assert z.testzip() is None
        names = set(z.namelist())
        expected = {n for n in done.files if not n.startswith("work/")}
        extra = {"production.json", "scenes.csv", "events.csv", "SHA256SUMS"}
        assert names == {root + n for n in expected | extra}
        for name in expected:
            assert z.read(root + name) == done.files[name], name

        # The video decodes with PyAV.
        path = tmp_path / "video.mp4"
        path.write_bytes(z.read(root + "video.mp4"))
        with av.open(str(path)) as container:
            frames = sum(1 for _ in container.decode(video=0))
        assert frames == 24

        # The JSON inside is the JSON export; both CSVs parse.
        doc = json.loads(z.read(root + "production.json"))
        _validator(done.api).validate(doc)
        plain = await done.api.client.get(done.url, headers=done.headers)
        assert z.read(root + "production.json") == plain.content
        assert len(list(csv.DictReader(io.StringIO(z.read(root + "scenes.csv").decode())))) == 3
        events = list(csv.DictReader(io.StringIO(z.read(root + "events.csv").decode())))
        assert [int(e["seq"]) for e in events] == [e["seq"] for e in doc["events"]]
        assert events[-1]["type"] == "job.completed" and events[-1]["status"] == "completed"

        # SHA256SUMS covers every other member and agrees with the manifest.
        lines = z.read(root + "SHA256SUMS").decode().splitlines()
        sums = {name: digest for digest, name in (line.split("  ", 1) for line in lines)}
        assert set(sums) == {n.removeprefix(root) for n in names} - {"SHA256SUMS"}
        for name, digest in sums.items():
            assert _sha(z.read(root + name)) == digest, name
        manifest = json.loads(z.read(root + "manifest.json"))
        for asset in manifest["assets"]:
            if asset["path"] in sums:
                assert sums[asset["path"]] == asset["sha256"]


@pytest.mark.parametrize("fmt", ["zip", "json", "csv"])
async def test_an_interrupted_download_resumes_with_range(done: Done, fmt: str) -> None:
    client, url = done.api.client, f"{done.url}?format={fmt}"
    whole = await client.get(url, headers=done.headers)
    etag, size = whole.headers["etag"], len(whole.content)
    cut = size // 3
    first = await client.get(url, headers={**done.headers, "Range": f"bytes=0-{cut - 1}"})
    assert first.status_code == 206
    assert first.headers["content-range"] == f"bytes 0-{cut - 1}/{size}"
    rest = await client.get(
        url, headers={**done.headers, "Range": f"bytes={cut}-", "If-Range": etag}
    )
    assert rest.status_code == 206 and rest.headers["content-length"] == str(size - cut)
    assert first.content + rest.content == whole.content
    # Another version named in If-Range: the whole, current export.
    stale = await client.get(
        url, headers={**done.headers, "Range": f"bytes={cut}-", "If-Range": '"other"'}
    )
    assert stale.status_code == 200 and stale.content == whole.content
    beyond = await client.get(url, headers={**done.headers, "Range": f"bytes={size}-"})
    assert beyond.status_code == 416
    assert beyond.headers["content-range"] == f"bytes */{size}"
    assert beyond.json()["error"]["code"] == "range_not_satisfiable"
    same = await client.get(url, headers={**done.headers, "If-None-Match": etag})
    assert same.status_code == 304


async def test_an_export_over_the_limit_answers_413_before_streaming(
    api_settings: Settings,
) -> None:
    settings = api_settings.model_copy(update={"export_max_bytes": 4096})
    async with running(settings) as api:
        done = await _finished(api)
        r = await api.client.get(done.url + "?format=zip", headers=done.headers)
        assert r.status_code == 413
        body: dict[str, Any] = r.json()
        assert body["error"]["code"] == "export_too_large"
        assert body["error"]["details"]["limit_bytes"] == 4096
        assert body["error"]["details"]["bytes"] > 4096
        assert r.headers["content-type"] == "application/json"
        csv_ = await api.client.get(done.url + "?format=csv", headers=done.headers)
        assert csv_.status_code == 200  # a small export still goes


async def test_only_the_owner_and_admins_export(done: Done) -> None:
    api = done.api
    _, stranger = await api.account()
    r = await api.client.get(done.url, headers=stranger)
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    _, admin = await api.account("admin")
    assert (await api.client.get(done.url + "?format=zip", headers=admin)).status_code == 200
    missing = f"/v1/productions/{uuid.uuid4()}/export"
    assert (await api.client.get(missing, headers=done.headers)).status_code == 404
    bad = await api.client.get(done.url + "?format=xml", headers=done.headers)
    assert bad.status_code == 422
    assert (await api.client.get(done.url)).status_code == 401


def test_the_published_schema_file_is_current() -> None:
    path = (
        Path(__file__).resolve().parents[2] / "docs" / "schemas" / "production-export.schema.json"
    )
    assert path.read_text() == schema_json(), (
        "docs/schemas/production-export.schema.json is out of date: "
        "python -m aiprod.exports.schemas > docs/schemas/production-export.schema.json"
    )
    jsonschema.Draft202012Validator.check_schema(json.loads(path.read_text()))
