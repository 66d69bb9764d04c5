"""Automation claims: `insync automate` records each launched change, keyed by (asset, partition,
change), so two automation processes never launch the same change twice.

A new table only: existing rows, statuses and data versions are untouched.

Revision ID: 0003_automation_claims
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_automation_claims"
down_revision = "0002_partitions_parameters"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "insync_automation_claims",
        sa.Column("asset_key", sa.Text, primary_key=True),
        sa.Column("partition_key", sa.Text, primary_key=True, server_default=""),
        sa.Column("change", sa.String(64), primary_key=True),
        sa.Column("instance", sa.String(255), nullable=False),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("owner", sa.Text, nullable=False),
        sa.Column("run_ref", sa.String(255), nullable=False, server_default=""),
    )


def downgrade() -> None:
    raise NotImplementedError("insync stores are not downgraded; restore a backup taken before upgrading")
