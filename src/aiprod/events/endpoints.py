"""HTTP routes of live progress that are not streams: the stream ticket.

(The webhook routes are in :mod:`aiprod.events.webhooks.endpoints`.)"""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from aiprod.errors import error_responses
from aiprod.events import auth
from aiprod.events.deps import BearerPrincipal, EventSettings

tickets = APIRouter(prefix="/v1", tags=["events"])


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
async def ws_ticket(
    request: Request, principal: BearerPrincipal, settings: EventSettings
) -> TicketOut:
    """A single-use ticket, valid a few seconds, that authenticates one WebSocket
    (`/v1/productions/{id}/ws?ticket=…`, `/v1/ws?ticket=…`) or SSE stream, so that
    a long-lived token never appears in a URL.  It carries no more rights than
    the credential that asked for it."""
    ticket = await auth.issue_ticket(request.app.state.db, principal, settings.ws_ticket_seconds)
    return TicketOut(ticket=ticket, expires_in=settings.ws_ticket_seconds)
