"""Initial insync store: events, their inputs (provenance), latest index, definitions, deps.

Revision ID: 0001_initial
"""

import sqlalchemy as sa
from alembic import op

revision = "0001_initial"
down_revision = None
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "insync_events",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("asset_key", sa.Text, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("data_version", sa.Text, nullable=False),
        sa.Column("code_version", sa.String(255)),
        sa.Column("user_provided", sa.Boolean, nullable=False),
        sa.Column("run_id", sa.String(255)),
        sa.Column("framework", sa.String(64)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("metadata", sa.Text, nullable=False),
        sa.Column("inputs_digest", sa.String(40), nullable=False),
    )
    op.create_index("ix_insync_events_asset_id", "insync_events", ["asset_key", "id"])
    op.create_table(
        "insync_event_inputs",
        sa.Column("event_id", Id, sa.ForeignKey("insync_events.id"), primary_key=True),
        sa.Column("input_key", sa.Text, primary_key=True),
        sa.Column("data_version", sa.Text, nullable=False),
        sa.Column("input_event_id", Id),
    )
    op.create_table(
        "insync_latest",
        sa.Column("asset_key", sa.Text, primary_key=True),
        sa.Column("kind", sa.String(16), primary_key=True),
        sa.Column("event_id", Id, sa.ForeignKey("insync_events.id"), nullable=False),
    )
    op.create_table(
        "insync_definitions",
        sa.Column("asset_key", sa.Text, primary_key=True),
        sa.Column("code_version", sa.String(255)),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("framework", sa.String(64)),
        sa.Column("metadata", sa.Text, nullable=False),
        sa.Column("deps", sa.Text, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "insync_deps",
        sa.Column("asset_key", sa.Text, primary_key=True),
        sa.Column("dep_key", sa.Text, primary_key=True),
    )
    op.create_index("ix_insync_deps_dep_key", "insync_deps", ["dep_key"])
    op.create_table(
        "insync_counters",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("value", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    for table in (
        "insync_counters",
        "insync_deps",
        "insync_definitions",
        "insync_latest",
        "insync_event_inputs",
        "insync_events",
    ):
        op.drop_table(table)
