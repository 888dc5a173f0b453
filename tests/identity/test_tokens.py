"""Access and refresh tokens: claims, attacks, rotation, revocation, key rotation."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import select, update

from aiprod.identity import tokens
from aiprod.identity.models import AuthSession, RefreshToken, User
from aiprod.settings import Settings
from tests.identity.conftest import Api, audit, bearer, me_status, running


def _b64(obj: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")


def _claims(api: Api, token: str, **changes: Any) -> dict[str, Any]:
    """The claims of a real access token, changed."""
    claims = jwt.decode(token, options={"verify_signature": False})
    claims.update(changes)
    return claims


async def _refused(api: Api, token: str, reason: str) -> None:
    r = await api.client.get("/v1/me", headers=bearer(token))
    assert r.status_code == 401, r.text
    assert r.json()["error"]["code"] == "unauthorized"
    assert 'error="invalid_token"' in r.headers["www-authenticate"]
    assert reason.lower() in r.json()["error"]["message"].lower(), r.json()["error"]["message"]


async def test_access_token_claims(api: Api) -> None:
    user = await api.user()
    t = await api.login(user.email)
    header = jwt.get_unverified_header(t["access_token"])
    assert header["alg"] == "HS256"
    assert header["kid"] == api.identity.signing_keys.current_kid
    claims = jwt.decode(t["access_token"], options={"verify_signature": False})
    assert claims["aud"] == api.settings.jwt_audience
    assert claims["iss"] == api.settings.jwt_issuer
    assert claims["typ"] == "access"
    assert claims["sub"] == str(user.id)
    assert claims["sid"] == t["session_id"]
    assert len(claims["jti"]) == 32
    assert claims["exp"] - claims["iat"] == 15 * 60 == t["expires_in"]
    # Refresh tokens live 7 days and are stored only as a hash.
    async with api.db.session() as s:
        row = (await s.execute(select(RefreshToken))).scalar_one()
    assert row.token_hash == tokens.token_hash(t["refresh_token"])
    assert t["refresh_token"] not in row.token_hash
    assert (row.expires_at - row.created_at) == timedelta(days=7)


async def test_alg_none_is_refused(api: Api) -> None:
    user = await api.user()
    t = await api.login(user.email)
    claims = _claims(api, t["access_token"])
    header = {"alg": "none", "typ": "JWT", "kid": api.identity.signing_keys.current_kid}
    await _refused(api, f"{_b64(header)}.{_b64(claims)}.", "alg value is not allowed")


async def test_wrong_audience_is_refused(api: Api) -> None:
    user = await api.user()
    t = await api.login(user.email)
    kid = {"kid": api.identity.signing_keys.current_kid}
    token = jwt.encode(
        _claims(api, t["access_token"], aud="another-api"),
        api.identity.signing_keys.current,
        "HS256",
        kid,
    )
    await _refused(api, token, "audience")


async def test_expired_token_is_refused(api: Api) -> None:
    user = await api.user()
    t = await api.login(user.email)
    past = int((datetime.now(UTC) - timedelta(hours=1)).timestamp())
    claims = _claims(api, t["access_token"], iat=past, nbf=past, exp=past + 900)
    kid = {"kid": api.identity.signing_keys.current_kid}
    await _refused(
        api, jwt.encode(claims, api.identity.signing_keys.current, "HS256", kid), "expired"
    )


async def test_unknown_or_missing_kid_is_refused(api: Api) -> None:
    user = await api.user()
    t = await api.login(user.email)
    claims = _claims(api, t["access_token"])
    await _refused(
        api, jwt.encode(claims, api.identity.signing_keys.current, "HS256"), "unknown signing key"
    )
    other = jwt.encode(claims, api.identity.signing_keys.current, "HS256", {"kid": "not-ours"})
    await _refused(api, other, "unknown signing key")


async def test_rs256_token_with_our_kid_is_refused(api: Api) -> None:
    """Algorithm confusion: our kid, an asymmetric algorithm, the attacker's key."""
    user = await api.user()
    t = await api.login(user.email)
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    token = jwt.encode(
        _claims(api, t["access_token"]),
        pem,
        "RS256",
        {"kid": api.identity.signing_keys.current_kid},
    )
    await _refused(api, token, "alg value is not allowed")


