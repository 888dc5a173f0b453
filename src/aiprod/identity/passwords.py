"""Argon2id password hashing (pwdlib).

Timing: an unknown account is verified against a dummy hash made with the
same hasher and parameters as real ones, so "no such user" and "wrong
password" each cost exactly one Argon2 verification.  A hash made with older
parameters is replaced at the next successful login.
"""

from __future__ import annotations

from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

_hasher = PasswordHash((Argon2Hasher(),))
# id(hasher) → (hasher, dummy hash); holding the hasher keeps its id unique.
_dummies: dict[int, tuple[PasswordHash, str]] = {}

MIN_LENGTH = 12


def _dummy() -> str:
    """A hash of a non-password under the hasher in use (made once per hasher)."""
    key = id(_hasher)
    if key not in _dummies:
        _dummies[key] = (_hasher, _hasher.hash("timing-equaliser-not-a-password"))
    return _dummies[key][1]


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password: str, hashed: str | None) -> bool:
    if hashed is None:
        _hasher.verify(password, _dummy())
        return False
    return _hasher.verify(password, hashed)


def verify_and_update(password: str, hashed: str | None) -> tuple[bool, str | None]:
    """(matches, a new hash when the stored one uses outdated parameters).
    Always one verification, whether or not there is a stored hash."""
    if hashed is None:
        _hasher.verify(password, _dummy())
        return False, None
    return _hasher.verify_and_update(password, hashed)


def check_strength(password: str) -> None:
    if len(password) < MIN_LENGTH:
        raise ValueError(f"password must have at least {MIN_LENGTH} characters")
    if len(password) > 1024:
        raise ValueError("password must have at most 1024 characters")
