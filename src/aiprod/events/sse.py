"""Server-Sent Events: ``GET /v1/productions/{id}/events/stream``.

Each job event is one SSE event whose ``id`` is its ``seq``, so a browser's
EventSource resumes by itself after a drop (it sends ``Last-Event-ID``).  The
stream ends after the job's last event once the job is finished; reconnecting
then answers 204, which tells EventSource to stop.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, Path, Query, Request, Response
from fastapi.responses import StreamingResponse

from aiprod.errors import Forbidden, Invalid, NotFound, error_responses
from aiprod.events import auth
from aiprod.events.bus import EventBus
from aiprod.events.deps import Bus, EventSettings, StreamPrincipal
from aiprod.events.schemas import MAX_SEQ, TERMINAL_EVENTS
from aiprod.events.stream import EventStream
from aiprod.identity import browser
from aiprod.jobs.state import TERMINAL

router = APIRouter(prefix="/v1/productions", tags=["events"])

RETRY_MS = 2000


@router.get(
    "/{production_id}/events/stream",
    summary="Stream a production's events (SSE)",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "`text/event-stream`: one SSE event per job event (`id` = `seq`, "
            "`event` = type, `data` = the JSON message of docs/websocket.md), "
            "`heartbeat` events while idle.",
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        },
        204: {"description": "The job is finished and `Last-Event-ID` is its last event."},
        **error_responses(401, 403, 404, 422),
    },
)
async def stream_events(
    request: Request,
    production_id: Annotated[uuid.UUID, Path(description="The production's id.")],
    principal: StreamPrincipal,
    bus: Bus,
    settings: EventSettings,
    last_event_id: Annotated[
        str | None,
        Header(
            alias="Last-Event-ID",
            max_length=20,
            description="Resume after this `seq` (EventSource sends it when reconnecting).",
        ),
    ] = None,
    after: Annotated[
        int | None,
        Query(ge=0, le=MAX_SEQ, description="Resume after this `seq` (default 0: everything)."),
    ] = None,
) -> Response:
    """Replay the job's events after `Last-Event-ID` (or `after`), then stream
    them live.  Same messages, order and guarantees as the WebSocket."""
    origin = request.headers.get("origin")
    if not browser.origin_allowed(
        origin, request.url.scheme, request.headers.get("host"), settings.allowed_origins
    ):
        raise Forbidden("this origin may not open event streams")
    head = await bus.event_log.head(production_id)
    scope = auth.owner_scope(principal)
    if head is None or (scope is not None and head.owner_id != scope):
        raise NotFound(f"production {production_id} not found")
    start = after or 0
    if last_event_id is not None and last_event_id.strip():
        try:
            start = max(0, int(last_event_id.strip()))
        except ValueError:
            raise Invalid("Last-Event-ID must be an event's seq") from None
        if start > MAX_SEQ:
            raise Invalid("Last-Event-ID must be an event's seq")
    if head.status in TERMINAL and start >= head.last_seq:
        return Response(status_code=204)
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    if origin is not None:
        headers["Access-Control-Allow-Origin"] = origin
        headers["Vary"] = "Origin"
    return StreamingResponse(
        _events(bus, production_id, start),
        media_type="text/event-stream",
        headers=headers,
    )


async def _events(bus: EventBus, job_id: uuid.UUID, start: int) -> AsyncIterator[str]:
    # Subscribed here, not in the handler: the generator's `finally` always runs.
    sub = bus.subscribe("job", job_id=job_id, cursors={job_id: start})
    stream = EventStream(bus, sub)
    stream.replay(job_id, start)
    try:
        yield f"retry: {RETRY_MS}\n\n"
        async for out in stream:
            if out.seq is None:
                yield f"event: {out.type}\ndata: {out.text}\n\n"
                continue
            yield f"id: {out.seq}\nevent: {out.type}\ndata: {out.text}\n\n"
            if out.type in TERMINAL_EVENTS:
                head = await bus.event_log.head(job_id)
                if head is None or (head.status in TERMINAL and head.last_seq <= out.seq):
                    return
    finally:
        stream.close()
