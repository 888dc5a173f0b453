"""Remote narrators' voices in the API (issue 11): ``GET /v1/voices`` lists
the voices of each speech service configured on the server beside the
offline ones, and a request that chooses such a voice with its narrator
(``backends: {"narrate": "elevenlabs"}``) passes the voice check.

The services are local servers speaking the ElevenLabs wire format
(``tests/production/providers``); OpenAI's voices are a fixed list.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aiprod.production.providers import client as provider_client
from aiprod.production.providers import elevenlabs
from aiprod.provider_config import ProviderConfig
from aiprod.settings import Settings
from tests.api.conftest import Api
from tests.conftest import base_settings
from tests.production.providers.speech_server import voice_list
from tests.production.providers.wire import LocalService, Reply, local_service

__all__ = ["local_service"]

KEY = "xi-test-" + "s3cr3t" * 6
GEORGE = "JBFqnCBsd6RMkjVDRZzb"


@pytest.fixture(autouse=True)
def _fresh_provider_state() -> Iterator[None]:
    provider_client.reset_shared_state()
    elevenlabs.forget_voices()
    yield
    provider_client.reset_shared_state()
    elevenlabs.forget_voices()


@pytest.fixture
def api_settings(tmp_path: Path, database_url: str, local_service: LocalService) -> Settings:
    """The app's settings, with ElevenLabs and OpenAI speech pointed at a local server."""

    def config(url: str) -> ProviderConfig:
        return ProviderConfig(
            base_url=url, api_key=KEY, max_retries=1, retry_max_wait_seconds=0.1, timeout_seconds=5
        )

    return base_settings(
        tmp_path,
        database_url,
        max_body_bytes=64 * 1024,
        elevenlabs=config(local_service.url),
        openai_speech=config(local_service.url + "/v1"),
    )


def _names(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in body["items"]}


async def test_voices_lists_each_configured_services_voices_beside_the_offline_ones(
    api: Api, local_service: LocalService
) -> None:
    local_service.route("GET", "/v1/voices", [Reply(200, voice_list())])
    _, headers = await api.account("viewer")
    r = await api.client.get("/v1/voices", headers=headers)
    assert r.status_code == 200, r.text
    body = r.json()
    names = _names(body)
    assert body["backend"] == "builtin" and "f3" in body["variants"]
    assert {"hibari-heart", "en", "de"} <= set(names)  # the offline voices, as before
    assert names[GEORGE]["engine"] == "elevenlabs" and names[GEORGE]["gender"] == "male"
    assert "George" in names[GEORGE]["description"]
    assert names["alloy"]["engine"] == "openai-speech" and names["alloy"]["any_language"]
    assert (await api.client.get("/v1/voices", headers=headers)).status_code == 200
    (call,) = local_service.calls("GET", "/v1/voices")  # the account's list is kept a while
    assert call.headers["xi-api-key"] == KEY

    one = await api.client.get("/v1/voices", params={"backend": "elevenlabs"}, headers=headers)
    assert one.status_code == 200, one.text
    assert one.json()["backend"] == "elevenlabs" and one.json()["variants"] == []
    assert set(_names(one.json())) == {GEORGE, "EXAVITQu4vr4xnJGR9EL"}


async def test_a_service_whose_list_fails_is_left_out(
    api: Api, local_service: LocalService
) -> None:
    local_service.route(
        "GET",
        "/v1/voices",
        [Reply(500, {"detail": {"message": f"down, key {KEY}"}}, {"retry-after": "0"})],
    )
    _, headers = await api.account("viewer")
    r = await api.client.get("/v1/voices", headers=headers)
    assert r.status_code == 200, r.text
    engines = {v["engine"] for v in r.json()["items"]}
    assert engines == {"hibari", "espeak", "openai-speech"}
    one = await api.client.get("/v1/voices", params={"backend": "elevenlabs"}, headers=headers)
    assert one.status_code == 503, one.text
    assert one.json()["error"]["code"] == "voices_unavailable"
    assert "elevenlabs voices failed" in one.json()["error"]["message"]
    assert KEY not in r.text and KEY not in one.text


async def test_a_remote_voice_passes_the_check_with_its_narrator(
    api: Api, local_service: LocalService
) -> None:
    local_service.route("GET", "/v1/voices", [Reply(200, voice_list())])
    _, headers = await api.account()

    async def estimate(voice: str, narrator: str | None) -> Any:
        body: dict[str, Any] = {"prompt": "honeybees at work", "voice": {"name": voice}}
        if narrator:
            body["backends"] = {"narrate": narrator}
        return await api.client.post("/v1/cost-estimate", json=body, headers=headers)

    assert (await estimate(GEORGE, "elevenlabs")).status_code == 200
    assert (await estimate("alloy", "openai-speech")).status_code == 200
    # another language is no obstacle: these voices read any
    body = {
        "prompt": "les abeilles",
        "language": "fr",
        "voice": {"name": GEORGE},
        "backends": {"narrate": "elevenlabs"},
    }
    assert (await api.client.post("/v1/cost-estimate", json=body, headers=headers)).is_success
    # a voice the account lacks, or an offline voice, is not the service's
    for voice in ("zz-nope", "en-us"):
        r = await estimate(voice, "elevenlabs")
        assert r.status_code == 422, r.text
        assert r.json()["error"]["details"][0]["type"] == "unknown_voice"
    # a service's voice without its narrator says which narrator speaks it
    r = await estimate(GEORGE, None)
    assert r.status_code == 422
    detail = r.json()["error"]["details"][0]
    assert detail["type"] == "unknown_voice" and "elevenlabs narrator" in detail["msg"]
    submitted = await api.client.post(
        "/v1/productions",
        json={
            "prompt": "honeybees at work",
            "voice": {"name": "nova"},
            "backends": {"narrate": "openai-speech"},
        },
        headers=headers,
    )
    assert submitted.status_code == 202, submitted.text
