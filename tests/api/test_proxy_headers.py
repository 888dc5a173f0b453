"""X-Forwarded-For is believed only from the configured proxies: any other peer
(a local one included) is seen at its own address, so it cannot pick the
address the per-address login throttle and the audit log see."""

from __future__ import annotations

import pytest

from aiprod.settings import Settings
from tests.api.conftest import Api, running
from tests.identity.conftest import audit

FORGED = "203.0.113.9"


async def _failed_login_ips(api: Api) -> list[str | None]:
    for _ in range(2):
        r = await api.client.post(
            "/v1/auth/login",
            json={"email": "nobody@example.com", "password": "wrong password"},
            headers={"X-Forwarded-For": FORGED},
        )
        assert r.status_code in (401, 429)
    return [e.ip for e in await audit(api, "login.failed")]


async def test_forwarded_for_is_ignored_without_trusted_proxies(api_settings: Settings) -> None:
    assert api_settings.trusted_proxies == []
    async with running(api_settings) as api:
        assert set(await _failed_login_ips(api)) == {"127.0.0.1"}


async def test_forwarded_for_is_believed_from_a_trusted_proxy(api_settings: Settings) -> None:
    settings = api_settings.model_copy(update={"trusted_proxies": ["127.0.0.0/8"]})
    async with running(settings) as api:
        assert set(await _failed_login_ips(api)) == {FORGED}


@pytest.mark.parametrize("entry", ["*", "proxy.internal", "10.0.0.0/33"])
def test_a_bad_proxy_entry_refuses_to_start(entry: str) -> None:
    with pytest.raises(ValueError, match="trusted_proxies"):
        Settings(trusted_proxies=[entry])
