"""Webhooks: endpoints, the delivery outbox, signing, SSRF guard, dispatcher.

* **Outbox.**  A delivery row is written in the same transaction as the job
  event it carries (see :class:`WebhookOutbox`), so an event the database
  keeps is never lost for webhooks, and one it rolls back is never sent.
* **Signing.**  Standard Webhooks (``standardwebhooks``): headers
  ``webhook-id`` (the same for every attempt and replay of a message, for
  deduplication), ``webhook-timestamp`` and ``webhook-signature``
  (``v1,`` + base64 HMAC-SHA256 of ``id.timestamp.body``).  The body is
  ``{"type", "timestamp", "data"}`` with the event's wire message as data.
* **Retries.**  Anything but a 2xx (a timeout, a refused connection, a 500,
  a redirect) is retried with exponential backoff and jitter up to
  ``AIPROD_WEBHOOK_MAX_ATTEMPTS``; each attempt is recorded on the row.
* **SSRF.**  Endpoints may not point at loopback, private, link-local or
  other non-public addresses unless an admin allowed it for that endpoint (or
  the operator for the whole server: ``AIPROD_WEBHOOK_ALLOW_PRIVATE_NETWORKS``,
  used by tests).  The check runs at registration *and* at every delivery, on
  the addresses the name resolves to then, and the request goes to the
  address that was checked (TLS still verifies the name), so DNS rebinding
  cannot slip past it.
* **Dispatcher.**  Every API process runs one; rows are claimed with a lease
  (compare-and-set), so several processes never send the same attempt twice.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import json
import logging
import random
import secrets
import socket
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
from sqlalchemy import and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from standardwebhooks.webhooks import Webhook

from aiprod import __version__
from aiprod.db.base import utcnow
from aiprod.db.engine import Database
from aiprod.events.bus import cancel_all, wait_event
from aiprod.events.models import WebhookDelivery, WebhookEndpoint
from aiprod.events.store import Envelope
from aiprod.settings import Settings

log = logging.getLogger("aiprod.webhooks")

USER_AGENT = f"AIPROD-Webhooks/{__version__}"
RESPONSE_SNIPPET = 512
CONCURRENCY = 16
CLAIM_BATCH = 32


# ------------------------------------------------------------------- SSRF


class WebhookURLError(ValueError):
    """The URL is unusable (scheme, host, credentials)."""


class SSRFBlocked(ValueError):
    """The URL points at an address endpoints may not reach."""


def blocked_address(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Loopback, private, link-local, shared, reserved, multicast, unspecified…:
    anything that is not a public unicast address."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not ip.is_global or ip.is_multicast


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int
    netloc: str


def parse_url(url: str) -> Target:
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise WebhookURLError(f"invalid URL: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise WebhookURLError("the URL must be http:// or https://")
    if not parts.hostname:
        raise WebhookURLError("the URL has no host")
    if parts.username is not None or parts.password is not None:
        raise WebhookURLError("credentials in the URL are not allowed; sign-verify instead")
    if parts.fragment:
        raise WebhookURLError("the URL may not have a #fragment")
    default = 443 if parts.scheme == "https" else 80
    return Target(parts.scheme, parts.hostname.lower(), port or default, parts.netloc)


def _literal(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


async def resolve(target: Target, allow_private: bool, timeout: float = 5.0) -> str:
    """The address to connect to: every address the name has must be allowed
    (an attacker controls which one a client would pick)."""
    ip = _literal(target.host)
    if ip is not None:
        addrs = [ip]
    else:
        if target.host == "localhost" or target.host.endswith(".localhost"):
            addrs = [ipaddress.ip_address("127.0.0.1")]
        else:
            loop = asyncio.get_running_loop()
            async with asyncio.timeout(timeout):
                infos = await loop.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
            addrs = [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]
        if not addrs:
            raise OSError(f"{target.host} has no address")
    if not allow_private:
        for a in addrs:
            if blocked_address(a):
                raise SSRFBlocked(
                    f"{target.host} resolves to {a}, a non-public address; webhooks may "
                    "only reach public addresses unless an admin allows private ones"
                )
    return str(addrs[0])


async def check_endpoint_url(url: str, allow_private: bool) -> str:
    """Validate a URL at registration; returns it normalised.  A name that does
    not resolve now is accepted (DNS may be down); every delivery checks again."""
    target = parse_url(url)
    try:
        await resolve(target, allow_private)
    except SSRFBlocked:
        raise
    except (OSError, TimeoutError):
        pass
    return url.strip()


# --------------------------------------------------------------- signing


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


# ---------------------------------------------------------------- outbox


def matches(event_types: list[str], type_: str) -> bool:
    return "*" in event_types or type_ in event_types


class WebhookOutbox:
    """Queues a delivery per matching endpoint inside the event's transaction."""

    async def __call__(self, s: AsyncSession, env: Envelope) -> None:
        rows = (
            await s.execute(
                select(WebhookEndpoint.id, WebhookEndpoint.event_types).where(
                    WebhookEndpoint.owner_id == env.owner_id, WebhookEndpoint.enabled.is_(True)
                )
            )
        ).all()
        targets = [endpoint_id for endpoint_id, types in rows if matches(list(types), env.type)]
        if not targets:
            return
        message = json.loads(env.text)
        payload = {"type": env.type, "timestamp": message.get("ts"), "data": message}
        now = utcnow()
        for endpoint_id in targets:
            s.add(
                WebhookDelivery(
                    id=uuid.uuid4(),
                    endpoint_id=endpoint_id,
                    message_id=f"msg_{env.job_id.hex}_{env.seq}",
                    event_type=env.type,
                    job_id=env.job_id,
                    seq=env.seq,
                    payload=payload,
                    status="pending",
                    attempts=0,
                    next_attempt_at=now,
                    created_at=now,
                )
            )


