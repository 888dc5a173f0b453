"""FastAPI dependencies for authentication and roles.

The access token only proves who the caller is; what the caller may do is read
from the user row on every request, so disabling an account or changing a
role takes effect immediately rather than when the token expires.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated, cast

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from aiprod.api.errors import ApiError
from aiprod.identity.models import User
from aiprod.identity.service import AuthError, IdentityService

_bearer = HTTPBearer(
    auto_error=False,  # we answer 401 ourselves, in the error shape
    scheme_name="bearer",
    bearerFormat="JWT",
    description="Access token from `POST /v1/auth/login` or `POST /v1/auth/refresh`.",
)


def identity_service(request: Request) -> IdentityService:
    """The service built by the app's lifespan."""
    return cast(IdentityService, request.app.state.identity)


Identity = Annotated[IdentityService, Depends(identity_service)]


def _unauthorized(message: str, invalid_token: bool) -> ApiError:
    # RFC 6750 §3: no error code when credentials are simply missing.
    challenge = 'Bearer error="invalid_token"' if invalid_token else "Bearer"
    return ApiError(401, message, headers={"WWW-Authenticate": challenge})


async def current_user(
    identity: Identity,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> User:
    """The active user named by a valid access token, else 401."""
    if credentials is None:
        raise _unauthorized("missing bearer token", invalid_token=False)
    try:
        claims = identity.authenticate(credentials.credentials)
        user_id = uuid.UUID(str(claims["sub"]))
    except AuthError as exc:
        raise _unauthorized(str(exc), invalid_token=True) from None
    except (KeyError, ValueError):
        raise _unauthorized("invalid access token: bad subject", invalid_token=True) from None
    user = await identity.get_user(user_id)
    if user is None or not user.is_active:
        raise _unauthorized("the account is disabled or no longer exists", invalid_token=True)
    return user


CurrentUser = Annotated[User, Depends(current_user)]


def require_role(*roles: str) -> Callable[[User], Awaitable[User]]:
    """A dependency admitting only users whose current role is one of `roles` (403
    otherwise; authentication still answers 401 first)."""
    allowed = frozenset(roles)

    async def check(user: CurrentUser) -> User:
        if user.role not in allowed:
            raise ApiError(
                403,
                f"this action needs the role {' or '.join(sorted(allowed))} (you are {user.role})",
            )
        return user

    return check


AdminUser = Annotated[User, Depends(require_role("admin"))]
# Viewers read; everyone else may also create and change productions.
WriterUser = Annotated[User, Depends(require_role("admin", "user", "service"))]


def owner_scope(user: User) -> uuid.UUID | None:
    """The owner filter for job queries: admins see every job (None), others their own."""
    return None if user.role == "admin" else user.id
