"""API keys: shown once, checksummed, stored as HMAC, scoped, expiring, rotated
with a grace period (at most two versions alive), revoked one by one or all."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from aiprod.identity import passwords
from aiprod.identity.api_keys import format as key_format
from aiprod.identity.api_keys.rotation import RotationTask
from aiprod.identity.api_keys.service import KeyRotated
from aiprod.identity.models import ApiKey, User
from aiprod.identity.tokens import secret_from_file
from tests.identity.conftest import Api, audit, bearer, make_key, me_status


async def _age(api: Api, key_id: str, days: float) -> None:
    """Pretend the key version was made `days` ago."""
    async with api.db.transaction() as s:
        await s.execute(
            update(ApiKey)
            .where(ApiKey.id == uuid.UUID(key_id))
            .values(created_at=datetime.now(UTC) - timedelta(days=days))
        )


async def _expire(api: Api, key_id: str) -> None:
    async with api.db.transaction() as s:
        await s.execute(
            update(ApiKey)
            .where(ApiKey.id == uuid.UUID(key_id))
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )


def test_key_format_and_checksum() -> None:
    key = key_format.generate()
    assert key.startswith("aipk_") and len(key) == key_format.LENGTH == 41
    assert key_format.well_formed(key)
    typo = key[:10] + ("A" if key[10] != "A" else "B") + key[11:]
    assert not key_format.well_formed(typo)
    assert not key_format.well_formed(key + "x")
    assert not key_format.well_formed("aipk_" + "!" * 36)
    assert len({key_format.generate() for _ in range(200)}) == 200


async def test_created_key_is_shown_once_and_stored_as_hmac(api: Api) -> None:
    user, headers = await api.account()
    key, secret = await make_key(api, headers, name="ci", expires_in_days=30)
    assert key_format.well_formed(secret)
    assert key["prefix"] == secret[:13] and key["status"] == "active"
    assert key["scopes"] == sorted(
        [
            "jobs:approve",
            "jobs:create",
            "jobs:delete",
            "jobs:read",
            "jobs:update",
            "media:read",
            "media:write",
            "results:read",
            "webhooks:read",
            "webhooks:write",
        ]
    )
    expires = datetime.fromisoformat(key["expires_at"]) - datetime.fromisoformat(key["created_at"])
    assert expires == timedelta(days=30)
    async with api.db.session() as s:
        row = (await s.execute(select(ApiKey))).scalar_one()
    server_secret = secret_from_file(api.settings.data_dir / "api-key.secret").encode()
    assert row.digest == hmac.new(server_secret, secret.encode(), hashlib.sha256).hexdigest()
    # Never shown again.
    listed = await api.client.get("/v1/api-keys", headers=headers)
    one = await api.client.get(f"/v1/api-keys/{key['id']}", headers=headers)
    assert secret not in listed.text and secret not in one.text
    assert listed.json()["items"][0]["id"] == key["id"]
    # It authenticates, as its owner.
    me = await api.client.get("/v1/me", headers=bearer(secret))
    assert me.status_code == 200 and me.json()["id"] == str(user.id)


async def test_key_verification_runs_no_password_kdf(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, headers = await api.account()
    _, secret = await make_key(api, headers)

    def forbidden(*_: object) -> bool:
        raise AssertionError("API keys must not be checked with Argon2")

    monkeypatch.setattr(passwords._hasher.hashers[0], "verify", forbidden)
    assert await me_status(api, bearer(secret)) == 200


@pytest.mark.parametrize(
    "token",
    ["aipk_" + "0" * 36, "aipk_short", "aipk_" + "A" * 30 + "ZZZZZZ"],
    ids=["bad-checksum", "short", "wrong-checksum"],
)
async def test_malformed_keys_are_refused(api: Api, token: str) -> None:
    r = await api.client.get("/v1/me", headers=bearer(token))
    assert r.status_code == 401 and r.json()["error"]["message"] == "invalid API key"


async def test_unknown_well_formed_key_is_refused(api: Api) -> None:
    r = await api.client.get("/v1/me", headers=bearer(key_format.generate()))
    assert r.status_code == 401 and r.json()["error"]["message"] == "invalid API key"


async def test_scopes_limit_a_key(api: Api) -> None:
    _, headers = await api.account()
    job = await api.submit(headers)
    _, reader = await make_key(api, headers, scopes=["jobs:read"])
    r = await api.client.get(f"/v1/productions/{job['id']}", headers=bearer(reader))
    assert r.status_code == 200
    r = await api.client.post("/v1/productions", json={"prompt": "x"}, headers=bearer(reader))
    assert r.status_code == 403
    assert "jobs:create" in r.json()["error"]["message"]
    r = await api.client.get(f"/v1/productions/{job['id']}/artifacts", headers=bearer(reader))
    assert r.status_code == 403  # results:read not granted
    denied = await audit(api, "permission.denied")
    assert [e.details["via"] for e in denied] == ["api_key", "api_key"]


async def test_scopes_must_be_a_subset_of_the_owners_permissions(api: Api) -> None:
    _, viewer = await api.account("viewer")
    r = await api.client.post(
        "/v1/api-keys", json={"name": "x", "scopes": ["jobs:create"]}, headers=viewer
    )
    assert r.status_code == 422
    _, user = await api.account()
    r = await api.client.post(
        "/v1/api-keys", json={"name": "x", "scopes": ["admin:audit"]}, headers=user
    )
    assert r.status_code == 422
    r = await api.client.post("/v1/api-keys", json={"name": "x", "scopes": ["root"]}, headers=user)
    assert r.status_code == 422
    key, _ = await make_key(api, viewer)
    assert key["scopes"] == ["jobs:read", "media:read", "results:read"]


async def test_key_permissions_follow_the_owners_role(api: Api) -> None:
    owner, headers = await api.account()
    _, secret = await make_key(api, headers)
    async with api.db.transaction() as s:
        await s.execute(update(User).where(User.id == owner.id).values(role="viewer"))
    r = await api.client.post("/v1/productions", json={"prompt": "x"}, headers=bearer(secret))
    assert r.status_code == 403  # the key says jobs:create; the role no longer does
    async with api.db.transaction() as s:
        await s.execute(update(User).where(User.id == owner.id).values(is_active=False))
    assert await me_status(api, bearer(secret)) == 401


async def test_a_key_cannot_manage_keys(api: Api) -> None:
    _, headers = await api.account()
    key, secret = await make_key(api, headers)
    for method, path in (
        ("POST", "/v1/api-keys"),
        ("GET", "/v1/api-keys"),
        ("POST", f"/v1/api-keys/{key['id']}/rotate"),
        ("POST", "/v1/auth/password"),
    ):
        body = {"name": "x"} if path == "/v1/api-keys" else {}
        if path.endswith("password"):
            body = {"current_password": "x", "new_password": "y" * 12}
        r = await api.client.request(
            method, path, json=body if method == "POST" else None, headers=bearer(secret)
        )
        assert r.status_code == 403, (method, path, r.text)


async def test_expired_key_is_refused(api: Api) -> None:
    _, headers = await api.account()
    key, secret = await make_key(api, headers)
    await _expire(api, key["id"])
    r = await api.client.get("/v1/me", headers=bearer(secret))
    assert r.status_code == 401 and "expired" in r.json()["error"]["message"]


async def test_rotation_keeps_the_previous_version_for_the_grace_period(api: Api) -> None:
    _, headers = await api.account()
    v1, s1 = await make_key(api, headers)
    r = await api.client.post(f"/v1/api-keys/{v1['id']}/rotate", json={}, headers=headers)
    assert r.status_code == 201, r.text
    v2, s2 = r.json()["key"], r.json()["secret"]
    assert s2 != s1 and v2["version"] == 2 and v2["lineage_id"] == v1["lineage_id"]
    assert v2["scopes"] == v1["scopes"]
    # Both work during the grace period (7 days by default).
    assert await me_status(api, bearer(s1)) == 200
    assert await me_status(api, bearer(s2)) == 200
    old = (await api.client.get(f"/v1/api-keys/{v1['id']}", headers=headers)).json()
    assert old["status"] == "grace"
    grace = datetime.fromisoformat(old["expires_at"]) - datetime.fromisoformat(old["superseded_at"])
    assert abs(grace - timedelta(days=7)) < timedelta(seconds=1)
    # After the grace period the rotated key is dead; the new one lives on.
    await _expire(api, v1["id"])
    r = await api.client.get("/v1/me", headers=bearer(s1))
    assert r.status_code == 401 and "expired" in r.json()["error"]["message"]
    assert await me_status(api, bearer(s2)) == 200
    # Only the newest version can be rotated.
    r = await api.client.post(f"/v1/api-keys/{v1['id']}/rotate", json={}, headers=headers)
    assert r.status_code == 409


async def test_at_most_two_versions_are_alive(api: Api) -> None:
    _, headers = await api.account()
    v1, s1 = await make_key(api, headers)
    r2 = await api.client.post(f"/v1/api-keys/{v1['id']}/rotate", json={}, headers=headers)
    v2, s2 = r2.json()["key"], r2.json()["secret"]
    r3 = await api.client.post(f"/v1/api-keys/{v2['id']}/rotate", json={}, headers=headers)
    s3 = r3.json()["secret"]
    assert await me_status(api, bearer(s1)) == 401  # v1 died when v3 was made
    assert await me_status(api, bearer(s2)) == 200
    assert await me_status(api, bearer(s3)) == 200
    statuses = sorted(
        k["status"] for k in (await api.client.get("/v1/api-keys", headers=headers)).json()["items"]
    )
    assert statuses == ["active", "grace", "revoked"]


async def test_rotation_with_no_grace_cuts_the_old_version_at_once(api: Api) -> None:
    _, headers = await api.account()
    v1, s1 = await make_key(api, headers)
    r = await api.client.post(
        f"/v1/api-keys/{v1['id']}/rotate", json={"grace_seconds": 0}, headers=headers
    )
    assert await me_status(api, bearer(s1)) == 401
    assert await me_status(api, bearer(r.json()["secret"])) == 200


async def test_revoke_one_and_all(api: Api) -> None:
    _, headers = await api.account()
    k1, s1 = await make_key(api, headers)
    _, s2 = await make_key(api, headers)
    _, s3 = await make_key(api, headers)
    r = await api.client.delete(f"/v1/api-keys/{k1['id']}", headers=headers)
    assert r.status_code == 204
    assert await me_status(api, bearer(s1)) == 401
    assert await me_status(api, bearer(s2)) == 200
    r = await api.client.post("/v1/api-keys/revoke-all", json={}, headers=headers)
    assert r.json() == {"revoked": 2}
    assert await me_status(api, bearer(s2)) == 401
    assert await me_status(api, bearer(s3)) == 401
    events = [e.event for e in await audit(api) if e.event.startswith("api_key.")]
    assert events == ["api_key.created"] * 3 + ["api_key.revoked", "api_key.revoked_all"]


async def test_other_users_keys_are_404_and_admins_reach_them(api: Api) -> None:
    _, alice = await api.account()
    _, bob = await api.account()
    key, secret = await make_key(api, alice)
    for method, path in (
        ("GET", f"/v1/api-keys/{key['id']}"),
        ("POST", f"/v1/api-keys/{key['id']}/rotate"),
        ("DELETE", f"/v1/api-keys/{key['id']}"),
    ):
        r = await api.client.request(
            method, path, json={} if method == "POST" else None, headers=bob
        )
        assert r.status_code == 404, (method, path)
    assert (await api.client.get("/v1/api-keys", headers=bob)).json()["items"] == []
    bob_id = (await api.client.get("/v1/me", headers=bob)).json()["id"]
    r = await api.client.post("/v1/api-keys/revoke-all", json={"user_id": bob_id}, headers=alice)
    assert r.status_code == 403
    _, admin = await api.account("admin")
    r = await api.client.delete(f"/v1/api-keys/{key['id']}", headers=admin)
    assert r.status_code == 204
    assert await me_status(api, bearer(secret)) == 401


async def test_admin_makes_a_key_for_a_service_account(api: Api) -> None:
    service = await api.user("service")
    _, admin = await api.account("admin")
    key, secret = await make_key(api, admin, user_id=str(service.id), scopes=["jobs:create"])
    assert key["user_id"] == str(service.id)
    body = {"prompt": "How honeybees turn nectar into honey"}
    r = await api.client.post("/v1/productions", json=body, headers=bearer(secret))
    assert r.status_code == 202
    _, user = await api.account()
    r = await api.client.post(
        "/v1/api-keys", json={"name": "x", "user_id": str(service.id)}, headers=user
    )
    assert r.status_code == 403


async def test_admin_rotates_due_keys_and_owners_claim_them(api: Api) -> None:
    owner, headers = await api.account()
    notices: list[KeyRotated] = []

    async def listener(n: KeyRotated) -> None:
        notices.append(n)

    api.identity.api_keys.listeners.append(listener)
    old, old_secret = await make_key(api, headers)
    fresh, _ = await make_key(api, headers)
    await _age(api, old["id"], 31)
    _, admin = await api.account("admin")

    r = await api.client.post("/v1/admin/keys/rotate", json={}, headers=admin)
    assert r.status_code == 200, r.text
    [rotated] = r.json()["rotated"]
    assert rotated["previous_key_id"] == old["id"] and rotated["pending"] is True
    assert [(n.owner_id, n.previous_key_id, n.type) for n in notices] == [
        (owner.id, uuid.UUID(old["id"]), "api_key.rotated")
    ]
    # Running it again finds nothing: the old version is already rotated.
    again = await api.client.post("/v1/admin/keys/rotate", json={}, headers=admin)
    assert again.json()["rotated"] == []
    # The old secret works for the grace period; the new version has no secret yet.
    assert await me_status(api, bearer(old_secret)) == 200
    pending = (await api.client.get(f"/v1/api-keys/{rotated['key_id']}", headers=headers)).json()
    assert pending["status"] == "pending" and pending["prefix"] is None
    # Only the owner claims it, once.
    r = await api.client.post(f"/v1/api-keys/{rotated['key_id']}/claim", headers=admin)
    assert r.status_code == 404
    r = await api.client.post(f"/v1/api-keys/{rotated['key_id']}/claim", headers=headers)
    assert r.status_code == 201
    new_secret = r.json()["secret"]
    assert await me_status(api, bearer(new_secret)) == 200
    r = await api.client.post(f"/v1/api-keys/{rotated['key_id']}/claim", headers=headers)
    assert r.status_code == 409
    assert fresh["id"] not in {n["previous_key_id"] for n in again.json()["rotated"]}
    [event] = await audit(api, "api_key.rotated")
    assert event.details["by"] == "admin" and event.details["pending"] is True


async def test_the_periodic_task_rotates_old_keys(api: Api) -> None:
    _, headers = await api.account()
    old, _ = await make_key(api, headers)
    await _age(api, old["id"], 45)
    notices: list[KeyRotated] = []
    done = asyncio.Event()

    async def listener(n: KeyRotated) -> None:
        notices.append(n)
        done.set()

    api.identity.api_keys.listeners.append(listener)
    task = RotationTask(api.identity, period=3600)
    try:
        await asyncio.wait_for(done.wait(), timeout=30)
    finally:
        await task.close()
    assert [n.previous_key_id for n in notices] == [uuid.UUID(old["id"])]
    assert notices[0].by == "schedule"
    [event] = await audit(api, "api_key.rotated")
    assert event.actor == "system"


async def test_no_secret_reaches_logs_or_the_audit_log(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    user, headers = await api.account()
    tokens = await api.login(user.email)
    key, secret = await make_key(api, headers)
    rotated = await api.client.post(f"/v1/api-keys/{key['id']}/rotate", json={}, headers=headers)
    r = await api.client.post("/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    await api.client.post("/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    await api.client.post(
        "/v1/auth/login", json={"email": user.email, "password": "a wrong password"}
    )
    secrets = [
        secret,
        rotated.json()["secret"],
        tokens["access_token"],
        tokens["refresh_token"],
        r.json()["refresh_token"],
        "a wrong password",
        "correct horse battery",
    ]
    rows = " ".join(repr(e.details) + repr(e.actor) for e in await audit(api))
    for value in secrets:
        assert value not in caplog.text
        assert value not in rows
