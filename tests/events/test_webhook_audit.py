"""The security review's webhook findings, each held by a test that failed
before the fix: approvals bound to the URL approved, `allow_private` decided by
the role, no receiver bodies in delivery records, IPv4-in-IPv6 and control
characters refused, no resolved addresses in refusals, secrets sealed at rest."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import socket
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import uvicorn
from sqlalchemy import select, update
from standardwebhooks.webhooks import Webhook
from starlette.requests import Request
from starlette.responses import Response
from tests.events.conftest import Live, free_port, make_settings, serve
from tests.events.test_webhooks import wait_for

from aiprod.db import migrate
from aiprod.db.base import JSONType, UTCDateTime, utcnow
from aiprod.db.engine import Database
from aiprod.events.models import WebhookDelivery, WebhookEndpoint
from aiprod.events.webhooks.service import WebhookService
from aiprod.ssrf import blocked_address

INTERNAL_BODY = b"db_password=hunter2; internal-only"
PRIVATE_ADDRESS = "10.20.30.40"


# ---------------------------------------------------------------- helpers


@dataclass
class Receiver:
    """Answers every POST with `status` and a body an internal host might send."""

    port: int
    status: int = 200
    calls: list[dict[str, Any]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        self.calls.append({"headers": dict(request.headers), "body": await request.body()})
        await Response(INTERNAL_BODY, status_code=self.status)(scope, receive, send)


@contextlib.asynccontextmanager
async def receiver(status: int = 200) -> AsyncIterator[Receiver]:
    rec = Receiver(free_port(), status)
    server = uvicorn.Server(
        uvicorn.Config(rec, host="127.0.0.1", port=rec.port, log_level="warning", lifespan="off")
    )
    task = asyncio.create_task(server.serve())
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "the receiver did not start"
        await asyncio.sleep(0.01)
    try:
        yield rec
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


async def finished_deliveries(live: Live, headers: dict[str, str], hook: str) -> list[Any]:
    r = await live.http.get(f"/v1/webhooks/{hook}/deliveries", headers=headers)
    assert r.status_code == 200, r.text
    return [d for d in r.json()["items"] if d["status"] in ("succeeded", "failed")]


async def create(live: Live, headers: dict[str, str], url: str, **body: Any) -> Any:
    return await live.http.post(
        "/v1/webhooks", json={"url": url, "event_types": ["job.queued"], **body}, headers=headers
    )


@pytest.fixture
async def strict(tmp_path: Path, database_url: str) -> AsyncIterator[Live]:
    """A server that holds endpoints to public addresses (the production default)."""
    settings = make_settings(
        tmp_path, database_url, webhook_allow_private_networks=False, webhook_max_attempts=1
    )
    async with serve(settings) as live:
        yield live


@pytest.fixture
async def lab(tmp_path: Path, database_url: str) -> AsyncIterator[Live]:
    """A server that lets every endpoint reach local receivers (one attempt each)."""
    async with serve(make_settings(tmp_path, database_url, webhook_max_attempts=1)) as live:
        yield live


@pytest.fixture
async def fake_dns(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Names → the address they resolve to, for the running loop (the server's)."""
    names: dict[str, str] = {}
    loop = asyncio.get_running_loop()
    real = loop.getaddrinfo

    async def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host in names:
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (names[host], port or 80))]
        return await real(host, port, *args, **kwargs)

    monkeypatch.setattr(loop, "getaddrinfo", getaddrinfo)
    return names


# ------------------------------------------------- approval bound to a URL


