"""Request and response bodies of the authentication API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from aiprod.identity.models import User


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


class UserOut(BaseModel):
    id: uuid.UUID
    email: str
    role: str = Field(description="admin, user, viewer or service.")
    is_active: bool
    created_at: datetime

    @classmethod
    def from_user(cls, user: User) -> UserOut:
        return cls(
            id=user.id,
            email=user.email,
            role=user.role,
            is_active=user.is_active,
            created_at=user.created_at,
        )
