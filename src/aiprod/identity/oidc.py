"""External identity: verify an issuer's JWTs against its JWKS.

For each configured issuer (``AIPROD_OIDC_ISSUERS``) a token is accepted when
its ``iss`` is exactly the issuer, its header ``alg`` is in the issuer's
asymmetric allow-list, its ``kid`` names a key of the issuer's JWKS, the
signature verifies with that key, ``aud`` contains the configured audience
and ``exp`` has not passed (with a small leeway for clock skew).

The JWKS is cached.  After ``jwks_cache_seconds`` it is fetched again; if
that fails the cached keys keep working until ``jwks_max_stale_seconds``
after the last successful fetch, then nothing from that issuer is accepted
until the JWKS can be read again.  A ``kid`` not in the cache triggers a
fetch at once (so an issuer's key rotation is picked up), at most once per
``jwks_min_refresh_seconds``; while the JWKS cannot be reached, unknown keys
are refused.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import jwt

from aiprod import tls
from aiprod.access_config import OIDCIssuer, check_fetch_url
from aiprod.identity.permissions import RANK

log = logging.getLogger("aiprod.identity.oidc")

MAX_DOCUMENT_BYTES = 512 * 1024


class OIDCError(Exception):
    """The token is not acceptable; the message is safe to show."""


class JwksUnavailable(Exception):
    pass


@dataclass(frozen=True)
class ExternalIdentityClaims:
    issuer: str
    subject: str
    email: str | None
    email_verified: bool
    role: str
    nonce: str | None = None


async def _get_json(url: str, timeout: float) -> Any:
    async with (
        httpx.AsyncClient(
            timeout=timeout, follow_redirects=False, verify=tls.client_context()
        ) as client,
        client.stream("GET", url, headers={"Accept": "application/json"}) as response,
    ):
        if response.status_code != 200:
            raise JwksUnavailable(f"{url} answered {response.status_code}")
        body = bytearray()
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) > MAX_DOCUMENT_BYTES:
                raise JwksUnavailable(f"{url} sent more than {MAX_DOCUMENT_BYTES} bytes")
    try:
        return json.loads(bytes(body))
    except ValueError as exc:
        raise JwksUnavailable(f"{url} did not send JSON: {exc}") from None


class JwksCache:
    """The signing keys of one issuer."""

    def __init__(self, issuer: OIDCIssuer, clock: Callable[[], float] = time.monotonic) -> None:
        self.issuer = issuer
        self.clock = clock
        self.keys: dict[str, jwt.PyJWK] = {}
        self.fetched_at: float | None = None  # last successful fetch
        self.attempted_at: float | None = None  # last fetch, successful or not
        self.fetches = 0
        self._jwks_url = issuer.jwks_url
        self._lock = asyncio.Lock()

    async def _resolve_url(self) -> str:
        if self._jwks_url is not None:
            return self._jwks_url
        url = self.issuer.issuer.rstrip("/") + "/.well-known/openid-configuration"
        doc = await _get_json(url, self.issuer.timeout_seconds)
        if not isinstance(doc, dict) or doc.get("issuer") != self.issuer.issuer:
            raise JwksUnavailable(f"{url} describes another issuer")
        jwks_uri = doc.get("jwks_uri")
        if not isinstance(jwks_uri, str):
            raise JwksUnavailable(f"{url} names no jwks_uri")
        try:
            self._jwks_url = check_fetch_url(jwks_uri, "jwks_uri")
        except ValueError as exc:
            raise JwksUnavailable(str(exc)) from None
        return self._jwks_url

    def _parse(self, doc: Any) -> dict[str, jwt.PyJWK]:
        if not isinstance(doc, dict) or not isinstance(doc.get("keys"), list):
            raise JwksUnavailable("the JWKS has no key list")
        keys: dict[str, jwt.PyJWK] = {}
        for entry in doc["keys"]:
            if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
                continue
            kid = entry.get("kid")
            if not isinstance(kid, str) or entry.get("kty") not in ("RSA", "EC"):
                continue
            if "alg" in entry and entry["alg"] not in self.issuer.algorithms:
                continue
            try:
                keys[kid] = jwt.PyJWK(entry)
            except jwt.PyJWTError:
                log.warning("issuer %s: skipping unusable JWK %r", self.issuer.issuer, kid)
        return keys

    async def refresh(self) -> None:
        started = self.clock()
        async with self._lock:
            if self.attempted_at is not None and self.attempted_at >= started:
                return  # another request fetched while this one waited
            self.attempted_at = self.clock()
            self.fetches += 1
            try:
                url = await self._resolve_url()
                keys = self._parse(await _get_json(url, self.issuer.timeout_seconds))
            except (httpx.HTTPError, JwksUnavailable) as exc:
                log.warning("issuer %s: cannot read its JWKS: %s", self.issuer.issuer, exc)
                return
            self.keys = keys
            self.fetched_at = self.clock()

    def _usable(self) -> bool:
        return (
            self.fetched_at is not None
            and self.clock() - self.fetched_at <= self.issuer.jwks_max_stale_seconds
        )

    async def key(self, kid: str) -> jwt.PyJWK:
        now = self.clock()
        if self.fetched_at is None or now - self.fetched_at >= self.issuer.jwks_cache_seconds:
            await self.refresh()
        if not self._usable():
            raise OIDCError("the issuer's signing keys are unavailable")
        found = self.keys.get(kid)
        if found is None and (
            self.attempted_at is None
            or self.clock() - self.attempted_at >= self.issuer.jwks_min_refresh_seconds
        ):
            await self.refresh()
            found = self.keys.get(kid) if self._usable() else None
        if found is None:
            raise OIDCError("unknown signing key")
        return found


def _claim(claims: dict[str, Any], name: str) -> Any:
    if name in claims:
        return claims[name]
    value: Any = claims
    for part in name.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def map_role(issuer: OIDCIssuer, claims: dict[str, Any]) -> str | None:
    raw = _claim(claims, issuer.role_claim)
    values = [raw] if isinstance(raw, str) else raw if isinstance(raw, list) else []
    mapped = [issuer.role_map[v] for v in values if isinstance(v, str) and v in issuer.role_map]
    if mapped:
        return max(mapped, key=lambda r: RANK[r])
    return issuer.default_role


class OIDCVerifier:
    def __init__(
        self, issuers: list[OIDCIssuer], clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.issuers = {i.issuer: i for i in issuers}
        self.caches = {i.issuer: JwksCache(i, clock) for i in issuers}

    def handles(self, token: str) -> bool:
        """Whether the token claims to come from a configured issuer (unverified)."""
        if not self.issuers:
            return False
        try:
            claims = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            return False
        return isinstance(claims.get("iss"), str) and claims["iss"] in self.issuers

    async def verify(self, token: str) -> ExternalIdentityClaims:
        try:
            header = jwt.get_unverified_header(token)
            iss = jwt.decode(token, options={"verify_signature": False}).get("iss")
        except jwt.PyJWTError:
            raise OIDCError("malformed token") from None
        issuer = self.issuers.get(iss) if isinstance(iss, str) else None
        if issuer is None:
            raise OIDCError("unknown issuer")
        alg, kid = header.get("alg"), header.get("kid")
        if alg not in issuer.algorithms:
            raise OIDCError(f"algorithm {alg!r} is not accepted from this issuer")
        if not isinstance(kid, str):
            raise OIDCError("the token names no signing key")
        jwk = await self.caches[issuer.issuer].key(kid)
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                jwk.key,
                algorithms=[alg],
                audience=issuer.audience,
                issuer=issuer.issuer,
                leeway=issuer.leeway_seconds,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.PyJWTError as exc:
            raise OIDCError(str(exc)) from None
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject or len(subject) > 255:
            raise OIDCError("bad subject")
        role = map_role(issuer, claims)
        if role is None:
            raise OIDCError("the token carries no role this server accepts")
        email = _claim(claims, issuer.email_claim)
        return ExternalIdentityClaims(
            issuer=issuer.issuer,
            subject=subject,
            email=email.strip().lower() if isinstance(email, str) and email.strip() else None,
            email_verified=claims.get("email_verified") is True,
            role=role,
            nonce=claims["nonce"] if isinstance(claims.get("nonce"), str) else None,
        )