async def test_an_admins_approval_binds_to_the_exact_url(strict: Live) -> None:
    live = strict
    _, user = await live.account()
    _, admin = await live.account("admin")
    async with receiver() as rec:
        r = await create(live, user, "http://93.184.215.14/x")
        assert r.status_code == 201, r.text
        hook = r.json()["id"]
        # The admin approves the owner's internal receiver.
        r = await live.http.patch(
            f"/v1/webhooks/{hook}", json={"url": rec.url, "allow_private": True}, headers=admin
        )
        assert r.status_code == 200, r.text
        assert r.json()["allow_private"] is True
        # The owner cannot re-point the approval at another internal address...
        for url in ("http://127.0.0.1:9/admin", f"http://{PRIVATE_ADDRESS}/", "http://[::1]/"):
            r = await live.http.patch(f"/v1/webhooks/{hook}", json={"url": url}, headers=user)
            assert r.status_code == 422, (url, r.text)
            assert r.json()["error"]["code"] == "ssrf_blocked"
        r = await live.http.get(f"/v1/webhooks/{hook}", headers=user)
        assert r.json()["url"] == rec.url and r.json()["allow_private"] is True
        # ...and a public URL revokes it: coming back needs an admin again.
        r = await live.http.patch(
            f"/v1/webhooks/{hook}", json={"url": "http://93.184.215.14/y"}, headers=user
        )
        assert r.status_code == 200 and r.json()["allow_private"] is False
        r = await live.http.patch(f"/v1/webhooks/{hook}", json={"url": rec.url}, headers=user)
        assert r.status_code == 422 and r.json()["error"]["code"] == "ssrf_blocked"
        # An admin changing the URL without approving it again revokes it too.
        r = await live.http.patch(
            f"/v1/webhooks/{hook}", json={"url": rec.url, "allow_private": True}, headers=admin
        )
        assert r.status_code == 200 and r.json()["allow_private"] is True
        r = await live.http.patch(
            f"/v1/webhooks/{hook}", json={"url": f"http://127.0.0.1:{rec.port}/b"}, headers=admin
        )
        assert r.status_code == 422 and r.json()["error"]["code"] == "ssrf_blocked"
        # Other changes keep the approval.
        r = await live.http.patch(
            f"/v1/webhooks/{hook}", json={"description": "renamed"}, headers=user
        )
        assert r.status_code == 200 and r.json()["allow_private"] is True


async def test_deliveries_use_the_approval_only_for_its_url(strict: Live) -> None:
    """Even a row whose URL changed behind the service's back (an old row, a
    manual edit) gets no private reach: the dispatcher checks the binding."""
    live = strict
    _, admin = await live.account("admin")
    async with receiver() as rec, receiver() as other:
        r = await create(live, admin, rec.url, allow_private=True)
        assert r.status_code == 201, r.text
        hook = uuid.UUID(r.json()["id"])
        async with live.app.state.db.transaction() as s:
            await s.execute(
                update(WebhookEndpoint).where(WebhookEndpoint.id == hook).values(url=other.url)
            )
        await live.submit(admin)
        [delivery] = await wait_for(
            lambda: finished_deliveries(live, admin, str(hook)), "the delivery"
        )
        assert delivery["status"] == "failed" and other.calls == [] and rec.calls == []
        assert delivery["last_error"] == "refused: the host resolves to a non-public address"


# ---------------------------------------------- allow_private is the role's


async def test_only_the_admin_role_may_allow_private_addresses(strict: Live) -> None:
    live = strict
    _, user = await live.account()
    _, service = await live.account("service")
    _, admin = await live.account("admin")
    async with receiver() as rec:
        for who in (user, service):
            r = await create(live, who, rec.url, allow_private=True)
            assert r.status_code == 403, r.text
            r = await create(live, who, "http://93.184.215.14/x")
            assert r.status_code == 201, r.text
            r = await live.http.patch(
                f"/v1/webhooks/{r.json()['id']}", json={"allow_private": True}, headers=who
            )
            assert r.status_code == 403, r.text
        # The role decides, not what the credential carries: an admin's key
        # limited to webhooks may approve; a user's key with every scope may not.
        r = await live.http.post(
            "/v1/api-keys", json={"name": "hooks", "scopes": ["webhooks:write"]}, headers=admin
        )
        assert r.status_code == 201, r.text
        admin_key = {"Authorization": f"Bearer {r.json()['secret']}"}
        r = await create(live, admin_key, rec.url, allow_private=True)
        assert r.status_code == 201, r.text
        assert r.json()["allow_private"] is True
        r = await live.http.post("/v1/api-keys", json={"name": "all"}, headers=user)
        user_key = {"Authorization": f"Bearer {r.json()['secret']}"}
        r = await create(live, user_key, rec.url, allow_private=True)
        assert r.status_code == 403, r.text


