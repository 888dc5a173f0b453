"""The security audit log: append-only, hash-chained, secret-free.

Each event gets the next sequence number and ``hash = SHA-256(prev_hash ||
canonical JSON of the event)``; the first event chains to 64 zeros.  Editing a
row, deleting one, inserting one or reordering rows breaks the chain, which
``aiprod audit verify`` (and ``GET /v1/admin/audit/verify``) reports with the
first bad sequence number.  Cutting rows off the *end* leaves a shorter valid
chain, so verification prints the head (seq and hash): record it elsewhere
(a ticket, a log shipper) and pass it back with ``--anchor`` to prove that
the chain still contains it.

Appends are serialised: an advisory lock on PostgreSQL, the write lock that
every SQLite transaction takes up front (``BEGIN IMMEDIATE``).  Events are
written in the same transaction as the change they describe whenever there is
one, so a role change and its audit row commit or roll back together.

Nothing secret is ever stored: details are scrubbed of keys that name
secrets and of values that look like our tokens (see `scrub`).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from aiprod.db.base import utcnow
from aiprod.db.engine import Database
from aiprod.identity.models import AuditEvent
from aiprod.identity.permissions import Principal

GENESIS = "0" * 64
_LOCK_KEY = 0x41495052_4F444155  # "AIPRODAU": pg_advisory_xact_lock key of the chain
_SENSITIVE_KEYS = ("password", "secret", "token", "authorization", "cookie", "digest", "jwt")
_TOKEN_PREFIXES = ("aipk_", "rt_", "eyJ", "Bearer ")
REDACTED = "[redacted]"


@dataclass(frozen=True)
class AuditContext:
    """Who acts and from where (the request's view)."""

    actor_id: uuid.UUID | None = None
    actor: str | None = None
    ip: str | None = None
    request_id: str | None = None

    def as_actor(self, actor_id: uuid.UUID | None, actor: str | None) -> AuditContext:
        return AuditContext(actor_id, actor, self.ip, self.request_id)

    def as_principal(self, principal: Principal) -> AuditContext:
        """`principal` as the actor, labelled by email (and "(API key)" when a key acts)."""
        label = principal.email + (" (API key)" if principal.via == "api_key" else "")
        return self.as_actor(principal.user_id, label)


SYSTEM = AuditContext(actor="system")


def scrub(value: Any, depth: int = 0) -> Any:
    """A JSON-safe copy without secrets: sensitive keys and token-like strings are
    replaced, long strings cut, nesting bounded."""
    if depth > 5:
        return REDACTED
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for k, v in value.items():
            key = str(k)
            if any(word in key.lower() for word in _SENSITIVE_KEYS):
                out[key] = REDACTED
            else:
                out[key] = scrub(v, depth + 1)
        return out
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value) if isinstance(value, set | frozenset) else value
        return [scrub(v, depth + 1) for v in items]
    if isinstance(value, str):
        if value.startswith(_TOKEN_PREFIXES):
            return REDACTED
        return value[:512]
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return str(value)  # floats do not survive every JSON column byte-for-byte
    return str(value)[:512]


