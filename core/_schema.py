"""The store's tables (SQLAlchemy Core). Migrations in `migrations/versions` create them."""

from __future__ import annotations

from typing import Final

import sqlalchemy as sa

__all__ = [
    "HEAD_REVISION",
    "KNOWN_REVISIONS",
    "VERSION_TABLE",
    "automation_claims",
    "counters",
    "definitions",
    "deps",
    "dynamic_partitions",
    "events",
    "inputs",
    "latest",
    "metadata",
]

# Our own version table, so an insync store can share a database with Airflow's `alembic_version`.
VERSION_TABLE: Final = "insync_alembic_version"
# Oldest first; a test checks it matches migrations/versions.
KNOWN_REVISIONS: Final = ("0001_initial", "0002_partitions_parameters", "0003_automation_claims")
HEAD_REVISION: Final = KNOWN_REVISIONS[-1]

metadata = sa.MetaData()
Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # SQLite only autoincrements INTEGER

events = sa.Table(
    "insync_events",
    metadata,
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
    # "" for an unpartitioned asset: primary keys cannot hold NULL.
    sa.Column("partition_key", sa.Text, nullable=False, server_default=""),
    # Canonical JSON {name: fingerprint} of the step's parameters, "" for none.
    sa.Column("parameters", sa.Text, nullable=False, server_default=""),
    sa.Index("ix_insync_events_asset_id", "asset_key", "id"),
    sa.Index("ix_insync_events_asset_partition_id", "asset_key", "partition_key", "id"),
)

# Provenance as columns: one row per input of a materialization, as seen when the step started.
inputs = sa.Table(
    "insync_event_inputs",
    metadata,
    sa.Column("event_id", Id, sa.ForeignKey("insync_events.id"), primary_key=True),
    sa.Column("input_key", sa.Text, primary_key=True),
    sa.Column("input_partition", sa.Text, primary_key=True, server_default=""),
    sa.Column("data_version", sa.Text, nullable=False),
    sa.Column("input_event_id", Id),
)

# The newest event per asset, partition and kind, kept in the same transaction as the append.
latest = sa.Table(
    "insync_latest",
    metadata,
    sa.Column("asset_key", sa.Text, primary_key=True),
    sa.Column("partition_key", sa.Text, primary_key=True, server_default=""),
    sa.Column("kind", sa.String(16), primary_key=True),
    sa.Column("event_id", Id, sa.ForeignKey("insync_events.id"), nullable=False),
)

definitions = sa.Table(
    "insync_definitions",
    metadata,
    sa.Column("asset_key", sa.Text, primary_key=True),
    sa.Column("code_version", sa.String(255)),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("framework", sa.String(64)),
    sa.Column("metadata", sa.Text, nullable=False),
    # Newline-joined dep keys, read with the row; insync_deps serves the recursive SQL queries.
    sa.Column("deps", sa.Text, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    # JSON of the partitions definition and of the per-dep partition mappings, "" for none.
    sa.Column("partitions", sa.Text, nullable=False, server_default=""),
    sa.Column("partition_mappings", sa.Text, nullable=False, server_default=""),
)

# Keys of DynamicPartitions sets, added explicitly or by materializing a new key.
dynamic_partitions = sa.Table(
    "insync_dynamic_partitions",
    metadata,
    sa.Column("name", sa.String(255), primary_key=True),
    sa.Column("partition_key", sa.String(255), primary_key=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

# Cheap change markers for pollers: registering a definition appends no event.
counters = sa.Table(
    "insync_counters",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("value", sa.BigInteger, nullable=False),
)

deps = sa.Table(
    "insync_deps",
    metadata,
    sa.Column("asset_key", sa.Text, primary_key=True),
    sa.Column("dep_key", sa.Text, primary_key=True),
    sa.Index("ix_insync_deps_dep_key", "dep_key"),
)

# `insync automate`: one row per launched change; the primary key is what makes two automation
# processes (or one after a restart) launch the same change once.
automation_claims = sa.Table(
    "insync_automation_claims",
    metadata,
    sa.Column("asset_key", sa.Text, primary_key=True),
    sa.Column("partition_key", sa.Text, primary_key=True, server_default=""),
    sa.Column("change", sa.String(64), primary_key=True),
    sa.Column("instance", sa.String(255), nullable=False),
    sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("owner", sa.Text, nullable=False),
    sa.Column("run_ref", sa.String(255), nullable=False, server_default=""),
)