# ---------------------------------------------- no receiver bodies recorded


async def test_delivery_records_keep_our_reason_never_the_receivers_body(lab: Live) -> None:
    live = lab
    _, headers = await live.account()
    async with receiver(status=500) as rec:
        failing = (await create(live, headers, rec.url)).json()["id"]
        refused = (await create(live, headers, f"http://127.0.0.1:{free_port()}/x")).json()["id"]
        await live.submit(headers)
        [answered] = await wait_for(
            lambda: finished_deliveries(live, headers, failing), "the failed delivery"
        )
        [unreachable] = await wait_for(
            lambda: finished_deliveries(live, headers, refused), "the refused delivery"
        )
    assert answered["last_status_code"] == 500 and answered["last_error"] == "HTTP 500"
    assert unreachable["last_status_code"] is None
    assert unreachable["last_error"] == "connection refused"
    for hook, delivery in ((failing, answered), (refused, unreachable)):
        r = await live.http.get(f"/v1/webhooks/{hook}/deliveries/{delivery['id']}", headers=headers)
        assert INTERNAL_BODY.decode() not in r.text
    async with live.app.state.db.session() as s:
        stored = (await s.execute(select(WebhookDelivery.last_error))).scalars().all()
    assert all("hunter2" not in (e or "") for e in stored)


def test_the_migration_drops_recorded_bodies_and_binds_approvals(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'legacy.db'}"
    migrate.upgrade(url, "0003")
    endpoints = sa.table(
        "webhook_endpoints",
        sa.column("id", sa.Uuid),
        sa.column("owner_id", sa.Uuid),
        sa.column("url", sa.String),
        sa.column("event_types", JSONType),
        sa.column("secret", sa.String),
        sa.column("enabled", sa.Boolean),
        sa.column("allow_private", sa.Boolean),
        sa.column("created_at", UTCDateTime),
        sa.column("updated_at", UTCDateTime),
    )
    deliveries = sa.table(
        "webhook_deliveries",
        sa.column("id", sa.Uuid),
        sa.column("endpoint_id", sa.Uuid),
        sa.column("message_id", sa.String),
        sa.column("event_type", sa.String),
        sa.column("payload", JSONType),
        sa.column("status", sa.String),
        sa.column("attempts", sa.Integer),
        sa.column("next_attempt_at", UTCDateTime),
        sa.column("last_status_code", sa.Integer),
        sa.column("last_error", sa.Text),
        sa.column("created_at", UTCDateTime),
    )
    approved, public = uuid.uuid4(), uuid.uuid4()
    now = utcnow()
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'legacy.db'}")
    with engine.begin() as c:
        for eid, private in ((approved, True), (public, False)):
            c.execute(
                endpoints.insert().values(
                    id=eid,
                    owner_id=uuid.uuid4(),
                    url=f"http://10.0.0.{int(private)}/h",
                    event_types=["*"],
                    secret="whsec_" + "A" * 32,
                    enabled=True,
                    allow_private=private,
                    created_at=now,
                    updated_at=now,
                )
            )
        for code, error in (
            (500, "HTTP 500: " + INTERNAL_BODY.decode()),
            (None, f"RemoteProtocolError: illegal header {INTERNAL_BODY.decode()}"),
            (None, "the endpoint is disabled"),
            (200, None),
        ):
            c.execute(
                deliveries.insert().values(
                    id=uuid.uuid4(),
                    endpoint_id=approved,
                    message_id="msg_x",
                    event_type="job.queued",
                    payload={},
                    status="failed",
                    attempts=1,
                    next_attempt_at=now,
                    last_status_code=code,
                    last_error=error,
                    created_at=now,
                )
            )
    migrate.upgrade(url)
    with engine.connect() as c:
        errors = sorted(
            str(e)
            for e in c.execute(sa.text("SELECT last_error FROM webhook_deliveries")).scalars()
        )
        bound = {
            str(eid): url
            for eid, url in c.execute(sa.text("SELECT id, private_url FROM webhook_endpoints"))
        }
    engine.dispose()
    assert errors == ["HTTP 500", "None", "request failed", "the endpoint is disabled"]
    assert bound == {approved.hex: "http://10.0.0.1/h", public.hex: None}


