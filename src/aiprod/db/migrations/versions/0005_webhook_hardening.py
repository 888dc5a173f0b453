"""webhooks: private approval bound to a URL, no receiver bodies in delivery records

Revision ID: 0005
Revises: 0003
Create Date: 2026-12-02

* ``webhook_endpoints.private_url``: the URL an admin allowed to reach
  private addresses; existing approvals bind to the URL they have now.
* Signing secrets are sealed by the API at start-up, not here (the key is in
  the settings); the sealed form fits the column as it is.
* ``webhook_deliveries.last_error`` loses what receivers answered (up to 512
  bytes of their body were kept after ``HTTP <code>: ``) and the text of
  transport errors: only our own short reasons remain.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("webhook_endpoints", schema=None) as batch_op:
        # A plain ADD COLUMN, also on SQLite: no table rebuild (which would
        # cascade-delete the deliveries of every endpoint).
        batch_op.add_column(sa.Column("private_url", sa.String(length=2048), nullable=True))
    endpoints = sa.table(
        "webhook_endpoints",
        sa.column("url", sa.String),
        sa.column("private_url", sa.String),
        sa.column("allow_private", sa.Boolean),
    )
    op.execute(
        endpoints.update()
        .where(endpoints.c.allow_private == sa.true())
        .values(private_url=endpoints.c.url)
    )
    op.execute(
        "UPDATE webhook_deliveries SET last_error = 'HTTP ' || CAST(last_status_code AS TEXT) "
        "WHERE last_status_code IS NOT NULL AND last_error IS NOT NULL"
    )
    op.execute(
        "UPDATE webhook_deliveries SET last_error = 'request failed' "
        "WHERE last_status_code IS NULL AND last_error IS NOT NULL "
        "AND last_error <> 'the endpoint is disabled'"
    )


def downgrade() -> None:
    # Sealed secrets stay sealed: a downgraded server cannot sign with them
    # (rotate each endpoint's secret after a downgrade).  Approvals revert to
    # the flag alone.
    with op.batch_alter_table("webhook_endpoints", schema=None) as batch_op:
        batch_op.drop_column("private_url")
