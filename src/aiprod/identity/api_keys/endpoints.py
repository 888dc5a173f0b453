"""API keys: create (secret shown once), list, rotate, claim, revoke.

Key management needs a login session (an access token or an external
issuer's token), never an API key: a leaked key must not be able to mint
itself successors.  Everyone manages their own keys; admin:keys reaches
everyone's (except claiming, which only the owner can do).
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Path, Request, Response

from aiprod.db.base import utcnow
from aiprod.errors import NotFound, error_responses
from aiprod.identity.deps import Identity, SessionPrincipal, audit_context, deny
from aiprod.identity.permissions import Principal, has_permission
from aiprod.identity.schemas import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyList,
    ApiKeyOut,
    ApiKeyRotate,
    RevokeAllKeys,
    RevokeResponse,
)

router = APIRouter(prefix="/api-keys", tags=["api-keys"])
KeyId = Annotated[uuid.UUID, Path(description="The key version's id.")]


def _scope(principal: Principal) -> uuid.UUID | None:
    """Owner filter: None (everyone's) with admin:keys, else the caller's own."""
    return None if has_permission(principal, "admin:keys") else principal.user_id


@router.post(
    "",
    status_code=201,
    summary="Create an API key",
    response_model=ApiKeyCreated,
    responses=error_responses(401, 403, 404, 422),
)
async def create_key(
    request: Request, body: ApiKeyCreate, principal: SessionPrincipal, identity: Identity
) -> ApiKeyCreated:
    """Answers the secret (`aipk_…`) **once**; the server keeps only its HMAC.
    Send it as `Authorization: Bearer aipk_…`.  Scopes must be a subset of the
    owner's permissions (422 otherwise) and still are checked against the
    owner's role on every request."""
    owner_id = body.user_id or principal.user_id
    if owner_id != principal.user_id and not has_permission(principal, "admin:keys"):
        raise await deny(
            request, principal, "admin:keys", "making a key for another user needs admin:keys"
        )
    owner = await identity.users.get_user(owner_id)
    if owner is None or not owner.is_active:
        raise NotFound(f"user {owner_id} not found")
    key, secret = await identity.api_keys.create(
        owner,
        body.name,
        body.scopes,
        body.expires_in_days,
        audit_context(request, principal),
    )
    return ApiKeyCreated(key=ApiKeyOut.from_key(key, utcnow()), secret=secret)


@router.get(
    "",
    summary="List API keys",
    response_model=ApiKeyList,
    responses=error_responses(401, 403),
)
async def list_keys(principal: SessionPrincipal, identity: Identity) -> ApiKeyList:
    """Your keys, every version, newest first (admin:keys: everyone's)."""
    now = utcnow()
    keys = await identity.api_keys.list_keys(_scope(principal))
    return ApiKeyList(items=[ApiKeyOut.from_key(k, now) for k in keys])


@router.get(
    "/{key_id}",
    summary="Get an API key",
    response_model=ApiKeyOut,
    responses=error_responses(401, 403, 404, 422),
)
async def get_key(key_id: KeyId, principal: SessionPrincipal, identity: Identity) -> ApiKeyOut:
    """One version's metadata (never its secret)."""
    return ApiKeyOut.from_key(await identity.api_keys.get(key_id, _scope(principal)), utcnow())


@router.post(
    "/{key_id}/rotate",
    status_code=201,
    summary="Rotate an API key",
    response_model=ApiKeyCreated,
    responses=error_responses(401, 403, 404, 409, 422),
)
async def rotate_key(
    request: Request,
    key_id: KeyId,
    body: ApiKeyRotate,
    principal: SessionPrincipal,
    identity: Identity,
) -> ApiKeyCreated:
    """Issue the next version (secret shown once).  This version keeps working
    for the grace period (default 7 days) so clients can switch over; any
    older version dies now, so at most two versions work at a time.  Only the
    newest version can be rotated (409 otherwise)."""
    new, secret = await identity.api_keys.rotate(
        key_id,
        _scope(principal),
        audit_context(request, principal),
        grace_seconds=body.grace_seconds,
        by="owner" if _scope(principal) is not None else "admin",
    )
    assert secret is not None
    return ApiKeyCreated(key=ApiKeyOut.from_key(new, utcnow()), secret=secret)


@router.post(
    "/{key_id}/claim",
    status_code=201,
    summary="Claim the secret of a rotated key",
    response_model=ApiKeyCreated,
    responses=error_responses(401, 403, 404, 409, 422),
)
async def claim_key(
    request: Request, key_id: KeyId, principal: SessionPrincipal, identity: Identity
) -> ApiKeyCreated:
    """Scheduled rotation makes a *pending* version without a secret and
    notifies you (`api_key.rotated`).  This issues its secret, once; only the
    key's owner can.  Anything but a pending version answers 409."""
    key, secret = await identity.api_keys.claim(
        key_id, principal.user_id, audit_context(request, principal)
    )
    return ApiKeyCreated(key=ApiKeyOut.from_key(key, utcnow()), secret=secret)


@router.delete(
    "/{key_id}",
    status_code=204,
    response_class=Response,
    summary="Revoke an API key",
    responses=error_responses(401, 403, 404, 422),
)
async def revoke_key(
    request: Request, key_id: KeyId, principal: SessionPrincipal, identity: Identity
) -> Response:
    """Revoke this version and every older one, at once.  Revoking a key's
    newest version ends the key; revoking the previous one ends its grace
    period early."""
    await identity.api_keys.revoke(key_id, _scope(principal), audit_context(request, principal))
    return Response(status_code=204)


@router.post(
    "/revoke-all",
    summary="Revoke every API key of a user",
    response_model=RevokeResponse,
    responses=error_responses(401, 403, 404, 422),
)
async def revoke_all_keys(
    request: Request, body: RevokeAllKeys, principal: SessionPrincipal, identity: Identity
) -> RevokeResponse:
    """Yours, or with admin:keys another user's (`user_id`)."""
    owner_id = body.user_id or principal.user_id
    if owner_id != principal.user_id and not has_permission(principal, "admin:keys"):
        raise await deny(
            request, principal, "admin:keys", "revoking another user's keys needs admin:keys"
        )
    if await identity.users.get_user(owner_id) is None:
        raise NotFound(f"user {owner_id} not found")
    count = await identity.api_keys.revoke_all(
        owner_id, audit_context(request, principal), reason="requested"
    )
    return RevokeResponse(revoked=count)
