"""The context a log line is written in: the HTTP request being served, or
the job being worked on (see :mod:`aiprod.ops.logs` for the fields).

The request's context is a reference to its ASGI scope, bound for the time of
the request by the HTTP middleware (:mod:`aiprod.api.observability`) and read
only when a line is written: the request id, the caller (set once
authenticated) and the route (set once routed) appear as soon as they are
known, at no cost to requests that log nothing.  A job's context is bound by
the worker around everything it does for the job; tasks and threads started
inside inherit it (``asyncio`` and ``to_thread`` copy the context).

Standard library only: the job service reads :func:`request_id` when it
stores a job.
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from contextvars import ContextVar, Token
from dataclasses import dataclass
from typing import Any

_request: ContextVar[MutableMapping[str, Any] | None] = ContextVar("aiprod_request", default=None)


@dataclass(frozen=True)
class JobContext:
    job_id: str
    request_id: str | None = None
    user_id: str | None = None


_job: ContextVar[JobContext | None] = ContextVar("aiprod_job", default=None)


def bind_request(scope: MutableMapping[str, Any]) -> Token[MutableMapping[str, Any] | None]:
    """Lines written from now on in this context belong to the request of `scope`."""
    return _request.set(scope)


def unbind_request(token: Token[MutableMapping[str, Any] | None]) -> None:
    _request.reset(token)


@contextmanager
def job_context(job_id: object, request_id: str | None, user_id: object = None) -> Iterator[None]:
    """Lines written inside (tasks and threads started inside included) belong to the job."""
    token = _job.set(JobContext(str(job_id), request_id, str(user_id) if user_id else None))
    try:
        yield
    finally:
        _job.reset(token)


def request_id() -> str | None:
    """The id of the request being served, else of the request that submitted
    the job being worked on; None outside both."""
    scope = _request.get()
    if scope is not None:
        found = (scope.get("state") or {}).get("request_id")
        if isinstance(found, str):
            return found
    job = _job.get()
    return job.request_id if job is not None else None


def context() -> dict[str, Any]:
    """The fields the current context adds to a line."""
    out: dict[str, Any] = {}
    job = _job.get()
    if job is not None:
        out["job_id"] = job.job_id
        if job.request_id:
            out["request_id"] = job.request_id
        if job.user_id:
            out["user_id"] = job.user_id
    scope = _request.get()
    if scope is not None:
        state = scope.get("state") or {}
        rid = state.get("request_id")
        if rid:
            out["request_id"] = rid
        principal = state.get("principal")
        user = getattr(principal, "user_id", None)
        if user is not None:
            out["user_id"] = str(user)
        route = route_template(scope)
        if route is not None:
            out["route"] = route
    return out


def route_template(scope: MutableMapping[str, Any]) -> str | None:
    """The template of the route a request matched (``/v1/productions/{production_id}``),
    ``<mount>/{path}`` inside a mounted app (the studio's files); None: not routed."""
    route = scope.get("route")
    if route is not None:
        found = getattr(route, "path_format", None) or getattr(route, "path", None)
        return _with_prefix(scope, found) if isinstance(found, str) else None
    if scope.get("endpoint") is not None and scope.get("root_path"):
        return f"{scope['root_path']}/{{path}}"
    return None


def _with_prefix(scope: MutableMapping[str, Any], template: str) -> str:
    """`template` with the prefixes of the routers that include it: a route
    knows only its own router's path (``/api-keys`` under an include at
    ``/v1``), so the part of the request's path before it is the prefix, any
    path parameter in it put back as its name (labels stay bounded)."""
    path: str = scope.get("path") or ""
    params: dict[str, Any] = scope.get("path_params") or {}
    concrete = template
    for name, given in params.items():
        concrete = concrete.replace(f"{{{name}}}", str(given))
    if len(path) <= len(concrete) or not path.endswith(concrete):
        return template
    prefix = path[: len(path) - len(concrete)]
    for name, given in params.items():
        if f"{{{name}}}" not in template and str(given):
            prefix = prefix.replace(str(given), f"{{{name}}}")
    return prefix + template
