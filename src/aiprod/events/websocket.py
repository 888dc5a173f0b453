"""WebSocket streams: one job (``/v1/productions/{id}/ws``) or all of the
caller's jobs (``/v1/ws``).  The protocol is in ``docs/websocket.md``.

Order of checks: the Origin (a refused one gets a plain HTTP 403, the socket
is never opened), then authentication (a ticket in the URL, else the studio's
session cookie, else the first message within 10 s), then the ``jobs:read``
permission, then ownership: another user's job gets exactly the answer a missing one gets.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from typing import Any, cast

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.websockets import WebSocketState

from aiprod.errors import AuthError, error_body
from aiprod.events import auth
from aiprod.events.bus import EventBus
from aiprod.events.schemas import (
    CLIENT_MESSAGE,
    MAX_SEQ,
    AuthMessage,
    ErrorMessage,
    PingMessage,
    Pong,
    ResumeMessage,
    Subscribed,
)
from aiprod.events.stream import EventStream
from aiprod.identity import browser
from aiprod.identity.permissions import Principal
from aiprod.settings import Settings

log = logging.getLogger("aiprod.events.ws")

router = APIRouter()

AUTH_TIMEOUT = 10.0
MAX_MESSAGE = 64 * 1024

# Close codes (4000-4999 are the application's; see docs/websocket.md).
CLOSE_GOING_AWAY = 1001
CLOSE_BAD_REQUEST = 4400
CLOSE_UNAUTHORIZED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_NOT_FOUND = 4404
CLOSE_AUTH_TIMEOUT = 4408


class _Refused(Exception):
    def __init__(self, close_code: int, code: str, message: str) -> None:
        super().__init__(message)
        self.close_code = close_code
        self.code = code
        self.message = message


def _bus(ws: WebSocket) -> EventBus:
    return cast(EventBus, ws.app.state.events)


def _settings(ws: WebSocket) -> Settings:
    return cast(Settings, ws.app.state.settings)


async def _check_origin(ws: WebSocket) -> bool:
    settings = _settings(ws)
    if browser.origin_allowed(
        ws.headers.get("origin"), ws.url.scheme, ws.headers.get("host"), settings.allowed_origins
    ):
        return True
    body = error_body("forbidden", "this origin may not open event streams")
    if "websocket.http.response" in ws.scope.get("extensions", {}):
        await ws.send_denial_response(JSONResponse(body, status_code=403))
    else:
        await ws.close(code=1008, reason="origin not allowed")
    return False


async def _refuse(ws: WebSocket, refused: _Refused, job_id: uuid.UUID | None = None) -> None:
    with contextlib.suppress(Exception):
        await ws.send_text(
            ErrorMessage(
                code=refused.code, message=refused.message, job_id=job_id
            ).model_dump_json()
        )
        await ws.close(code=refused.close_code, reason=refused.message[:120])


async def _receive_json(ws: WebSocket) -> dict[str, Any]:
    text = await ws.receive_text()
    if len(text) > MAX_MESSAGE:
        raise _Refused(CLOSE_BAD_REQUEST, "bad_request", "message too large")
    try:
        data = json.loads(text)
    except ValueError:
        raise _Refused(CLOSE_BAD_REQUEST, "bad_request", "messages must be JSON") from None
    if not isinstance(data, dict):
        raise _Refused(CLOSE_BAD_REQUEST, "bad_request", "messages must be JSON objects")
    return data


async def _authenticate(ws: WebSocket) -> tuple[Principal, AuthMessage | None]:
    """A ticket from the URL, else the studio's session cookie (its Origin was
    checked before the socket opened), else an ``auth`` first message."""
    ticket = ws.query_params.get("ticket")
    first: AuthMessage | None = None
    token: str | None = None
    cookie = browser.session_tokens(ws) if ticket is None else None
    if cookie is not None:
        token = cookie[0]
    elif ticket is None:
        try:
            async with asyncio.timeout(AUTH_TIMEOUT):
                data = await _receive_json(ws)
        except TimeoutError:
            raise _Refused(
                CLOSE_AUTH_TIMEOUT, "unauthorized", "no auth message within 10 seconds"
            ) from None
        try:
            first = AuthMessage.model_validate(data)
        except ValidationError as exc:
            if _only_bad_numbers(exc):
                raise _Refused(CLOSE_BAD_REQUEST, "bad_request", _problem(exc)) from None
            raise _Refused(
                CLOSE_UNAUTHORIZED,
                "unauthorized",
                'the first message must be {"type": "auth", "token": "…"} '
                "(or open the socket with ?ticket=)",
            ) from None
        token = first.token
    try:
        principal = await auth.authenticate(ws.app.state, token=token, ticket=ticket)
    except AuthError as exc:
        raise _Refused(CLOSE_UNAUTHORIZED, "unauthorized", str(exc)) from None
    if cookie is not None and principal.session_id is None:
        raise _Refused(CLOSE_UNAUTHORIZED, "unauthorized", "the cookie holds no login session")
    if not auth.may_read(principal):
        raise _Refused(CLOSE_FORBIDDEN, "forbidden", "this credential may not read productions")
    return principal, first


_BY_TYPE: dict[str, type[AuthMessage | ResumeMessage | PingMessage]] = {
    "auth": AuthMessage,
    "resume": ResumeMessage,
    "ping": PingMessage,
}


def _problem(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc'][-2:])}: {e['msg']}" for e in exc.errors()[:3]
    )


def _only_bad_numbers(exc: ValidationError) -> bool:
    """The message was understood; only a resume position is out of range."""
    return all(
        any(str(p) in ("after", "jobs") for p in e["loc"])
        and e["type"].startswith(("greater_than", "less_than", "int_"))
        for e in exc.errors()
    )


def _not_found(raw: str) -> _Refused:
    return _Refused(CLOSE_NOT_FOUND, "not_found", f"production {raw} not found")


async def _owned_head(bus: EventBus, principal: Principal, raw: str) -> tuple[uuid.UUID, int]:
    """(job id, its last seq) if the caller may watch it; the same refusal for
    a missing job, a malformed id and another user's job."""
    try:
        job_id = uuid.UUID(raw)
    except ValueError:
        raise _not_found(raw) from None
    head = await bus.event_log.head(job_id)
    scope = auth.owner_scope(principal)
    if head is None or (scope is not None and head.owner_id != scope):
        raise _not_found(raw)
    return job_id, head.last_seq


