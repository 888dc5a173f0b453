"""Jobs, their events, their stage checkpoints, and worker heartbeats."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.orm import Mapped, mapped_column

from aiprod.db.base import Base, JSONType, UTCDateTime, new_id, utcnow

SEQ_MAX = 2**31 - 1
"""The largest event sequence number: `seq` columns are 32-bit integers, so a
client naming a larger one is refused as invalid input, not failed in a query."""


# Listings sort on these columns, each broken by id (keyset paging): one index
# per sort for a user's own productions (owner first) and one for an admin's
# view of everyone's.
SORT_COLUMNS = ("created_at", "updated_at", "completed_at", "cost", "duration")
# Filters on a column with few values read it with the default order (newest
# first) from one index.
FILTER_COLUMNS = (
    "status",
    "stage",
    "preset",
    "aspect",
    "resolution",
    "language",
    "voice",
    "fast_track",
    "review",
)


def _short(column: str) -> str:
    return column.removesuffix("_at")


class Job(Base):
    """A production.  `cost` … `voice` copy what searches filter on out of the
    request, estimate and storyboard documents (aiprod.search.columns derives
    them on every write); the full-text index lives beside the row
    (aiprod.search.fulltext)."""

    __tablename__ = "jobs"
    __table_args__ = (
        UniqueConstraint("owner_id", "idempotency_key", name="uq_jobs_owner_idempotency"),
        Index("ix_jobs_owner_created", "owner_id", "created_at", "id"),
        Index("ix_jobs_claim", "status", "next_attempt_at"),
        *(Index(f"ix_jobs_owner_{_short(c)}", "owner_id", c, "id") for c in SORT_COLUMNS[1:]),
        Index("ix_jobs_owner_status", "owner_id", "status", "created_at", "id"),
        Index("ix_jobs_created", "created_at", "id"),
        # A range on one of these with the default order reads the index alone
        # on PostgreSQL (created_at included) and sorts the matches' keys.
        *(
            Index(f"ix_jobs_{_short(c)}", c, "id", postgresql_include=["created_at"])
            for c in SORT_COLUMNS[1:]
        ),
        *(Index(f"ix_jobs_{c}_created", c, "created_at", "id") for c in FILTER_COLUMNS),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    owner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(24), default="queued")
    stage: Mapped[str | None] = mapped_column(String(16))
    progress: Mapped[int] = mapped_column(Integer, default=0)
    eta_seconds: Mapped[float | None] = mapped_column(Float)
    title: Mapped[str | None] = mapped_column(String(200))
    request: Mapped[dict[str, Any]] = mapped_column(JSONType)
    storyboard: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    estimate: Mapped[dict[str, Any]] = mapped_column(JSONType)
    qa: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    fast_track: Mapped[bool] = mapped_column(Boolean, default=False)
    review: Mapped[bool] = mapped_column(Boolean, default=False)
    approved: Mapped[bool] = mapped_column(Boolean, default=False)
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    request_hash: Mapped[str] = mapped_column(String(64))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    failed_stage: Mapped[str | None] = mapped_column(String(16))
    error: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    last_seq: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cost: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    duration: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    preset: Mapped[str] = mapped_column(String(32), default="", server_default="")
    aspect: Mapped[str] = mapped_column(String(8), default="", server_default="")
    resolution: Mapped[str] = mapped_column(String(8), default="", server_default="")
    language: Mapped[str] = mapped_column(String(16), default="en", server_default="en")
    voice: Mapped[str] = mapped_column(String(64), default="", server_default="")
    # The X-Request-ID of the submission: the worker's log lines for the job carry it.
    request_id: Mapped[str | None] = mapped_column(String(128))


class JobEvent(Base):
    """Every transition and progress step of a job, numbered per job from 1."""

    __tablename__ = "job_events"
    __table_args__ = (UniqueConstraint("job_id", "seq", name="uq_job_events_job_seq"),)

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    type: Mapped[str] = mapped_column(String(40))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Checkpoint(Base):
    """A finished stage: which stored artifacts it produced.  Resume starts after it."""

    __tablename__ = "checkpoints"
    __table_args__ = (UniqueConstraint("job_id", "stage", name="uq_checkpoints_job_stage"),)

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    stage: Mapped[str] = mapped_column(String(16))
    artifacts: Mapped[list[dict[str, Any]]] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class WorkerBeat(Base):
    """Each worker's last sign of life, for /health/ready and operators."""

    __tablename__ = "workers"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    hostname: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    note: Mapped[str | None] = mapped_column(Text)


class MediaFile(Base):
    """A user's upload (`POST /v1/media`): an image, a video clip or a song that
    productions may reference by id.  The bytes live in storage at `key`; the
    row says what they were found to be (sniffed and decoded, never what the
    client claimed)."""

    __tablename__ = "media_files"
    __table_args__ = (Index("ix_media_files_owner_created", "owner_id", "created_at", "id"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    owner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(8))
    content_type: Mapped[str] = mapped_column(String(64))
    bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    duration: Mapped[float | None] = mapped_column(Float)
    filename: Mapped[str] = mapped_column(String(255))
    license: Mapped[str] = mapped_column(String(200))
    key: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
