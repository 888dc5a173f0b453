"""Access JWTs and opaque refresh tokens.

Access tokens are short-lived HS256 JWTs with ``iss``, ``aud``, ``typ``, ``jti``
and ``exp``; decoding pins the algorithm (no ``alg=none``, no confusion).
Refresh tokens are random strings; only their SHA-256 is stored.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import stat
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt

from aiprod.settings import Settings

ALGORITHM = "HS256"
ACCESS_TYP = "access"


class TokenError(Exception):
    pass


class InsecureConfiguration(RuntimeError):
    """Refuse to start rather than sign tokens with a weak key."""


def signing_key(settings: Settings) -> str:
    """The configured key, or one made once and kept private in the data folder."""
    if settings.secret_key is not None:
        if len(settings.secret_key) < 32:
            raise InsecureConfiguration("AIPROD_SECRET_KEY must be at least 32 characters")
        return settings.secret_key
    path = settings.data_dir / "secret.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(48))
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise InsecureConfiguration(f"{path} is readable by others (mode {mode:o}); chmod 600 it")
    key = path.read_text().strip()
    if len(key) < 32:
        raise InsecureConfiguration(f"{path} holds a key shorter than 32 characters")
    return key


def issue_access(settings: Settings, key: str, user_id: uuid.UUID, role: str) -> tuple[str, int]:
    now = datetime.now(UTC)
    ttl = settings.access_token_minutes * 60
    claims: dict[str, Any] = {
        "sub": str(user_id),
        "role": role,
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "typ": ACCESS_TYP,
        "jti": uuid.uuid4().hex,
        "iat": now,
        "nbf": now,
        "exp": now + timedelta(seconds=ttl),
    }
    return jwt.encode(claims, key, algorithm=ALGORITHM), ttl


def decode_access(settings: Settings, key: str, token: str) -> dict[str, Any]:
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=[ALGORITHM],
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer,
            options={"require": ["exp", "iat", "sub", "aud", "iss", "jti", "typ"]},
        )
    except jwt.PyJWTError as exc:
        raise TokenError(str(exc)) from exc
    if claims.get("typ") != ACCESS_TYP:
        raise TokenError("not an access token")
    return claims


def new_refresh_token() -> str:
    return "rt_" + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
