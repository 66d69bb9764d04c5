"""Partitions and parameters: a partition key on events, inputs and the latest index; parameter
fingerprints on events; partition definitions; dynamic partition keys.

Existing rows become the unpartitioned records ("" partition) of their assets, with no
parameters: their data versions, provenance and statuses are unchanged.

Revision ID: 0002_partitions_parameters
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_partitions_parameters"
down_revision = "0001_initial"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.add_column("insync_events", sa.Column("partition_key", sa.Text, nullable=False, server_default=""))
    op.add_column("insync_events", sa.Column("parameters", sa.Text, nullable=False, server_default=""))
    op.create_index(
        "ix_insync_events_asset_partition_id", "insync_events", ["asset_key", "partition_key", "id"]
    )
    op.add_column("insync_definitions", sa.Column("partitions", sa.Text, nullable=False, server_default=""))
    op.add_column(
        "insync_definitions", sa.Column("partition_mappings", sa.Text, nullable=False, server_default="")
    )
    # Primary keys gain the partition: rebuild both tables and copy (the same on SQLite and PostgreSQL).
    op.create_table(
        "insync_event_inputs_2",
        sa.Column("event_id", Id, sa.ForeignKey("insync_events.id"), primary_key=True),
        sa.Column("input_key", sa.Text, primary_key=True),
        sa.Column("input_partition", sa.Text, primary_key=True, server_default=""),
        sa.Column("data_version", sa.Text, nullable=False),
        sa.Column("input_event_id", Id),
    )
    op.execute(
        "INSERT INTO insync_event_inputs_2 (event_id, input_key, input_partition, data_version, "
        "input_event_id) SELECT event_id, input_key, '', data_version, input_event_id "
        "FROM insync_event_inputs"
    )
    op.drop_table("insync_event_inputs")
    op.rename_table("insync_event_inputs_2", "insync_event_inputs")
    op.create_table(
        "insync_latest_2",
        sa.Column("asset_key", sa.Text, primary_key=True),
        sa.Column("partition_key", sa.Text, primary_key=True, server_default=""),
        sa.Column("kind", sa.String(16), primary_key=True),
        sa.Column("event_id", Id, sa.ForeignKey("insync_events.id"), nullable=False),
    )
    op.execute(
        "INSERT INTO insync_latest_2 (asset_key, partition_key, kind, event_id) "
        "SELECT asset_key, '', kind, event_id FROM insync_latest"
    )
    op.drop_table("insync_latest")
    op.rename_table("insync_latest_2", "insync_latest")
    op.create_table(
        "insync_dynamic_partitions",
        sa.Column("name", sa.String(255), primary_key=True),
        sa.Column("partition_key", sa.String(255), primary_key=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    raise NotImplementedError("insync stores are not downgraded; restore a backup taken before upgrading")
