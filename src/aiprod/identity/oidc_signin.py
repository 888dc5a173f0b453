"""Browser sign-in with an external issuer: OpenID Connect's authorization
code flow with PKCE (RFC 7636), ending in the studio's ordinary cookie session.

1. ``start`` makes a random ``state``, ``nonce`` and PKCE verifier, keeps them
   in a short-lived HttpOnly cookie (MAC'd with a key derived from the server's
   secret key, so that it cannot be forged), and sends the browser to the
   issuer's authorization endpoint.
2. The issuer sends the browser back to the callback with a ``code``; the
   callback checks ``state`` against the cookie, trades the code (with the
   verifier) at the token endpoint, verifies the ID token exactly as a bearer
   OIDC token is verified (signature by the issuer's JWKS, ``iss``, ``aud``,
   expiry, role mapping) and its ``nonce``, then opens a login session for the
   user (created on first sight, never linked by email).

The endpoints come from the issuer's configuration, else its discovery
document.  Nothing of the exchange (code, tokens, verifier) is logged or put
in an error.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx

from aiprod import tls
from aiprod.access_config import OIDCIssuer, check_fetch_url
from aiprod.identity.oidc import ExternalIdentityClaims, OIDCError, OIDCVerifier
from aiprod.identity.tokens import SigningKeyring, b64url

FLOW_COOKIE = "aiprod_oidc"
FLOW_SECONDS = 600
CALLBACK_PATH = "/v1/auth/oidc/callback"
MAX_ANSWER_BYTES = 256 * 1024
_PURPOSE = b"aiprod oidc flow v1"


class SignInError(Exception):
    """The sign-in failed; `code` is shown to the user by the studio."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Flow:
    slug: str
    state: str
    nonce: str
    verifier: str
    expires: int


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class OIDCSignIn:
    """The authorization code flow for every issuer with a ``client_id``."""

    def __init__(
        self, issuers: list[OIDCIssuer], verifier: OIDCVerifier, keyring: SigningKeyring
    ) -> None:
        self.issuers = {i.slug: i for i in issuers if i.client_id is not None}
        self.verifier = verifier
        self.keyring = keyring
        self._endpoints: dict[str, tuple[str, str]] = {}

    def providers(self) -> list[tuple[str, str]]:
        """(slug, name to show) of each issuer offering browser sign-in."""
        return [(slug, i.display_name or i.issuer) for slug, i in self.issuers.items()]

    # ------------------------------------------------------------ flow cookie

    def seal(self, flow: Flow) -> str:
        payload = b64url(json.dumps(flow.__dict__, separators=(",", ":")).encode())
        return payload + "." + self.keyring.mac(_PURPOSE, payload.encode())

    def open(self, cookie: str | None) -> Flow:
        if not cookie or cookie.count(".") != 1 or len(cookie) > 2048:
            raise SignInError("oidc_state", "the sign-in expired or was started elsewhere")
        payload, mac = cookie.split(".")
        if not self.keyring.verifies(_PURPOSE, payload.encode(), mac):
            raise SignInError("oidc_state", "the sign-in expired or was started elsewhere")
        flow = Flow(**json.loads(_unb64(payload)))
        if flow.expires <= time.time():
            raise SignInError("oidc_state", "the sign-in took too long; start again")
        return flow

    # ------------------------------------------------------------ endpoints

    async def _endpoint_pair(self, issuer: OIDCIssuer) -> tuple[str, str]:
        if issuer.authorization_endpoint and issuer.token_endpoint:
            return issuer.authorization_endpoint, issuer.token_endpoint
        known = self._endpoints.get(issuer.slug)
        if known is not None:
            return known
        url = issuer.issuer.rstrip("/") + "/.well-known/openid-configuration"
        doc = await _send(issuer, "GET", url)
        if doc.get("issuer") != issuer.issuer:
            raise SignInError("oidc_unavailable", "the issuer's discovery document is wrong")
        try:
            pair = (
                issuer.authorization_endpoint
                or check_fetch_url(str(doc["authorization_endpoint"]), "authorization_endpoint"),
                issuer.token_endpoint
                or check_fetch_url(str(doc["token_endpoint"]), "token_endpoint"),
            )
        except (KeyError, ValueError):
            raise SignInError(
                "oidc_unavailable", "the issuer's discovery document names no usable endpoints"
            ) from None
        self._endpoints[issuer.slug] = pair
        return pair

    # ------------------------------------------------------------ the flow

    async def start(self, slug: str, redirect_uri: str) -> tuple[str, Flow]:
        """Where to send the browser, and the flow to keep in its cookie."""
        issuer = self.issuers.get(slug)
        if issuer is None:
            raise SignInError("oidc_unknown", "no such sign-in provider")
        authorize, _ = await self._endpoint_pair(issuer)
        flow = Flow(
            slug=slug,
            state=secrets.token_urlsafe(24),
            nonce=secrets.token_urlsafe(24),
            verifier=secrets.token_urlsafe(48),
            expires=int(time.time()) + FLOW_SECONDS,
        )
        challenge = b64url(hashlib.sha256(flow.verifier.encode()).digest())
        query = urlencode(
            {
                "response_type": "code",
                "client_id": issuer.client_id,
                "redirect_uri": redirect_uri,
                "scope": issuer.scopes,
                "state": flow.state,
                "nonce": flow.nonce,
                "code_challenge": challenge,
                "code_challenge_method": "S256",
            }
        )
        separator = "&" if "?" in authorize else "?"
        return authorize + separator + query, flow

    async def finish(
        self, flow: Flow, state: str, code: str, redirect_uri: str
    ) -> ExternalIdentityClaims:
        """Check the callback against the flow, trade the code, verify the ID token."""
        if not hmac.compare_digest(flow.state.encode(), state.encode()):
            raise SignInError("oidc_state", "the sign-in answer does not match this browser")
        issuer = self.issuers.get(flow.slug)
        if issuer is None:
            raise SignInError("oidc_unknown", "no such sign-in provider")
        _, token_url = await self._endpoint_pair(issuer)
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "client_id": issuer.client_id or "",
            "code_verifier": flow.verifier,
        }
        if issuer.client_secret_file is not None:
            form["client_secret"] = issuer.client_secret_file.read_text().strip()
        answer = await _send(issuer, "POST", token_url, form)
        id_token = answer.get("id_token")
        if not isinstance(id_token, str):
            raise SignInError("oidc_refused", "the issuer sent no ID token")
        try:
            ext = await self.verifier.verify(id_token)
        except OIDCError as exc:
            raise SignInError("oidc_refused", f"the ID token was refused: {exc}") from None
        if ext.issuer != issuer.issuer:
            raise SignInError("oidc_refused", "the ID token comes from another issuer")
        if ext.nonce is None or not hmac.compare_digest(ext.nonce.encode(), flow.nonce.encode()):
            raise SignInError("oidc_refused", "the ID token was not made for this sign-in")
        return ext


async def _send(
    issuer: OIDCIssuer, method: str, url: str, form: dict[str, str] | None = None
) -> dict[str, Any]:
    """A JSON object from the issuer, or SignInError (with no secret in it)."""
    try:
        async with (
            httpx.AsyncClient(
                timeout=issuer.timeout_seconds, follow_redirects=False, verify=tls.client_context()
            ) as client,
            client.stream(method, url, data=form, headers={"Accept": "application/json"}) as r,
        ):
            body = bytearray()
            async for chunk in r.aiter_bytes():
                body += chunk
                if len(body) > MAX_ANSWER_BYTES:
                    raise SignInError("oidc_unavailable", "the issuer's answer is too large")
            status = r.status_code
    except httpx.HTTPError:
        raise SignInError("oidc_unavailable", "the issuer cannot be reached") from None
    try:
        doc = json.loads(bytes(body))
    except ValueError:
        doc = None
    if status != 200 or not isinstance(doc, dict):
        error = doc.get("error") if isinstance(doc, dict) else None
        reason = f" ({error})" if isinstance(error, str) and error.isascii() else ""
        raise SignInError("oidc_refused", f"the issuer answered {status}{reason}"[:200])
    return doc
