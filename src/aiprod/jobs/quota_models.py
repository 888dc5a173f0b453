"""Tables of quotas and fair share: a user's own limits, and each owner's last turn.

Kept apart from :mod:`aiprod.jobs.models` (the job rows themselves); both
modules register on the one ``Base.metadata`` (``aiprod.jobs.leases`` imports
this one, so does the migration environment).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from aiprod.db.base import Base, JSONType, UTCDateTime, utcnow


class UserQuota(Base):
    """An admin's overrides of one user's quotas: ``limits`` holds only the
    overridden fields (a null value lifts that limit); any other field keeps
    the role's default (``AIPROD_QUOTAS``)."""

    __tablename__ = "user_quotas"

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    limits: Mapped[dict[str, Any]] = mapped_column(JSONType)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_by: Mapped[uuid.UUID | None] = mapped_column(Uuid)


class ClaimTurn(Base):
    """When a worker last took a job of this owner: among owners with as few
    jobs running, the one served longest ago goes first (round robin)."""

    __tablename__ = "claim_turns"

    owner_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    claimed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


__all__ = ["ClaimTurn", "UserQuota"]
