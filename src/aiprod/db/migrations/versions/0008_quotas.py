"""quotas: per-user overrides of the role's quotas, and each owner's claim turn

* ``user_quotas``: what an admin set for one user (``PUT /v1/admin/users/{id}/
  quotas``); only the overridden fields, the rest follow the role.
* ``claim_turns``: when a worker last took a job of each owner, so that the
  claim serves owners in turn (fair share) rather than the oldest job first.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-12
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import aiprod.db.base

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "user_quotas",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("limits", aiprod.db.base.JSONType, nullable=False),
        sa.Column("updated_at", aiprod.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.Uuid(), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_user_quotas_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_user_quotas")),
    )
    op.create_table(
        "claim_turns",
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("claimed_at", aiprod.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["owner_id"],
            ["users.id"],
            name=op.f("fk_claim_turns_owner_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("owner_id", name=op.f("pk_claim_turns")),
    )


def downgrade() -> None:
    op.drop_table("claim_turns")
    op.drop_table("user_quotas")
