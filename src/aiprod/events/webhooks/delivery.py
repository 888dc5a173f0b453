"""Webhook deliveries: the outbox that queues them and the dispatcher that sends them.

* **Outbox.**  A delivery row is written in the same transaction as the job
  event it carries (see :class:`WebhookOutbox`), so an event the database
  keeps is never lost for webhooks, and one it rolls back is never sent.
* **Retries.**  Anything but a 2xx (a timeout, a refused connection, a 500,
  a redirect) is retried with exponential backoff and jitter up to
  ``AIPROD_WEBHOOK_MAX_ATTEMPTS``; each attempt is recorded on the row.
* **Dispatcher.**  Every API process runs one; rows are claimed with a lease
  (compare-and-set), so several processes never send the same attempt twice.
  Each request goes to the address :mod:`.ssrf` checked just before it, and
  is signed per :mod:`.signing` with the endpoint's secret, unsealed per
  :mod:`.secrets`.
* **Records.**  Each attempt stores the status code and a short reason of our
  own (``HTTP 500``, ``timeout``, ``connection refused``…), never what the
  receiver answered: an internal host must not leak data through its body.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import socket
import ssl
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from aiprod import tls
from aiprod.db.base import utcnow
from aiprod.db.engine import Database
from aiprod.events.envelope import Envelope
from aiprod.events.models import WebhookDelivery, WebhookEndpoint
from aiprod.events.tasks import cancel_all, wait_event
from aiprod.events.webhooks.secrets import SecretBox, SecretUnreadable
from aiprod.events.webhooks.signing import USER_AGENT, message_body, signed_headers
from aiprod.ops import metrics
from aiprod.settings import Settings
from aiprod.ssrf import SSRFBlocked, WebhookURLError, parse_url, resolve

log = logging.getLogger("aiprod.webhooks")

CONCURRENCY = 16
CLAIM_BATCH = 32


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


def _causes(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and cur not in seen:
        seen.append(cur)
        cur = cur.__cause__ or cur.__context__
    return seen


def failure_reason(exc: BaseException) -> str:
    """A short reason of our own for a failed attempt.  Never the exception's
    text: it may quote what the receiver sent (a protocol error shows the
    bytes it choked on) or an address a name resolved to."""
    chain = _causes(exc)
    if any(isinstance(e, httpx.TimeoutException | TimeoutError) for e in chain):
        return "timeout"
    if any(isinstance(e, ConnectionRefusedError) for e in chain):
        return "connection refused"
    if any(isinstance(e, ssl.SSLError) for e in chain):
        return "TLS error"
    if any(isinstance(e, socket.gaierror) for e in chain):
        return "DNS lookup failed"
    if isinstance(exc, httpx.ConnectError):
        return "connection failed"
    if isinstance(exc, httpx.RemoteProtocolError | httpx.LocalProtocolError):
        return "protocol error"
    if isinstance(exc, httpx.ReadError | httpx.WriteError):
        return "connection lost"
    return "request failed"


class WebhookDispatcher:
    def __init__(
        self,
        db: Database,
        settings: Settings,
        worker_id: str | None = None,
        secrets: SecretBox | None = None,
    ) -> None:
        self.db = db
        self.settings = settings
        self.secrets = secrets if secrets is not None else SecretBox.from_settings(settings)
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
            verify=tls.client_context(),
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
            code = await self._post(endpoint, delivery)
            if not 200 <= code < 300:
                error = f"HTTP {code}"
        except SSRFBlocked:
            error, final = "refused: the host resolves to a non-public address", True
        except WebhookURLError:
            error, final = "refused: invalid URL", True
        except SecretUnreadable:
            error, final = "the signing secret cannot be read; rotate it", True
        except (httpx.HTTPError, OSError, TimeoutError) as exc:
            error = failure_reason(exc)
        await self._record(delivery, code, error, final=final)

    async def _post(self, endpoint: WebhookEndpoint, delivery: WebhookDelivery) -> int:
        """POST the delivery; its status code.  The response body is not read:
        an internal host's answer must not reach the delivery record."""
        assert self._client is not None
        target = parse_url(endpoint.url)
        allow = endpoint.private_approved or self.settings.webhook_allow_private_networks
        address = await resolve(target, allow)
        body = message_body(delivery.payload)
        secret = self.secrets.open(endpoint.secret, endpoint.id)
        headers = signed_headers(secret, delivery.message_id, body, datetime.now(UTC))
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
        await response.aclose()
        return response.status_code

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
        metrics.webhook_attempt("retrying" if values["status"] == "pending" else values["status"])
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
