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
  is signed per :mod:`.signing`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from aiprod.db.base import utcnow
from aiprod.db.engine import Database
from aiprod.events.envelope import Envelope
from aiprod.events.models import WebhookDelivery, WebhookEndpoint
from aiprod.events.tasks import cancel_all, wait_event
from aiprod.events.webhooks.signing import USER_AGENT, message_body, signed_headers
from aiprod.events.webhooks.ssrf import SSRFBlocked, parse_url, resolve
from aiprod.settings import Settings

log = logging.getLogger("aiprod.webhooks")

RESPONSE_SNIPPET = 512
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
