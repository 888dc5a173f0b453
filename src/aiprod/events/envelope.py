"""One job event on its way to subscribers, and the compact form in which it
crosses processes (Redis messages, PostgreSQL notifications)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from aiprod.events.schemas import job_event_json
from aiprod.jobs.models import JobEvent


@dataclass(frozen=True, slots=True)
class Envelope:
    """One job event on its way to subscribers.  `text` is the wire JSON,
    serialized once however many subscribers receive it; empty when only the
    event's coordinates are known (a notification too big to carry it)."""

    job_id: uuid.UUID
    owner_id: uuid.UUID
    seq: int
    type: str
    text: str

    def encode(self) -> str:
        """The form carried by Redis and NOTIFY: a header the receiver can route
        on without parsing the JSON."""
        return f"1 {self.owner_id} {self.job_id} {self.seq} {self.type} {self.text}"

    def created(self) -> float | None:
        """Unix time the event was recorded (its ``ts``), read from the wire JSON
        without parsing the rest; None when only the coordinates are known."""
        start = self.text.find('"ts":"')
        if start < 0:
            return None
        end = self.text.find('"', start + 6)
        try:
            return datetime.fromisoformat(self.text[start + 6 : end]).timestamp()
        except ValueError:
            return None

    def hint(self) -> str:
        return f"1 {self.owner_id} {self.job_id} {self.seq} {self.type} "

    @classmethod
    def decode(cls, raw: str | bytes) -> Envelope:
        if isinstance(raw, bytes):
            raw = raw.decode()
        version, owner, job, seq, type_, text = raw.split(" ", 5)
        if version != "1":
            raise ValueError(f"unknown envelope version {version!r}")
        return cls(uuid.UUID(job), uuid.UUID(owner), int(seq), type_, text)


def envelope(ev: JobEvent, owner_id: uuid.UUID) -> Envelope:
    text = job_event_json(ev.job_id, ev.seq, ev.type, ev.payload, ev.created_at)
    return Envelope(ev.job_id, owner_id, ev.seq, ev.type, text)