# --------------------------------------------- IPv4 in IPv6, control chars


@pytest.mark.parametrize(
    "address",
    [
        "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
        "64:ff9b::808:808",  # NAT64 of a public address: still a gateway's choice
        "64:ff9b:1::a00:1",  # NAT64, local-use prefix
        "::7f00:1",  # IPv4-compatible
        "::808:808",
        "::ffff:a00:1",  # IPv4-mapped
        "::ffff:808:808",
        "::ffff:0:a00:1",  # IPv4-translated
        "2002:7f00:1::1",  # 6to4 around 127.0.0.1
        "2002:a00:1::1",  # 6to4 around 10.0.0.1
        "fec0::1",  # site-local
        "2001::1",  # Teredo
        "100::1",  # discard-only
        "::",
        "fe80::1",
        "fc00::1",
        "ff02::1",
    ],
)
def test_ipv6_forms_that_embed_or_hide_ipv4_are_not_public(address: str) -> None:
    assert blocked_address(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["2606:4700:4700::1111", "2002:808:808::1", "8.8.8.8"])
def test_public_addresses_stay_allowed(address: str) -> None:
    assert not blocked_address(ipaddress.ip_address(address))


async def test_ipv4_in_ipv6_and_control_characters_are_refused(strict: Live) -> None:
    live = strict
    _, user = await live.account()
    for address in ("64:ff9b::7f00:1", "::7f00:1", "2002:7f00:1::1", "fec0::1", "::ffff:a00:1"):
        r = await create(live, user, f"http://[{address}]/x")
        assert r.status_code == 422, (address, r.text)
        assert r.json()["error"]["code"] == "ssrf_blocked", address
    r = await create(live, user, "http://[2002:808:808::1]/x")
    assert r.status_code == 201, r.text
    hook = r.json()["id"]
    for url in (
        "http://93.184.215.14/a\r\nX-Injected: 1",
        "http://93.184.215.14/a\nb",
        "http://93.184.215.14/a\tb",
        "http://93.184.215.14/a b",
        " http://93.184.215.14/a",
        "http://93.184.215.14/a\x00",
        "http://93.184.215.14/a\u200bb",
    ):
        r = await create(live, user, url)
        assert r.status_code == 422, (url, r.text)
        assert r.json()["error"]["code"] == "invalid_url", url
        r = await live.http.patch(f"/v1/webhooks/{hook}", json={"url": url}, headers=user)
        assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_url", url
    r = await live.http.get("/v1/webhooks", headers=user)
    assert [e["url"] for e in r.json()["items"]] == ["http://[2002:808:808::1]/x"]


# ------------------------------------------- refusals reveal no addresses


async def test_refusals_do_not_reveal_what_a_name_resolves_to(
    strict: Live, fake_dns: dict[str, str]
) -> None:
    live = strict
    _, user = await live.account()
    fake_dns["intranet.example.test"] = PRIVATE_ADDRESS
    r = await create(live, user, "http://intranet.example.test/x")
    assert r.status_code == 422 and r.json()["error"]["code"] == "ssrf_blocked"
    assert PRIVATE_ADDRESS not in r.text
    assert "non-public address" in r.json()["error"]["message"]
    # At delivery time too: a name that turns private after registration.
    fake_dns["rebinding.example.test"] = "93.184.215.14"
    r = await create(live, user, "http://rebinding.example.test/x")
    assert r.status_code == 201, r.text
    hook = r.json()["id"]
    fake_dns["rebinding.example.test"] = PRIVATE_ADDRESS
    await live.submit(user)
    [delivery] = await wait_for(lambda: finished_deliveries(live, user, hook), "the delivery")
    assert delivery["status"] == "failed"
    assert delivery["last_error"] == "refused: the host resolves to a non-public address"
    r = await live.http.get(f"/v1/webhooks/{hook}/deliveries", headers=user)
    assert PRIVATE_ADDRESS not in r.text


