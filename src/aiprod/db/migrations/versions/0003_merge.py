"""merge the identity and events branches

Revision ID: 0003
Revises: 0002_identity, 0002_events
Create Date: 2026-11-24

Both branches grew from 0001 in parallel and touch different tables; this
revision joins them so the history has one head again.
"""

from collections.abc import Sequence

revision: str = "0003"
down_revision: str | Sequence[str] | None = ("0002_identity", "0002_events")
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
