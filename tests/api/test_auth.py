"""Login, refresh rotation, logout and access-token checks over HTTP."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from sqlalchemy import update

from aiprod.identity.models import User
from tests.api.conftest import PASSWORD, Api


def _assert_401(r: Any) -> None:
    assert r.status_code == 401, r.text
    assert r.headers["www-authenticate"].startswith("Bearer")
    body = r.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == "unauthorized"


async def test_login_returns_a_token_pair(api: Api) -> None:
    user = await api.user()
    r = await api.client.post("/v1/auth/login", json={"email": user.email, "password": PASSWORD})
    assert r.status_code == 200
    body = r.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == api.settings.access_token_minutes * 60
    assert body["refresh_token"].startswith("rt_")
    assert r.headers["cache-control"] == "no-store"  # tokens must not be cached
    me = await api.client.get("/v1/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.status_code == 200
    assert me.json()["email"] == user.email
    assert me.json()["role"] == "user"


async def test_login_email_is_case_insensitive(api: Api) -> None:
    user = await api.user()
    r = await api.client.post(
        "/v1/auth/login", json={"email": user.email.upper(), "password": PASSWORD}
    )
    assert r.status_code == 200


async def test_unknown_user_and_wrong_password_answer_the_same(api: Api) -> None:
    user = await api.user()
    wrong = await api.client.post(
        "/v1/auth/login", json={"email": user.email, "password": "not the password"}
    )
    unknown = await api.client.post(
        "/v1/auth/login", json={"email": "nobody@example.com", "password": "not the password"}
    )
    for r in (wrong, unknown):
        _assert_401(r)
    assert wrong.json() == unknown.json()
    assert wrong.headers["www-authenticate"] == unknown.headers["www-authenticate"]


async def test_disabled_user_cannot_log_in(api: Api) -> None:
    user = await api.user()
    async with api.db.transaction() as s:
        await s.execute(update(User).where(User.id == user.id).values(is_active=False))
    r = await api.client.post("/v1/auth/login", json={"email": user.email, "password": PASSWORD})
    _assert_401(r)
    assert r.json()["error"]["message"] == "invalid email or password"


async def test_login_rejects_unknown_fields(api: Api) -> None:
    r = await api.client.post(
        "/v1/auth/login", json={"email": "a@b.c", "password": "x", "remember": True}
    )
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "validation_error"


async def test_refresh_rotates_and_reuse_revokes_the_family(api: Api) -> None:
    user = await api.user()
    first = await api.login(user.email)
    r = await api.client.post("/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert r.status_code == 200
    second = r.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]

    # The spent token again: theft signal → 401 and the whole login is revoked.
    reuse = await api.client.post(
        "/v1/auth/refresh", json={"refresh_token": first["refresh_token"]}
    )
    _assert_401(reuse)
    later = await api.client.post(
        "/v1/auth/refresh", json={"refresh_token": second["refresh_token"]}
    )
    _assert_401(later)

    # Another login of the same user is a different family and still works.
    other = await api.login(user.email)
    r = await api.client.post("/v1/auth/refresh", json={"refresh_token": other["refresh_token"]})
    assert r.status_code == 200


async def test_refresh_with_unknown_token(api: Api) -> None:
    r = await api.client.post("/v1/auth/refresh", json={"refresh_token": "rt_nonsense"})
    _assert_401(r)


async def test_logout_revokes_the_refresh_token(api: Api) -> None:
    user = await api.user()
    tokens = await api.login(user.email)
    r = await api.client.post("/v1/auth/logout", json={"refresh_token": tokens["refresh_token"]})
    assert r.status_code == 204
    assert r.content == b""
    r = await api.client.post("/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    _assert_401(r)
    # Repeating it is harmless.
    r = await api.client.post("/v1/auth/logout", json={"refresh_token": tokens["refresh_token"]})
    assert r.status_code == 204


def _b64(obj: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")


def _claims(api: Api, user: User, sid: str, **changes: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    claims: dict[str, Any] = {
        "sub": str(user.id),
        "sid": sid,
        "role": user.role,
        "iss": api.settings.jwt_issuer,
        "aud": api.settings.jwt_audience,
        "typ": "access",
        "jti": uuid.uuid4().hex,
        "iat": now,
        "nbf": now,
        "exp": now + timedelta(minutes=5),
    }
    claims.update(changes)
    return claims


BAD_TOKENS = [
    "tampered",
    "expired",
    "wrong_audience",
    "wrong_issuer",
    "alg_none",
    "other_key",
    "not_access",
    "refresh_as_bearer",
    "garbage",
    "unknown_user",
]


@pytest.mark.parametrize("kind", BAD_TOKENS)
async def test_bad_access_tokens_are_refused(api: Api, kind: str) -> None:
    user = await api.user()
    tokens = await api.login(user.email)
    key = api.identity.signing_keys.current
    sid = str(tokens["session_id"])
    kid = {"kid": api.identity.signing_keys.current_kid}  # so only the attack itself can fail

    def sign(claims: dict[str, Any], secret: str = key) -> str:
        return jwt.encode(claims, secret, "HS256", headers=kid)

    if kind == "tampered":
        head, body, sig = tokens["access_token"].split(".")
        claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        claims["role"] = "admin"
        token = f"{head}.{_b64(claims)}.{sig}"
    elif kind == "expired":
        past = datetime.now(UTC) - timedelta(hours=1)
        token = sign(_claims(api, user, sid, iat=past, nbf=past, exp=past + timedelta(minutes=1)))
    elif kind == "wrong_audience":
        token = sign(_claims(api, user, sid, aud="someone-else"))
    elif kind == "wrong_issuer":
        token = sign(_claims(api, user, sid, iss="evil"))
    elif kind == "alg_none":
        claims = _claims(api, user, sid)
        for k in ("iat", "nbf", "exp"):
            claims[k] = int(claims[k].timestamp())
        header = {"alg": "none", "typ": "JWT", **kid}
        token = f"{_b64(header)}.{_b64(claims)}."
    elif kind == "other_key":
        token = sign(_claims(api, user, sid), "another-signing-key-" + "y" * 32)
    elif kind == "not_access":
        token = sign(_claims(api, user, sid, typ="refresh"))
    elif kind == "refresh_as_bearer":
        token = tokens["refresh_token"]
    elif kind == "garbage":
        token = "not-a-jwt"
    else:
        token = sign(_claims(api, user, sid, sub=str(uuid.uuid4())))
    r = await api.client.get("/v1/me", headers={"Authorization": f"Bearer {token}"})
    _assert_401(r)
    assert 'error="invalid_token"' in r.headers["www-authenticate"]


@pytest.mark.parametrize("header", [None, "Basic dXNlcjpwYXNz", "Bearer", "Token abc"], ids=str)
async def test_missing_bearer_is_401(api: Api, header: str | None) -> None:
    headers = {"Authorization": header} if header is not None else {}
    r = await api.client.get("/v1/me", headers=headers)
    _assert_401(r)
    assert r.json()["error"]["message"] == "missing bearer token"


async def test_disabling_a_user_takes_effect_at_once(api: Api) -> None:
    user, headers = await api.account()
    assert (await api.client.get("/v1/me", headers=headers)).status_code == 200
    async with api.db.transaction() as s:
        await s.execute(update(User).where(User.id == user.id).values(is_active=False))
    _assert_401(await api.client.get("/v1/me", headers=headers))


async def test_role_changes_take_effect_at_once(api: Api) -> None:
    user, headers = await api.account()
    job = await api.submit(headers)
    async with api.db.transaction() as s:
        await s.execute(update(User).where(User.id == user.id).values(role="viewer"))
    me = await api.client.get("/v1/me", headers=headers)
    assert me.json()["role"] == "viewer"
    # Viewers read but do not write.
    r = await api.client.post("/v1/productions", json={"prompt": "a new one"}, headers=headers)
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "forbidden"
    r = await api.client.post(f"/v1/productions/{job['id']}/cancel", headers=headers)
    assert r.status_code == 403
    assert (
        await api.client.get(f"/v1/productions/{job['id']}", headers=headers)
    ).status_code == 200
