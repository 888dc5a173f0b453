"""Webhook signing secrets at rest: sealed, never stored in the clear.

A secret must be readable again (every delivery signs with it), so it cannot
be hashed like an API key; it is encrypted instead, with AES-256-GCM under a
key derived by HKDF-SHA256 from the server's secret key (``AIPROD_SECRET_KEY``
or ``DATA_DIR/secret.key``).  A copy of the database alone no longer lets
anyone forge deliveries.

Stored form: ``v1:<kid>:<base64url(nonce ‖ ciphertext+tag)>`` (about 90
characters for a ``whsec_`` secret: it fits the column plaintext had).  ``kid`` names
the secret key it was sealed under (a truncated hash, public like a JWT kid),
and the endpoint's id is bound in as associated data, so a sealed value
copied to another row does not open.

Rotation: set the new ``AIPROD_SECRET_KEY`` and keep the old one in
``AIPROD_PREVIOUS_SECRET_KEYS``; every value sealed under a previous key still
opens, and at start-up each API process reseals what is not under the current
key (and seals rows still in the clear, from before sealing existed).  Once
that has run, the old key can be dropped.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import uuid
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from aiprod.identity.tokens import signing_key
from aiprod.settings import Settings

VERSION = "v1"
INFO = b"aiprod webhook signing secrets v1"
PLAINTEXT_PREFIX = "whsec_"


class SecretUnreadable(ValueError):
    """A sealed secret none of the configured keys opens."""


def derive(secret_key: str) -> bytes:
    """The AES-256 key for webhook secrets, derived from a server secret key."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=INFO).derive(
        secret_key.encode()
    )


def key_id(secret_key: str) -> str:
    """A public name for a secret key (a truncated hash that says nothing useful
    about a ≥ 32-character secret)."""
    return hashlib.sha256(b"aiprod-webhook-kid\x00" + secret_key.encode()).hexdigest()[:12]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _pack(secret: str) -> bytes:
    """A ``whsec_`` secret as its raw bytes (so that the sealed form, about 90
    characters, fits the column of the plaintext one); anything else as text."""
    if secret.startswith(PLAINTEXT_PREFIX):
        with contextlib.suppress(ValueError):
            raw = base64.b64decode(secret.removeprefix(PLAINTEXT_PREFIX), validate=True)
            if PLAINTEXT_PREFIX + base64.b64encode(raw).decode() == secret:
                return b"\x01" + raw
    return b"\x00" + secret.encode()


def _unpack(data: bytes) -> str:
    if data[:1] == b"\x01":
        return PLAINTEXT_PREFIX + base64.b64encode(data[1:]).decode()
    if data[:1] == b"\x00":
        return data[1:].decode()
    raise ValueError("unknown sealed form")


@dataclass(frozen=True)
class SecretBox:
    """Seals and opens webhook secrets with the current key and any previous one."""

    current_kid: str
    keys: dict[str, bytes]  # kid → derived AES key

    @classmethod
    def from_settings(cls, settings: Settings) -> SecretBox:
        """The current secret key (refused when weak, made once when unset) and
        the previous ones."""
        current = signing_key(settings)
        keys = {key_id(current): derive(current)}
        for old in settings.previous_secret_keys:
            keys.setdefault(key_id(old), derive(old))
        return cls(key_id(current), keys)

    def seal(self, secret: str, endpoint_id: uuid.UUID) -> str:
        nonce = os.urandom(12)
        sealed = AESGCM(self.keys[self.current_kid]).encrypt(
            nonce, _pack(secret), endpoint_id.bytes
        )
        return f"{VERSION}:{self.current_kid}:{_b64(nonce + sealed)}"

    def open(self, stored: str, endpoint_id: uuid.UUID) -> str:
        """The secret; a value from before sealing (``whsec_…``) is returned as it is."""
        if stored.startswith(PLAINTEXT_PREFIX):
            return stored
        version, kid, body = [*stored.split(":", 2), "", ""][:3]
        key = self.keys.get(kid)
        if version != VERSION or key is None:
            raise SecretUnreadable(
                "the webhook secret was sealed under a key this server does not have "
                "(see AIPROD_PREVIOUS_SECRET_KEYS); rotate the endpoint's secret"
            )
        try:
            raw = _unb64(body)
            return _unpack(AESGCM(key).decrypt(raw[:12], raw[12:], endpoint_id.bytes))
        except (InvalidTag, ValueError):
            raise SecretUnreadable("the webhook secret does not open; rotate it") from None

    def is_current(self, stored: str) -> bool:
        """Sealed under the current key (nothing to reseal)."""
        return stored.startswith(f"{VERSION}:{self.current_kid}:")
