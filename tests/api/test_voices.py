"""Audit finding (issue 9): `voice.name` accepted path-like values
(`../../etc/passwd`) and passed them on to the narrator.

Voice names are refused by the model when they could name a path (for the
CLI too), and checked against the narrator's installed voices wherever the
API takes one: submit, cost estimate, storyboard edit and scene re-render.
An unknown voice answers 422 pointing at `GET /v1/voices`.
"""

from __future__ import annotations

import io
import wave
from typing import Any

import pytest
from pydantic import ValidationError

from aiprod.production.models import Voice
from tests.api.conftest import Api, storyboard

PATH_LIKE = ["../../etc/passwd", "..", "en+..", "/etc/passwd", "en/../fr", "a\\b", "en\x00"]


@pytest.mark.parametrize("name", PATH_LIKE)
def test_the_voice_model_refuses_path_like_names(name: str) -> None:
    with pytest.raises(ValidationError):
        Voice(name=name)


@pytest.mark.parametrize("name", ["en", "en-US", "en+f3", "en+klatt3", "cmn-Latn-pinyin", "a.b"])
def test_the_voice_model_keeps_real_names(name: str) -> None:
    assert Voice(name=name).name == name


async def test_voices_lists_the_installed_voices(api: Api) -> None:
    _, headers = await api.account("viewer")
    r = await api.client.get("/v1/voices", headers=headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["backend"] == "builtin"
    names = {v["name"]: v for v in body["items"]}
    assert {"hibari-heart", "en", "en-US", "de", "fr"} <= set(names)
    assert names["de"]["language"] == "de"
    assert set(names["en"]) >= {"name", "language", "gender", "engine", "sample_rate", "licence"}
    heart = names["hibari-heart"]
    assert (heart["engine"], heart["language"], heart["sample_rate"]) == ("hibari", "en-US", 24000)
    assert "Apache-2.0" in heart["licence"] and heart["any_language"] is False
    assert (names["de"]["engine"], names["de"]["any_language"]) == ("espeak", True)
    assert "f3" in body["variants"]
    r = await api.client.get("/v1/voices", params={"language": "de"}, headers=headers)
    assert r.status_code == 200
    assert r.json()["items"]
    assert {v["language"].split("-")[0] for v in r.json()["items"]} == {"de"}
    assert (await api.client.get("/v1/voices")).status_code == 401


def _points_at_the_voice_list(r: Any, loc: list[str]) -> None:
    assert r.status_code == 422, (r.status_code, r.text[:300])
    err = r.json()["error"]
    assert err["code"] == "validation_error", err
    hits = [d for d in err["details"] if d["loc"][: len(loc)] == loc]
    assert hits, err["details"]
    assert hits[0]["type"] == "unknown_voice", hits
    assert "/v1/voices" in hits[0]["msg"]


@pytest.mark.parametrize("route", ["/v1/productions", "/v1/cost-estimate"])
@pytest.mark.parametrize("name", ["zz-nope", "en+nonesuch", "passwd"])
async def test_unknown_voice_at_submit_is_422(api: Api, route: str, name: str) -> None:
    _, headers = await api.account()
    body = {"prompt": "honeybees at work", "voice": {"name": name}}
    r = await api.client.post(route, json=body, headers=headers)
    _points_at_the_voice_list(r, ["body", "voice", "name"])
    assert (await api.client.get("/v1/productions", headers=headers)).json()["items"] == []


@pytest.mark.parametrize("route", ["/v1/productions", "/v1/cost-estimate"])
async def test_path_like_voice_at_submit_is_422(api: Api, route: str) -> None:
    _, headers = await api.account()
    body = {"prompt": "honeybees at work", "voice": {"name": "../../etc/passwd"}}
    r = await api.client.post(route, json=body, headers=headers)
    assert r.status_code == 422
    assert r.json()["error"]["details"][0]["loc"][:3] == ["body", "voice", "name"]


@pytest.mark.parametrize("name", ["en-us", "EN-US", "de", "en+f3", "en-GB-x-rp+klatt3"])
async def test_installed_voices_are_accepted(api: Api, name: str) -> None:
    _, headers = await api.account()
    body = {"prompt": "honeybees at work", "voice": {"name": name}}
    r = await api.client.post("/v1/productions", json=body, headers=headers)
    assert r.status_code == 202, r.text


async def test_unknown_scene_voice_in_a_storyboard_edit_is_422(api: Api) -> None:
    _, headers = await api.account()
    job = await api.submit(headers, review=True)
    await api.to_review(job["id"])
    url = f"/v1/productions/{job['id']}/storyboard"
    edited = storyboard().model_dump(mode="json")
    edited["scenes"][1]["voice"] = {"name": "zz-nope"}
    r = await api.client.patch(url, json=edited, headers=headers)
    _points_at_the_voice_list(r, ["body", "scenes", 1, "voice", "name"])
    edited["scenes"][1]["voice"] = {"name": "fr"}
    assert (await api.client.patch(url, json=edited, headers=headers)).status_code == 200


async def test_unknown_voice_in_a_rerender_is_422(api: Api) -> None:
    _, headers = await api.account()
    job = await api.submit(headers)
    await api.complete(job["id"])
    url = f"/v1/productions/{job['id']}/scenes/0/rerender"
    r = await api.client.post(url, json={"voice": {"name": "zz-nope"}}, headers=headers)
    _points_at_the_voice_list(r, ["body", "voice", "name"])
    still = (await api.client.get(f"/v1/productions/{job['id']}", headers=headers)).json()
    assert still["status"] == "completed"


@pytest.mark.parametrize("route", ["/v1/productions", "/v1/cost-estimate"])
async def test_a_voice_that_cannot_read_the_language_is_422(api: Api, route: str) -> None:
    _, headers = await api.account()
    body = {
        "prompt": "les abeilles au travail",
        "language": "fr",
        "voice": {"name": "hibari-heart"},
    }
    r = await api.client.post(route, json=body, headers=headers)
    assert r.status_code == 422, r.text
    (detail,) = r.json()["error"]["details"]
    assert detail["loc"] == ["body", "voice", "name"] and detail["type"] == "voice_language"
    assert "/v1/voices?language=fr" in detail["msg"]
    # eSpeak voices read any language (with their own rules); the neural one reads English
    body["voice"] = {"name": "fr"}
    assert (await api.client.post(route, json=body, headers=headers)).status_code in (200, 202)
    body = {"prompt": "bees", "language": "en-GB", "voice": {"name": "hibari-heart"}}
    assert (await api.client.post(route, json=body, headers=headers)).status_code in (200, 202)


async def test_a_neural_voice_takes_no_variant(api: Api) -> None:
    _, headers = await api.account()
    body = {"prompt": "bees", "voice": {"name": "hibari-heart+f3"}}
    r = await api.client.post("/v1/cost-estimate", json=body, headers=headers)
    _points_at_the_voice_list(r, ["body", "voice", "name"])


async def test_voice_preview_is_a_wav_of_that_voice(api: Api) -> None:
    _, headers = await api.account("viewer")
    url = "/v1/voices/hibari-heart/preview"
    assert (await api.client.get(url)).status_code == 401
    r = await api.client.get(url, headers=headers)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "audio/wav"
    with wave.open(io.BytesIO(r.content)) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 24000)
        assert 1.0 < w.getnframes() / w.getframerate() < 8.0
    again = await api.client.get(url, headers=headers)
    assert again.content == r.content  # the same sentence, cached
    espeak = await api.client.get("/v1/voices/en+f3/preview", headers=headers)
    assert espeak.status_code == 200
    with wave.open(io.BytesIO(espeak.content)) as w:
        assert w.getframerate() == 22050  # `en` previews eSpeak's voice, not the alias
    missing = await api.client.get("/v1/voices/zz-nope/preview", headers=headers)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "unknown_voice"
    bad = await api.client.get("/v1/voices/hibari-heart/preview?backend=nope", headers=headers)
    assert bad.status_code == 422
