"""Access JWTs, the keys that sign them, and opaque refresh tokens.

Access tokens are short-lived HS256 JWTs with ``kid`` in the header and
``iss``, ``aud``, ``typ``, ``jti``, ``sid`` (the session) and ``exp`` in the
body.  Decoding pins the algorithm (no ``alg=none``, no RS/HS confusion) and
picks the *signing key* by ``kid`` from a `SigningKeyring`: the current key
(``AIPROD_SECRET_KEY``) signs, previous keys (``AIPROD_PREVIOUS_SECRET_KEYS``)
still verify, so the signing key can rotate without logging anyone out.
Refresh tokens are random strings; only their SHA-256 is stored.  (API keys,
the credentials programs send, are another thing: see `api_keys`.)
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import stat
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt

from aiprod.access_config import MIN_SECRET_LENGTH
from aiprod.settings import Settings

ALGORITHM = "HS256"
ALGORITHMS = [ALGORITHM]  # the allow-list for our own tokens
ACCESS_TYP = "access"
REFRESH_PREFIX = "rt_"


class TokenError(Exception):
    pass


class InsecureConfiguration(RuntimeError):
    """Refuse to start rather than sign tokens with a weak key."""


def secret_from_file(path: Path) -> str:
    """A random secret made once and kept private (mode 600) at `path`."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it a moment ago
            pass
        else:
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_urlsafe(48))
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise InsecureConfiguration(f"{path} is readable by others (mode {mode:o}); chmod 600 it")
    key = path.read_text().strip()
    if len(key) < MIN_SECRET_LENGTH:
        raise InsecureConfiguration(
            f"{path} holds a key shorter than {MIN_SECRET_LENGTH} characters"
        )
    return key


def signing_key(settings: Settings) -> str:
    """The configured key, or one made once and kept private in the data folder."""
    if settings.secret_key is not None:
        if len(settings.secret_key) < MIN_SECRET_LENGTH:
            raise InsecureConfiguration(
                f"AIPROD_SECRET_KEY must be at least {MIN_SECRET_LENGTH} characters"
            )
        return settings.secret_key
    return secret_from_file(settings.data_dir / "secret.key")


def signing_key_id(key: str) -> str:
    """A public name (``kid``) for a signing key: the same on every server that has the key, and
    saying nothing useful about it (a truncated hash of a ≥ 32-char secret)."""
    return hashlib.sha256(b"aiprod-kid\x00" + key.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class SigningKeyring:
    """The keys our access JWTs are signed with: the current one signs, all verify."""

    current_kid: str
    by_kid: dict[str, str]  # kid → signing key

    @property
    def current(self) -> str:
        return self.by_kid[self.current_kid]

    def mac(self, purpose: bytes, message: bytes, secret: str | None = None) -> str:
        """HMAC-SHA256 of `message` (base64url) under a key derived from
        `secret` (default: the current key) for `purpose` alone, so that a MAC
        made for one purpose is worthless for any other."""
        key = hmac.new((secret or self.current).encode(), purpose, hashlib.sha256).digest()
        return b64url(hmac.new(key, message, hashlib.sha256).digest())

    def verifies(self, purpose: bytes, message: bytes, mac: str) -> bool:
        """Whether `mac` is `message`'s under any key of the ring (a MAC made
        before a key rotation still verifies)."""
        return any(
            hmac.compare_digest(mac, self.mac(purpose, message, secret))
            for secret in self.by_kid.values()
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> SigningKeyring:
        current = signing_key(settings)
        keys = {signing_key_id(current): current}
        for old in settings.previous_secret_keys:
            if len(old) < MIN_SECRET_LENGTH:
                raise InsecureConfiguration(
                    f"every previous secret key must be at least {MIN_SECRET_LENGTH} characters"
                )
            keys.setdefault(signing_key_id(old), old)
        return cls(signing_key_id(current), keys)


def b64url(data: bytes) -> str:
    """base64url without padding (JWT style)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def issue_access(
    settings: Settings,
    signing_keys: SigningKeyring,
    user_id: uuid.UUID,
    role: str,
    session_id: uuid.UUID,
) -> tuple[str, int]:
    now = datetime.now(UTC)
    ttl = settings.access_token_minutes * 60
    claims: dict[str, Any] = {
        "sub": str(user_id),
        "sid": str(session_id),
        "role": role,  # informational: permissions come from the stored role
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "typ": ACCESS_TYP,
        "jti": uuid.uuid4().hex,
        "iat": now,
        "nbf": now,
        "exp": now + timedelta(seconds=ttl),
    }
    token = jwt.encode(
        claims, signing_keys.current, algorithm=ALGORITHM, headers={"kid": signing_keys.current_kid}
    )
    return token, ttl


def unverified_header(token: str) -> dict[str, Any]:
    try:
        return jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise TokenError(str(exc)) from None


def decode_access(settings: Settings, signing_keys: SigningKeyring, token: str) -> dict[str, Any]:
    kid = unverified_header(token).get("kid")
    key = signing_keys.by_kid.get(kid) if isinstance(kid, str) else None
    if key is None:
        raise TokenError("unknown signing key")
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=ALGORITHMS,
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer,
            options={"require": ["exp", "iat", "sub", "aud", "iss", "jti", "typ", "sid"]},
        )
    except jwt.PyJWTError as exc:
        raise TokenError(str(exc)) from exc
    if claims.get("typ") != ACCESS_TYP:
        raise TokenError("not an access token")
    return claims


def new_refresh_token() -> str:
    return REFRESH_PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
