"""``GET /metrics``: the Prometheus text, for a scraper or an admin only.

Never public: the figures say how busy the service is, who is failing and
when keys are due.  Two credentials open it:

* the scrape token (``AIPROD_METRICS_TOKEN_FILE``), sent by Prometheus as
  ``Authorization: Bearer <token>`` and compared in constant time; a token
  shorter than 32 characters stops the server at start;
* an admin's credential, through the same machinery as every ``/v1`` route
  (:mod:`aiprod.identity.deps`): an access token, an API key or the studio's
  cookie session, whose role and scopes grant ``admin:audit`` (the operator's
  read-only view of the service; no separate scope to hand out).

Anything else is refused the way a ``/v1`` route refuses: 401 without a valid
credential, 403 (audited) with one that lacks the permission.  The route
declares its need (``x-aiprod-permission``), and the start-up route check
holds it to that declaration like every ``/v1`` route.
"""

from __future__ import annotations

import asyncio
import hmac
from typing import Annotated, cast

from fastapi import APIRouter, Depends, Request, Response
from fastapi.security import HTTPAuthorizationCredentials

from aiprod.db.engine import Database
from aiprod.errors import error_responses
from aiprod.identity.deps import (
    BEARER,
    PERMISSION_KEY,
    authenticated_by,
    bearer_or_cookie,
    deny,
    unauthorized,
)
from aiprod.identity.permissions import has_permission
from aiprod.ops import metrics, snapshot
from aiprod.settings import Settings

PERMISSION = "admin:audit"
NEED = f"{PERMISSION} or the scrape token"

router = APIRouter(tags=["metrics"])


def scrape_token(settings: Settings) -> str | None:
    """The configured scrape token (checked when the settings loaded)."""
    path = settings.metrics_token_file
    return path.read_text().strip() if path is not None else None


async def metrics_access(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)],
) -> str:
    """Who may scrape: ``scraper`` (the token) or ``admin``; else 401/403."""
    token, from_cookie = bearer_or_cookie(request, credentials)
    if token is None:
        raise unauthorized("missing bearer token", invalid_token=False)
    expected = cast(str | None, getattr(request.app.state, "metrics_token", None))
    if (
        expected is not None
        and not from_cookie
        and hmac.compare_digest(token.encode(), expected.encode())
    ):
        return "scraper"
    found = await authenticated_by(request, token, from_cookie)
    if not has_permission(found.principal, PERMISSION):
        raise await deny(
            request,
            found.principal,
            NEED,
            f"reading the metrics needs the permission {PERMISSION} "
            f"(you are {found.principal.role})",
        )
    return "admin"


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    description="Every metric in the Prometheus text format (docs/operations.md lists "
    "them).  Send the scrape token (`AIPROD_METRICS_TOKEN_FILE`) as a bearer token, or "
    f"an admin credential granting `{PERMISSION}`.",
    response_class=Response,
    responses={
        200: {
            "description": "The metrics.",
            "content": {metrics.CONTENT_TYPE.split(";")[0]: {"schema": {"type": "string"}}},
        },
        **error_responses(401, 403),
    },
    openapi_extra={PERMISSION_KEY: NEED},
)
async def read_metrics(request: Request, _: Annotated[str, Depends(metrics_access)]) -> Response:
    state = request.app.state
    snap = await snapshot.take(cast(Database, state.db), cast(Settings, state.settings))
    # Reading every process's files (multiprocess mode) is file work: off the loop.
    body = await asyncio.to_thread(metrics.exposition, [snap])
    return Response(body, media_type=metrics.CONTENT_TYPE, headers={"Cache-Control": "no-store"})
