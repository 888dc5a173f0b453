"""Structured logs: one JSON object a line (or a line for people at a
terminal), each carrying who and what it is about.

Every line says when (``ts``, UTC), how bad (``level``), where from
(``logger``) and what (``message``), plus the context it was written in:

* during an HTTP request, the request's id (the one the client gets back in
  ``X-Request-ID``), the signed-in user's id and the route template;
* in a worker, the job's id, its owner's id and the id of the request that
  submitted it (stored with the job), so one grep follows a production from
  ``POST /v1/productions`` to its last stage;
* whatever the call passes as ``extra`` (the access log's method, path,
  status, duration ...).

The context is kept by :mod:`aiprod.ops.context` and read only when a line
is written.

No secret is ever written: the lines never hold headers, bodies or query
strings, and every message, exception and string field goes through
:func:`redact`, which masks bearer tokens, API keys, refresh tokens, JWTs,
webhook secrets, stream tickets, ``password=…``-like pairs and every provider
key the provider client knows of.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

from aiprod.ops.context import context
from aiprod.production.providers import client as provider_client

Format = Literal["auto", "json", "console"]

REDACTED = "[redacted]"
_SECRET = re.compile(
    r"(?P<bearer>\b(?i:bearer)\s+)[^\s\"',;]+"
    r"|\b(?:aipk|rt|whsec|wst)_[A-Za-z0-9_+/=.-]{6,}"
    r"|\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"
    r"|(?P<pair>(?i:password|passwd|secret|token|api_?key|authorization|cookie)[\w-]*"
    r"[\"']?\s*[:=]\s*[\"']?)[^\s\"',;&}]+"
)
_TRIGGER = re.compile(r"bearer|aipk_|rt_|whsec_|wst_|eyj|pass|secret|token|key|auth|cookie", re.I)
"""Found in any text `_SECRET` matches: text without it is left as it is
without running the longer expression (most lines)."""


def _mask(m: re.Match[str]) -> str:
    kept = m.group("bearer") or m.group("pair") or ""
    return kept + REDACTED


def redact(text: str) -> str:
    """`text` with anything that looks like a credential masked."""
    if _TRIGGER.search(text) is not None:
        text = _SECRET.sub(_mask, text)
    return provider_client.redact(text)


# --------------------------------------------------------------- formatting


_RESERVED = frozenset(
    {*logging.LogRecord("", 0, "", 0, "", (), None).__dict__, "message", "asctime", "taskName"}
)


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    """The record's `extra` fields, strings redacted."""
    out: dict[str, Any] = {}
    for key, value in record.__dict__.items():
        if key not in _RESERVED and key[0] != "_":
            out[key] = redact(value) if isinstance(value, str) else value
    return out


_second: tuple[int, str] = (-1, "")


def _timestamp(record: logging.LogRecord) -> str:
    """``2026-12-07T19:03:39.886Z`` (the second's text is kept: lines come in bursts)."""
    global _second
    whole = int(record.created)
    if _second[0] != whole:
        text = datetime.fromtimestamp(whole, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        _second = (whole, text)
    return f"{_second[1]}.{int(record.msecs):03d}Z"


def _exception(record: logging.LogRecord, formatter: logging.Formatter) -> str | None:
    if record.exc_info:
        return redact(formatter.formatException(record.exc_info))
    if record.exc_text:
        return redact(record.exc_text)
    return None


class JsonFormatter(logging.Formatter):
    """One JSON object a line (see the module docstring for the fields)."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": _timestamp(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        line.update(context())
        line.update(_fields(record))
        error = _exception(record, self)
        if error is not None:
            line["exception"] = error
        return json.dumps(line, default=str, ensure_ascii=False, separators=(",", ":"))


class ConsoleFormatter(logging.Formatter):
    """``time level logger: message key=value …`` for a person at a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        when = datetime.fromtimestamp(record.created).strftime("%H:%M:%S.%f")[:-3]
        extra = {**context(), **_fields(record)}
        tail = " ".join(f"{k}={v}" for k, v in extra.items() if v is not None)
        line = f"{when} {record.levelname:<7} {record.name}: {redact(record.getMessage())}"
        if tail:
            line += f"  [{tail}]"
        error = _exception(record, self)
        return line if error is None else f"{line}\n{error}"


def resolve(fmt: Format, stream: TextIO) -> Literal["json", "console"]:
    """`auto`: console at a terminal, JSON otherwise."""
    if fmt != "auto":
        return fmt
    try:
        return "console" if stream.isatty() else "json"
    except (AttributeError, ValueError):
        return "json"


QUIET = {
    # Each request of theirs at INFO would print URLs (a webhook's may be its secret).
    "httpx": logging.WARNING,
    "httpcore": logging.WARNING,
    "alembic.runtime.plugins": logging.WARNING,
}


def configure(
    fmt: Format = "auto", level: int | str = logging.INFO, stream: TextIO | None = None
) -> Literal["json", "console"]:
    """Send every log line (uvicorn's included) to `stream` (stderr) in `fmt`;
    uvicorn's own access log is switched off (the HTTP middleware writes one
    line per request to ``aiprod.access``).  Returns the format chosen."""
    out = stream if stream is not None else sys.stderr
    chosen = resolve(fmt, out)
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter() if chosen == "json" else ConsoleFormatter())
    numeric = logging.getLevelName(level.upper()) if isinstance(level, str) else level
    if isinstance(level, str) and level.lower() == "trace":
        numeric = 5  # uvicorn's level below DEBUG (named once uvicorn configures)
    if not isinstance(numeric, int):
        raise ValueError(f"unknown log level {level!r}")
    logging.basicConfig(handlers=[handler], level=numeric, force=True)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.asgi"):
        # Whatever an earlier uvicorn.Config in this process set (handlers,
        # levels): these lines go through the root, at the root's level.
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
        logger.disabled = False
        logger.setLevel(logging.NOTSET)
    access = logging.getLogger("uvicorn.access")
    access.handlers.clear()
    access.propagate = False
    access.disabled = True
    for name, quiet in QUIET.items():
        logging.getLogger(name).setLevel(max(numeric, quiet))
    return chosen


__all__ = ["REDACTED", "ConsoleFormatter", "JsonFormatter", "configure", "redact", "resolve"]
