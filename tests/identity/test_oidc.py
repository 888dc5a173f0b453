"""External identity: tokens of an issuer verified against its JWKS, served by a
real HTTP server on 127.0.0.1 that these tests run (keys made with
`cryptography`)."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from pydantic import ValidationError
from sqlalchemy import select, update

from aiprod.access_config import OIDCIssuer
from aiprod.identity.models import ExternalIdentity, User
from aiprod.identity.tokens import InsecureConfiguration
from aiprod.settings import Settings
from tests.identity.conftest import Api, audit, bearer, running

AUDIENCE = "aiprod-test-client"


class Key:
    def __init__(self, kind: str) -> None:
        self.kid = f"{kind}-{uuid.uuid4().hex[:8]}"
        self.alg = "RS256" if kind == "rsa" else "ES256"
        self.private: Any = (
            rsa.generate_private_key(public_exponent=65537, key_size=2048)
            if kind == "rsa"
            else ec.generate_private_key(ec.SECP256R1())
        )

    def jwk(self) -> dict[str, Any]:
        algo = jwt.algorithms.RSAAlgorithm if self.alg == "RS256" else jwt.algorithms.ECAlgorithm
        jwk = json.loads(algo.to_jwk(self.private.public_key()))
        return {**jwk, "kid": self.kid, "use": "sig", "alg": self.alg}

    def pem(self) -> bytes:
        return self.private.private_bytes(  # type: ignore[no-any-return]
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )


class Issuer:
    """An identity provider: a JWKS (and discovery document) on a local port."""

    def __init__(self) -> None:
        self.keys = [Key("rsa"), Key("ec")]
        self.requests: list[str] = []
        self.up = True
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                issuer.requests.append(self.path)
                if not issuer.up:
                    self.send_error(503)
                    return
                if self.path == "/jwks.json":
                    body: Any = {"keys": [k.jwk() for k in issuer.keys]}
                elif self.path == "/.well-known/openid-configuration":
                    body = {"issuer": issuer.url, "jwks_uri": issuer.url + "/jwks.json"}
                else:
                    self.send_error(404)
                    return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def fetches(self) -> int:
        return self.requests.count("/jwks.json")

    def token(self, key: Key | None = None, **changes: Any) -> str:
        key = key or self.keys[0]
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.url,
            "aud": AUDIENCE,
            "sub": "ext-" + uuid.uuid4().hex[:12],
            "iat": now,
            "exp": now + 300,
            "email": f"{uuid.uuid4().hex[:8]}@idp.example",
            "email_verified": True,
            "role": "user",
        }
        claims.update(changes)
        claims = {k: v for k, v in claims.items() if v is not None}
        return jwt.encode(claims, key.pem(), key.alg, {"kid": key.kid})


@pytest.fixture
def issuer() -> Iterator[Issuer]:
    i = Issuer()
    try:
        yield i
    finally:
        i.close()


def _config(issuer: Issuer, **changes: Any) -> OIDCIssuer:
    base: dict[str, Any] = {
        "issuer": issuer.url,
        "audience": AUDIENCE,
        "jwks_url": issuer.url + "/jwks.json",
        "role_map": {"user": "user", "viewer": "viewer", "admin": "admin", "editor": "user"},
        "jwks_min_refresh_seconds": 0,
    }
    base.update(changes)
    return OIDCIssuer.model_validate(base)


@pytest.fixture
async def oapi(api_settings: Settings, issuer: Issuer) -> AsyncIterator[Api]:
    settings = api_settings.model_copy(update={"oidc_issuers": [_config(issuer)]})
    async with running(settings) as a:
        yield a


async def _me(api: Api, token: str) -> Any:
    return await api.client.get("/v1/me", headers=bearer(token))


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# ------------------------------------------------------------------ accepted


@pytest.mark.parametrize("which", [0, 1], ids=["RS256", "ES256"])
async def test_valid_token_creates_the_user_on_first_sight(
    oapi: Api, issuer: Issuer, which: int
) -> None:
    token = issuer.token(issuer.keys[which], sub="alice-1", email="Alice@IdP.example")
    r = await _me(oapi, token)
    assert r.status_code == 200, r.text
    assert r.json()["email"] == "alice@idp.example" and r.json()["role"] == "user"
    again = await _me(oapi, issuer.token(issuer.keys[which], sub="alice-1"))
    assert again.json()["id"] == r.json()["id"]  # same (iss, sub): same user
    async with oapi.db.session() as s:
        link = (await s.execute(select(ExternalIdentity))).scalar_one()
        user = await s.get(User, link.user_id)
    assert (link.issuer, link.subject) == (issuer.url, "alice-1")
    assert user is not None and user.password_hash is None
    [created] = await audit(oapi, "user.created")
    assert created.actor == f"oidc:{issuer.url}"
    # The principal may do what its role allows.
    body = {"prompt": "How honeybees turn nectar into honey"}
    r = await oapi.client.post("/v1/productions", json=body, headers=bearer(token))
    assert r.status_code == 202


async def test_roles_are_mapped_from_the_claim(oapi: Api, issuer: Issuer) -> None:
    viewer = issuer.token(role="viewer")
    assert (await _me(oapi, viewer)).json()["role"] == "viewer"
    body = {"prompt": "How honeybees turn nectar into honey"}
    r = await oapi.client.post("/v1/productions", json=body, headers=bearer(viewer))
    assert r.status_code == 403
    # Several values: the most privileged mapped one wins; unmapped values are ignored.
    r = await _me(oapi, issuer.token(role=["viewer", "editor", "superuser"]))
    assert r.json()["role"] == "user"
    # No mapped value and no default role: refused.
    r = await _me(oapi, issuer.token(role="superuser"))
    assert r.status_code == 401 and "role" in r.json()["error"]["message"]
    r = await _me(oapi, issuer.token(role=None))
    assert r.status_code == 401


async def test_the_issuer_is_authoritative_for_roles(oapi: Api, issuer: Issuer) -> None:
    r = await _me(oapi, issuer.token(sub="bob", role="admin"))
    assert r.json()["role"] == "admin"
    r = await _me(oapi, issuer.token(sub="bob", role="viewer"))
    assert r.json()["role"] == "viewer"
    [change] = await audit(oapi, "user.role_changed")
    assert change.details == {"from": "admin", "to": "viewer", "source": "issuer"}


async def test_a_claim_path_and_a_default_role(api_settings: Settings, issuer: Issuer) -> None:
    cfg = _config(issuer, role_claim="realm_access.roles", default_role="viewer")
    async with running(api_settings.model_copy(update={"oidc_issuers": [cfg]})) as a:
        r = await _me(a, issuer.token(role=None, realm_access={"roles": ["admin"]}))
        assert r.json()["role"] == "admin"
        r = await _me(a, issuer.token(role=None))
        assert r.json()["role"] == "viewer"


async def test_discovery_finds_the_jwks(api_settings: Settings, issuer: Issuer) -> None:
    cfg = _config(issuer, jwks_url=None)
    async with running(api_settings.model_copy(update={"oidc_issuers": [cfg]})) as a:
        assert (await _me(a, issuer.token())).status_code == 200
    assert issuer.requests[:2] == ["/.well-known/openid-configuration", "/jwks.json"]


async def test_existing_accounts_are_never_linked_by_email(oapi: Api, issuer: Issuer) -> None:
    local = await oapi.user("admin")
    r = await _me(oapi, issuer.token(email=local.email, role="viewer"))
    assert r.status_code == 200
    assert r.json()["id"] != str(local.id) and r.json()["email"].endswith(".invalid")
    # Unverified emails are not taken either.
    r = await _me(oapi, issuer.token(email="unverified@idp.example", email_verified=False))
    assert r.json()["email"] != "unverified@idp.example"


async def test_a_disabled_external_user_is_refused(oapi: Api, issuer: Issuer) -> None:
    token = issuer.token(sub="carol")
    user_id = (await _me(oapi, token)).json()["id"]
    async with oapi.db.transaction() as s:
        await s.execute(update(User).where(User.id == uuid.UUID(user_id)).values(is_active=False))
    assert (await _me(oapi, issuer.token(sub="carol"))).status_code == 401


# ------------------------------------------------------------------ refused


@pytest.mark.parametrize(
    ("attack", "message"),
    [
        ("wrong_audience", "audience"),
        ("expired", "expired"),
        ("wrong_issuer", "unknown signing key"),
        ("alg_none", "alg"),
        ("hs256_with_public_key", "not accepted"),
        ("foreign_key_same_kid", "signature"),
        ("unknown_kid", "unknown signing key"),
        ("no_kid", "no signing key"),
    ],
)
async def test_attacks_are_refused(oapi: Api, issuer: Issuer, attack: str, message: str) -> None:
    key = issuer.keys[0]
    if attack == "wrong_audience":
        token = issuer.token(aud="some-other-app")
    elif attack == "expired":
        past = int(time.time()) - 3600
        token = issuer.token(iat=past - 300, exp=past)
    elif attack == "wrong_issuer":
        token = issuer.token(iss="https://evil.example")
    elif attack == "alg_none":
        claims = jwt.decode(issuer.token(), options={"verify_signature": False})
        token = jwt.encode(claims, None, "none", {"kid": key.kid})
    elif attack == "hs256_with_public_key":
        public_pem = key.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        claims = jwt.decode(issuer.token(), options={"verify_signature": False})
        header = {"kid": key.kid, "alg": "HS256"}
        signing = jwt.api_jws.PyJWS()
        signing._algorithms["HS256"].prepare_key = lambda k: k  # type: ignore[method-assign]
        token = signing.encode(json.dumps(claims).encode(), public_pem, "HS256", header)
    elif attack == "foreign_key_same_kid":
        impostor = Key("rsa")
        impostor.kid = key.kid
        token = issuer.token(impostor)
    elif attack == "unknown_kid":
        token = issuer.token(Key("rsa"))
    else:
        claims = jwt.decode(issuer.token(), options={"verify_signature": False})
        token = jwt.encode(claims, key.pem(), "RS256")
    r = await _me(oapi, token)
    assert r.status_code == 401, r.text
    assert message in r.json()["error"]["message"].lower(), r.json()["error"]["message"]
    async with oapi.db.session() as s:
        assert (await s.execute(select(ExternalIdentity))).first() is None


# -------------------------------------------------------------- JWKS cache


async def test_jwks_is_cached_and_refetched_for_an_unknown_kid(oapi: Api, issuer: Issuer) -> None:
    assert (await _me(oapi, issuer.token())).status_code == 200
    assert (await _me(oapi, issuer.token())).status_code == 200
    assert issuer.fetches() == 1  # cached
    rotated = Key("rsa")
    issuer.keys.append(rotated)  # the issuer rotates its keys
    assert (await _me(oapi, issuer.token(rotated))).status_code == 200
    assert issuer.fetches() == 2  # unknown kid: fetched again, then found


async def test_unknown_kids_cannot_hammer_the_issuer(
    api_settings: Settings, issuer: Issuer
) -> None:
    cfg = _config(issuer, jwks_min_refresh_seconds=60)
    async with running(api_settings.model_copy(update={"oidc_issuers": [cfg]})) as a:
        assert (await _me(a, issuer.token())).status_code == 200
        for _ in range(5):
            assert (await _me(a, issuer.token(Key("rsa")))).status_code == 401
        assert issuer.fetches() == 1


async def test_cached_keys_survive_an_outage_until_they_expire(oapi: Api, issuer: Issuer) -> None:
    cache = next(iter(oapi.identity.oidc.caches.values()))
    clock = FakeClock()
    cache.clock = clock
    cache.fetched_at = cache.attempted_at = None
    assert (await _me(oapi, issuer.token())).status_code == 200
    issuer.up = False  # the JWKS is unreachable from now on

    clock.now += 2 * 3600  # past jwks_cache_seconds: a refresh is tried and fails
    assert (await _me(oapi, issuer.token())).status_code == 200
    r = await _me(oapi, issuer.token(Key("rsa")))  # unknown keys are refused
    assert r.status_code == 401 and "unknown signing key" in r.json()["error"]["message"]

    clock.now += 24 * 3600  # past jwks_max_stale_seconds: the cache is no longer trusted
    r = await _me(oapi, issuer.token())
    assert r.status_code == 401 and "unavailable" in r.json()["error"]["message"]

    issuer.up = True  # back: keys are fetched again
    clock.now += 60
    assert (await _me(oapi, issuer.token())).status_code == 200


async def test_an_issuer_that_never_answered_is_refused(
    api_settings: Settings, issuer: Issuer
) -> None:
    issuer.close()
    async with running(api_settings.model_copy(update={"oidc_issuers": [_config(issuer)]})) as a:
        r = await _me(a, issuer.token())
        assert r.status_code == 401 and "unavailable" in r.json()["error"]["message"]


# ----------------------------------------------------------------- settings


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"audience": None}, "audience"),
        ({"audience": ""}, "audience"),
        ({"jwks_url": "http://idp.example.com/jwks.json"}, "https"),
        ({"issuer": "http://idp.example.com"}, "https"),
        ({"algorithms": ["HS256"]}, "not allowed"),
        ({"algorithms": ["none"]}, "not allowed"),
        ({"role_map": {"x": "root"}}, "role_map"),
        ({"issuer": "not-a-url", "jwks_url": None}, "jwks_url is required"),
    ],
)
def test_issuer_settings_fail_closed(changes: dict[str, Any], message: str) -> None:
    base: dict[str, Any] = {
        "issuer": "https://idp.example.com/",
        "audience": "aiprod",
        "jwks_url": "https://idp.example.com/jwks.json",
    }
    base.update(changes)
    base = {k: v for k, v in base.items() if v is not None}
    with pytest.raises(ValidationError, match=message):
        Settings(_env_file=None, oidc_issuers=[base])


def test_issuers_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "AIPROD_OIDC_ISSUERS",
        json.dumps(
            [
                {
                    "issuer": "https://securetoken.google.com/my-project",
                    "audience": "my-project",
                    "jwks_url": "https://www.googleapis.com/service_accounts/v1/jwk/"
                    "securetoken@system.gserviceaccount.com",
                }
            ]
        ),
    )
    [cfg] = Settings(_env_file=None).oidc_issuers
    assert cfg.audience == "my-project" and cfg.algorithms == ["RS256", "ES256"]
    monkeypatch.setenv("AIPROD_OIDC_ISSUERS", json.dumps([{"issuer": "https://x.example/"}]))
    with pytest.raises(ValidationError, match="audience"):
        Settings(_env_file=None)


async def test_our_own_issuer_cannot_be_external(api_settings: Settings) -> None:
    cfg = OIDCIssuer(issuer=api_settings.jwt_issuer, audience="x", jwks_url="https://x.example/")
    with pytest.raises(InsecureConfiguration):
        async with running(api_settings.model_copy(update={"oidc_issuers": [cfg]})):
            pass
