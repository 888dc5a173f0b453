"""Browser sessions: the studio's cookie and its CSRF tokens.

A browser never holds a token in script-readable storage.  Signing in through
``POST /v1/auth/session`` makes an ordinary login session (the same sessions
and refresh families as ``/v1/auth/login``: rotation and reuse detection
apply) and puts its access and refresh tokens in one HttpOnly, SameSite=Lax
cookie, ``__Host-aiprod_session`` over https (Secure, Path=/, no Domain: the
prefix makes the browser enforce all three) and ``aiprod_session`` over plain
http, where a browser refuses both the prefix and Secure.

A cookie rides along with every request the browser makes, a cross-site form
post included, so an unsafe request authenticated by the cookie must also
prove that it comes from the studio's own script: a CSRF token, signed and
bound to the login session (signed double-submit: the same value in the
``X-CSRF-Token`` header and in the ``…aiprod_csrf`` cookie).  A token is
``v1.<expiry>.<nonce>.<mac>`` where the MAC (HMAC-SHA256 under a key derived
from the server's secret key) covers the session id, the expiry and the nonce;
it cannot be forged without the key nor replayed under another session, and
it dies with its expiry.  Bearer and API-key clients are not concerned: no
browser adds an ``Authorization`` header on its own.

Requests that sign in or refresh carry no token yet; they are refused when the
browser says (``Origin``) that another site's page sent them.
"""

from __future__ import annotations

import hmac
import secrets
import time
import uuid
from dataclasses import dataclass
from urllib.parse import urlsplit

from starlette.requests import HTTPConnection
from starlette.responses import Response

from aiprod.errors import Forbidden
from aiprod.identity.tokens import SigningKeyring, b64url

SESSION_COOKIE = "aiprod_session"
CSRF_COOKIE = "aiprod_csrf"
CSRF_HEADER = "X-CSRF-Token"
HOST_PREFIX = "__Host-"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_SEPARATOR = "~"  # not in a JWT, a refresh token or base64url; allowed in a cookie value
_VERSION = "v1"
_PURPOSE = b"aiprod csrf token v1"


def secure(conn: HTTPConnection) -> bool:
    """Served over https, directly or behind a trusted proxy saying so."""
    return conn.url.scheme in ("https", "wss")


def cookie_name(conn: HTTPConnection, base: str) -> str:
    return HOST_PREFIX + base if secure(conn) else base


def session_tokens(conn: HTTPConnection) -> tuple[str, str] | None:
    """The access and refresh tokens of the request's session cookie, if any.

    Over https only the ``__Host-`` cookie counts: a plain-named one could
    have been planted by a sibling subdomain or over http."""
    raw = conn.cookies.get(cookie_name(conn, SESSION_COOKIE))
    if raw is None or raw.count(_SEPARATOR) != 1:
        return None
    access, refresh = raw.split(_SEPARATOR)
    return (access, refresh) if access and refresh else None


def set_session(
    response: Response, conn: HTTPConnection, access: str, refresh: str, max_age: int
) -> None:
    """Put a session's tokens in the cookie, for as long as its refresh token lives."""
    response.set_cookie(
        cookie_name(conn, SESSION_COOKIE),
        access + _SEPARATOR + refresh,
        max_age=max_age,
        path="/",
        secure=secure(conn),
        httponly=True,
        samesite="lax",
    )


def set_csrf(response: Response, conn: HTTPConnection, token: str, max_age: int) -> None:
    response.set_cookie(
        cookie_name(conn, CSRF_COOKIE),
        token,
        max_age=max_age,
        path="/",
        secure=secure(conn),
        httponly=True,
        samesite="strict",
    )


def clear(response: Response, conn: HTTPConnection) -> None:
    for base in (SESSION_COOKIE, CSRF_COOKIE):
        response.delete_cookie(
            cookie_name(conn, base), path="/", secure=secure(conn), httponly=True, samesite="lax"
        )


