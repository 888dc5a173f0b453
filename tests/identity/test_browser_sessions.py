"""The studio's cookie sessions and CSRF tokens, on SQLite and PostgreSQL."""

from __future__ import annotations

import time
import uuid

import httpx
import pytest

from aiprod.identity.browser import CsrfTokens
from aiprod.identity.tokens import SigningKeyring
from tests.identity.conftest import PASSWORD, Api, bearer

ORIGIN = {"Origin": "http://aiprod.test"}


async def sign_in(app: Api, email: str, **headers: str) -> httpx.Response:
    return await app.client.post(
        "/v1/auth/session",
        json={"email": email, "password": PASSWORD},
        headers={**ORIGIN, **headers},
    )


def cookie_header(r: httpx.Response) -> list[str]:
    return r.headers.get_list("set-cookie")


async def test_sign_in_sets_an_httponly_lax_cookie_and_no_token_in_the_body(api: Api) -> None:
    user = await api.user()
    r = await sign_in(api, user.email)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["user"]["email"] == user.email
    # No access or refresh token in the body: only when the access token expires.
    assert set(body) == {"user", "csrf_token", "csrf_expires_in", "access_expires_in"}
    assert 0 < body["access_expires_in"] <= 3600
    session = next(c for c in cookie_header(r) if c.startswith("aiprod_session="))
    assert "HttpOnly" in session and "SameSite=lax" in session and "Path=/" in session
    assert "Secure" not in session  # plain http: a browser would drop a Secure cookie
    assert (await api.client.get("/v1/me")).json()["email"] == user.email


async def test_over_https_the_cookie_is_host_prefixed_and_secure(api: Api) -> None:
    user = await api.user()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=api.app), base_url="https://aiprod.test"
    ) as client:
        r = await client.post(
            "/v1/auth/session",
            json={"email": user.email, "password": PASSWORD},
            headers={"Origin": "https://aiprod.test"},
        )
        assert r.status_code == 200, r.text
        session = next(c for c in cookie_header(r) if "aiprod_session=" in c)
        assert session.startswith("__Host-aiprod_session=")
        assert "Secure" in session and "Domain" not in session and "Path=/" in session
        assert (await client.get("/v1/me")).status_code == 200
        # A plain-named cookie (planted over http or by a sibling host) does not count.
        value = client.cookies.get("__Host-aiprod_session")
        client.cookies.clear()
        client.cookies.set("aiprod_session", value or "")
        assert (await client.get("/v1/me")).status_code == 401


async def test_unsafe_requests_with_the_cookie_need_the_sessions_csrf_token(api: Api) -> None:
    user = await api.user()
    token = (await sign_in(api, user.email)).json()["csrf_token"]
    body = {"name": "k"}

    r = await api.client.post("/v1/api-keys", json=body)
    assert r.status_code == 403 and r.json()["error"]["code"] == "csrf_missing"
    r = await api.client.post("/v1/api-keys", json=body, headers={"X-CSRF-Token": "v1.1.a.b"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "csrf_invalid"
    # Another session's token (same user, another sign-in in another browser).
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=api.app), base_url="http://aiprod.test"
    ) as other:
        other_token = (
            await other.post("/v1/auth/session", json={"email": user.email, "password": PASSWORD})
        ).json()["csrf_token"]
    r = await api.client.post("/v1/api-keys", json=body, headers={"X-CSRF-Token": other_token})
    assert r.status_code == 403 and r.json()["error"]["code"] == "csrf_invalid"

    r = await api.client.post("/v1/api-keys", json=body, headers={"X-CSRF-Token": token})
    assert r.status_code == 201, r.text
    # Safe methods need none; a fresh token from GET /v1/csrf-token works too.
    assert (await api.client.get("/v1/api-keys")).status_code == 200
    fresh = (await api.client.get("/v1/csrf-token")).json()["csrf_token"]
    r = await api.client.post("/v1/ws-ticket", headers={"X-CSRF-Token": fresh})
    assert r.status_code == 201, r.text
    assert (await api.client.post("/v1/ws-ticket")).json()["error"]["code"] == "csrf_missing"


async def test_the_header_must_match_the_csrf_cookie(api: Api) -> None:
    """Double submit: a token read elsewhere is worthless without its cookie."""
    user = await api.user()
    token = (await sign_in(api, user.email)).json()["csrf_token"]
    api.client.cookies.delete("aiprod_csrf")
    r = await api.client.post("/v1/ws-ticket", headers={"X-CSRF-Token": token})
    assert r.status_code == 403 and r.json()["error"]["code"] == "csrf_invalid"


async def test_an_expired_csrf_token_is_refused_with_its_own_code(api: Api) -> None:
    user = await api.user()
    await sign_in(api, user.email)
    session_id = (await api.client.get("/v1/auth/sessions")).json()["items"][0]["id"]
    ring = SigningKeyring.from_settings(api.settings)
    old = CsrfTokens(ring, 60).issue(uuid.UUID(session_id), now=time.time() - 120)
    api.client.cookies.set("aiprod_csrf", old)
    r = await api.client.post("/v1/ws-ticket", headers={"X-CSRF-Token": old})
    assert r.status_code == 403 and r.json()["error"]["code"] == "csrf_expired"


