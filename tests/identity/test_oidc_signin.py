"""The studio's "Sign in with …": the authorization code flow with PKCE
against a local identity provider speaking OpenID Connect's wire format
(discovery, authorization redirect, token endpoint, JWKS)."""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import jwt
import pytest

from aiprod.access_config import OIDCIssuer
from aiprod.settings import Settings
from tests.identity.conftest import Api, audit, running
from tests.identity.test_oidc import AUDIENCE, Key


class Provider:
    """An OpenID provider on a local port: it signs in whoever asks (the
    `login` it is told), checks PKCE at the token endpoint, and signs ID tokens."""

    def __init__(self) -> None:
        self.key = Key("rsa")
        self.codes: dict[str, dict[str, Any]] = {}
        self.login: dict[str, Any] = {
            "sub": "ext-1",
            "email": "ada@idp.example",
            "email_verified": True,
            "role": "user",
        }
        self.token_requests: list[dict[str, str]] = []
        self.nonce_override: str | None = None
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urlsplit(self.path)
                if url.path == "/.well-known/openid-configuration":
                    self._json(
                        {
                            "issuer": provider.url,
                            "jwks_uri": provider.url + "/jwks.json",
                            "authorization_endpoint": provider.url + "/authorize",
                            "token_endpoint": provider.url + "/token",
                        }
                    )
                elif url.path == "/jwks.json":
                    self._json({"keys": [provider.key.jwk()]})
                elif url.path == "/authorize":
                    q = {k: v[0] for k, v in parse_qs(url.query).items()}
                    code = uuid.uuid4().hex
                    provider.codes[code] = q
                    back = q["redirect_uri"] + "?" + urlencode({"code": code, "state": q["state"]})
                    self.send_response(302)
                    self.send_header("Location", back)
                    self.end_headers()
                else:
                    self.send_error(404)

            def do_POST(self) -> None:
                length = int(self.headers["Content-Length"])
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                provider.token_requests.append(form)
                asked = provider.codes.pop(form.get("code", ""), None)
                verifier = form.get("code_verifier", "")
                challenge = (
                    base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
                    .rstrip(b"=")
                    .decode()
                )
                if (
                    asked is None
                    or asked["code_challenge"] != challenge
                    or asked["redirect_uri"] != form.get("redirect_uri")
                ):
                    self._json({"error": "invalid_grant"}, 400)
                    return
                now = int(time.time())
                claims = {
                    "iss": provider.url,
                    "aud": AUDIENCE,
                    "iat": now,
                    "exp": now + 300,
                    "nonce": provider.nonce_override or asked["nonce"],
                    **provider.login,
                }
                token = jwt.encode(
                    claims, provider.key.pem(), provider.key.alg, {"kid": provider.key.kid}
                )
                self._json({"id_token": token, "access_token": "at", "token_type": "Bearer"})

            def _json(self, body: Any, status: int = 200) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def provider() -> Iterator[Provider]:
    p = Provider()
    try:
        yield p
    finally:
        p.close()


@pytest.fixture
async def sapi(api_settings: Settings, provider: Provider) -> AsyncIterator[Api]:
    issuer = OIDCIssuer(
        issuer=provider.url,
        audience=AUDIENCE,
        client_id=AUDIENCE,
        display_name="Local IdP",
        role_map={"user": "user", "admin": "admin"},
    )
    async with running(api_settings.model_copy(update={"oidc_issuers": [issuer]})) as a:
        yield a


async def _through_provider(api: Api, *, tamper_state: bool = False) -> httpx.Response:
    """What the browser does: start, follow the provider, come back."""
    providers = (await api.client.get("/v1/auth/oidc/providers")).json()["items"]
    assert [p["name"] for p in providers] == ["Local IdP"]
    r = await api.client.get(providers[0]["start_url"])
    assert r.status_code == 303
    authorize = r.headers["location"]
    q = parse_qs(urlsplit(authorize).query)
    assert q["code_challenge_method"] == ["S256"] and q["response_type"] == ["code"]
    assert q["redirect_uri"] == ["http://aiprod.test/v1/auth/oidc/callback"]
    async with httpx.AsyncClient() as browser_to_idp:
        back = (await browser_to_idp.get(authorize)).headers["location"]
    path = urlsplit(back)
    query = path.query
    if tamper_state:
        query = query.replace("state=", "state=x")
    return await api.client.get(f"{path.path}?{query}")


async def test_signing_in_with_the_provider_opens_a_cookie_session(
    sapi: Api, provider: Provider
) -> None:
    r = await _through_provider(sapi)
    assert r.status_code == 303 and r.headers["location"] == "/#/productions"
    me = (await sapi.client.get("/v1/me")).json()
    assert me["email"] == "ada@idp.example" and me["role"] == "user"
    # The code was traded with the PKCE verifier, which never left the server.
    assert "code_verifier" in provider.token_requests[0]
    token = (await sapi.client.get("/v1/csrf-token")).json()["csrf_token"]
    r = await sapi.client.post("/v1/ws-ticket", headers={"X-CSRF-Token": token})
    assert r.status_code == 201
    events = await audit(sapi, "login.succeeded")
    assert events[-1].details == {"method": "oidc"}
    # Signing in again finds the same account.
    sapi.client.cookies.clear()
    await _through_provider(sapi)
    assert (await sapi.client.get("/v1/me")).json()["id"] == me["id"]


async def test_a_forged_state_or_a_missing_flow_cookie_signs_nobody_in(sapi: Api) -> None:
    r = await _through_provider(sapi, tamper_state=True)
    assert r.headers["location"] == "/#/signin?error=oidc_state"
    assert (await sapi.client.get("/v1/me")).status_code == 401
    # A callback the browser did not start (login CSRF): no flow cookie.
    sapi.client.cookies.clear()
    r = await sapi.client.get("/v1/auth/oidc/callback?code=abc&state=def")
    assert r.headers["location"] == "/#/signin?error=oidc_state"


async def test_an_id_token_for_another_sign_in_is_refused(sapi: Api, provider: Provider) -> None:
    provider.nonce_override = "someone-elses-nonce"
    r = await _through_provider(sapi)
    assert r.headers["location"] == "/#/signin?error=oidc_refused"
    assert (await sapi.client.get("/v1/me")).status_code == 401


async def test_a_role_the_server_does_not_map_is_refused(sapi: Api, provider: Provider) -> None:
    provider.login = {**provider.login, "role": "stranger"}
    r = await _through_provider(sapi)
    assert r.headers["location"] == "/#/signin?error=oidc_refused"


async def test_the_provider_saying_no_and_unknown_providers(sapi: Api) -> None:
    providers = (await sapi.client.get("/v1/auth/oidc/providers")).json()["items"]
    await sapi.client.get(providers[0]["start_url"])  # sets the flow cookie
    r = await sapi.client.get("/v1/auth/oidc/callback?error=access_denied")
    assert r.headers["location"] == "/#/signin?error=oidc_denied"
    assert (await sapi.client.get("/v1/auth/oidc/nope/start")).status_code == 404


async def test_no_provider_configured_lists_none(api: Api) -> None:
    assert (await api.client.get("/v1/auth/oidc/providers")).json() == {"items": []}
