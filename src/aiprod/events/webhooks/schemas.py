"""Request and response bodies of ``/v1/webhooks``."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal, cast

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.json_schema import SkipJsonSchema

from aiprod.events.models import WebhookDelivery, WebhookEndpoint
from aiprod.events.schemas import JOB_EVENT_TYPES

DeliveryStatus = Literal["pending", "delivering", "succeeded", "failed"]
EVENT_TYPE_CHOICES = ("*", *JOB_EVENT_TYPES)


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


# The schema states the shape; webhooks.ssrf enforces it, and the rest (no
# credentials, a public host unless approved, no odd characters), at create and
# update, answering `invalid_url` / `ssrf_blocked` rather than a bare pattern error.
URL = Annotated[
    str,
    Field(
        max_length=2048,
        description="http(s) URL that receives POSTed events.",
        json_schema_extra={"pattern": r"^[hH][tT][tT][pP][sS]?://[^\s/?#@]+([/?][^\s#]*)?$"},
    ),
]


class WebhookCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: URL
    event_types: EventTypes
    description: str | None = Field(None, max_length=200)
    enabled: bool = True
    allow_private: bool = Field(
        False,
        description="Admins only: let this endpoint reach loopback or private addresses. "
        "The approval holds for this URL only: changing the URL revokes it.",
    )

    _types = field_validator("event_types")(_check_types)


class WebhookUpdate(BaseModel):
    # At least one field; only `description` may be null (the others: omit them).
    model_config = ConfigDict(extra="forbid", json_schema_extra={"minProperties": 1})

    url: URL | SkipJsonSchema[None] = None
    event_types: EventTypes | SkipJsonSchema[None] = None
    description: str | None = Field(None, max_length=200)
    enabled: bool | SkipJsonSchema[None] = None
    allow_private: bool | SkipJsonSchema[None] = Field(
        None,
        description="Admins only to set: approve the (new) URL for private addresses. "
        "A URL change without it revokes an earlier approval.",
    )

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
    allow_private: bool = Field(
        description="An admin approved this very URL for loopback/private addresses."
    )
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
            allow_private=e.private_approved,
            created_at=e.created_at,
            updated_at=e.updated_at,
        )


class WebhookWithSecret(WebhookOut):
    secret: str = Field(
        description="`whsec_…`: verifies signatures (Standard Webhooks).  Shown only here; "
        "rotate it to get a new one."
    )

    @classmethod
    def with_secret(cls, e: WebhookEndpoint, secret: str) -> WebhookWithSecret:
        return cls(**WebhookOut.from_row(e).model_dump(), secret=secret)


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
    last_status_code: int | None = Field(description="The last attempt's HTTP status code.")
    last_error: str | None = Field(
        description="Why the last attempt failed, in our words (`HTTP 500`, `timeout`, "
        "`connection refused`…); what the receiver answered is never kept."
    )
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
