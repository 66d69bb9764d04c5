"""Upgrading a store written by the first release (schema 0001) loses nothing and changes no status.

`data/store_0001.json` holds every row of a store that release wrote (a source observed twice, a
chain of materializations, one asset Unsynced); the test loads it into a 0001 schema built by
that revision's own migration, on SQLite and on PostgreSQL, then upgrades.
"""

from __future__ import annotations

import json
from pathlib import Path

import pendulum
import pytest
import sqlalchemy as sa
from insync.core import AssetSpec, EventStore, SchemaVersionError, StaticPartitions

ROWS = json.loads((Path(__file__).parent / "data" / "store_0001.json").read_text())
# What that release reported for this store (captured with it, before the upgrade existed).
EXPECTED = {
    "adhoc": (
        "STALE",
        "d548e5966a3a9ae5a7054f00b6022d6e9edc1d7d2720d106f1d6ada237cc6c70",
        ["orders has a new data version"],
    ),
    "orders": ("FRESH", "30aae54d621a0bdf8bccce0e2c312747e0b0e878cbf2d4539e7dc2a43f0f502e", []),
    "raw/orders": ("FRESH", "etag-2", []),
    "report": (
        "STALE",
        "e4e3704fdc9eac7f0bd7c9757ee82d1603ebf49bd65d5b72d3f3cc9e88ad4e07",
        ["orders has a new data version"],
    ),
}


def _write_release_0001_store(url: str) -> None:
    from alembic import command
    from alembic.config import Config
    from insync.core import _schema

    database = sa.make_url(url).database
    if database and url.startswith("sqlite"):
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        config = Config()
        config.set_main_option("script_location", str(Path(_schema.__file__).with_name("migrations")))
        config.attributes["connection"] = conn
        command.upgrade(config, "0001_initial")
        tables = sa.MetaData()
        tables.reflect(conn)
        for name in (
            "insync_definitions",
            "insync_deps",
            "insync_counters",
            "insync_events",
            "insync_event_inputs",
            "insync_latest",
        ):
            rows = []
            for row in ROWS[name]:
                row = dict(row)
                for column in ("created_at", "updated_at"):
                    if column in row:
                        row[column] = pendulum.parse(row[column] + "+00:00")
                if "user_provided" in row:
                    row["user_provided"] = bool(row["user_provided"])
                rows.append(row)
            conn.execute(tables.tables[name].insert(), rows)
        if engine.dialect.name == "postgresql":  # as if the ids had come from the sequence
            conn.execute(sa.text("SELECT setval(pg_get_serial_sequence('insync_events', 'id'), 6)"))
    engine.dispose()


def test_upgrade_from_the_first_release_keeps_every_record_and_status(store_url: str) -> None:
    _write_release_0001_store(store_url)
    with pytest.raises(SchemaVersionError, match="insync db upgrade"):
        EventStore(store_url)
    with EventStore(store_url, upgrade=True) as store:
        assert store.schema_revision() == "0003_automation_claims"
        found = {
            str(key): (s.status.value, str(s.data_version), [str(c) for c in s.root_causes])
            for key, s in store.statuses().items()
        }
        assert found == EXPECTED
        history = store.history("orders")
        assert [e.id for e in history] == [6, 2]
        assert history[1].metadata == {"rows": 3}
        assert [(i.label, str(i.data_version), i.event_id) for i in history[1].inputs] == [
            ("raw/orders", "etag-1", 1)
        ]
        assert all(e.partition is None and e.parameters == () for e in history)
        # The upgraded store takes new records, partitions included.
        store.record_materialization("report")
        assert store.status("report").status.value == "FRESH"
        store.register(
            [AssetSpec("by_region", code_version="1", deps=["orders"], partitions=StaticPartitions(["eu"]))]
        )
        store.record_materialization("by_region", partition="eu")
        assert store.status("by_region", partition="eu").status.value == "FRESH"
        assert store.history("report")[0].id == 7


def test_upgrade_from_0002_adds_the_automation_claims_table(store_url: str) -> None:
    """A store at 0002 (partitions) gains the claims table; its records and statuses stay."""
    from alembic import command
    from alembic.config import Config
    from insync.core import _schema

    _write_release_0001_store(store_url)
    engine = sa.create_engine(store_url)
    with engine.begin() as conn:
        config = Config()
        config.set_main_option("script_location", str(Path(_schema.__file__).with_name("migrations")))
        config.attributes["connection"] = conn
        command.upgrade(config, "0002_partitions_parameters")
        assert "insync_automation_claims" not in sa.inspect(conn).get_table_names()
    engine.dispose()
    with EventStore(store_url, upgrade=True) as store:
        assert store.schema_revision() == "0003_automation_claims"
        assert {str(k): s.status.value for k, s in store.statuses().items()} == {
            k: v[0] for k, v in EXPECTED.items()
        }
        with store._read() as conn:
            columns = {c["name"] for c in sa.inspect(conn).get_columns("insync_automation_claims")}
    assert columns == {"asset_key", "partition_key", "change", "instance", "claimed_at", "owner", "run_ref"}