# ------------------------------------------------------------ dispatcher


class WebhookDispatcher:
    def __init__(self, db: Database, settings: Settings, worker_id: str | None = None) -> None:
        self.db = db
        self.settings = settings
        self.worker_id = worker_id or f"webhooks:{uuid.uuid4().hex[:12]}"
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._inflight: set[asyncio.Task[None]] = set()
        self._limit = asyncio.Semaphore(CONCURRENCY)
        self._client: httpx.AsyncClient | None = None

    def nudge(self, _envs: list[Envelope] | None = None) -> None:
        """Deliveries may be due now (a sink for the event publisher)."""
        self._wake.set()

    async def start(self) -> None:
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(self.settings.webhook_timeout_seconds),
            follow_redirects=False,
            trust_env=False,
            headers={"user-agent": USER_AGENT},
        )
        self._task = asyncio.create_task(self._run(), name="aiprod-webhooks")

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_all([self._task])
            self._task = None
        if self._inflight:
            # Attempts in flight finish (bounded by the HTTP timeout) or their
            # lease runs out and another dispatcher retries them.
            await asyncio.wait(self._inflight, timeout=self.settings.webhook_timeout_seconds + 1)
            for t in self._inflight:
                t.cancel()
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _run(self) -> None:
        while True:
            try:
                claimed = await self.claim(CLAIM_BATCH)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("webhooks: could not claim deliveries", exc_info=True)
                claimed = []
            for delivery_id in claimed:
                await self._limit.acquire()
                task = asyncio.create_task(self._attempt(delivery_id))
                self._inflight.add(task)
                task.add_done_callback(self._done)
            if len(claimed) == CLAIM_BATCH:
                continue
            await wait_event(self._wake, self.settings.webhook_poll_seconds)
            self._wake.clear()

    def _done(self, task: asyncio.Task[None]) -> None:
        self._inflight.discard(task)
        self._limit.release()
        if not task.cancelled() and task.exception() is not None:
            log.error("webhooks: attempt crashed", exc_info=task.exception())

    async def claim(self, limit: int) -> list[uuid.UUID]:
        now = utcnow()
        due = or_(
            and_(WebhookDelivery.status == "pending", WebhookDelivery.next_attempt_at <= now),
            and_(WebhookDelivery.status == "delivering", WebhookDelivery.lease_expires_at < now),
        )
        async with self.db.session() as s:
            ids = (
                (
                    await s.execute(
                        select(WebhookDelivery.id)
                        .where(due)
                        .order_by(WebhookDelivery.next_attempt_at)
                        .limit(limit)
                    )
                )
                .scalars()
                .all()
            )
        lease = now + timedelta(seconds=self.settings.webhook_timeout_seconds + 30)
        claimed = []
        for delivery_id in ids:
            async with self.db.transaction() as s:
                got = (
                    await s.execute(
                        update(WebhookDelivery)
                        .where(WebhookDelivery.id == delivery_id, due)
                        .values(
                            status="delivering", lease_owner=self.worker_id, lease_expires_at=lease
                        )
                        .returning(WebhookDelivery.id)
                    )
                ).scalar_one_or_none()
            if got is not None:
                claimed.append(got)
        return claimed

    async def _attempt(self, delivery_id: uuid.UUID) -> None:
        async with self.db.session() as s:
            delivery = await s.get(WebhookDelivery, delivery_id)
            endpoint = (
                await s.get(WebhookEndpoint, delivery.endpoint_id) if delivery is not None else None
            )
        if delivery is None:
            return
        if endpoint is None or not endpoint.enabled:
            await self._record(delivery, None, "the endpoint is disabled", final=True)
            return
        code: int | None = None
        error: str | None = None
        final = False
        try:
            code, snippet = await self._post(endpoint, delivery)
            if not 200 <= code < 300:
                error = f"HTTP {code}" + (f": {snippet}" if snippet else "")
        except SSRFBlocked as exc:
            error, final = str(exc), True
        except (httpx.HTTPError, OSError, TimeoutError) as exc:
            error = f"{type(exc).__name__}: {exc}"[:500] or type(exc).__name__
        await self._record(delivery, code, error, final=final)

    async def _post(self, endpoint: WebhookEndpoint, delivery: WebhookDelivery) -> tuple[int, str]:
        assert self._client is not None
        target = parse_url(endpoint.url)
        allow = endpoint.allow_private or self.settings.webhook_allow_private_networks
        address = await resolve(target, allow)
        body = message_body(delivery.payload)
        headers = signed_headers(endpoint.secret, delivery.message_id, body, datetime.now(UTC))
        headers["host"] = target.netloc
        url = httpx.URL(endpoint.url).copy_with(host=address)
        request = self._client.build_request(
            "POST",
            url,
            content=body.encode(),
            headers=headers,
            extensions={"sni_hostname": target.host},
        )
        response = await self._client.send(request, stream=True)
        try:
            snippet = b""
            async for chunk in response.aiter_raw():
                snippet += chunk
                if len(snippet) >= RESPONSE_SNIPPET:
                    break
        finally:
            await response.aclose()
        return response.status_code, snippet[:RESPONSE_SNIPPET].decode("utf-8", "replace")

    def backoff(self, attempts: int) -> float:
        base = self.settings.webhook_retry_base_seconds * float(2 ** max(0, attempts - 1))
        delay = min(self.settings.webhook_retry_max_seconds, base)
        return delay * (0.8 + 0.2 * random.random())

    async def _record(
        self, delivery: WebhookDelivery, code: int | None, error: str | None, *, final: bool
    ) -> None:
        now = utcnow()
        attempts = delivery.attempts + 1
        values: dict[str, Any] = {
            "attempts": attempts,
            "last_status_code": code,
            "last_error": error,
            "last_attempt_at": now,
            "lease_owner": None,
            "lease_expires_at": None,
        }
        if error is None:
            values.update(status="succeeded", delivered_at=now)
        elif final or attempts >= self.settings.webhook_max_attempts:
            values.update(status="failed")
        else:
            values.update(
                status="pending", next_attempt_at=now + timedelta(seconds=self.backoff(attempts))
            )
        async with self.db.transaction() as s:
            await s.execute(
                update(WebhookDelivery)
                .where(
                    WebhookDelivery.id == delivery.id,
                    WebhookDelivery.lease_owner == self.worker_id,
                )
                .values(**values)
            )
        log.info(
            "webhooks: %s %s attempt %d -> %s",
            delivery.message_id,
            delivery.event_type,
            attempts,
            values["status"] if error is None else f"{values['status']} ({error})",
        )
