"""A minimal AIPROD webhook receiver that verifies Standard Webhooks signatures.

    AIPROD_WEBHOOK_SECRET=whsec_… python examples/webhook_receiver.py --port 9000

Register it with ``POST /v1/webhooks {"url": "http://…:9000/", "event_types":
["*"]}`` (the answer holds the secret).  Each POST is checked before anything
else: a forged, altered or stale (over 5 minutes) message answers 401.  A
message seen before (same ``webhook-id``: a retry or a replay) is
acknowledged without being handled twice.  Answering 2xx quickly matters:
anything else, or no answer within the sender's timeout, is retried.
Needs only ``standardwebhooks``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import threading
from collections import OrderedDict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

MAX_BODY = 1_000_000


class Receiver(BaseHTTPRequestHandler):
    webhook: Webhook
    seen: ClassVar[OrderedDict[str, None]] = OrderedDict()
    lock: ClassVar[threading.Lock] = threading.Lock()  # requests run in threads

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        if length > MAX_BODY:
            self._answer(413)
            return
        body = self.rfile.read(length)
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            message: dict[str, Any] = self.webhook.verify(body, headers)
        except WebhookVerificationError as exc:
            print(f"rejected: {exc}", file=sys.stderr, flush=True)
            self._answer(401)
            return
        msg_id = headers["webhook-id"]
        with self.lock:
            if msg_id in self.seen:
                self._answer(204)  # a retry or replay of something handled already
                return
            self.handle_event(message)  # raises: no answer, so it is retried
            self.seen[msg_id] = None
            while len(self.seen) > 10_000:
                self.seen.popitem(last=False)
        self._answer(204)

    def handle_event(self, message: dict[str, Any]) -> None:
        data = message["data"]
        print(
            json.dumps(
                {
                    "type": message["type"],
                    "job_id": data.get("job_id"),
                    "seq": data.get("seq"),
                    "progress": data.get("progress"),
                }
            ),
            flush=True,
        )

    def _answer(self, status: int) -> None:
        self.send_response(status)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # quiet access log
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    args = parser.parse_args()
    secret = os.environ.get("AIPROD_WEBHOOK_SECRET")
    if not secret:
        raise SystemExit("set AIPROD_WEBHOOK_SECRET to the endpoint's whsec_… secret")
    Receiver.webhook = Webhook(secret)
    server = ThreadingHTTPServer((args.host, args.port), Receiver)
    print(f"listening on http://{args.host}:{args.port}/", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()


if __name__ == "__main__":
    main()