async def test_refresh_token_used_as_access_token(api: Api) -> None:
    user = await api.user()
    t = await api.login(user.email)
    await _refused(api, t["refresh_token"], "not a JWT")


async def test_access_token_used_to_refresh(api: Api) -> None:
    user = await api.user()
    t = await api.login(user.email)
    r = await api.client.post("/v1/auth/refresh", json={"refresh_token": t["access_token"]})
    assert r.status_code == 401
    assert r.json()["error"]["message"] == "invalid refresh token"
    # …and the session is untouched.
    assert await me_status(api, bearer(t["access_token"])) == 200


async def test_replayed_refresh_token_revokes_the_session(api: Api) -> None:
    user = await api.user()
    first = await api.login(user.email)
    r = await api.client.post("/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert r.status_code == 200
    second = r.json()
    assert second["session_id"] == first["session_id"]
    assert await me_status(api, bearer(second["access_token"])) == 200

    replay = await api.client.post(
        "/v1/auth/refresh", json={"refresh_token": first["refresh_token"]}
    )
    assert replay.status_code == 401
    assert "already used" in replay.json()["error"]["message"]
    # The whole family is dead: the newer refresh token and every access token.
    r = await api.client.post("/v1/auth/refresh", json={"refresh_token": second["refresh_token"]})
    assert r.status_code == 401
    for t in (first, second):
        await _refused(api, t["access_token"], "revoked")
    [event] = await audit(api, "refresh.reuse_detected")
    assert event.actor_id == user.id and event.subject_id == first["session_id"]
    async with api.db.session() as s:
        session = await s.get(AuthSession, uuid.UUID(first["session_id"]))
    assert session is not None and session.revoked_reason == "reuse_detected"


async def test_expired_refresh_token_is_refused(api: Api) -> None:
    user = await api.user()
    t = await api.login(user.email)
    async with api.db.transaction() as s:
        await s.execute(
            update(RefreshToken).values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    r = await api.client.post("/v1/auth/refresh", json={"refresh_token": t["refresh_token"]})
    assert r.status_code == 401
    assert r.json()["error"]["message"] == "refresh token expired"


# ------------------------------------------------------------- revocation


async def test_logout_cuts_off_the_access_token_at_once(api: Api) -> None:
    user = await api.user()
    t = await api.login(user.email)
    other = await api.login(user.email)
    r = await api.client.post("/v1/auth/logout", json={"refresh_token": t["refresh_token"]})
    assert r.status_code == 204
    await _refused(api, t["access_token"], "revoked")  # not 15 minutes later: now
    assert await me_status(api, bearer(other["access_token"])) == 200  # another session
    assert [e.subject_id for e in await audit(api, "logout")] == [t["session_id"]]


async def test_revoke_own_sessions(api: Api) -> None:
    user = await api.user()
    a = await api.login(user.email)
    b = await api.login(user.email)
    listed = await api.client.get("/v1/auth/sessions", headers=bearer(a["access_token"]))
    items = {i["id"]: i["current"] for i in listed.json()["items"]}
    assert items == {a["session_id"]: True, b["session_id"]: False}

    r = await api.client.post(
        "/v1/auth/revoke", json={"session_id": b["session_id"]}, headers=bearer(a["access_token"])
    )
    assert r.json() == {"revoked": 1}
    await _refused(api, b["access_token"], "revoked")
    assert await me_status(api, bearer(a["access_token"])) == 200

    r = await api.client.post("/v1/auth/revoke", json={}, headers=bearer(a["access_token"]))
    assert r.json() == {"revoked": 1}
    await _refused(api, a["access_token"], "revoked")
    r = await api.client.post("/v1/auth/refresh", json={"refresh_token": a["refresh_token"]})
    assert r.status_code == 401


async def test_only_admins_revoke_other_users_sessions(api: Api) -> None:
    alice, bob = await api.user(), await api.user()
    a, b = await api.login(alice.email), await api.login(bob.email)
    # Another user's session id looks like a missing one; their user id is 403.
    r = await api.client.post(
        "/v1/auth/revoke", json={"session_id": b["session_id"]}, headers=bearer(a["access_token"])
    )
    assert r.status_code == 404
    r = await api.client.post(
        "/v1/auth/revoke", json={"user_id": str(bob.id)}, headers=bearer(a["access_token"])
    )
    assert r.status_code == 403
    assert await me_status(api, bearer(b["access_token"])) == 200

    admin = await api.user("admin")
    h = await api.headers(admin)
    r = await api.client.post("/v1/auth/revoke", json={"user_id": str(bob.id)}, headers=h)
    assert r.status_code == 200 and r.json() == {"revoked": 1}
    await _refused(api, b["access_token"], "revoked")


async def test_password_change_revokes_every_session(api: Api) -> None:
    user = await api.user()
    a, b = await api.login(user.email), await api.login(user.email)
    new = "a brand new passphrase"
    r = await api.client.post(
        "/v1/auth/password",
        json={"current_password": "wrong password!", "new_password": new},
        headers=bearer(a["access_token"]),
    )
    assert r.status_code == 403 and r.json()["error"]["code"] == "wrong_password"
    assert await me_status(api, bearer(a["access_token"])) == 200

    r = await api.client.post(
        "/v1/auth/password",
        json={"current_password": "correct horse battery", "new_password": new},
        headers=bearer(a["access_token"]),
    )
    assert r.status_code == 204, r.text
    for t in (a, b):
        await _refused(api, t["access_token"], "revoked")
        r = await api.client.post("/v1/auth/refresh", json={"refresh_token": t["refresh_token"]})
        assert r.status_code == 401
    r = await api.client.post("/v1/auth/login", json={"email": user.email, "password": new})
    assert r.status_code == 200
    assert [e.event for e in await audit(api, "password.changed")] == ["password.changed"]


async def test_disabling_a_user_revokes_sessions_for_good(api: Api) -> None:
    user = await api.user()
    t = await api.login(user.email)
    admin_headers = await api.headers(await api.user("admin"))
    url = f"/v1/admin/users/{user.id}"
    r = await api.client.patch(url, json={"is_active": False}, headers=admin_headers)
    assert r.status_code == 200 and r.json()["is_active"] is False
    await _refused(api, t["access_token"], "revoked")
    r = await api.client.patch(url, json={"is_active": True}, headers=admin_headers)
    assert r.status_code == 200
    # Enabling the account again does not revive its old sessions.
    await _refused(api, t["access_token"], "revoked")
    r = await api.client.post("/v1/auth/refresh", json={"refresh_token": t["refresh_token"]})
    assert r.status_code == 401


async def test_role_is_read_per_request_not_from_the_token(api: Api) -> None:
    user = await api.user()
    t = await api.login(user.email)
    async with api.db.transaction() as s:
        await s.execute(update(User).where(User.id == user.id).values(role="viewer"))
    r = await api.client.post(
        "/v1/productions", json={"prompt": "something new"}, headers=bearer(t["access_token"])
    )
    assert r.status_code == 403  # the token still says "user"
    assert jwt.decode(t["access_token"], options={"verify_signature": False})["role"] == "user"


# ------------------------------------------------------- signing-key rotation


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_signing_key_rotates_without_logging_anyone_out(api_settings: Settings) -> None:
    old_key = api_settings.secret_key
    assert old_key is not None
    async with running(api_settings) as first:
        user = await first.user()
        t = await first.login(user.email)
    new_key = "the-next-signing-key-" + "z" * 32
    rotated = api_settings.model_copy(
        update={"secret_key": new_key, "previous_secret_keys": [old_key]}
    )
    async with running(rotated) as second:
        assert await me_status(second, bearer(t["access_token"])) == 200  # old kid verifies
        fresh = await second.login(user.email)
        header = jwt.get_unverified_header(fresh["access_token"])
        assert header["kid"] == tokens.signing_key_id(new_key) != tokens.signing_key_id(old_key)
        r = await second.client.post("/v1/auth/refresh", json={"refresh_token": t["refresh_token"]})
        assert r.status_code == 200  # refresh tokens do not depend on the signing key
    retired = api_settings.model_copy(update={"secret_key": new_key, "previous_secret_keys": []})
    async with running(retired) as third:
        await _refused(third, t["access_token"], "unknown signing key")
        assert await me_status(third, bearer(fresh["access_token"])) == 200
