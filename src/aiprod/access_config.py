"""Configuration types of access control (secrets, roles, external OIDC
issuers), validated when Settings load.  They live at the ground, beside
``settings.py``, so that loading settings imports no domain package.

Everything here fails closed: a secret that is too short, an external issuer
without an audience, a JWKS fetched over plain HTTP from another host, or an
algorithm outside the asymmetric allow-list stops the process at start-up
instead of accepting tokens it should not.
"""

from __future__ import annotations

import hashlib
import ipaddress
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

MIN_SECRET_LENGTH = 32
Role = Literal["admin", "user", "viewer", "service"]
# Asymmetric only: an external issuer never shares a secret with us, so an HS*
# token claiming to come from it is forged by definition (key confusion).
EXTERNAL_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384")


def check_secret(value: str) -> str:
    if len(value) < MIN_SECRET_LENGTH:
        raise ValueError(f"secrets must be at least {MIN_SECRET_LENGTH} characters")
    return value


def _is_loopback(host: str | None) -> bool:
    if host is None:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_fetch_url(url: str, what: str) -> str:
    """HTTPS, or plain HTTP to this machine only (a local test issuer)."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return url
    if parts.scheme == "http" and _is_loopback(parts.hostname):
        return url
    raise ValueError(f"{what} must be an https:// URL (plain http only to localhost): {url!r}")


class OIDCIssuer(BaseModel):
    """One external identity provider (Firebase, Auth0, Keycloak, …).

    Its ID tokens (or access tokens in JWT form) are accepted as bearer tokens
    when their ``iss`` is exactly `issuer`, their ``aud`` contains `audience`,
    they are unexpired and signed by a key of the issuer's JWKS with one of
    `algorithms`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    issuer: str = Field(min_length=1, description="Exact `iss` value, e.g. https://x.auth0.com/")
    audience: str = Field(
        min_length=1, description="Required `aud` (client id / API identifier). No default."
    )
    jwks_url: str | None = Field(
        None,
        description="Where the signing keys are; unset: read from the issuer's "
        "/.well-known/openid-configuration (jwks_uri).",
    )
    algorithms: list[str] = Field(default_factory=lambda: ["RS256", "ES256"], min_length=1)
    role_claim: str = Field(
        "role",
        min_length=1,
        description="Claim holding the role (a string or a list of strings). A name with "
        "dots that is not itself a claim is followed as a path, e.g. realm_access.roles.",
    )
    role_map: dict[str, Role] = Field(
        default_factory=lambda: {r: r for r in ("admin", "user", "viewer", "service")},
        description="Claim value → AIPROD role. Several matches: the most privileged wins.",
    )
    default_role: Role | None = Field(
        None, description="Role when no claim value maps; unset: such tokens are refused."
    )
    email_claim: str = "email"
    sync_role: bool = Field(
        True, description="Re-apply the mapped role on every token (the issuer is authoritative)."
    )
    leeway_seconds: int = Field(30, ge=0, le=300, description="Clock skew allowed on exp/nbf/iat.")
    jwks_cache_seconds: float = Field(
        3600.0, gt=0, description="After this the JWKS is fetched again (old keys kept on error)."
    )
    jwks_max_stale_seconds: float = Field(
        86400.0,
        gt=0,
        description="Cached keys stop being trusted this long after their last successful "
        "fetch when the JWKS cannot be reached.",
    )
    jwks_min_refresh_seconds: float = Field(
        30.0, ge=0, description="At most one fetch per this period for unknown key ids."
    )
    timeout_seconds: float = Field(5.0, gt=0, le=60)
    # Browser sign-in (the studio's "Sign in with …" button): the authorization
    # code flow with PKCE, turned on by a client id.
    client_id: str | None = Field(
        None,
        min_length=1,
        description="The studio's client id at this issuer; set: the studio offers "
        "'Sign in with <display_name>' (authorization code + PKCE). Its ID tokens must "
        "carry `audience` in `aud` (usually the same value).",
    )
    client_secret_file: Path | None = Field(
        None, description="File holding the client secret, for confidential clients."
    )
    display_name: str | None = Field(None, min_length=1, max_length=60)
    authorization_endpoint: str | None = Field(
        None, description="Unset: read from the issuer's discovery document."
    )
    token_endpoint: str | None = Field(
        None, description="Unset: read from the issuer's discovery document."
    )
    scopes: str = Field("openid email profile", pattern=r"^openid( [\x21-\x7e]+)*$")

    @property
    def slug(self) -> str:
        """A stable, URL-safe name of this issuer for the sign-in routes."""
        return hashlib.sha256(self.issuer.encode()).hexdigest()[:12]

    @field_validator("authorization_endpoint", "token_endpoint")
    @classmethod
    def _endpoint_url(cls, value: str | None, info: ValidationInfo) -> str | None:
        return None if value is None else check_fetch_url(value, str(info.field_name))

    @field_validator("issuer")
    @classmethod
    def _issuer_url(cls, value: str) -> str:
        return check_fetch_url(value, "issuer") if value.startswith("http") else value

    @field_validator("jwks_url")
    @classmethod
    def _jwks_url(cls, value: str | None) -> str | None:
        return None if value is None else check_fetch_url(value, "jwks_url")

    @field_validator("algorithms")
    @classmethod
    def _algorithms(cls, value: list[str]) -> list[str]:
        bad = [a for a in value if a not in EXTERNAL_ALGORITHMS]
        if bad:
            raise ValueError(
                f"algorithms {bad} are not allowed; choose from {', '.join(EXTERNAL_ALGORITHMS)}"
            )
        return value

    @model_validator(mode="after")
    def _discoverable(self) -> OIDCIssuer:
        if self.jwks_url is None and not self.issuer.startswith("http"):
            raise ValueError("jwks_url is required when the issuer is not a URL")
        if (
            self.client_id is not None
            and not self.issuer.startswith("http")
            and (self.authorization_endpoint is None or self.token_endpoint is None)
        ):
            raise ValueError(
                "browser sign-in needs authorization_endpoint and token_endpoint when the "
                "issuer is not a URL"
            )
        if self.jwks_max_stale_seconds < self.jwks_cache_seconds:
            raise ValueError("jwks_max_stale_seconds must be ≥ jwks_cache_seconds")
        return self
