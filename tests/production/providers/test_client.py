"""The provider client against a real local HTTP service: retries, Retry-After,
the circuit breaker, redaction of the key, guarded downloads, the budget."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from aiprod.production.cost import BudgetExceeded, PriceTable
from aiprod.production.providers import client_for
from aiprod.production.providers.client import (
    ProviderClient,
    ProviderError,
    ProviderNotConfigured,
    retry_after,
)
from aiprod.production.providers.download import fetch
from aiprod.production.providers.metering import Meter
from aiprod.provider_config import ProviderConfig
from aiprod.settings import Settings

from .conftest import FAKE_KEY
from .wire import LocalService, Reply


def _client(
    service: LocalService, sleeps: list[float] | None = None, **config: object
) -> ProviderClient:
    cfg = ProviderConfig(
        base_url=service.url,
        api_key=FAKE_KEY,
        **{"max_retries": 3, **config},
    )
    return ProviderClient(
        "openai-chat",
        cfg,
        "https://unused.example",
        auth_headers=lambda key: {"authorization": f"Bearer {key}"},
        sleep=(sleeps.append if sleeps is not None else lambda _: None),
    )


def test_429_then_200_retries_after_the_time_asked(local_service: LocalService) -> None:
    local_service.route(
        "POST",
        "/chat/completions",
        [
            Reply(429, {"error": {"message": "slow down"}}, {"retry-after": "2"}),
            Reply(200, {"ok": True}),
        ],
    )
    sleeps: list[float] = []
    body = _client(local_service, sleeps).json(
        "chat.completions", "POST", "chat/completions", json={}
    )
    assert body == {"ok": True}
    assert sleeps == [2.0]  # Retry-After honoured, not the backoff
    calls = local_service.calls("POST", "/chat/completions")
    assert len(calls) == 2
    assert calls[0].headers["authorization"] == f"Bearer {FAKE_KEY}"


def test_5xx_retries_with_growing_jittered_backoff_then_fails_naming_the_call(
    local_service: LocalService,
) -> None:
    local_service.route("GET", "/models", [Reply(503, {"error": {"message": "overloaded"}})])
    sleeps: list[float] = []
    with pytest.raises(ProviderError) as info:
        _client(local_service, sleeps).request("models.list", "GET", "models")
    err = info.value
    assert (err.provider, err.call, err.status, err.transient) == (
        "openai-chat",
        "models.list",
        503,
        True,
    )
    assert "overloaded" in str(err) and "after 4 attempts" in str(err)
    assert len(local_service.requests) == 4
    assert len(sleeps) == 3
    assert sleeps[0] < sleeps[2]  # 0.5·2^n·[0.5, 1.5): the third wait is at least 1 s


def test_a_retry_after_longer_than_allowed_fails_at_once(local_service: LocalService) -> None:
    local_service.route("GET", "/x", [Reply(429, b"", {"retry-after": "3600"})])
    with pytest.raises(ProviderError, match="asks to wait 3600 s"):
        _client(local_service, retry_max_wait_seconds=5).request("x", "GET", "x")
    assert len(local_service.requests) == 1


def test_retry_after_as_an_http_date() -> None:
    response = httpx.Response(429, headers={"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"})
    assert retry_after(response, now=1445412470.0) == pytest.approx(10.0)


def test_client_errors_are_not_retried_and_never_show_the_key(local_service: LocalService) -> None:
    # A service echoing the key back in its error must not get it into ours.
    local_service.route(
        "POST", "/chat/completions", [Reply(401, {"error": {"message": f"bad key {FAKE_KEY}"}})]
    )
    with pytest.raises(ProviderError) as info:
        _client(local_service).request("chat.completions", "POST", "chat/completions", json={})
    assert len(local_service.requests) == 1
    assert info.value.transient is False
    assert FAKE_KEY not in str(info.value) and FAKE_KEY not in repr(info.value.details())
    assert "bad key ***" in str(info.value)


def test_a_slow_service_times_out(local_service: LocalService) -> None:
    local_service.route("GET", "/slow", [Reply(200, {"ok": 1}, delay=1.5)])
    with pytest.raises(ProviderError, match=r"no answer within 0\.3 s"):
        _client(local_service, timeout_seconds=0.3, max_retries=0).request("slow", "GET", "slow")


def test_an_answer_that_is_not_json(local_service: LocalService) -> None:
    local_service.route("GET", "/j", [Reply(200, b"<html>", {"content-type": "text/html"})])
    with pytest.raises(ProviderError, match="not JSON"):
        _client(local_service).json("j", "GET", "j")


def test_the_breaker_opens_after_failures_and_half_opens_later(local_service: LocalService) -> None:
    local_service.route("GET", "/down", [Reply(500, b"")])
    client = _client(local_service, max_retries=0, breaker_failures=2, breaker_reset_seconds=60)
    for _ in range(2):
        with pytest.raises(ProviderError, match="HTTP 500"):
            client.request("down", "GET", "down")
    with pytest.raises(ProviderError, match="circuit breaker open"):
        client.request("down", "GET", "down")
    assert len(local_service.requests) == 2  # the open breaker sent nothing
    client.breaker.opened_at = -1e9  # its time is up: one call may try
    local_service.route("GET", "/down", [Reply(200, {"ok": 1})])
    assert client.json("down", "GET", "down") == {"ok": 1}
    assert client.breaker.failures == 0


def test_httpx_log_lines_are_redacted(
    local_service: LocalService, caplog: pytest.LogCaptureFixture
) -> None:
    local_service.route("GET", "/api/", [Reply(200, {"hits": []})])
    client = ProviderClient(
        "pixabay",
        ProviderConfig(base_url=local_service.url + "/api", api_key=FAKE_KEY),
        "https://pixabay.com/api",
        auth_params=lambda key: {"key": key},
    )
    with caplog.at_level(logging.DEBUG):
        client.json("search", "GET", "/", params={"q": "sleep"})
    assert local_service.requests[0].query["key"] == [FAKE_KEY]  # it did travel, in the query
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "HTTP Request" in text and FAKE_KEY not in text


def test_a_provider_without_its_key_is_refused(
    provider_settings: Callable[..., Settings],
) -> None:
    provider_settings(pexels=ProviderConfig())
    with pytest.raises(ProviderNotConfigured, match="AIPROD_PEXELS__API_KEY_FILE"):
        client_for("pexels", "https://api.pexels.com")


def test_config_fails_closed(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot be read"):
        ProviderConfig(api_key_file=tmp_path / "missing")
    with pytest.raises(ValueError, match="clear text"):
        ProviderConfig(base_url="http://api.example.com/v1", api_key=FAKE_KEY)
    with pytest.raises(ValueError, match="not both"):
        ProviderConfig(api_key=FAKE_KEY, api_key_file=tmp_path / "k")
    key = tmp_path / "key"
    key.write_text(FAKE_KEY + "\n")
    config = ProviderConfig(api_key_file=key, base_url="http://ollama:11434/v1")
    assert config.key() == FAKE_KEY and FAKE_KEY not in repr(config)
    assert FAKE_KEY not in config.model_dump_json()


# ------------------------------------------------------------------ downloads


def test_download_streams_an_asset_and_follows_a_redirect(
    local_service: LocalService, tmp_path: Path
) -> None:
    local_service.route("GET", "/a.jpg", [Reply(302, b"", {"location": "/b.jpg"})])
    local_service.route(
        "GET", "/b.jpg", [Reply(200, b"\xff\xd8jpeg", {"content-type": "image/jpeg"})]
    )
    out = tmp_path / "x.jpg"
    kind = fetch(
        "pexels",
        local_service.url + "/a.jpg",
        out,
        allowed_types=("image/",),
        max_bytes=100,
        allow_private=True,
    )
    assert kind == "image/jpeg" and out.read_bytes() == b"\xff\xd8jpeg"


def test_download_refuses_private_addresses_and_redirects_to_them(
    local_service: LocalService, tmp_path: Path
) -> None:
    with pytest.raises(ProviderError, match="refused URL"):
        fetch(
            "pexels",
            local_service.url + "/a.jpg",
            tmp_path / "x",
            allowed_types=("image/",),
            max_bytes=100,
            allow_private=False,
        )
    assert local_service.requests == []  # refused before any connection
    for url in ("http://169.254.169.254/latest/meta-data/", "file:///etc/passwd"):
        with pytest.raises(ProviderError, match="refused URL"):
            fetch(
                "pexels",
                url,
                tmp_path / "x",
                allowed_types=("image/",),
                max_bytes=100,
                allow_private=False,
            )


def test_download_limits_size_and_type(local_service: LocalService, tmp_path: Path) -> None:
    local_service.route("GET", "/big", [Reply(200, b"x" * 500, {"content-type": "image/png"})])
    local_service.route("GET", "/html", [Reply(200, b"<html>", {"content-type": "text/html"})])
    local_service.route(
        "GET", "/cut", [Reply(200, b"y" * 50, {"content-type": "image/png"}, cut=10)]
    )
    out = tmp_path / "x.png"
    with pytest.raises(ProviderError, match="500 bytes, over 100"):
        fetch(
            "p",
            local_service.url + "/big",
            out,
            allowed_types=("image/",),
            max_bytes=100,
            allow_private=True,
        )
    with pytest.raises(ProviderError, match="unexpected media type text/html"):
        fetch(
            "p",
            local_service.url + "/html",
            out,
            allowed_types=("image/",),
            max_bytes=100,
            allow_private=True,
        )
    with pytest.raises(ProviderError, match="broke off"):
        fetch(
            "p",
            local_service.url + "/cut",
            out,
            allowed_types=("image/",),
            max_bytes=100,
            allow_private=True,
        )
    assert not out.exists() and not list(tmp_path.glob("*.part"))


# --------------------------------------------------------------------- budget


def test_the_meter_refuses_a_call_the_budget_cannot_cover() -> None:
    meter = Meter(PriceTable.default(), budget=0.01, reserved=0.004, stage="narrate")
    meter.authorize("openai-speech", "1k_chars", 0.3)  # $0.0045: fits
    meter.charge("openai-speech", "audio.speech", "1k_chars", 0.3)
    with pytest.raises(BudgetExceeded):
        meter.authorize("openai-speech", "1k_chars", 0.2)  # 0.004 + 0.0045 + 0.003 > 0.01
    assert meter.spent == pytest.approx(0.0045)
    assert [c.stage for c in meter.charges] == ["narrate"]
