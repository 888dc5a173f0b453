"""Webhook endpoints and deliveries: the rules behind ``/v1/webhooks``.

Every call takes the caller's owner scope (None for admins); someone else's
endpoint is reported exactly like a missing one.

An admin's approval to reach private addresses (``allow_private``) binds to
the exact URL approved (``private_url``): a change of URL revokes it, unless
the same change approves the new URL again, and the endpoint is held to
public addresses meanwhile.  Who may approve is the endpoints' business (an
admin *role*); this module keeps the approval tied to its URL.  Secrets are
stored sealed (:mod:`.secrets`) and returned in the clear only by the calls
that make them."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import select, update

from aiprod.db.base import utcnow
from aiprod.db.engine import Database
from aiprod.db.paging import newest_first
from aiprod.errors import NotFound
from aiprod.events.models import WebhookDelivery, WebhookEndpoint
from aiprod.events.webhooks.secrets import SecretBox, SecretUnreadable
from aiprod.events.webhooks.signing import new_secret
from aiprod.ssrf import check_endpoint_url

log = logging.getLogger("aiprod.webhooks")


class WebhookService:
    """Create, read, change and delete endpoints; list, read and replay deliveries."""

    def __init__(self, db: Database, secrets: SecretBox) -> None:
        self.db = db
        self.secrets = secrets

    async def create(
        self,
        owner_id: uuid.UUID,
        url: str,
        event_types: list[str],
        description: str | None,
        *,
        enabled: bool,
        allow_private: bool,
        private_allowed_globally: bool,
    ) -> tuple[WebhookEndpoint, str]:
        """The new endpoint and its signing secret (the only time it is returned)."""
        url = await check_endpoint_url(url, allow_private or private_allowed_globally)
        now = utcnow()
        endpoint_id = uuid.uuid4()
        secret = new_secret()
        endpoint = WebhookEndpoint(
            id=endpoint_id,
            owner_id=owner_id,
            url=url,
            description=description,
            event_types=sorted(set(event_types)),
            secret=self.secrets.seal(secret, endpoint_id),
            enabled=enabled,
            allow_private=allow_private,
            private_url=url if allow_private else None,
            created_at=now,
            updated_at=now,
        )
        async with self.db.transaction() as s:
            s.add(endpoint)
        return endpoint, secret

    async def get(self, endpoint_id: uuid.UUID, owner_id: uuid.UUID | None) -> WebhookEndpoint:
        async with self.db.session() as s:
            endpoint = await s.get(WebhookEndpoint, endpoint_id)
        if endpoint is None or (owner_id is not None and endpoint.owner_id != owner_id):
            raise NotFound(f"webhook endpoint {endpoint_id} not found")
        return endpoint

    async def list_endpoints(self, owner_id: uuid.UUID | None) -> list[WebhookEndpoint]:
        q = select(WebhookEndpoint).order_by(WebhookEndpoint.created_at, WebhookEndpoint.id)
        if owner_id is not None:
            q = q.where(WebhookEndpoint.owner_id == owner_id)
        async with self.db.session() as s:
            return list((await s.execute(q)).scalars())

    async def update(
        self,
        endpoint_id: uuid.UUID,
        owner_id: uuid.UUID | None,
        changes: dict[str, Any],
        *,
        private_allowed_globally: bool,
    ) -> WebhookEndpoint:
        """Apply `changes` (already checked: only an admin's may set
        ``allow_private``).  A new URL loses the approval of the old one."""
        async with self.db.transaction() as s:
            endpoint = await s.get(WebhookEndpoint, endpoint_id, with_for_update=True)
            if endpoint is None or (owner_id is not None and endpoint.owner_id != owner_id):
                raise NotFound(f"webhook endpoint {endpoint_id} not found")
            url = changes.pop("url", endpoint.url)
            approve = changes.pop("allow_private", None)
            if approve is None:  # not mentioned: the approval holds for its URL only
                approved = endpoint.private_approved and url == endpoint.url
            else:
                approved = bool(approve)
            if url != endpoint.url or approve is not None:
                url = await check_endpoint_url(url, approved or private_allowed_globally)
            endpoint.url = url
            endpoint.allow_private = approved
            endpoint.private_url = url if approved else None
            if "event_types" in changes:
                changes["event_types"] = sorted(set(changes["event_types"]))
            for key, value in changes.items():
                setattr(endpoint, key, value)
            endpoint.updated_at = utcnow()
        return endpoint

    async def rotate_secret(
        self, endpoint_id: uuid.UUID, owner_id: uuid.UUID | None
    ) -> tuple[WebhookEndpoint, str]:
        """The endpoint and its new signing secret (returned only here)."""
        secret = new_secret()
        async with self.db.transaction() as s:
            endpoint = await s.get(WebhookEndpoint, endpoint_id, with_for_update=True)
            if endpoint is None or (owner_id is not None and endpoint.owner_id != owner_id):
                raise NotFound(f"webhook endpoint {endpoint_id} not found")
            endpoint.secret = self.secrets.seal(secret, endpoint.id)
            endpoint.updated_at = utcnow()
        return endpoint, secret

    async def reseal_secrets(self) -> int:
        """Seal every secret not sealed under the current key (plaintext rows
        from before sealing, rows sealed under a previous key); how many.  Run
        at start-up; several processes may run it at once (compare-and-set)."""
        async with self.db.session() as s:
            rows = (await s.execute(select(WebhookEndpoint.id, WebhookEndpoint.secret))).all()
        done = 0
        for endpoint_id, stored in rows:
            if self.secrets.is_current(stored):
                continue
            try:
                secret = self.secrets.open(stored, endpoint_id)
            except SecretUnreadable:
                log.warning("webhooks: the secret of endpoint %s cannot be opened", endpoint_id)
                continue
            async with self.db.transaction() as s:
                result = await s.execute(
                    update(WebhookEndpoint)
                    .where(WebhookEndpoint.id == endpoint_id, WebhookEndpoint.secret == stored)
                    .values(secret=self.secrets.seal(secret, endpoint_id))
                )
            done += result.rowcount or 0  # type: ignore[attr-defined]
        if done:
            log.info("webhooks: sealed %d signing secrets under the current key", done)
        return done

    async def delete(self, endpoint_id: uuid.UUID, owner_id: uuid.UUID | None) -> None:
        async with self.db.transaction() as s:
            endpoint = await s.get(WebhookEndpoint, endpoint_id)
            if endpoint is None or (owner_id is not None and endpoint.owner_id != owner_id):
                raise NotFound(f"webhook endpoint {endpoint_id} not found")
            await s.delete(endpoint)

    async def deliveries(
        self,
        endpoint_id: uuid.UUID,
        owner_id: uuid.UUID | None,
        limit: int,
        before: tuple[datetime, uuid.UUID] | None = None,
        status: str | None = None,
    ) -> list[WebhookDelivery]:
        """Newest first, keyset-paginated on (created_at, id)."""
        await self.get(endpoint_id, owner_id)
        scoped = select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint_id)
        q = newest_first(scoped, WebhookDelivery, before).limit(limit)
        if status is not None:
            q = q.where(WebhookDelivery.status == status)
        async with self.db.session() as s:
            return list((await s.execute(q)).scalars())

    async def delivery(
        self, endpoint_id: uuid.UUID, delivery_id: uuid.UUID, owner_id: uuid.UUID | None
    ) -> WebhookDelivery:
        await self.get(endpoint_id, owner_id)
        async with self.db.session() as s:
            row = await s.get(WebhookDelivery, delivery_id)
        if row is None or row.endpoint_id != endpoint_id:
            raise NotFound(f"delivery {delivery_id} not found")
        return row

    async def replay(
        self, endpoint_id: uuid.UUID, delivery_id: uuid.UUID, owner_id: uuid.UUID | None
    ) -> WebhookDelivery:
        """Send a message again as a new delivery (same ``webhook-id``, so the
        receiver can tell it already has it)."""
        original = await self.delivery(endpoint_id, delivery_id, owner_id)
        now = utcnow()
        copy = WebhookDelivery(
            id=uuid.uuid4(),
            endpoint_id=original.endpoint_id,
            message_id=original.message_id,
            event_type=original.event_type,
            job_id=original.job_id,
            seq=original.seq,
            payload=original.payload,
            status="pending",
            attempts=0,
            next_attempt_at=now,
            replay_of=original.id,
            created_at=now,
        )
        async with self.db.transaction() as s:
            s.add(copy)
        return copy
