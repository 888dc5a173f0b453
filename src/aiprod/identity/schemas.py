"""Request and response bodies of the authentication API."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, get_args

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator
from pydantic.json_schema import SkipJsonSchema

from aiprod.access_config import Role
from aiprod.identity.api_keys.service import KeyRotated, key_status
from aiprod.identity.models import ApiKey, AuditEvent, AuthSession, User
from aiprod.identity.permissions import ALL_PERMISSIONS, PERMISSIONS

Permission = Literal[
    "jobs:create",
    "jobs:read",
    "jobs:update",
    "jobs:delete",
    "jobs:approve",
    "results:read",
    "webhooks:read",
    "webhooks:write",
    "media:read",
    "media:write",
    "admin:users",
    "admin:roles",
    "admin:keys",
    "admin:audit",
]
assert set(get_args(Permission)) == set(ALL_PERMISSIONS)


# Bounds of the numbers the identity routes take, stated in the schema (so the
# OpenAPI document says what is accepted) and refused with 422 before any
# arithmetic or query sees them: `timedelta(days=1e308)` or a 20-digit id would
# otherwise fail deep inside as a 500.
MAX_AGE_DAYS = 3650
MAX_GRACE_SECONDS = 30 * 86400
MAX_KEY_DAYS = 365
MAX_SEQ = 2**63 - 1  # a BIGINT id


def _as_utc(t: datetime) -> datetime:
    """Aware UTC (a time without a zone is taken as UTC), or ValueError when the
    instant is outside the years 1-9999 once in UTC."""
    if t.tzinfo is None:
        return t.replace(tzinfo=UTC)
    try:
        return t.astimezone(UTC)
    except OverflowError:
        raise ValueError("the time is outside the years 1-9999 in UTC") from None


def _iso_only(value: object) -> object:
    """ISO 8601 text only: pydantic would also read a bare number as a Unix
    time, which the schema (`format: date-time`) does not promise."""
    if isinstance(value, (int, float)) or (
        isinstance(value, str) and re.fullmatch(r"\s*[-+]?[\d.eE+-]+\s*", value)
    ):
        raise ValueError("expected an ISO 8601 date-time, e.g. 2026-12-01T08:00:00Z")
    return value


UTCTime = Annotated[datetime, BeforeValidator(_iso_only), AfterValidator(_as_utc)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LoginRequest(_Strict):
    email: str = Field(min_length=3, max_length=320, examples=["admin@localhost"])
    # No strength rule here: a login must not reveal the password policy's
    # boundary, and too-short passwords simply fail to match.
    password: str = Field(min_length=1, max_length=1024)


class RefreshRequest(_Strict):
    refresh_token: str = Field(min_length=1, max_length=512)


class LogoutRequest(_Strict):
    refresh_token: str = Field(min_length=1, max_length=512)


class TokenResponse(BaseModel):
    access_token: str = Field(description="JWT for `Authorization: Bearer …`.")
    refresh_token: str = Field(
        description="Opaque, single use: trade it at /v1/auth/refresh for a new pair. "
        "Presenting it twice revokes every token of the login."
    )
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 (the OAuth2 scheme name)
    expires_in: int = Field(description="Seconds until the access token expires.")
    session_id: uuid.UUID = Field(description="The login session (see /v1/auth/sessions).")


class UserOut(BaseModel):
    id: uuid.UUID
    email: str
    role: str = Field(description="admin, user, viewer or service.")
    permissions: list[str] = Field(
        description="What the role allows now (a credential may narrow it: API-key scopes)."
    )
    is_active: bool
    created_at: datetime

    @classmethod
    def from_user(cls, user: User) -> UserOut:
        return cls(
            id=user.id,
            email=user.email,
            role=user.role,
            permissions=sorted(PERMISSIONS.get(user.role, frozenset())),
            is_active=user.is_active,
            created_at=user.created_at,
        )


# ----------------------------------------------------------------- sessions


class RevokeRequest(_Strict):
    """Name one session, or a user (all their sessions); neither: all of yours."""

    session_id: uuid.UUID | None = None
    user_id: uuid.UUID | None = Field(
        None, description="Another user's needs the permission admin:users."
    )

    @model_validator(mode="after")
    def _one(self) -> RevokeRequest:
        if self.session_id is not None and self.user_id is not None:
            raise ValueError("give session_id or user_id, not both")
        return self


class RevokeResponse(BaseModel):
    revoked: int = Field(description="How many sessions (or keys) this call revoked.")


class SessionOut(BaseModel):
    id: uuid.UUID
    created_at: datetime
    refreshed_at: datetime | None
    ip: str | None
    user_agent: str | None
    current: bool = Field(description="The session of the token making this call.")

    @classmethod
    def from_session(cls, s: AuthSession, current: uuid.UUID | None) -> SessionOut:
        return cls(
            id=s.id,
            created_at=s.created_at,
            refreshed_at=s.refreshed_at,
            ip=s.ip,
            user_agent=s.user_agent,
            current=s.id == current,
        )


class SessionList(BaseModel):
    items: list[SessionOut]


class PasswordChange(_Strict):
    current_password: str = Field(min_length=1, max_length=1024)
    new_password: str = Field(min_length=1, max_length=1024)


# ----------------------------------------------------------------- API keys


class ApiKeyCreate(_Strict):
    name: str = Field(min_length=1, max_length=100, examples=["render farm"])
    scopes: list[Permission] | None = Field(
        None,
        min_length=1,
        description="What the key may do: a subset of the owner's permissions. Default: "
        "all of them except admin:*.",
    )
    expires_in_days: int | None = Field(
        None,
        ge=1,
        le=MAX_KEY_DAYS,
        description="Lifetime; default AIPROD_API_KEY_DEFAULT_DAYS (90).",
    )
    user_id: uuid.UUID | None = Field(
        None, description="Make the key for another user (a service account): admin:keys."
    )


class ApiKeyOut(BaseModel):
    id: uuid.UUID
    lineage_id: uuid.UUID = Field(description="Shared by every version of the key.")
    version: int
    user_id: uuid.UUID
    name: str
    prefix: str | None = Field(description="The start of the secret, to recognise it.")
    scopes: list[str]
    status: Literal["active", "grace", "pending", "expired", "revoked"] = Field(
        description="grace: rotated, works until expires_at; pending: made by scheduled "
        "rotation, claim its secret with POST /v1/api-keys/{id}/claim."
    )
    created_at: datetime
    expires_at: datetime
    superseded_at: datetime | None
    revoked_at: datetime | None
    rotated_by: str | None

    @classmethod
    def from_key(cls, key: ApiKey, now: datetime) -> ApiKeyOut:
        return cls(
            id=key.id,
            lineage_id=key.lineage_id,
            version=key.version,
            user_id=key.user_id,
            name=key.name,
            prefix=key.prefix,
            scopes=list(key.scopes),
            status=key_status(key, now),
            created_at=key.created_at,
            expires_at=key.expires_at,
            superseded_at=key.superseded_at,
            revoked_at=key.revoked_at,
            rotated_by=key.rotated_by,
        )


class ApiKeyCreated(BaseModel):
    key: ApiKeyOut
    secret: str = Field(
        description="The key itself (`aipk_…`). Shown only now: the server keeps only its HMAC."
    )


class ApiKeyList(BaseModel):
    items: list[ApiKeyOut]


class ApiKeyRotate(_Strict):
    grace_seconds: float | None = Field(
        None,
        ge=0,
        le=MAX_GRACE_SECONDS,
        allow_inf_nan=False,
        description="How long the current version keeps working (default "
        "AIPROD_API_KEY_GRACE_SECONDS, 7 days).",
    )


class RevokeAllKeys(_Strict):
    user_id: uuid.UUID | None = Field(None, description="Another user's keys: admin:keys.")


class RotateDue(_Strict):
    max_age_days: float | None = Field(
        None,
        strict=True,  # a number, not `true`
        gt=0,
        le=MAX_AGE_DAYS,
        allow_inf_nan=False,
        description="Rotate keys older than this (default AIPROD_API_KEY_ROTATE_AFTER_DAYS).",
    )


class KeyRotationOut(BaseModel):
    key_id: uuid.UUID
    previous_key_id: uuid.UUID
    owner_id: uuid.UUID
    name: str
    grace_until: datetime
    pending: bool

    @classmethod
    def from_notice(cls, n: KeyRotated) -> KeyRotationOut:
        return cls(
            key_id=n.key_id,
            previous_key_id=n.previous_key_id,
            owner_id=n.owner_id,
            name=n.name,
            grace_until=n.grace_until,
            pending=n.pending,
        )


class RotateDueResult(BaseModel):
    rotated: list[KeyRotationOut]


# -------------------------------------------------------------------- admin


class UserPatch(_Strict):
    # At least one field; null is not a value of either (omit the field).
    model_config = ConfigDict(extra="forbid", json_schema_extra={"minProperties": 1})

    role: Role | SkipJsonSchema[None] = Field(None, description="Needs admin:roles.")
    is_active: bool | SkipJsonSchema[None] = Field(
        None, description="false disables the account and revokes its sessions."
    )

    @model_validator(mode="after")
    def _something(self) -> UserPatch:
        if self.role is None and self.is_active is None:
            raise ValueError("give role and/or is_active")
        return self


class UserPage(BaseModel):
    items: list[UserOut]
    next_after: str | None = Field(description="Pass as `after` for the next page.")


class AuditEventOut(BaseModel):
    seq: int
    occurred_at: datetime
    event: str
    outcome: str
    actor_id: uuid.UUID | None
    actor: str | None
    subject_type: str | None
    subject_id: str | None
    ip: str | None
    request_id: str | None
    details: dict[str, Any]
    hash: str

    @classmethod
    def from_event(cls, e: AuditEvent) -> AuditEventOut:
        return cls(
            seq=e.seq,
            occurred_at=e.occurred_at,
            event=e.event,
            outcome=e.outcome,
            actor_id=e.actor_id,
            actor=e.actor,
            subject_type=e.subject_type,
            subject_id=e.subject_id,
            ip=e.ip,
            request_id=e.request_id,
            details=e.details,
            hash=e.hash,
        )


class AuditPage(BaseModel):
    items: list[AuditEventOut]
    next_before: int | None = Field(description="Pass as `before` for older events.")


class AuditVerification(BaseModel):
    ok: bool
    count: int
    head_seq: int
    head_hash: str
    first_bad_seq: int | None
    problem: str | None
