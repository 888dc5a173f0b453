"""Requests naming AI providers, at the API: a provider the server has not
configured is refused at submission, and a budget a priced provider cannot fit
is refused before any call is made."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from aiprod.provider_config import ProviderConfig
from aiprod.settings import Settings
from tests.api.conftest import Api
from tests.conftest import base_settings
from tests.production.providers.wire import LocalService, local_service

__all__ = ["local_service"]


@pytest.fixture
def api_settings(tmp_path: Path, database_url: str, local_service: LocalService) -> Settings:
    return base_settings(
        tmp_path,
        database_url,
        api_key_rotation_check_seconds=0,
        elevenlabs=ProviderConfig(base_url=local_service.url, api_key="el-" + "k" * 30),
        openai_chat=ProviderConfig(base_url=local_service.url + "/v1"),  # keyless (Ollama)
    )


def _detail(r: Any) -> dict[str, Any]:
    assert r.status_code == 422, r.text
    detail: dict[str, Any] = r.json()["error"]["details"][0]
    return detail


async def test_an_unconfigured_provider_is_refused_at_submission(api: Api) -> None:
    _, headers = await api.account()
    for path in ("/v1/productions", "/v1/cost-estimate"):
        r = await api.client.post(
            path, json={"prompt": "bees", "backends": {"visuals": "pexels"}}, headers=headers
        )
        detail = _detail(r)
        assert detail["type"] == "backend_not_configured"
        assert detail["loc"] == ["body", "backends", "visuals"]
        assert "AIPROD_PEXELS__API_KEY_FILE" in detail["msg"]


async def test_a_budget_a_priced_provider_cannot_fit_is_refused_before_any_call(
    api: Api, local_service: LocalService
) -> None:
    _, headers = await api.account()
    body = {
        "prompt": "Three tips to sleep better tonight",
        "duration": 30,
        "budget": 0.01,
        "backends": {"plan": "openai-chat", "narrate": "elevenlabs"},
    }
    estimate = await api.client.post(
        "/v1/cost-estimate", json={**body, "budget": None}, headers=headers
    )
    assert estimate.status_code == 200, estimate.text
    stages = {s["stage"]: s for s in estimate.json()["estimate"]["stages"]}
    assert stages["narrate"]["unit"] == "1k_chars" and stages["narrate"]["cost"] > 0.01
    assert stages["plan"]["unit"] == "1k_tokens"
    r = await api.client.post("/v1/productions", json=body, headers=headers)
    assert r.status_code == 422 and r.json()["error"]["code"] == "budget_exceeded", r.text
    # No paid call was made (listing the service's voices, to check the voice, is free).
    assert [r.path for r in local_service.requests if r.method != "GET"] == []
    jobs = await api.client.get("/v1/productions", headers=headers)
    assert jobs.json()["items"] == []
