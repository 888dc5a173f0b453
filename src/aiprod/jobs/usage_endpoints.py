"""Usage against quotas, and an admin's overrides of a user's quotas.

``GET /v1/me/usage`` shows the caller where they stand (and the rate limits
of each class); ``GET``/``PUT /v1/admin/users/{id}/quotas`` let an admin see
and replace one user's overrides (audited as ``user.quotas_changed``).  The
rules are :mod:`aiprod.jobs.quotas`'.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from aiprod.db.base import utcnow
from aiprod.errors import NotFound, error_responses
from aiprod.identity.deps import AnyPrincipal, Identity, audit_context, require
from aiprod.identity.permissions import Principal
from aiprod.jobs.deps import Jobs, SettingsDep
from aiprod.jobs.quotas import Quotas, Standing, next_month
from aiprod.settings import Settings

router = APIRouter(prefix="/v1")
AdminUsers = Annotated[Principal, require("admin:users")]
UserId = Annotated[uuid.UUID, Path(description="The user's id.")]
QuotaName = Literal["running", "per_day", "storage_bytes", "spend_month_usd"]


class Meter(BaseModel):
    used: int
    limit: int | None = Field(description="null: no limit.")
    remaining: int | None = Field(description="What is left (null: no limit).")


class StorageMeter(Meter):
    artifacts: int = Field(description="Bytes of the productions' files.")
    uploads: int = Field(description="Bytes of uploads (`/v1/media`).")


class SpendMeter(BaseModel):
    used: float = Field(description="USD estimated for this calendar month's productions.")
    limit: float | None
    remaining: float | None
    resets_at: datetime = Field(description="Start of the next month (UTC).")


class UsageOut(BaseModel):
    user_id: uuid.UUID
    role: str
    running: Meter = Field(description="Productions queued or processing now.")
    per_day: Meter = Field(description="Productions submitted in the last 24 hours.")
    storage_bytes: StorageMeter
    spend_month_usd: SpendMeter
    overrides: dict[QuotaName, int | float | None] = Field(
        description="The limits an admin set for this user (null: no limit); the rest are "
        "the role's."
    )
    rate_limits: dict[str, str] = Field(
        description="Requests allowed per class of route (per address and per credential; "
        "exports and streams per user too); empty when rate limiting is off."
    )

    @classmethod
    def of(cls, user_id: uuid.UUID, standing: Standing, settings: Settings) -> UsageOut:
        use, limits = standing.usage, standing.limits

        def left(limit: int | None, used: int) -> int | None:
            return None if limit is None else max(0, limit - used)

        spend_left = (
            None
            if limits.spend_month_usd is None
            else max(0.0, round(limits.spend_month_usd - use.spend_month_usd, 8))
        )
        return cls(
            user_id=user_id,
            role=standing.role,
            running=Meter(
                used=use.running, limit=limits.running, remaining=left(limits.running, use.running)
            ),
            per_day=Meter(
                used=use.per_day, limit=limits.per_day, remaining=left(limits.per_day, use.per_day)
            ),
            storage_bytes=StorageMeter(
                used=use.storage_bytes,
                limit=limits.storage_bytes,
                remaining=left(limits.storage_bytes, use.storage_bytes),
                artifacts=use.artifact_bytes,
                uploads=use.upload_bytes,
            ),
            spend_month_usd=SpendMeter(
                used=round(use.spend_month_usd, 8),
                limit=limits.spend_month_usd,
                remaining=spend_left,
                resets_at=next_month(utcnow()),
            ),
            overrides=standing.overrides,
            rate_limits=dict(settings.rate_limits) if settings.rate_limits_enabled else {},
        )


def _json_number(value: Any) -> Any:
    """A JSON number (an integral one such as 3.0 included), never `true` or
    "3", which lax parsing would take for an integer."""
    if isinstance(value, bool | str):
        raise ValueError("must be a number")
    return value


Count = Annotated[int | None, BeforeValidator(_json_number)]


class QuotaOverrides(BaseModel):
    """One user's own limits.  A field sent sets that limit (null: no limit);
    a field left out follows the role (``AIPROD_QUOTAS``); ``{}`` drops every
    override."""

    model_config = ConfigDict(extra="forbid")

    running: Count = Field(None, ge=0, le=1_000_000)
    per_day: Count = Field(None, ge=0, le=100_000_000)
    storage_bytes: Count = Field(None, ge=0, le=10**18)
    spend_month_usd: float | None = Field(
        None,
        ge=0,
        le=1e9,
        allow_inf_nan=False,
        strict=True,  # a number, not `true`
    )

    def sent(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.model_fields_set}


async def _usage(jobs: Jobs, settings: Settings, user_id: uuid.UUID) -> UsageOut:
    async with jobs.db.session() as s:
        standing = await Quotas(settings).standing(s, user_id)
    if standing is None:
        raise NotFound(f"user {user_id} not found")
    return UsageOut.of(user_id, standing, settings)


@router.get(
    "/me/usage",
    tags=["auth"],
    summary="Your usage against your quotas",
    response_model=UsageOut,
    responses=error_responses(401),
)
async def my_usage(principal: AnyPrincipal, jobs: Jobs, settings: SettingsDep) -> UsageOut:
    """Productions running and submitted today, bytes stored and this month's
    spending, each against your limit (null: none), and the rate limits.  A
    submission past a quota answers `quota_exceeded`: 429 for `running` and
    `per_day` (waiting helps; `Retry-After` when it can be told), 403 for
    `storage_bytes` and `spend_month_usd`."""
    return await _usage(jobs, settings, principal.user_id)


@router.get(
    "/admin/users/{user_id}/quotas",
    tags=["admin"],
    summary="A user's quotas and usage",
    response_model=UsageOut,
    responses=error_responses(401, 403, 404, 422),
)
async def user_quotas(
    user_id: UserId, principal: AdminUsers, jobs: Jobs, settings: SettingsDep
) -> UsageOut:
    return await _usage(jobs, settings, user_id)


@router.put(
    "/admin/users/{user_id}/quotas",
    tags=["admin"],
    summary="Set a user's own quotas",
    response_model=UsageOut,
    responses=error_responses(401, 403, 404, 422),
)
async def set_user_quotas(
    request: Request,
    user_id: UserId,
    body: QuotaOverrides,
    principal: AdminUsers,
    jobs: Jobs,
    identity: Identity,
    settings: SettingsDep,
) -> UsageOut:
    """Replace the user's overrides: each field sent sets that limit (null:
    no limit), each left out follows the role; takes effect on the next
    submission.  Audited as `user.quotas_changed` (before and after)."""
    await Quotas(settings).set_overrides(
        jobs.db, identity.audit, audit_context(request, principal), user_id, body.sent()
    )
    return await _usage(jobs, settings, user_id)