# ------------------------------------------------------------------ origin


def origin_allowed(origin: str | None, scheme: str, host: str | None, allowed: list[str]) -> bool:
    """Browsers send Origin on WebSocket and cross-origin requests; a page from
    another site must not ride on the user's credentials.  Clients that are not
    browsers send no Origin and are judged by their credentials alone.

    Allowed: no Origin, the API's own origin, or one listed in
    ``AIPROD_ALLOWED_ORIGINS`` (``*`` allows any)."""
    if origin is None:
        return True
    origin = origin.strip().rstrip("/").lower()
    if origin == "null":
        return False
    if "*" in allowed or origin in {o.strip().rstrip("/").lower() for o in allowed}:
        return True
    if host is None:
        return False
    own_scheme = {"ws": "http", "wss": "https"}.get(scheme, scheme)
    parts = urlsplit(origin)
    return parts.scheme == own_scheme and parts.netloc == host.strip().lower()


def check_origin(conn: HTTPConnection, allowed: list[str]) -> None:
    """403 `origin_not_allowed` when the browser says another site sent this."""
    if not origin_allowed(
        conn.headers.get("origin"), conn.url.scheme, conn.headers.get("host"), allowed
    ):
        raise Forbidden("this request came from a page of another site", code="origin_not_allowed")


# -------------------------------------------------------------------- CSRF


@dataclass(frozen=True)
class CsrfTokens:
    """Issue and check CSRF tokens bound to login sessions."""

    keyring: SigningKeyring
    lifetime_seconds: int

    @staticmethod
    def _message(session_id: uuid.UUID, expiry: int, nonce: str) -> bytes:
        return f"{_VERSION}.{session_id}.{expiry}.{nonce}".encode()

    def issue(self, session_id: uuid.UUID, now: float | None = None) -> str:
        expiry = int(now if now is not None else time.time()) + self.lifetime_seconds
        nonce = b64url(secrets.token_bytes(16))
        mac = self.keyring.mac(_PURPOSE, self._message(session_id, expiry, nonce))
        return f"{_VERSION}.{expiry}.{nonce}.{mac}"

    def check(self, token: str | None, cookie: str | None, session_id: uuid.UUID) -> None:
        """Raise 403 `csrf_missing`, `csrf_invalid` or `csrf_expired` unless
        `token` (the header) is this session's, unexpired, and the cookie
        holds the same value."""
        if not token:
            raise Forbidden(
                f"a request signed in with the session cookie needs the {CSRF_HEADER} header "
                "(GET /v1/csrf-token)",
                code="csrf_missing",
            )
        parts = token.split(".")
        if len(parts) != 4 or parts[0] != _VERSION or not parts[1].isdigit() or len(token) > 200:
            raise Forbidden("the CSRF token is malformed", code="csrf_invalid")
        _, expiry, nonce, mac = parts
        if cookie is None or not hmac.compare_digest(cookie.encode(), token.encode()):
            raise Forbidden("the CSRF token does not match its cookie", code="csrf_invalid")
        # Every key of the ring verifies: a token outlives a secret-key rotation.
        if not self.keyring.verifies(_PURPOSE, self._message(session_id, int(expiry), nonce), mac):
            raise Forbidden("the CSRF token is not this session's", code="csrf_invalid")
        if int(expiry) <= time.time():
            raise Forbidden("the CSRF token has expired (GET /v1/csrf-token)", code="csrf_expired")


def csrf_check_needed(conn: HTTPConnection) -> bool:
    method = conn.scope.get("method")
    return method is not None and method not in SAFE_METHODS


def csrf_parts(conn: HTTPConnection) -> tuple[str | None, str | None]:
    """The CSRF token the request's header and cookie carry."""
    return conn.headers.get(CSRF_HEADER), conn.cookies.get(cookie_name(conn, CSRF_COOKIE))
