"""Administration: users and roles, scheduled key rotation, the audit log."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request

from aiprod.errors import NotFound, error_responses
from aiprod.identity.audit import AuditFilter
from aiprod.identity.deps import Identity, audit_context, require
from aiprod.identity.permissions import Principal
from aiprod.identity.schemas import (
    MAX_SEQ,
    AuditEventOut,
    AuditPage,
    AuditVerification,
    KeyRotationOut,
    RotateDue,
    RotateDueResult,
    UserOut,
    UserPage,
    UserPatch,
    UTCTime,
)

router = APIRouter(prefix="/admin", tags=["admin"])
UserId = Annotated[uuid.UUID, Path(description="The user's id.")]


AdminUsers = Annotated[Principal, require("admin:users")]
AdminKeys = Annotated[Principal, require("admin:keys")]
AdminAudit = Annotated[Principal, require("admin:audit")]


@router.get(
    "/users",
    summary="List users",
    response_model=UserPage,
    responses=error_responses(401, 403, 422),
)
async def list_users(
    principal: AdminUsers,
    identity: Identity,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    after: Annotated[str | None, Query(max_length=320, description="`next_after`.")] = None,
    role: Annotated[Literal["admin", "user", "viewer", "service"] | None, Query()] = None,
) -> UserPage:
    """Every account, by email."""
    rows = await identity.users.list_users(limit + 1, after, role)
    page = rows[:limit]
    return UserPage(
        items=[UserOut.from_user(u) for u in page],
        next_after=page[-1].email if len(rows) > limit and page else None,
    )


@router.get(
    "/users/{user_id}",
    summary="Get a user",
    response_model=UserOut,
    responses=error_responses(401, 403, 404, 422),
)
async def get_user(user_id: UserId, principal: AdminUsers, identity: Identity) -> UserOut:
    user = await identity.users.get_user(user_id)
    if user is None:
        raise NotFound(f"user {user_id} not found")
    return UserOut.from_user(user)


@router.patch(
    "/users/{user_id}",
    summary="Change a user's role or disable them",
    response_model=UserOut,
    responses=error_responses(401, 403, 404, 409, 422),
)
async def update_user(
    request: Request, user_id: UserId, body: UserPatch, principal: AdminUsers, identity: Identity
) -> UserOut:
    """`role` (needs admin:roles) takes effect on the user's next request.
    `is_active: false` disables the account and revokes its sessions at once
    (its API keys are refused while it is disabled).  Leaving no active admin
    answers 409 `last_admin`."""
    user = await identity.users.update_user(
        principal, user_id, audit_context(request), role=body.role, is_active=body.is_active
    )
    return UserOut.from_user(user)


@router.post(
    "/keys/rotate",
    summary="Rotate the API keys that are due",
    response_model=RotateDueResult,
    responses=error_responses(401, 403, 422),
)
async def rotate_due_keys(
    request: Request, body: RotateDue, principal: AdminKeys, identity: Identity
) -> RotateDueResult:
    """What the periodic task does, now: every key older than `max_age_days`
    (default AIPROD_API_KEY_ROTATE_AFTER_DAYS, 30) gets a pending next version
    whose secret its owner claims; the old version works for the grace
    period.  Owners are notified (`api_key.rotated`)."""
    done = await identity.api_keys.rotate_due(
        audit_context(request, principal), body.max_age_days, by="admin"
    )
    return RotateDueResult(rotated=[KeyRotationOut.from_notice(n) for n in done])


@router.get(
    "/audit",
    summary="Search the audit log",
    response_model=AuditPage,
    responses=error_responses(401, 403, 422),
)
async def audit_log(
    principal: AdminAudit,
    identity: Identity,
    event: Annotated[
        str | None,
        Query(max_length=48, description="Exact type, or a prefix ending in `.` (`login.`)."),
    ] = None,
    outcome: Annotated[Literal["success", "failure", "denied"] | None, Query()] = None,
    actor_id: Annotated[uuid.UUID | None, Query()] = None,
    subject_id: Annotated[str | None, Query(max_length=64)] = None,
    ip: Annotated[str | None, Query(max_length=64)] = None,
    since: Annotated[UTCTime | None, Query(description="From this time (UTC).")] = None,
    until: Annotated[UTCTime | None, Query(description="Before this time (UTC).")] = None,
    before: Annotated[int | None, Query(ge=1, le=MAX_SEQ, description="`next_before`.")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> AuditPage:
    """Security events, newest first, with who, whom, from where, when (UTC)
    and the outcome.  Times without a zone are taken as UTC."""
    f = AuditFilter(
        event=event,
        outcome=outcome,
        actor_id=actor_id,
        subject_id=subject_id,
        ip=ip,
        since=since,
        until=until,
        before_seq=before,
    )
    rows = await identity.audit.query(f, limit + 1)
    page = rows[:limit]
    return AuditPage(
        items=[AuditEventOut.from_event(e) for e in page],
        next_before=page[-1].seq if len(rows) > limit and page else None,
    )


@router.get(
    "/audit/verify",
    summary="Check the audit log's hash chain",
    response_model=AuditVerification,
    responses=error_responses(401, 403),
)
async def audit_verify(principal: AdminAudit, identity: Identity) -> AuditVerification:
    """Recompute the chain: `ok` false names the first event that was edited,
    removed or reordered.  Keep `head_seq`/`head_hash` elsewhere to detect
    later truncation (`aiprod audit verify --anchor SEQ:HASH`)."""
    v = await identity.audit.verify()
    return AuditVerification(
        ok=v.ok,
        count=v.count,
        head_seq=v.head_seq,
        head_hash=v.head_hash,
        first_bad_seq=v.first_bad_seq,
        problem=v.problem,
    )
