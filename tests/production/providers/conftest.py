"""Providers are tested against local servers speaking each service's wire format
(``wire.py``); ``provider_settings`` points a service's configuration at one."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from aiprod.production import backends
from aiprod.production.providers import client as provider_client
from aiprod.production.providers import use_settings
from aiprod.provider_config import ProviderConfig
from aiprod.settings import Settings

from .wire import local_service

__all__ = ["local_service"]

FAKE_KEY = "sk-test-" + "k3y" * 12
"""An API key the tests give every service: searched for in logs, events,
errors and artifacts, where it must never appear."""


@pytest.fixture(autouse=True)
def _fresh_breakers() -> Iterator[None]:
    provider_client.reset_shared_state()
    yield
    provider_client.reset_shared_state()


@pytest.fixture
def provider_settings(tmp_path: Path) -> Iterator[Callable[..., Settings]]:
    """Settings with the named services pointed at local servers; entered as the
    providers' current settings (as the Pipeline does) until the test ends.

        settings = provider_settings(openai_chat=service.url + "/v1", ...)"""
    entered: list[Any] = []

    def make(**services: str | ProviderConfig) -> Settings:
        configs: dict[str, Any] = {}
        for name, value in services.items():
            configs[name] = (
                value
                if isinstance(value, ProviderConfig)
                else ProviderConfig(
                    base_url=value,
                    api_key=FAKE_KEY,
                    max_retries=2,
                    retry_max_wait_seconds=2.0,
                    timeout_seconds=5.0,
                )
            )
        settings = Settings(
            data_dir=tmp_path / "data", provider_allow_private_networks=True, **configs
        )
        cm = use_settings(settings)
        cm.__enter__()
        entered.append(cm)
        return settings

    yield make
    for cm in reversed(entered):
        cm.__exit__(None, None, None)
    backends._instances.clear()
