"""Roles, permissions and the principal a credential establishes.

Deny by default: a permission is granted only when the caller's *current*
role grants it (read from the database on every request) and, for API keys,
when the key's scopes include it too.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Literal, get_args

from aiprod.access_config import Role

ROLES: tuple[str, ...] = get_args(Role)

JOB_PERMISSIONS = ("jobs:create", "jobs:read", "jobs:update", "jobs:delete", "jobs:approve")
WEBHOOK_PERMISSIONS = ("webhooks:read", "webhooks:write")
MEDIA_PERMISSIONS = ("media:read", "media:write")
ADMIN_PERMISSIONS = ("admin:users", "admin:roles", "admin:keys", "admin:audit")
ALL_PERMISSIONS = (
    *JOB_PERMISSIONS,
    "results:read",
    *WEBHOOK_PERMISSIONS,
    *MEDIA_PERMISSIONS,
    *ADMIN_PERMISSIONS,
)

# Media (uploads for productions): whoever may create jobs may upload; the
# viewer may list (only its own, so nothing unless a role change left some).
# Webhooks: admin, user and service read and manage their own endpoints.  The
# viewer gets neither: an endpoint makes the server send requests (and the
# job events of its owner) to a URL of the caller's choosing, which is more
# than reading, and its delivery records are the owner's business.
PERMISSIONS: dict[str, frozenset[str]] = {
    "admin": frozenset(ALL_PERMISSIONS),
    "user": frozenset((*JOB_PERMISSIONS, "results:read", *WEBHOOK_PERMISSIONS, *MEDIA_PERMISSIONS)),
    "viewer": frozenset(("jobs:read", "results:read", "media:read")),
    "service": frozenset(
        (
            "jobs:create",
            "jobs:read",
            "jobs:update",
            "results:read",
            *WEBHOOK_PERMISSIONS,
            *MEDIA_PERMISSIONS,
        )
    ),
}

# Privilege order, for picking one role among several an external issuer lists.
RANK = {"admin": 3, "user": 2, "service": 1, "viewer": 0}

Via = Literal["jwt", "api_key", "oidc"]


@dataclass(frozen=True)
class Principal:
    """Who is calling, as established by one credential on one request.

    `role` is the user's role as stored now; `scopes` bounds what this
    credential may do (a session or external token: everything the role
    allows; an API key: the scopes it was created with)."""

    user_id: uuid.UUID
    role: str
    email: str
    scopes: frozenset[str]
    via: Via
    api_key_id: uuid.UUID | None = None
    session_id: uuid.UUID | None = None

    @property
    def permissions(self) -> frozenset[str]:
        return PERMISSIONS.get(self.role, frozenset()) & self.scopes


def has_permission(principal: Principal, permission: str) -> bool:
    """True when the role grants `permission` and the credential's scopes include it."""
    return permission in PERMISSIONS.get(principal.role, frozenset()) and (
        permission in principal.scopes
    )
