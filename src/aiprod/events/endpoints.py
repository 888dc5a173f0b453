"""HTTP routes of live progress: stream tickets and webhook endpoints."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal, cast

from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from aiprod.db.paging import decode_cursor, page_of
from aiprod.errors import AppError, Forbidden, Invalid, error_responses
from aiprod.events import auth
from aiprod.events.deps import BearerPrincipal
from aiprod.events.models import WebhookDelivery, WebhookEndpoint
from aiprod.events.schemas import JOB_EVENT_TYPES
from aiprod.events.webhook_service import WebhookService
from aiprod.events.webhooks import SSRFBlocked, WebhookDispatcher, WebhookURLError
from aiprod.identity.deps import CurrentUser, WriterUser, owner_scope
from aiprod.settings import Settings

tickets = APIRouter(prefix="/v1", tags=["events"])
webhooks = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])

WebhookId = Annotated[uuid.UUID, Path(description="The webhook endpoint's id.")]
DeliveryId = Annotated[uuid.UUID, Path(description="The delivery's id.")]
DeliveryStatus = Literal["pending", "delivering", "succeeded", "failed"]
EVENT_TYPE_CHOICES = ("*", *JOB_EVENT_TYPES)


def _settings(request: Request) -> Settings:
    return cast(Settings, request.app.state.settings)


def _service(request: Request) -> WebhookService:
    return cast(WebhookService, request.app.state.webhooks)


def _nudge(request: Request) -> None:
    dispatcher = cast(WebhookDispatcher | None, request.app.state.webhook_dispatcher)
    if dispatcher is not None:
        dispatcher.nudge()


# ------------------------------------------------------------------ tickets


class TicketOut(BaseModel):
    ticket: str = Field(description="Pass as `?ticket=` when opening a WebSocket or SSE stream.")
    expires_in: int = Field(description="Seconds it stays valid; it works once.")


@tickets.post(
    "/ws-ticket",
    status_code=201,
    summary="Get a stream ticket",
    response_model=TicketOut,
    responses=error_responses(401, 403),
)
async def ws_ticket(request: Request, principal: BearerPrincipal) -> TicketOut:
    """A single-use ticket, valid a few seconds, that authenticates one WebSocket
    (`/v1/productions/{id}/ws?ticket=…`, `/v1/ws?ticket=…`) or SSE stream, so that
    a long-lived token never appears in a URL.  It carries no more rights than
    the credential that asked for it."""
    settings = _settings(request)
    ticket = await auth.issue_ticket(request.app.state.db, principal, settings.ws_ticket_seconds)
    return TicketOut(ticket=ticket, expires_in=settings.ws_ticket_seconds)


# ----------------------------------------------------------------- webhooks


def _check_types(types: list[str]) -> list[str]:
    unknown = sorted(set(types) - set(EVENT_TYPE_CHOICES))
    if unknown:
        raise ValueError(
            f"unknown event types {', '.join(unknown)}; choose from {', '.join(EVENT_TYPE_CHOICES)}"
        )
    return types


EventTypes = Annotated[
    list[str],
    Field(
        min_length=1,
        max_length=len(EVENT_TYPE_CHOICES),
        description="Event types to receive (`*`: all).",
        json_schema_extra={"items": {"type": "string", "enum": list(EVENT_TYPE_CHOICES)}},
    ),
]


class WebhookCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(max_length=2048, description="http(s) URL that receives POSTed events.")
    event_types: EventTypes
    description: str | None = Field(None, max_length=200)
    enabled: bool = True
    allow_private: bool = Field(
        False,
        description="Admins only: let this endpoint reach loopback or private addresses.",
    )

    _types = field_validator("event_types")(_check_types)


class WebhookUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(None, max_length=2048)
    event_types: EventTypes | None = None
    description: str | None = Field(None, max_length=200)
    enabled: bool | None = None
    allow_private: bool | None = None

    @field_validator("event_types")
    @classmethod
    def _types(cls, v: list[str] | None) -> list[str] | None:
        return _check_types(v) if v is not None else None

    @model_validator(mode="before")
    @classmethod
    def _not_empty(cls, data: Any) -> Any:
        if isinstance(data, dict):
            if not data:
                raise ValueError("give at least one field to change")
            nulls = sorted(k for k, v in data.items() if v is None and k != "description")
            if nulls:
                raise ValueError(f"{', '.join(nulls)} cannot be null")
        return data


class WebhookOut(BaseModel):
    id: uuid.UUID
    url: str
    description: str | None
    event_types: list[str]
    enabled: bool
    allow_private: bool
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, e: WebhookEndpoint) -> WebhookOut:
        return cls(
            id=e.id,
            url=e.url,
            description=e.description,
            event_types=list(e.event_types),
            enabled=e.enabled,
            allow_private=e.allow_private,
            created_at=e.created_at,
            updated_at=e.updated_at,
        )


class WebhookWithSecret(WebhookOut):
    secret: str = Field(
        description="`whsec_…`: verifies signatures (Standard Webhooks).  Shown only here; "
        "rotate it to get a new one."
    )

    @classmethod
    def with_secret(cls, e: WebhookEndpoint) -> WebhookWithSecret:
        return cls(**WebhookOut.from_row(e).model_dump(), secret=e.secret)


class WebhookList(BaseModel):
    items: list[WebhookOut]


class DeliveryOut(BaseModel):
    id: uuid.UUID
    message_id: str = Field(description="The `webhook-id` header: the same for retries/replays.")
    event_type: str
    job_id: uuid.UUID | None
    seq: int | None
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime | None = Field(description="When the next attempt is due.")
    last_status_code: int | None
    last_error: str | None
    last_attempt_at: datetime | None
    delivered_at: datetime | None
    replay_of: uuid.UUID | None
    created_at: datetime
    payload: dict[str, Any] = Field(description="The body sent: {type, timestamp, data}.")

    @classmethod
    def from_row(cls, d: WebhookDelivery) -> DeliveryOut:
        return cls(
            id=d.id,
            message_id=d.message_id,
            event_type=d.event_type,
            job_id=d.job_id,
            seq=d.seq,
            status=cast(DeliveryStatus, d.status),
            attempts=d.attempts,
            next_attempt_at=d.next_attempt_at if d.status == "pending" else None,
            last_status_code=d.last_status_code,
            last_error=d.last_error,
            last_attempt_at=d.last_attempt_at,
            delivered_at=d.delivered_at,
            replay_of=d.replay_of,
            created_at=d.created_at,
            payload=d.payload,
        )


class DeliveryPage(BaseModel):
    items: list[DeliveryOut]
    next_cursor: str | None


def _url_error(exc: Exception) -> AppError:
    code = "ssrf_blocked" if isinstance(exc, SSRFBlocked) else "invalid_url"
    return Invalid(
        str(exc), code, details=[{"loc": ["body", "url"], "msg": str(exc), "type": code}]
    )


def _only_admin_allows_private(user_role: str, allow_private: bool | None) -> None:
    if allow_private and user_role != "admin":
        raise Forbidden("only an admin can let an endpoint reach private addresses")


@webhooks.post(
    "",
    status_code=201,
    summary="Register a webhook endpoint",
    response_model=WebhookWithSecret,
    responses=error_responses(401, 403, 413, 422),
)
async def create_webhook(
    request: Request, body: WebhookCreate, user: WriterUser
) -> WebhookWithSecret:
    """Events of your productions whose type is in `event_types` are POSTed to
    `url`, signed per Standard Webhooks with the returned `secret`.  URLs that
    reach loopback or private addresses answer 422 `ssrf_blocked` unless an
    admin sets `allow_private`."""
    _only_admin_allows_private(user.role, body.allow_private)
    try:
        endpoint = await _service(request).create(
            user.id,
            body.url,
            body.event_types,
            body.description,
            enabled=body.enabled,
            allow_private=body.allow_private,
            private_allowed_globally=_settings(request).webhook_allow_private_networks,
        )
    except (WebhookURLError, SSRFBlocked) as exc:
        raise _url_error(exc) from None
    return WebhookWithSecret.with_secret(endpoint)


@webhooks.get(
    "",
    summary="List webhook endpoints",
    response_model=WebhookList,
    responses=error_responses(401),
)
async def list_webhooks(request: Request, user: CurrentUser) -> WebhookList:
    """Your endpoints (admins: everyone's), oldest first.  Secrets are not shown."""
    rows = await _service(request).list_endpoints(owner_scope(user))
    return WebhookList(items=[WebhookOut.from_row(e) for e in rows])


@webhooks.get(
    "/{webhook_id}",
    summary="Get a webhook endpoint",
    response_model=WebhookOut,
    responses=error_responses(401, 404, 422),
)
async def get_webhook(request: Request, webhook_id: WebhookId, user: CurrentUser) -> WebhookOut:
    """One endpoint (without its secret)."""
    return WebhookOut.from_row(await _service(request).get(webhook_id, owner_scope(user)))


@webhooks.patch(
    "/{webhook_id}",
    summary="Change a webhook endpoint",
    response_model=WebhookOut,
    responses=error_responses(401, 403, 404, 413, 422),
)
async def update_webhook(
    request: Request, webhook_id: WebhookId, body: WebhookUpdate, user: WriterUser
) -> WebhookOut:
    """Change the URL, event types, description or `enabled`; `allow_private`
    is for admins."""
    _only_admin_allows_private(user.role, body.allow_private)
    changes = body.model_dump(exclude_unset=True)
    try:
        endpoint = await _service(request).update(
            webhook_id,
            owner_scope(user),
            changes,
            private_allowed_globally=_settings(request).webhook_allow_private_networks,
        )
    except (WebhookURLError, SSRFBlocked) as exc:
        raise _url_error(exc) from None
    return WebhookOut.from_row(endpoint)


@webhooks.post(
    "/{webhook_id}/rotate-secret",
    summary="Rotate a webhook endpoint's secret",
    response_model=WebhookWithSecret,
    responses=error_responses(401, 403, 404, 422),
)
async def rotate_secret(
    request: Request, webhook_id: WebhookId, user: WriterUser
) -> WebhookWithSecret:
    """A new signing secret, effective for every attempt from now on."""
    return WebhookWithSecret.with_secret(
        await _service(request).rotate_secret(webhook_id, owner_scope(user))
    )


@webhooks.delete(
    "/{webhook_id}",
    status_code=204,
    summary="Delete a webhook endpoint",
    response_class=Response,
    responses=error_responses(401, 403, 404, 422),
)
async def delete_webhook(request: Request, webhook_id: WebhookId, user: WriterUser) -> Response:
    """The endpoint and its delivery records go; nothing more is sent to it."""
    await _service(request).delete(webhook_id, owner_scope(user))
    return Response(status_code=204)


@webhooks.get(
    "/{webhook_id}/deliveries",
    summary="List deliveries",
    response_model=DeliveryPage,
    responses=error_responses(401, 404, 422),
)
async def list_deliveries(
    request: Request,
    webhook_id: WebhookId,
    user: CurrentUser,
    limit: Annotated[int, Query(ge=1, description="Page size (capped).")] = 20,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    status: Annotated[DeliveryStatus | None, Query()] = None,
) -> DeliveryPage:
    """Newest first: status, attempts, last response code and error, payload."""
    limit = min(limit, _settings(request).page_size_max)
    before = decode_cursor(cursor)
    rows = await _service(request).deliveries(
        webhook_id, owner_scope(user), limit + 1, before, status
    )
    page, next_cursor = page_of(rows, limit)
    return DeliveryPage(items=[DeliveryOut.from_row(d) for d in page], next_cursor=next_cursor)


@webhooks.get(
    "/{webhook_id}/deliveries/{delivery_id}",
    summary="Get a delivery",
    response_model=DeliveryOut,
    responses=error_responses(401, 404, 422),
)
async def get_delivery(
    request: Request, webhook_id: WebhookId, delivery_id: DeliveryId, user: CurrentUser
) -> DeliveryOut:
    """One delivery and what became of it."""
    row = await _service(request).delivery(webhook_id, delivery_id, owner_scope(user))
    return DeliveryOut.from_row(row)


@webhooks.post(
    "/{webhook_id}/deliveries/{delivery_id}/replay",
    status_code=202,
    summary="Send a delivery again",
    response_model=DeliveryOut,
    responses=error_responses(401, 403, 404, 422),
)
async def replay_delivery(
    request: Request, webhook_id: WebhookId, delivery_id: DeliveryId, user: WriterUser
) -> DeliveryOut:
    """Queue the same message (same `webhook-id`) as a new delivery, whatever
    became of the original; it is retried like any other."""
    row = await _service(request).replay(webhook_id, delivery_id, owner_scope(user))
    _nudge(request)
    return DeliveryOut.from_row(row)
