"""Deleting: one production (owner or admin), and everything of one user (admin).

The rules and their order live in :mod:`aiprod.jobs.deletion` and
:mod:`aiprod.jobs.erasure`; these handlers scope, call and answer.
"""

from __future__ import annotations

import uuid
from typing import Annotated, cast

from fastapi import APIRouter, Depends, Path, Request, Response
from pydantic import BaseModel, Field

from aiprod.errors import error_responses
from aiprod.identity.deps import Identity, JobsDelete, audit_context, owner_scope, require
from aiprod.identity.permissions import Principal
from aiprod.jobs.deletion import ProductionDeleter
from aiprod.jobs.erasure import UserEraser

router = APIRouter(prefix="/v1")

ProductionId = Annotated[uuid.UUID, Path(description="The production's id.")]
UserId = Annotated[uuid.UUID, Path(description="The user's id.")]
AdminUsers = Annotated[Principal, require("admin:users")]


def production_deleter(request: Request) -> ProductionDeleter:
    return cast(ProductionDeleter, request.app.state.deleter)


Deleter = Annotated[ProductionDeleter, Depends(production_deleter)]


class ErasureOut(BaseModel):
    user_id: uuid.UUID
    productions: int = Field(description="Productions deleted, with their files and events.")
    media: int = Field(description="Uploads deleted, with their bytes.")
    api_keys: int = Field(description="API key versions deleted.")
    sessions: int = Field(description="Login sessions deleted.")
    webhooks: int = Field(description="Webhook endpoints deleted, with their deliveries.")
    cache_entries: int = Field(description="Stage-cache entries no other production used.")


@router.delete(
    "/productions/{production_id}",
    tags=["productions"],
    status_code=204,
    summary="Delete a production",
    response_class=Response,
    responses={
        204: {"description": "Deleted, with everything it owned."},
        **error_responses(401, 403, 404, 409, 422),
    },
)
async def delete_production(
    request: Request, production_id: ProductionId, user: JobsDelete, deleter: Deleter
) -> Response:
    """Delete the production with its files (artifacts, checkpoints), its event
    log, its webhook deliveries, its search entries and the stage-cache
    entries no other production uses.  A running production is cancelled
    first and the deletion waits for its worker to stop (up to
    `AIPROD_DELETION_WAIT_SECONDS`; after that 409 `still_running`, with the
    cancellation requested: repeat the call).  Owner or admin; audited
    (`production.deleted`).  The deletion cannot be undone."""
    await deleter.delete(production_id, owner_scope(user), audit_context(request, user))
    return Response(status_code=204)


@router.post(
    "/admin/users/{user_id}/erase",
    tags=["admin"],
    summary="Erase everything of a user",
    response_model=ErasureOut,
    responses=error_responses(401, 403, 404, 409, 422),
)
async def erase_user(
    request: Request,
    user_id: UserId,
    principal: AdminUsers,
    identity: Identity,
    deleter: Deleter,
) -> ErasureOut:
    """For a data-protection erasure request (export first with `GET
    /v1/admin/users/{id}/export` if the person asked for their data): the
    account is disabled, then every production (running ones cancelled
    first), upload, API key, session, webhook and the account itself are
    deleted.  The audit log is kept (`user.erased`).  Your own account: 409
    `cannot_erase_self`; a production that does not stop: 409
    `still_running` with the account left disabled: repeat the call."""
    erased = await UserEraser(deleter, identity).erase(user_id, principal, audit_context(request))
    return ErasureOut(
        user_id=erased.user_id,
        productions=erased.productions,
        media=erased.media,
        api_keys=erased.api_keys,
        sessions=erased.sessions,
        webhooks=erased.webhooks,
        cache_entries=erased.cache_entries,
    )


__all__ = ["router"]
