"""A webhook URL whose host DNS cannot carry (a label over 63 bytes, a name
over 253, an empty label) answers 422 `invalid_url` at create and update —
found by schemathesis as a 500 (the resolver raised UnicodeError)."""

from __future__ import annotations

import pytest
from tests.events.conftest import Live
from tests.events.test_webhook_audit import create, strict  # noqa: F401  (fixture)

from aiprod.ssrf import WebhookURLError, parse_url

BAD_HOSTS = ["a" * 64 + ".example.com", ".".join(["abcdefghi"] * 26), "bad..example.com"]


@pytest.mark.parametrize("host", BAD_HOSTS)
def test_hosts_dns_cannot_carry_are_refused(host: str) -> None:
    with pytest.raises(WebhookURLError, match="valid DNS name"):
        parse_url(f"https://{host}/hook")


def test_ordinary_names_and_addresses_pass() -> None:
    for url in ("https://hooks.example.com/x", "http://93.184.215.14/a", "https://[2001:db8::1]/"):
        parse_url(url)


async def test_the_api_answers_422_not_500(strict: Live) -> None:  # noqa: F811
    _, user = await strict.account()
    good = await create(strict, user, "https://93.184.215.14/hook")
    assert good.status_code == 201, good.text
    for host in BAD_HOSTS:
        r = await create(strict, user, f"HTTPS://{host}/hook")
        assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_url", r.text
        r = await strict.http.patch(
            f"/v1/webhooks/{good.json()['id']}", json={"url": f"https://{host}/"}, headers=user
        )
        assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_url", r.text