async def test_bearer_and_api_key_clients_need_no_csrf_token(api: Api) -> None:
    user = await api.user()
    tokens = await api.login(user.email)
    r = await api.client.post("/v1/ws-ticket", headers=bearer(tokens["access_token"]))
    assert r.status_code == 201
    # A bearer wins over a cookie sent alongside (a browser never adds one itself).
    await sign_in(api, user.email)
    r = await api.client.post("/v1/ws-ticket", headers=bearer(tokens["access_token"]))
    assert r.status_code == 201


async def test_sign_in_and_refresh_refuse_another_sites_page(api: Api) -> None:
    user = await api.user()
    r = await sign_in(api, user.email, Origin="https://evil.example")
    assert r.status_code == 403 and r.json()["error"]["code"] == "origin_not_allowed"
    assert not cookie_header(r)
    assert (await sign_in(api, user.email)).status_code == 200
    r = await api.client.post("/v1/auth/session/refresh", headers={"Origin": "null"})
    assert r.status_code == 403


async def test_refresh_rotates_and_a_replayed_cookie_revokes_the_session(api: Api) -> None:
    user = await api.user()
    await sign_in(api, user.email)
    stolen = api.client.cookies.get("aiprod_session")
    r = await api.client.post("/v1/auth/session/refresh", headers=ORIGIN)
    assert r.status_code == 200, r.text
    assert api.client.cookies.get("aiprod_session") != stolen
    assert (await api.client.get("/v1/me")).status_code == 200

    # The old cookie's refresh token is spent: replaying it is theft.
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=api.app),
        base_url="http://aiprod.test",
        cookies={"aiprod_session": stolen or ""},
    ) as thief:
        r = await thief.post("/v1/auth/session/refresh")
        assert r.status_code == 401
        assert any(c.startswith('aiprod_session=""') for c in cookie_header(r))
    # …which ended the whole session, the victim's current cookie included.
    assert (await api.client.get("/v1/me")).status_code == 401


async def test_sign_out_needs_the_token_and_ends_the_session(api: Api) -> None:
    user = await api.user()
    token = (await sign_in(api, user.email)).json()["csrf_token"]
    cookie = api.client.cookies.get("aiprod_session")
    r = await api.client.delete("/v1/auth/session")
    assert r.status_code == 403 and r.json()["error"]["code"] == "csrf_missing"
    r = await api.client.delete("/v1/auth/session", headers={"X-CSRF-Token": token})
    assert r.status_code == 204
    assert api.client.cookies.get("aiprod_session") is None
    # The cookie a copy kept is dead too.
    api.client.cookies.set("aiprod_session", cookie or "")
    assert (await api.client.get("/v1/me")).status_code == 401
    # Without a cookie: 204, safe to repeat.
    api.client.cookies.clear()
    assert (await api.client.delete("/v1/auth/session")).status_code == 204


async def test_a_wrong_password_sets_nothing_and_counts_as_a_failed_login(api: Api) -> None:
    user = await api.user()
    r = await api.client.post(
        "/v1/auth/session", json={"email": user.email, "password": "wrong"}, headers=ORIGIN
    )
    assert r.status_code == 401 and not cookie_header(r)


@pytest.mark.parametrize("value", ["", "~", "junk", "a~b", "a~b~c", "x" * 5000])
async def test_a_malformed_cookie_is_a_401_not_a_500(api: Api, value: str) -> None:
    api.client.cookies.set("aiprod_session", value)
    assert (await api.client.get("/v1/me")).status_code == 401
    r = await api.client.post("/v1/auth/session/refresh")
    assert r.status_code == 401


async def test_a_cookie_holding_an_api_key_is_refused(api: Api) -> None:
    """Only a login session may sit in the cookie (it is what CSRF binds to)."""
    _, headers = await api.account()
    r = await api.client.post("/v1/api-keys", json={"name": "k"}, headers=headers)
    secret = r.json()["secret"]
    api.client.cookies.set("aiprod_session", f"{secret}~x")
    assert (await api.client.get("/v1/me")).status_code == 401


async def test_the_session_state_never_answers_401(api: Api) -> None:
    """The studio's first question on a page load; a 401 would be a console error."""
    r = await api.client.get("/v1/auth/session")
    assert r.status_code == 200 and r.json() == {
        "signed_in": False,
        "user": None,
        "renewable": False,
    }
    user = await api.user()
    await sign_in(api, user.email)
    state = (await api.client.get("/v1/auth/session")).json()
    assert state["signed_in"] and state["user"]["email"] == user.email
    access, refresh = (api.client.cookies.get("aiprod_session") or "").split("~")
    api.client.cookies.set("aiprod_session", f"{access[:-4]}xxxx~{refresh}")  # as if expired
    assert (await api.client.get("/v1/auth/session")).json() == {
        "signed_in": False,
        "user": None,
        "renewable": True,
    }