def _int_param(ws: WebSocket, name: str) -> int | None:
    raw = ws.query_params.get(name)
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if not 0 <= value <= MAX_SEQ:
        raise _Refused(
            CLOSE_BAD_REQUEST, "bad_request", f"{name} must be an integer from 0 to 2^63-1"
        )
    return value


@router.websocket("/v1/productions/{production_id}/ws")
async def job_socket(ws: WebSocket, production_id: str) -> None:
    """One job's events: replay after ``after`` (default 0: the whole log), then live."""
    if not await _check_origin(ws):
        return
    await ws.accept()
    bus = _bus(ws)
    try:
        after = _int_param(ws, "after")
        principal, first = await _authenticate(ws)
        if first is not None and first.after is not None:
            after = first.after
        job_id, last_seq = await _owned_head(bus, principal, production_id)
    except _Refused as refused:
        await _refuse(ws, refused)
        return
    except WebSocketDisconnect:
        return
    start = after or 0
    sub = bus.subscribe("job", job_id=job_id, cursors={job_id: start})
    stream = EventStream(bus, sub)
    stream.control(
        Subscribed(scope="job", job_id=job_id, after=start, last_seq=last_seq).model_dump_json(),
        "subscribed",
    )
    stream.replay(job_id, start)
    await _serve(ws, stream, principal, job_id)


