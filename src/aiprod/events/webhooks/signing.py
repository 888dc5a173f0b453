"""Signing per Standard Webhooks (``standardwebhooks``).

Headers ``webhook-id`` (the same for every attempt and replay of a message,
for deduplication), ``webhook-timestamp`` and ``webhook-signature`` (``v1,`` +
base64 HMAC-SHA256 of ``id.timestamp.body``).  The body is ``{"type",
"timestamp", "data"}`` with the event's wire message as data.
"""

from __future__ import annotations

import base64
import json
import secrets
from datetime import datetime
from typing import Any

from standardwebhooks.webhooks import Webhook

from aiprod import __version__

USER_AGENT = f"AIPROD-Webhooks/{__version__}"


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def signed_headers(secret: str, message_id: str, body: str, now: datetime) -> dict[str, str]:
    signature = Webhook(secret).sign(message_id, now, body)
    return {
        "content-type": "application/json",
        "webhook-id": message_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signature,
        "user-agent": USER_AGENT,
    }


def message_body(payload: dict[str, Any]) -> str:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
