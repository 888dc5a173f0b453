"""jobs.request_id: the X-Request-ID of the request that submitted the job

The worker's log lines for a job carry it, so that one search follows a
production from its ``POST /v1/productions`` to its last stage.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# Not batches: on SQLite a batch may copy jobs into a new table and drop the
# old one, whose implicit DELETE would cascade to its events and checkpoints
# (and lose the full-text triggers).  SQLite adds and drops a column in place.


def upgrade() -> None:
    op.add_column("jobs", sa.Column("request_id", sa.String(length=128), nullable=True))


def downgrade() -> None:
    op.drop_column("jobs", "request_id")