def _canonical(row: AuditEvent) -> bytes:
    body = {
        "seq": row.seq,
        "occurred_at": row.occurred_at.isoformat(timespec="microseconds"),
        "event": row.event,
        "outcome": row.outcome,
        "actor_id": str(row.actor_id) if row.actor_id else None,
        "actor": row.actor,
        "subject_type": row.subject_type,
        "subject_id": row.subject_id,
        "ip": row.ip,
        "request_id": row.request_id,
        "details": row.details,
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def chain_hash(prev_hash: str, row: AuditEvent) -> str:
    return hashlib.sha256(prev_hash.encode() + b"\n" + _canonical(row)).hexdigest()


@dataclass
class Verification:
    ok: bool
    count: int
    head_seq: int
    head_hash: str
    first_bad_seq: int | None = None
    problem: str | None = None
    anchor_found: bool | None = None
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class AuditFilter:
    event: str | None = None  # exact, or a prefix ending in "." (e.g. "login.")
    outcome: str | None = None
    actor_id: uuid.UUID | None = None
    subject_id: str | None = None
    ip: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    before_seq: int | None = None


class AuditLog:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def record(
        self,
        s: AsyncSession,
        event: str,
        outcome: str,
        ctx: AuditContext,
        *,
        subject_type: str | None = None,
        subject_id: object = None,
        details: Mapping[str, Any] | None = None,
    ) -> AuditEvent:
        """Append an event inside the caller's transaction `s`."""
        if s.get_bind().dialect.name == "postgresql":
            await s.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_KEY})
        last = (
            await s.execute(
                select(AuditEvent.seq, AuditEvent.hash).order_by(AuditEvent.seq.desc()).limit(1)
            )
        ).first()
        seq, prev = (last[0] + 1, last[1]) if last is not None else (1, GENESIS)
        row = AuditEvent(
            seq=seq,
            occurred_at=utcnow(),
            event=event,
            outcome=outcome,
            actor_id=ctx.actor_id,
            actor=(ctx.actor or None) and ctx.actor[:320],
            subject_type=subject_type,
            subject_id=None if subject_id is None else str(subject_id)[:64],
            ip=(ctx.ip or None) and ctx.ip[:64],
            request_id=(ctx.request_id or None) and ctx.request_id[:128],
            details=scrub(dict(details or {})),
            prev_hash=prev,
        )
        row.hash = chain_hash(prev, row)
        s.add(row)
        await s.flush()
        return row

    async def log(
        self,
        event: str,
        outcome: str,
        ctx: AuditContext,
        *,
        subject_type: str | None = None,
        subject_id: object = None,
        details: Mapping[str, Any] | None = None,
    ) -> AuditEvent:
        """Append an event in a transaction of its own."""
        async with self.db.transaction() as s:
            return await self.record(
                s,
                event,
                outcome,
                ctx,
                subject_type=subject_type,
                subject_id=subject_id,
                details=details,
            )

    async def permission_denied(
        self,
        ctx: AuditContext,
        principal: Principal,
        need: str,
        *,
        subject_type: str,
        subject_id: object,
        details: Mapping[str, Any] | None = None,
    ) -> AuditEvent:
        """Record that `principal` was refused for lacking `need` (own transaction)."""
        return await self.log(
            "permission.denied",
            "denied",
            ctx,
            subject_type=subject_type,
            subject_id=subject_id,
            details={
                **(details or {}),
                "needs": need,
                "role": principal.role,
                "via": principal.via,
            },
        )

    async def query(self, f: AuditFilter, limit: int) -> list[AuditEvent]:
        """Newest first."""
        q = select(AuditEvent).order_by(AuditEvent.seq.desc()).limit(limit)
        if f.event is not None:
            if f.event.endswith("."):
                q = q.where(AuditEvent.event.startswith(f.event, autoescape=True))
            else:
                q = q.where(AuditEvent.event == f.event)
        if f.outcome is not None:
            q = q.where(AuditEvent.outcome == f.outcome)
        if f.actor_id is not None:
            q = q.where(AuditEvent.actor_id == f.actor_id)
        if f.subject_id is not None:
            q = q.where(AuditEvent.subject_id == f.subject_id)
        if f.ip is not None:
            q = q.where(AuditEvent.ip == f.ip)
        if f.since is not None:
            q = q.where(AuditEvent.occurred_at >= f.since)
        if f.until is not None:
            q = q.where(AuditEvent.occurred_at < f.until)
        if f.before_seq is not None:
            q = q.where(AuditEvent.seq < f.before_seq)
        async with self.db.session() as s:
            return list((await s.execute(q)).scalars())

    async def verify(self, anchor: tuple[int, str] | None = None) -> Verification:
        """Walk the whole chain in order; the first problem stops the walk."""
        count, prev, expected_seq = 0, GENESIS, 1
        anchor_found: bool | None = None if anchor is None else False
        async with self.db.session() as s:
            rows = await s.stream_scalars(
                select(AuditEvent).order_by(AuditEvent.seq).execution_options(yield_per=500)
            )
            async for row in rows:
                problem = None
                if row.seq != expected_seq:
                    problem = f"expected seq {expected_seq}, found {row.seq} (rows missing?)"
                elif row.prev_hash != prev:
                    problem = "prev_hash does not match the previous event's hash"
                elif chain_hash(prev, row) != row.hash:
                    problem = "the event's content does not match its hash (edited?)"
                if problem is not None:
                    return Verification(False, count, expected_seq - 1, prev, row.seq, problem)
                if anchor is not None and row.seq == anchor[0]:
                    anchor_found = row.hash == anchor[1]
                prev, expected_seq, count = row.hash, expected_seq + 1, count + 1
        result = Verification(True, count, expected_seq - 1, prev, anchor_found=anchor_found)
        if anchor is not None and not anchor_found:
            result.ok = False
            result.problem = (
                f"the anchor (seq {anchor[0]}) is not in the chain: rows were removed from its "
                "end or rewritten"
            )
            result.first_bad_seq = anchor[0]
        return result