# --------------------------------------------------- secrets sealed at rest


async def _stored_secret(live: Live, hook: str) -> str:
    async with live.app.state.db.session() as s:
        row = await s.get(WebhookEndpoint, uuid.UUID(hook))
    assert row is not None
    return row.secret


async def test_signing_secrets_are_sealed_at_rest(lab: Live) -> None:
    live = lab
    _, headers = await live.account()
    async with receiver() as rec:
        r = await create(live, headers, rec.url)
        hook, secret = r.json()["id"], r.json()["secret"]
        stored = await _stored_secret(live, hook)
        assert stored.startswith("v1:") and secret not in stored
        secret_body = secret.removeprefix("whsec_")
        assert secret_body not in stored
        r = await live.http.post(f"/v1/webhooks/{hook}/rotate-secret", headers=headers)
        rotated = r.json()["secret"]
        assert rotated != secret and rotated not in await _stored_secret(live, hook)
        await live.submit(headers)
        await wait_for(lambda: rec.calls, "a delivery")
        call = rec.calls[0]
        assert json.loads(call["body"])["type"] == "job.queued"
        Webhook(rotated).verify(call["body"], call["headers"])  # signed with the real secret


async def test_plaintext_secrets_keep_working_and_are_sealed_on_start(
    lab: Live, tmp_path: Path
) -> None:
    live = lab
    _, headers = await live.account()
    plain = "whsec_" + "B" * 32
    async with receiver() as rec:
        hook = (await create(live, headers, rec.url)).json()["id"]
        async with live.app.state.db.transaction() as s:  # a row from before sealing
            await s.execute(
                update(WebhookEndpoint)
                .where(WebhookEndpoint.id == uuid.UUID(hook))
                .values(secret=plain)
            )
        await live.submit(headers)
        await wait_for(lambda: rec.calls, "a delivery")
        Webhook(plain).verify(rec.calls[0]["body"], rec.calls[0]["headers"])
    from aiprod.events.webhooks.secrets import SecretBox

    # What each API process does at start-up, here with a rotated secret key.
    old_key = live.settings.secret_key
    assert old_key is not None
    rotated = make_settings(
        tmp_path,
        live.settings.sqlalchemy_url,
        secret_key="a-brand-new-signing-key-" + "y" * 32,
        previous_secret_keys=[old_key],
    )
    db = Database(rotated.sqlalchemy_url)
    try:
        service = WebhookService(db, SecretBox.from_settings(rotated))
        assert await service.reseal_secrets() >= 1
        assert await service.reseal_secrets() == 0  # idempotent
        box = SecretBox.from_settings(rotated)
        async with db.session() as s:
            rows = (await s.execute(select(WebhookEndpoint))).scalars().all()
        assert rows and all(box.is_current(e.secret) for e in rows)
        [row] = [e for e in rows if str(e.id) == hook]
        assert box.open(row.secret, row.id) == plain
    finally:
        await db.dispose()


def test_a_sealed_secret_opens_only_for_its_row_and_known_keys(tmp_path: Path) -> None:
    from aiprod.events.webhooks.secrets import SecretBox, SecretUnreadable

    first = make_settings(tmp_path, "sqlite+aiosqlite://", secret_key="k" * 40)
    second = make_settings(
        tmp_path, "sqlite+aiosqlite://", secret_key="n" * 40, previous_secret_keys=["k" * 40]
    )
    old, new = SecretBox.from_settings(first), SecretBox.from_settings(second)
    row, other = uuid.uuid4(), uuid.uuid4()
    sealed = old.seal("whsec_" + "C" * 32, row)
    assert old.open(sealed, row) == new.open(sealed, row) == "whsec_" + "C" * 32
    assert old.is_current(sealed) and not new.is_current(sealed)
    with pytest.raises(SecretUnreadable):
        old.open(sealed, other)  # copied to another row
    with pytest.raises(SecretUnreadable):
        old.open(new.seal("whsec_x", row), row)  # a key this server does not have
    assert old.open("whsec_legacy", row) == "whsec_legacy"
