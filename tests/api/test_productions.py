"""Submitting, listing, following and steering productions over HTTP."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from aiprod.production.models import Storyboard
from aiprod.settings import Settings
from tests.api.conftest import Api, running, storyboard

JOB_FIELDS = {
    "id",
    "status",
    "stage",
    "progress",
    "eta_seconds",
    "title",
    "duration",
    "language",
    "subtitles_burned",
    "has_storyboard",
    "fast_track",
    "review",
    "estimate",
    "error",
    "qa",
    "created_at",
    "updated_at",
    "completed_at",
    "links",
}


def _error(r: Any, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body: dict[str, Any] = r.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code, body
    err: dict[str, Any] = body["error"]
    return err


# ------------------------------------------------------------------ submit


async def test_submit_answers_202_with_job_and_estimate(api: Api) -> None:
    _, headers = await api.account()
    r = await api.client.post(
        "/v1/productions",
        json={"prompt": "How honeybees turn nectar into honey", "title": "Honey"},
        headers=headers,
    )
    assert r.status_code == 202, r.text
    body = r.json()
    assert set(body) == {"job", "estimate", "fast_track"}
    job = body["job"]
    assert set(job) == JOB_FIELDS
    assert job["status"] == "queued"
    assert job["title"] == "Honey"
    assert job["progress"] == 0
    assert body["estimate"]["total"] > 0
    assert {s["stage"] for s in body["estimate"]["stages"]} >= {"plan", "montage"}
    assert job["estimate"] == body["estimate"]
    assert r.headers["location"] == f"/v1/productions/{job['id']}"
    assert "idempotent-replayed" not in r.headers
    assert job["links"]["self"] == r.headers["location"]

    got = await api.client.get(r.headers["location"], headers=headers)
    assert got.status_code == 200
    assert got.json() == job


async def test_simple_request_takes_the_fast_track(api: Api) -> None:
    _, headers = await api.account()
    r = await api.client.post(
        "/v1/productions",
        json={
            "prompt": "a haiku about rain",
            "preset": "quick_social",
            "duration": 10,
            "resolution": "480p",
            "review": True,
        },
        headers=headers,
    )
    assert r.status_code == 202
    assert r.json()["fast_track"] is True
    assert r.json()["job"]["review"] is False  # the fast track skips the gate


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"prompt": "bees", "colour": "red"}, ["body", "colour"]),
        ({"prompt": "bees", "voice": {"name": "en", "speed": 2}}, ["body", "voice", "speed"]),
        ({"prompt": "bees", "script": "Bees make honey."}, ["body"]),
        ({"title": "nothing to say"}, ["body"]),
        ({"prompt": "bees", "duration": 1}, ["body", "duration"]),
        ({"prompt": "bees", "preset": "premium_spot", "resolution": "480p"}, ["body"]),
    ],
    ids=["unknown-field", "unknown-nested", "prompt-and-script", "neither", "short", "preset"],
)
async def test_invalid_requests_answer_422_in_the_error_shape(
    api: Api, body: dict[str, Any], loc: list[str]
) -> None:
    _, headers = await api.account()
    r = await api.client.post("/v1/productions", json=body, headers=headers)
    err = _error(r, 422, "validation_error")
    assert any(d["loc"][: len(loc)] == loc for d in err["details"]), err["details"]
    assert (await api.client.get("/v1/productions", headers=headers)).json()["items"] == []


async def test_not_json_is_422(api: Api) -> None:
    _, headers = await api.account()
    r = await api.client.post(
        "/v1/productions",
        content=b"{not json",
        headers={**headers, "Content-Type": "application/json"},
    )
    _error(r, 422, "validation_error")


async def test_media_paths_are_refused(api: Api) -> None:
    _, headers = await api.account()
    r = await api.client.post(
        "/v1/productions",
        json={"prompt": "bees", "media": [{"scene": 0, "path": "/etc/passwd.png"}]},
        headers=headers,
    )
    err = _error(r, 422, "validation_error")
    assert err["details"][0]["loc"] == ["body", "media", 0, "path"]
    assert "upload" in err["message"]


async def test_unknown_backend_is_refused(api: Api) -> None:
    _, headers = await api.account()
    r = await api.client.post(
        "/v1/productions",
        json={"prompt": "bees", "backends": {"narrate": "nonexistent"}},
        headers=headers,
    )
    err = _error(r, 422, "validation_error")
    assert err["details"][0]["loc"] == ["body", "backends", "narrate"]


async def test_budget_exceeded_is_422(api: Api) -> None:
    _, headers = await api.account()
    r = await api.client.post(
        "/v1/productions", json={"prompt": "bees", "budget": 1e-9}, headers=headers
    )
    err = _error(r, 422, "budget_exceeded")
    assert err["details"]["budget"] == 1e-9
    assert err["details"]["needed"] > 1e-9


async def test_budget_downgrades_are_reported(api: Api) -> None:
    _, headers = await api.account()
    full = await api.client.post(
        "/v1/cost-estimate",
        json={"prompt": "bees", "preset": "premium_spot", "resolution": "1080p"},
        headers=headers,
    )
    total = full.json()["estimate"]["total"]
    r = await api.client.post(
        "/v1/productions",
        json={
            "prompt": "bees",
            "preset": "premium_spot",
            "resolution": "1080p",
            "budget": total * 0.8,
        },
        headers=headers,
    )
    assert r.status_code == 202
    assert r.json()["estimate"]["downgrades"]
    assert r.json()["estimate"]["total"] <= total * 0.8


async def test_cost_estimate_creates_no_job(api: Api) -> None:
    _, headers = await api.account()
    r = await api.client.post("/v1/cost-estimate", json={"prompt": "bees"}, headers=headers)
    assert r.status_code == 200
    assert set(r.json()) == {"estimate", "fast_track"}
    assert r.json()["estimate"]["currency"] == "USD"
    assert (await api.client.get("/v1/productions", headers=headers)).json()["items"] == []
    r = await api.client.post(
        "/v1/cost-estimate", json={"prompt": "bees", "budget": 1e-9}, headers=headers
    )
    _error(r, 422, "budget_exceeded")
    r = await api.client.post("/v1/cost-estimate", json={"prompt": "b", "x": 1}, headers=headers)
    _error(r, 422, "validation_error")


async def test_presets(api: Api) -> None:
    _, headers = await api.account()
    r = await api.client.get("/v1/presets", headers=headers)
    assert r.status_code == 200
    names = {p["name"] for p in r.json()}
    assert names == {"quick_social", "brand_campaign", "premium_spot"}


# ------------------------------------------------------------- idempotency


async def test_idempotent_replay_and_conflict(api: Api) -> None:
    _, headers = await api.account()
    keyed = {**headers, "Idempotency-Key": "order-42"}
    body = {"prompt": "How honeybees turn nectar into honey"}
    first = await api.client.post("/v1/productions", json=body, headers=keyed)
    assert first.status_code == 202
    replay = await api.client.post("/v1/productions", json=body, headers=keyed)
    assert replay.status_code == 202
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.json()["job"]["id"] == first.json()["job"]["id"]
    assert replay.headers["location"] == first.headers["location"]

    other = await api.client.post(
        "/v1/productions", json={"prompt": "Something else entirely"}, headers=keyed
    )
    _error(other, 409, "idempotency_conflict")

    listed = (await api.client.get("/v1/productions", headers=headers)).json()["items"]
    assert len(listed) == 1

    # Keys belong to their user: someone else's "order-42" is a new job.
    _, stranger = await api.account()
    mine = await api.client.post(
        "/v1/productions", json=body, headers={**stranger, "Idempotency-Key": "order-42"}
    )
    assert mine.status_code == 202
    assert "idempotent-replayed" not in mine.headers
    assert mine.json()["job"]["id"] != first.json()["job"]["id"]


@pytest.mark.parametrize("key", ["x" * 256, "has space", ""], ids=["long", "space", "empty"])
async def test_bad_idempotency_key(api: Api, key: str) -> None:
    _, headers = await api.account()
    r = await api.client.post(
        "/v1/productions",
        json={"prompt": "bees"},
        headers={**headers, "Idempotency-Key": key},
    )
    _error(r, 422, "validation_error")


# -------------------------------------------------------------- pagination


async def test_pagination_walks_every_job_once(api: Api) -> None:
    _, headers = await api.account()
    made = [(await api.submit(headers, prompt=f"production number {i}"))["id"] for i in range(7)]
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 3}
        if cursor:
            params["cursor"] = cursor
        r = await api.client.get("/v1/productions", params=params, headers=headers)
        assert r.status_code == 200
        page = r.json()
        assert len(page["items"]) <= 3
        seen += [j["id"] for j in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert sorted(seen) == sorted(made)
    assert len(set(seen)) == len(seen)
    assert seen == list(reversed(made))  # newest first


async def test_page_size_is_capped(tmp_path: Any, api_settings: Settings) -> None:
    settings = api_settings.model_copy(update={"page_size_max": 2})
    async with running(settings) as api:
        _, headers = await api.account()
        for i in range(3):
            await api.submit(headers, prompt=f"production number {i}")
        r = await api.client.get("/v1/productions", params={"limit": 1000}, headers=headers)
        assert r.status_code == 200
        assert len(r.json()["items"]) == 2
        assert r.json()["next_cursor"] is not None


@pytest.mark.parametrize("cursor", ["garbage!", "bm90IGpzb24", "WyJ4IiwgInkiXQ"])
async def test_bad_cursor_is_422(api: Api, cursor: str) -> None:
    _, headers = await api.account()
    r = await api.client.get("/v1/productions", params={"cursor": cursor}, headers=headers)
    err = _error(r, 422, "validation_error")
    assert err["details"][0]["loc"] == ["query", "cursor"]


async def test_bad_limit_and_status_are_422(api: Api) -> None:
    _, headers = await api.account()
    for params in ({"limit": 0}, {"status": "exploded"}):
        r = await api.client.get("/v1/productions", params=params, headers=headers)
        _error(r, 422, "validation_error")


async def test_status_filter(api: Api) -> None:
    _, headers = await api.account()
    a = await api.submit(headers, prompt="first production")
    b = await api.submit(headers, prompt="second production")
    await api.client.post(f"/v1/productions/{a['id']}/cancel", headers=headers)
    r = await api.client.get("/v1/productions", params={"status": "queued"}, headers=headers)
    assert [j["id"] for j in r.json()["items"]] == [b["id"]]
    r = await api.client.get("/v1/productions", params={"status": "cancelled"}, headers=headers)
    assert [j["id"] for j in r.json()["items"]] == [a["id"]]


# ------------------------------------------------------------------ events


async def test_events_after_seq(api: Api) -> None:
    _, headers = await api.account()
    job = await api.submit(headers)
    await api.client.post(f"/v1/productions/{job['id']}/cancel", headers=headers)
    url = f"/v1/productions/{job['id']}/events"
    r = await api.client.get(url, headers=headers)
    assert r.status_code == 200
    page = r.json()
    assert [e["seq"] for e in page["items"]] == [1, 2]
    assert [e["type"] for e in page["items"]] == ["job.queued", "job.cancelled"]
    assert page["next_after"] == 2
    assert page["has_more"] is False

    r = await api.client.get(url, params={"after": 1}, headers=headers)
    assert [e["seq"] for e in r.json()["items"]] == [2]
    r = await api.client.get(url, params={"after": 2}, headers=headers)
    assert r.json() == {"items": [], "next_after": 2, "has_more": False}
    r = await api.client.get(url, params={"limit": 1}, headers=headers)
    assert [e["seq"] for e in r.json()["items"]] == [1]
    assert r.json()["has_more"] is True
    _error(
        await api.client.get(url, params={"after": -1}, headers=headers), 422, "validation_error"
    )


# ------------------------------------------------------------- review gate


@pytest.fixture
async def paused(api: Api) -> tuple[Api, dict[str, str], str]:
    """A job waiting at its review gate."""
    _, headers = await api.account()
    job = await api.submit(headers, review=True)
    assert job["review"] is True
    await api.to_review(job["id"])
    return api, headers, job["id"]


async def test_review_gate_edit_and_approve(paused: tuple[Api, dict[str, str], str]) -> None:
    api, headers, job_id = paused
    base = f"/v1/productions/{job_id}"
    job = (await api.client.get(base, headers=headers)).json()
    assert job["status"] == "awaiting_approval"
    sb = (await api.client.get(f"{base}/storyboard", headers=headers)).json()
    assert len(sb["scenes"]) == 3

    edited = storyboard(scenes=2, title="Bees, edited").model_dump(mode="json")
    edited["scenes"][1]["narration"] = "A new ending."
    r = await api.client.patch(f"{base}/storyboard", json=edited, headers=headers)
    assert r.status_code == 200, r.text
    assert r.json()["title"] == "Bees, edited"
    assert r.json()["status"] == "awaiting_approval"
    got = (await api.client.get(f"{base}/storyboard", headers=headers)).json()
    assert Storyboard.model_validate(got) == Storyboard.model_validate(edited)

    r = await api.client.post(f"{base}/approve", headers=headers)
    assert r.status_code == 202
    assert r.json()["status"] == "queued"
    _error(await api.client.post(f"{base}/approve", headers=headers), 409, "invalid_state")
    r = await api.client.patch(f"{base}/storyboard", json=edited, headers=headers)
    _error(r, 409, "invalid_state")
    types = [
        e["type"] for e in (await api.client.get(f"{base}/events", headers=headers)).json()["items"]
    ]
    assert types[-2:] == ["job.storyboard_updated", "job.queued"]


def _bad_storyboards() -> list[tuple[str, dict[str, Any]]]:
    good = storyboard().model_dump(mode="json")
    wrong_index = storyboard().model_dump(mode="json")
    wrong_index["scenes"][1]["index"] = 5
    extra = storyboard().model_dump(mode="json")
    extra["scenes"][0]["sparkles"] = True
    too_long = storyboard().model_dump(mode="json")
    too_long["scenes"][0]["duration"] = 500
    too_many = storyboard(scenes=17).model_dump(mode="json")  # brand_campaign: 16
    over_cap = storyboard(scenes=3).model_dump(mode="json")
    for s in over_cap["scenes"]:
        s["duration"] = 60  # 180 s > brand_campaign's 120 s
    media = storyboard().model_dump(mode="json")
    media["scenes"][0]["media"] = {"scene": 0, "path": "/etc/shadow.png"}
    return [
        ("no-scenes", {**good, "scenes": []}),
        ("wrong-index", wrong_index),
        ("extra-field", extra),
        ("scene-too-long", too_long),
        ("too-many-scenes", too_many),
        ("over-preset-duration", over_cap),
        ("foreign-media", media),
    ]


@pytest.mark.parametrize(
    ("case", "body"), _bad_storyboards(), ids=[c for c, _ in _bad_storyboards()]
)
async def test_invalid_storyboards_are_refused(
    paused: tuple[Api, dict[str, str], str], case: str, body: dict[str, Any]
) -> None:
    api, headers, job_id = paused
    base = f"/v1/productions/{job_id}"
    before = (await api.client.get(f"{base}/storyboard", headers=headers)).json()
    r = await api.client.patch(f"{base}/storyboard", json=body, headers=headers)
    if case == "foreign-media":
        _error(r, 409, "invalid_media")
    else:
        _error(r, 422, "validation_error")
    assert (await api.client.get(f"{base}/storyboard", headers=headers)).json() == before


async def test_storyboard_over_budget_is_refused(api: Api) -> None:
    _, headers = await api.account()
    # Already the cheapest settings, so the budget cannot be met by downgrading.
    cheapest = {"preset": "quick_social", "resolution": "480p", "fps": 24, "duration": 40}
    estimate = (
        await api.client.post(
            "/v1/cost-estimate", json={"prompt": "bees", **cheapest}, headers=headers
        )
    ).json()["estimate"]
    job = await api.submit(headers, review=True, budget=estimate["total"] * 1.01, **cheapest)
    await api.to_review(job["id"])
    longer = storyboard(scenes=6).model_dump(mode="json")
    for s in longer["scenes"]:
        s["duration"] = 10.0  # 57.5 s instead of 40 s
    base = f"/v1/productions/{job['id']}"
    r = await api.client.patch(f"{base}/storyboard", json=longer, headers=headers)
    _error(r, 422, "budget_exceeded")
    shorter = storyboard(scenes=2).model_dump(mode="json")
    r = await api.client.patch(f"{base}/storyboard", json=shorter, headers=headers)
    assert r.status_code == 200


async def test_storyboard_is_404_before_planning(api: Api) -> None:
    _, headers = await api.account()
    job = await api.submit(headers)
    r = await api.client.get(f"/v1/productions/{job['id']}/storyboard", headers=headers)
    _error(r, 404, "not_found")


# ------------------------------------------------------ cancel, retry, rerender


async def test_cancel_queued_then_again(api: Api) -> None:
    _, headers = await api.account()
    job = await api.submit(headers)
    r = await api.client.post(f"/v1/productions/{job['id']}/cancel", headers=headers)
    assert r.status_code == 200
    assert r.json()["status"] == "cancelled"
    again = await api.client.post(f"/v1/productions/{job['id']}/cancel", headers=headers)
    _error(again, 409, "invalid_state")


async def test_cancel_running_is_a_request(api: Api) -> None:
    _, headers = await api.account()
    job = await api.submit(headers)
    await api.claim(job["id"])
    r = await api.client.post(f"/v1/productions/{job['id']}/cancel", headers=headers)
    assert r.status_code == 202
    assert r.json()["status"] == "processing"
    assert await api.jobs.heartbeat(uuid.UUID(job["id"]), "test-worker") == (True, True)


async def test_cancel_paused(paused: tuple[Api, dict[str, str], str]) -> None:
    api, headers, job_id = paused
    r = await api.client.post(f"/v1/productions/{job_id}/cancel", headers=headers)
    assert r.status_code == 200
    assert r.json()["status"] == "cancelled"


async def test_retry_only_when_failed(api: Api) -> None:
    _, headers = await api.account()
    job = await api.submit(headers)
    url = f"/v1/productions/{job['id']}/retry"
    _error(await api.client.post(url, headers=headers), 409, "invalid_state")
    await api.fail(job["id"])
    failed = (await api.client.get(f"/v1/productions/{job['id']}", headers=headers)).json()
    assert failed["status"] == "failed"
    assert failed["error"]["code"] == "tts_failed"
    assert failed["error"]["stage"] == "narrate"
    r = await api.client.post(url, headers=headers)
    assert r.status_code == 202
    assert r.json()["status"] == "queued"
    assert r.json()["error"] is None
    _error(await api.client.post(url, headers=headers), 409, "invalid_state")


async def test_rerender_only_when_completed(api: Api) -> None:
    _, headers = await api.account()
    job = await api.submit(headers)
    url = f"/v1/productions/{job['id']}/scenes/1/rerender"
    change = {"narration": "Bees dance to share where flowers are.", "camera": "zoom_in"}
    _error(await api.client.post(url, json=change, headers=headers), 409, "invalid_state")

    await api.complete(job["id"])
    done = (await api.client.get(f"/v1/productions/{job['id']}", headers=headers)).json()
    assert done["status"] == "completed"
    assert done["qa"] == {"passed": True, "failed": [], "warnings": ["loudness"]}
    assert done["completed_at"] is not None

    r = await api.client.post(url, json=change, headers=headers)
    assert r.status_code == 202, r.text
    assert r.json()["status"] == "queued"
    assert r.json()["qa"] is None
    sb = (await api.client.get(f"/v1/productions/{job['id']}/storyboard", headers=headers)).json()
    assert sb["scenes"][1]["narration"] == change["narration"]
    assert sb["scenes"][1]["camera"] == "zoom_in"
    assert sb["scenes"][0]["narration"] == "Scene 0: bees at work."


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({}, 422, "validation_error"),
        ({"narration": None}, 422, "validation_error"),
        ({"colour": "red"}, 422, "validation_error"),
        ({"camera": "barrel_roll"}, 422, "validation_error"),
        ({"duration": 0.6}, 422, "validation_error"),  # the crossfade no longer fits
    ],
    ids=["empty", "null", "unknown-field", "bad-camera", "invalid-merge"],
)
async def test_rerender_body_validation(
    api: Api, body: dict[str, Any], status: int, code: str
) -> None:
    _, headers = await api.account()
    job = await api.submit(headers)
    await api.complete(job["id"])
    r = await api.client.post(
        f"/v1/productions/{job['id']}/scenes/0/rerender", json=body, headers=headers
    )
    _error(r, status, code)
    still = (await api.client.get(f"/v1/productions/{job['id']}", headers=headers)).json()
    assert still["status"] == "completed"


async def test_rerender_unknown_scene_is_404(api: Api) -> None:
    _, headers = await api.account()
    job = await api.submit(headers)
    await api.complete(job["id"])
    r = await api.client.post(
        f"/v1/productions/{job['id']}/scenes/7/rerender", json={"visual": "x"}, headers=headers
    )
    _error(r, 404, "not_found")


async def test_voice_override_can_be_cleared(api: Api) -> None:
    _, headers = await api.account()
    job = await api.submit(headers)
    await api.complete(job["id"])
    url = f"/v1/productions/{job['id']}/scenes/0/rerender"
    r = await api.client.post(url, json={"voice": {"name": "en-us", "rate": 150}}, headers=headers)
    assert r.status_code == 202
    sb = (await api.client.get(f"/v1/productions/{job['id']}/storyboard", headers=headers)).json()
    assert sb["scenes"][0]["voice"]["name"] == "en-us"


# -------------------------------------------------------------- the edge


async def test_body_too_large_by_content_length(api: Api) -> None:
    _, headers = await api.account()
    big = {"prompt": "bees", "title": "x" * (api.settings.max_body_bytes + 10)}
    r = await api.client.post("/v1/productions", json=big, headers=headers)
    err = _error(r, 413, "payload_too_large")
    assert str(api.settings.max_body_bytes) in err["message"]


async def test_body_too_large_when_streamed(api: Api) -> None:
    _, headers = await api.account()

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"prompt": "bees", "title": "'
        for _ in range(20):
            yield b"x" * 8192
        yield b'"}'

    r = await api.client.post(
        "/v1/productions",
        content=chunks(),
        headers={**headers, "Content-Type": "application/json"},
    )
    _error(r, 413, "payload_too_large")


async def test_request_id_and_security_headers(api: Api) -> None:
    _, headers = await api.account()
    r = await api.client.get("/v1/productions", headers={**headers, "X-Request-ID": "abc-123"})
    assert r.headers["x-request-id"] == "abc-123"
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["referrer-policy"] == "no-referrer"
    assert r.headers["cache-control"] == "no-store"
    r = await api.client.get("/v1/productions", headers={**headers, "X-Request-ID": "bad id\t!"})
    assert r.headers["x-request-id"] != "bad id\t!"
    assert len(r.headers["x-request-id"]) == 32


async def test_unknown_route_and_method_use_the_error_shape(api: Api) -> None:
    _error(await api.client.get("/v1/nothing-here"), 404, "not_found")
    _error(await api.client.delete("/v1/presets"), 405, "method_not_allowed")


async def test_malformed_production_id_is_422(api: Api) -> None:
    _, headers = await api.account()
    _error(
        await api.client.get("/v1/productions/not-a-uuid", headers=headers), 422, "validation_error"
    )


async def test_storyboard_edit_when_not_paused_is_409_even_if_invalid(api: Api) -> None:
    _, headers = await api.account()
    job = await api.submit(headers)
    too_many = storyboard(scenes=17).model_dump(mode="json")
    r = await api.client.patch(
        f"/v1/productions/{job['id']}/storyboard", json=too_many, headers=headers
    )
    _error(r, 409, "invalid_state")


async def test_a_production_says_its_length_and_when_its_storyboard_exists(api: Api) -> None:
    """The studio shows the video's length (not the render time) and asks for
    the storyboard only once there is one."""
    _, headers = await api.account()
    script = "Honeybees visit flowers. They bring nectar home."
    job = await api.submit(headers, prompt=None, script=script, language="fr")
    assert not job["has_storyboard"] and job["language"] == "fr"
    assert 3 < job["duration"] < 6  # two short sentences read aloud, not the preset's 45 s
    assert job["duration"] == job["estimate"]["duration"] != job["estimate"]["seconds"]
    assert job["subtitles_burned"] is True
    await api.to_review(job["id"])
    r = await api.client.get(f"/v1/productions/{job['id']}", headers=headers)
    assert r.json()["has_storyboard"] and r.json()["duration"] == storyboard().duration