@router.websocket("/v1/ws")
async def user_socket(ws: WebSocket) -> None:
    """Every job of the caller (admins: every job), live; ``resume`` with
    ``jobs`` replays the named ones after their last seen ``seq``."""
    if not await _check_origin(ws):
        return
    await ws.accept()
    bus = _bus(ws)
    try:
        principal, first = await _authenticate(ws)
    except _Refused as refused:
        await _refuse(ws, refused)
        return
    except WebSocketDisconnect:
        return
    scope = auth.owner_scope(principal)
    sub = bus.subscribe("all") if scope is None else bus.subscribe("user", owner_id=scope)
    stream = EventStream(bus, sub)
    stream.control(Subscribed(scope=sub.scope).model_dump_json(), "subscribed")
    if first is not None and first.jobs:
        await _resume_jobs(bus, stream, principal, first.jobs)
    await _serve(ws, stream, principal, None)


async def _resume_jobs(
    bus: EventBus, stream: EventStream, principal: Principal, jobs: dict[uuid.UUID, int]
) -> None:
    for job_id, after in jobs.items():
        try:
            await _owned_head(bus, principal, str(job_id))
        except _Refused as refused:
            stream.control(
                ErrorMessage(
                    code=refused.code, message=refused.message, job_id=job_id
                ).model_dump_json(),
                "error",
            )
            continue
        stream.replay(job_id, max(0, after))


async def _serve(
    ws: WebSocket, stream: EventStream, principal: Principal, job_id: uuid.UUID | None
) -> None:
    """Send the stream while reading the client's messages; the first to end
    ends both."""
    reader = asyncio.create_task(_read(ws, stream, principal, job_id))
    try:
        sender = asyncio.create_task(_send(ws, stream))
        done, _ = await asyncio.wait({reader, sender}, return_when=asyncio.FIRST_COMPLETED)
        for t in (reader, sender):
            if not t.done():
                t.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        refused = reader.exception() if reader in done and not reader.cancelled() else None
        if isinstance(refused, _Refused):
            await _refuse(ws, refused)
        elif stream.bus.closing.is_set() and ws.client_state == WebSocketState.CONNECTED:
            with contextlib.suppress(Exception):
                await ws.close(code=CLOSE_GOING_AWAY, reason="server shutting down")
    finally:
        stream.close()
        if not reader.done():
            reader.cancel()


async def _send(ws: WebSocket, stream: EventStream) -> None:
    with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError):
        async for out in stream:
            await ws.send_text(out.text)


async def _read(
    ws: WebSocket, stream: EventStream, principal: Principal, job_id: uuid.UUID | None
) -> None:
    bus = stream.bus
    while True:
        try:
            data = await _receive_json(ws)
        except (WebSocketDisconnect, RuntimeError):
            return
        try:
            known = _BY_TYPE.get(str(data.get("type")))
            msg = (
                known.model_validate(data)
                if known is not None
                else CLIENT_MESSAGE.validate_python(data)
            )
        except ValidationError as exc:
            problem = _problem(exc)
            if not _only_bad_numbers(exc):
                problem = f"unknown message: {problem}"
            stream.control(
                ErrorMessage(code="bad_request", message=problem).model_dump_json(),
                "error",
            )
            continue
        if isinstance(msg, PingMessage):
            stream.control(Pong().model_dump_json(), "pong")
        elif isinstance(msg, ResumeMessage):
            if job_id is not None:
                if msg.after is None:
                    raise _Refused(CLOSE_BAD_REQUEST, "bad_request", "resume needs after")
                stream.replay(job_id, msg.after)
            elif msg.jobs:
                await _resume_jobs(bus, stream, principal, msg.jobs)
        else:  # a second auth: nothing to do
            stream.control(
                ErrorMessage(code="bad_request", message="already authenticated").model_dump_json(),
                "error",
            )
