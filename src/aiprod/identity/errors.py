"""Exceptions of the identity layer; each carries the HTTP status and code it
answers with (``aiprod.api.errors`` turns them into the one error shape)."""

from __future__ import annotations

from typing import Any, ClassVar


class IdentityError(Exception):
    default_status: ClassVar[int] = 400
    default_code: ClassVar[str] = "bad_request"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        details: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = self.default_status
        self.code = code or self.default_code
        self.details = details
        self.headers = headers


class AuthError(IdentityError):
    """Wrong credentials or an unusable token; the message is safe to show."""

    default_status = 401
    default_code = "unauthorized"


class Forbidden(IdentityError):
    default_status = 403
    default_code = "forbidden"


class IdentityNotFound(IdentityError):
    default_status = 404
    default_code = "not_found"


class IdentityConflict(IdentityError):
    default_status = 409
    default_code = "conflict"


class InvalidInput(IdentityError):
    default_status = 422
    default_code = "validation_error"


class Throttled(IdentityError):
    default_status = 429
    default_code = "rate_limited"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message, headers={"Retry-After": str(retry_after)})
        self.retry_after = retry_after
