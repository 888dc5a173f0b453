"""The errors every layer raises, and the one shape they take over HTTP.

This module is the ground floor: it imports nothing of AIPROD, so that the
engine, the platform packages and the API can all raise the same kinds.  Each
kind carries the HTTP status and the stable machine code it answers with;
``aiprod.api.errors`` maps the one base class, :class:`AppError`, to the body
``{"error": {"code", "message", "details"}}``.  The message is always safe to
show to the caller: never put a secret, a token or an internal address in it.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, Field


class AppError(Exception):
    """A failure the caller can act on: HTTP `status`, machine `code`, `details`."""

    status: ClassVar[int] = 400
    default_code: ClassVar[str] = "bad_request"
    default_headers: ClassVar[dict[str, str] | None] = None

    def __init__(
        self,
        message: str,
        code: str | None = None,
        *,
        details: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.details = details
        self.headers = headers or self.default_headers


class BadRequest(AppError):
    status = 400
    default_code = "bad_request"


class AuthError(AppError):
    """Missing, wrong or unusable credentials (401, with a Bearer challenge)."""

    status = 401
    default_code = "unauthorized"
    default_headers = {"WWW-Authenticate": "Bearer"}  # noqa: RUF012 (never mutated)


class Forbidden(AppError):
    status = 403
    default_code = "forbidden"


class NotFound(AppError):
    status = 404
    default_code = "not_found"


class Conflict(AppError):
    status = 409
    default_code = "conflict"


class TooLarge(AppError):
    status = 413
    default_code = "payload_too_large"


class Unsatisfiable(AppError):
    """A byte range outside the resource (416)."""

    status = 416
    default_code = "range_not_satisfiable"


class Invalid(AppError):
    """The request is well-formed but its content is refused (422)."""

    status = 422
    default_code = "validation_error"

    @classmethod
    def at(cls, loc: list[str | int], message: str, type_: str = "value_error") -> Invalid:
        """One problem at `loc`, in the same ``details`` shape as schema validation."""
        return cls(message, details=[{"loc": loc, "msg": message, "type": type_}])


class RateLimited(AppError):
    """Too many requests, or a quota that waiting restores (429); `retry_after`
    (seconds) becomes ``Retry-After`` when it can be told."""

    status = 429
    default_code = "rate_limited"

    def __init__(
        self,
        message: str,
        retry_after: int | None,
        code: str | None = None,
        *,
        details: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        merged = dict(headers or {})
        if retry_after is not None:
            merged["Retry-After"] = str(retry_after)
        super().__init__(message, code, details=details, headers=merged or None)
        self.retry_after = retry_after


class Unavailable(AppError):
    status = 503
    default_code = "unavailable"


# ------------------------------------------------------------ the one shape


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable machine-readable code, e.g. `not_found`.")
    message: str = Field(description="Human-readable explanation; safe to show to users.")
    details: Any = Field(None, description="Extra structured data (validation errors, …).")


class ErrorResponse(BaseModel):
    """The one shape of every error answer."""

    error: ErrorDetail


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details}}


STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    416: "range_not_satisfiable",
    422: "validation_error",
    429: "rate_limited",
    500: "internal_error",
    503: "unavailable",
}

_DESCRIPTIONS = {
    400: "Malformed request (for instance a body that is not JSON).",
    401: "Missing, invalid or expired credentials.",
    403: "Authenticated, but the role does not allow this action.",
    404: "No such resource for this caller (another user's resource is reported the same way).",
    409: "The resource is not in a state that allows this action.",
    413: "Request body larger than the server accepts.",
    415: "The body is not of a type this route accepts.",
    416: "The requested byte range is outside the artifact.",
    422: "The request failed validation; `details` lists the problems.",
    429: "Too many requests (`rate_limited`: see the `RateLimit` headers), failed attempts, "
    "or a quota that waiting restores (`quota_exceeded`); retry after `Retry-After` seconds.",
    503: "A dependency is not ready; the message names it.",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries documenting the error shape for `statuses`.

    Listing 422 here also replaces FastAPI's default validation-error schema,
    which does not match what ``aiprod.api.errors`` actually sends."""
    return {s: {"model": ErrorResponse, "description": _DESCRIPTIONS[s]} for s in statuses}
