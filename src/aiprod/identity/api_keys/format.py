"""What an API key looks like: format, checksum and storage digest.

A key reads ``aipk_`` + 30 random base62 characters (≈ 178 bits) + a 6-char
base62 CRC-32 of the random part.  The prefix lets secret scanners and our own
logs' scrubbing recognise keys; the checksum rejects typos and garbage without
touching the database.  The server stores HMAC-SHA256(server secret, key):
deterministic, so a key is found by an indexed lookup of its digest, and a
single fast hash (no slow KDF: the key is random, not a password), so
verification takes microseconds.  A stolen database without the HMAC secret
does not let anyone test guesses offline.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import zlib

PREFIX = "aipk_"
_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_INDEX = {c: i for i, c in enumerate(_ALPHABET)}
RANDOM_CHARS = 30
CHECK_CHARS = 6
LENGTH = len(PREFIX) + RANDOM_CHARS + CHECK_CHARS
DISPLAY_CHARS = 8  # how much of the random part identifies a key in lists


def _base62(n: int, width: int) -> str:
    out = []
    for _ in range(width):
        n, r = divmod(n, 62)
        out.append(_ALPHABET[r])
    return "".join(reversed(out))


def _checksum(body: str) -> str:
    return _base62(zlib.crc32(body.encode()), CHECK_CHARS)


def generate() -> str:
    body = "".join(secrets.choice(_ALPHABET) for _ in range(RANDOM_CHARS))
    return PREFIX + body + _checksum(body)


def looks_like_key(token: str) -> bool:
    return token.startswith(PREFIX)


def well_formed(token: str) -> bool:
    """Right length, alphabet and checksum (constant work for a given length)."""
    if len(token) != LENGTH or not token.startswith(PREFIX):
        return False
    body = token[len(PREFIX) : len(PREFIX) + RANDOM_CHARS]
    check = token[len(PREFIX) + RANDOM_CHARS :]
    if any(c not in _INDEX for c in body) or any(c not in _INDEX for c in check):
        return False
    return hmac.compare_digest(_checksum(body), check)


def display_prefix(token: str) -> str:
    return token[: len(PREFIX) + DISPLAY_CHARS]


def digest(secret: bytes, token: str) -> str:
    return hmac.new(secret, token.encode(), hashlib.sha256).hexdigest()


def same_digest(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())
