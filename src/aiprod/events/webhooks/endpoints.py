"""The ``/v1/webhooks`` routes: thin — validate, call :class:`WebhookService`,
shape the answer."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from aiprod.db.paging import decode_cursor, page_of
from aiprod.errors import AppError, Forbidden, Invalid, error_responses
from aiprod.events.deps import Dispatcher, EventSettings, Webhooks
from aiprod.events.schemas import MAX_SEQ
from aiprod.events.webhooks.schemas import (
    DeliveryOut,
    DeliveryPage,
    DeliveryStatus,
    WebhookCreate,
    WebhookList,
    WebhookOut,
    WebhookUpdate,
    WebhookWithSecret,
)
from aiprod.identity.deps import WebhooksRead, WebhooksWrite, owner_scope
from aiprod.identity.permissions import Principal
from aiprod.ssrf import SSRFBlocked, WebhookURLError

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])

WebhookId = Annotated[uuid.UUID, Path(description="The webhook endpoint's id.")]
DeliveryId = Annotated[uuid.UUID, Path(description="The delivery's id.")]


def _url_error(exc: Exception) -> AppError:
    code = "ssrf_blocked" if isinstance(exc, SSRFBlocked) else "invalid_url"
    return Invalid(
        str(exc), code, details=[{"loc": ["body", "url"], "msg": str(exc), "type": code}]
    )


def _only_admin_allows_private(caller: Principal, allow_private: bool | None) -> None:
    """The caller's *role* decides, never a permission of the credential: an
    API key's scopes (or any future grant of an admin:* permission to another
    role) cannot let a non-admin open private networks."""
    if allow_private and caller.role != "admin":
        raise Forbidden("only an admin can let an endpoint reach private addresses")


@router.post(
    "",
    status_code=201,
    summary="Register a webhook endpoint",
    response_model=WebhookWithSecret,
    responses=error_responses(401, 403, 413, 422),
)
async def create_webhook(
    body: WebhookCreate, caller: WebhooksWrite, service: Webhooks, settings: EventSettings
) -> WebhookWithSecret:
    """Events of your productions whose type is in `event_types` are POSTed to
    `url`, signed per Standard Webhooks with the returned `secret`.  URLs that
    reach loopback or private addresses answer 422 `ssrf_blocked` unless an
    admin sets `allow_private`."""
    _only_admin_allows_private(caller, body.allow_private)
    try:
        endpoint, secret = await service.create(
            caller.user_id,
            body.url,
            body.event_types,
            body.description,
            enabled=body.enabled,
            allow_private=body.allow_private,
            private_allowed_globally=settings.webhook_allow_private_networks,
        )
    except (WebhookURLError, SSRFBlocked) as exc:
        raise _url_error(exc) from None
    return WebhookWithSecret.with_secret(endpoint, secret)


@router.get(
    "",
    summary="List webhook endpoints",
    response_model=WebhookList,
    responses=error_responses(401, 403),
)
async def list_webhooks(caller: WebhooksRead, service: Webhooks) -> WebhookList:
    """Your endpoints (admins: everyone's), oldest first.  Secrets are not shown."""
    rows = await service.list_endpoints(owner_scope(caller))
    return WebhookList(items=[WebhookOut.from_row(e) for e in rows])


@router.get(
    "/{webhook_id}",
    summary="Get a webhook endpoint",
    response_model=WebhookOut,
    responses=error_responses(401, 403, 404, 422),
)
async def get_webhook(webhook_id: WebhookId, caller: WebhooksRead, service: Webhooks) -> WebhookOut:
    """One endpoint (without its secret)."""
    return WebhookOut.from_row(await service.get(webhook_id, owner_scope(caller)))


@router.patch(
    "/{webhook_id}",
    summary="Change a webhook endpoint",
    response_model=WebhookOut,
    responses=error_responses(401, 403, 404, 413, 422),
)
async def update_webhook(
    webhook_id: WebhookId,
    body: WebhookUpdate,
    caller: WebhooksWrite,
    service: Webhooks,
    settings: EventSettings,
) -> WebhookOut:
    """Change the URL, event types, description or `enabled`; `allow_private`
    is for admins.  An admin's approval for private addresses holds for the URL
    approved: a new URL is held to public addresses until an admin approves it
    (`allow_private: true` with the change, or after it)."""
    _only_admin_allows_private(caller, body.allow_private)
    changes = body.model_dump(exclude_unset=True)
    try:
        endpoint = await service.update(
            webhook_id,
            owner_scope(caller),
            changes,
            private_allowed_globally=settings.webhook_allow_private_networks,
        )
    except (WebhookURLError, SSRFBlocked) as exc:
        raise _url_error(exc) from None
    return WebhookOut.from_row(endpoint)


@router.post(
    "/{webhook_id}/rotate-secret",
    summary="Rotate a webhook endpoint's secret",
    response_model=WebhookWithSecret,
    responses=error_responses(401, 403, 404, 422),
)
async def rotate_secret(
    webhook_id: WebhookId, caller: WebhooksWrite, service: Webhooks
) -> WebhookWithSecret:
    """A new signing secret, effective for every attempt from now on."""
    endpoint, secret = await service.rotate_secret(webhook_id, owner_scope(caller))
    return WebhookWithSecret.with_secret(endpoint, secret)


@router.delete(
    "/{webhook_id}",
    status_code=204,
    summary="Delete a webhook endpoint",
    response_class=Response,
    responses=error_responses(401, 403, 404, 422),
)
async def delete_webhook(
    webhook_id: WebhookId, caller: WebhooksWrite, service: Webhooks
) -> Response:
    """The endpoint and its delivery records go; nothing more is sent to it."""
    await service.delete(webhook_id, owner_scope(caller))
    return Response(status_code=204)


@router.get(
    "/{webhook_id}/deliveries",
    summary="List deliveries",
    response_model=DeliveryPage,
    responses=error_responses(401, 403, 404, 422),
)
async def list_deliveries(
    webhook_id: WebhookId,
    caller: WebhooksRead,
    service: Webhooks,
    settings: EventSettings,
    limit: Annotated[int, Query(ge=1, le=MAX_SEQ, description="Page size (capped).")] = 20,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    status: Annotated[DeliveryStatus | None, Query()] = None,
) -> DeliveryPage:
    """Newest first: status, attempts, last response code and error, payload."""
    limit = min(limit, settings.page_size_max)
    before = decode_cursor(cursor)
    rows = await service.deliveries(webhook_id, owner_scope(caller), limit + 1, before, status)
    page, next_cursor = page_of(rows, limit)
    return DeliveryPage(items=[DeliveryOut.from_row(d) for d in page], next_cursor=next_cursor)


@router.get(
    "/{webhook_id}/deliveries/{delivery_id}",
    summary="Get a delivery",
    response_model=DeliveryOut,
    responses=error_responses(401, 403, 404, 422),
)
async def get_delivery(
    webhook_id: WebhookId, delivery_id: DeliveryId, caller: WebhooksRead, service: Webhooks
) -> DeliveryOut:
    """One delivery and what became of it."""
    row = await service.delivery(webhook_id, delivery_id, owner_scope(caller))
    return DeliveryOut.from_row(row)


@router.post(
    "/{webhook_id}/deliveries/{delivery_id}/replay",
    status_code=202,
    summary="Send a delivery again",
    response_model=DeliveryOut,
    responses=error_responses(401, 403, 404, 422),
)
async def replay_delivery(
    webhook_id: WebhookId,
    delivery_id: DeliveryId,
    caller: WebhooksWrite,
    service: Webhooks,
    dispatcher: Dispatcher,
) -> DeliveryOut:
    """Queue the same message (same `webhook-id`) as a new delivery, whatever
    became of the original; it is retried like any other."""
    row = await service.replay(webhook_id, delivery_id, owner_scope(caller))
    if dispatcher is not None:
        dispatcher.nudge()
    return DeliveryOut.from_row(row)
