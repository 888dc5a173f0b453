"""A real HTTP server on a free port that tests script to speak a service's
documented wire format (OpenAI, ElevenLabs, Pexels, Pixabay ...).

Not a mock of our code: the provider clients make real HTTP requests over a
socket, with their real headers and bodies, and the server records each one
(method, path, query, headers, JSON body) so a test can check the request
shape the service documents.  Each route answers by a handler that gets the
recorded request and returns a ``Reply``: a status, headers, a body (bytes or
JSON), and optionally a delay (a slow service) or a cut (a body that stops
short of its Content-Length: a truncated answer).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Reply:
    status: int = 200
    body: bytes | Any = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds before answering
    cut: int | None = None  # send only this many bytes of the body, then close

    def payload(self) -> tuple[bytes, str]:
        if isinstance(self.body, bytes):
            return self.body, self.headers.get("content-type", "application/octet-stream")
        return json.dumps(self.body).encode(), "application/json"


Handler = Callable[[Recorded], Reply]


class LocalService:
    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], Handler | list[Reply]] = {}
        self.requests: list[Recorded] = []
        service = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def _serve(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                rec = Recorded(
                    self.command,
                    parts.path,
                    parse_qs(parts.query),
                    {k.lower(): v for k, v in self.headers.items()},
                    body,
                )
                service.requests.append(rec)
                reply = service._answer(rec)
                if reply.delay:
                    time.sleep(reply.delay)
                data, kind = reply.payload()
                self.send_response(reply.status)
                headers = {"content-type": kind, **reply.headers}
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("content-length", str(len(data)))
                if reply.cut is not None:
                    self.send_header("connection", "close")
                self.end_headers()
                self.wfile.write(data if reply.cut is None else data[: reply.cut])
                if reply.cut is not None:
                    self.close_connection = True

            do_GET = do_POST = do_PUT = do_DELETE = _serve

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def route(self, method: str, path: str, handler: Handler | list[Reply]) -> None:
        """Answer `method path` by `handler`, or by the replies of a list in turn
        (the last one repeats)."""
        self.routes[(method, path)] = handler

    def _answer(self, rec: Recorded) -> Reply:
        found = self.routes.get((rec.method, rec.path))
        if found is None:
            return Reply(404, {"error": {"message": f"no route {rec.method} {rec.path}"}})
        if isinstance(found, list):
            return found.pop(0) if len(found) > 1 else found[0]
        return found(rec)

    def calls(self, method: str, path: str) -> list[Recorded]:
        return [r for r in self.requests if r.method == method and r.path == path]

    def start(self) -> LocalService:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def local_service() -> Iterator[LocalService]:
    """A fresh scripted HTTP service on 127.0.0.1 and a free port."""
    service = LocalService().start()
    yield service
    service.stop()
