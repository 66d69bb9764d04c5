"""A DAG run's data interval or partition key names the partition a versioned task computes;
a backfill over unchanged days reuses each day's own value and recomputes a changed day only."""

from __future__ import annotations

import pytest
from insync.core import AssetSpec, ConfigError, EventStore, TimeWindowPartitions

DAYS = ["2026-12-01", "2026-12-02", "2026-12-03"]

BACKFILL = """
from airflow.sdk import Asset, dag, task
from insync.adapters.airflow import versioned
from insync.core import TimeWindowPartitions

DAILY = TimeWindowPartitions("daily", start="2026-11-01")

@dag(dag_id="backfill", schedule="@daily", catchup=False)
def backfill():
    @task(outlets=[Asset("lake/daily_orders")])
    @versioned(code_version="v1", partitions=DAILY, deps=["raw/orders"])
    def daily_orders(ds=None):
        return f"orders of {ds}"

    @task
    @versioned(code_version="v1", partitions=DAILY)
    def summary(orders):
        return orders.upper()

    summary(daily_orders())

backfill()
"""


def _observe(day: str, version: str) -> None:
    with EventStore() as store:
        store.record_observation("raw/orders", version, partition=day)


def test_a_backfill_reuses_each_days_value_and_recomputes_a_changed_day_only(airflow):
    with EventStore() as store:
        daily = TimeWindowPartitions("daily", start="2026-11-01")
        store.register([AssetSpec("raw/orders", kind="observable", partitions=daily)])
    for day in DAYS:
        _observe(day, f"orders-{day}-v1")
    path = airflow.write(BACKFILL)

    first = {day: airflow.run(path, "backfill", logical_date=day) for day in DAYS}
    assert {d: r.decisions["daily_orders"] for d, r in first.items()} == dict.fromkeys(DAYS, "run")

    again = {day: airflow.run(path, "backfill", logical_date=day) for day in DAYS}
    for day, run in again.items():
        assert run.decisions == {"daily_orders": "skip", "summary": "skip"}
        # Each day's own value, not the last one computed.
        assert run.xcoms == {"daily_orders": f"orders of {day}", "summary": f"ORDERS OF {day}"}
        assert run.messages["daily_orders"] == f"skip lake/daily_orders[{day}]: Synced"

    _observe("2026-12-02", "orders-2026-12-02-v2")
    changed = {day: airflow.run(path, "backfill", logical_date=day) for day in DAYS}
    assert {d: r.decisions["daily_orders"] for d, r in changed.items()} == {
        "2026-12-01": "skip",
        "2026-12-02": "run",
        "2026-12-03": "skip",
    }
    assert changed["2026-12-02"].messages["daily_orders"] == (
        "run lake/daily_orders[2026-12-02]: Unsynced, raw/orders[2026-12-02] has a new data version"
    )
    with EventStore() as store:
        rollup = store.status("lake/daily_orders")
        assert rollup.partitions is not None
        assert rollup.partitions.synced == 3 and not rollup.partitions.unsynced
        assert len(store.history("lake/daily_orders", partition="2026-12-02")) == 2
        assert len(store.history("lake/daily_orders", partition="2026-12-01")) == 1
    # Airflow's asset events carry the partition key, one per real materialization.
    assert airflow.asset_event_partitions("lake/daily_orders") == [*DAYS, "2026-12-02"]
    assert [e["partition"] for e in airflow.asset_events("lake/daily_orders")] == [*DAYS, "2026-12-02"]


STATIC = """
from airflow.sdk import dag, task
from insync.adapters.airflow import versioned
from insync.core import StaticPartitions

@dag(dag_id="regions", schedule=None, params={"region": "eu"})
def regions():
    @task
    @versioned(
        code_version="v1",
        partitions=StaticPartitions(["eu", "us"]),
        partition="{{ params.region }}",
    )
    def sales(params=None):
        return f"sales in {params['region']}"

    sales()

regions()
"""


def test_static_partitions_named_by_a_template(airflow):
    path = airflow.write(STATIC)
    assert airflow.run(path, "regions").decisions == {"sales": "run"}
    us = airflow.run(path, "regions", conf={"region": "us"})
    assert us.decisions == {"sales": "run"}
    assert us.messages["sales"] == "run regions/sales[us]: Never materialized"
    eu = airflow.run(path, "regions")
    assert eu.decisions == {"sales": "skip"}
    assert eu.xcoms == {"sales": "sales in eu"}
    unknown = airflow.run(path, "regions", conf={"region": "mars"})
    assert unknown.states["sales"] == "failed"  # InvalidPartitionKey: not one of the static keys


def test_partition_settings_that_cannot_work_fail_when_the_dag_is_parsed():
    from airflow.providers.standard.operators.bash import BashOperator
    from airflow.sdk import DAG
    from insync.adapters.airflow import versioned, versioned_operator
    from insync.core import StaticPartitions

    with DAG("bad", schedule=None), pytest.raises(ConfigError, match="partitioned by map index"):
        versioned_operator(
            BashOperator.partial(task_id="t").expand(bash_command=["a", "b"]),
            partitions=StaticPartitions(["a"]),
        )
    with pytest.raises(ConfigError, match="no partitions="):
        versioned(partition="{{ params.region }}")
