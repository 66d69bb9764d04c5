"""Airflow's part of the cross-orchestrator example: CSV files -> DuckDB tables.

    raw/orders_csv     (observed file)  ->  raw/orders     (table raw.orders)
    raw/customers_csv  (observed file)  ->  raw/customers  (table raw.customers)

Two DAGs, both defined at module level (``dag.test()`` re-parses this file):

- ``ingest_raw``: observe each file, then load it; a load whose file did not change since its
  last materialization is skipped by insync (the task succeeds without running its code);
- ``watch_raw_files``: the observations only, what a deployment would run every few minutes
  (or replace by an ``AssetWatcher``): it makes a file edit visible in the store before anything
  is re-ingested.

Paths come from the environment (run.py sets them): $CROSS_ORCHESTRATOR_DATA (folder with
orders.csv and customers.csv) and $CROSS_ORCHESTRATOR_DUCKDB (the warehouse file dbt builds on).
The insync store: $INSYNC_DATABASE_URL, else $INSYNC_HOME.
"""

from __future__ import annotations

import os
from pathlib import Path

from airflow.sdk import Asset, dag, task
from insync.adapters.airflow import InsyncObservationSensor, versioned
from insync.adapters.airflow.observe import observe_file

DATA = Path(os.environ.get("CROSS_ORCHESTRATOR_DATA", Path(__file__).parents[1] / "data"))
WAREHOUSE = os.environ.get("CROSS_ORCHESTRATOR_DUCKDB", "warehouse.duckdb")
ORDERS_CSV = str(DATA / "orders.csv")
CUSTOMERS_CSV = str(DATA / "customers.csv")


def load_csv(path: str, table: str) -> int:
    """Replace the DuckDB table ``raw.<table>`` with the CSV file's rows; return the row count."""
    import duckdb

    # One short-lived connection: DuckDB allows one writing process per file, and dbt (next)
    # must be able to open it.
    with duckdb.connect(WAREHOUSE) as con:
        con.execute("create schema if not exists raw")
        con.execute(
            f"create or replace table raw.{table} as select * from read_csv(?, header = true)",
            [path],
        )
        row = con.execute(f"select count(*) from raw.{table}").fetchone()
    return int(row[0]) if row else 0


def observe(source: str, path: str) -> InsyncObservationSensor:
    # wait_for_change=False: record the file's fingerprint and succeed; the versioned load
    # downstream decides by itself whether it is in sync.
    return InsyncObservationSensor(
        task_id=f"observe_{source}_csv",
        outlets=[Asset(f"raw/{source}_csv")],
        observe=observe_file,
        observe_kwargs={"path": path},
        wait_for_change=False,
    )


@dag(dag_id="ingest_raw", schedule=None, catchup=False, tags=["insync", "cross-orchestrator"])
def ingest_raw() -> None:
    @task(outlets=[Asset("raw/orders")])
    @versioned(code_version="v1")
    def load_orders() -> int:
        return load_csv(ORDERS_CSV, "orders")

    @task(outlets=[Asset("raw/customers")])
    @versioned(code_version="v1")
    def load_customers() -> int:
        return load_csv(CUSTOMERS_CSV, "customers")

    # Dependencies come from the DAG: each load depends on the file its upstream sensor observes.
    observe("orders", ORDERS_CSV) >> load_orders()
    observe("customers", CUSTOMERS_CSV) >> load_customers()


@dag(dag_id="watch_raw_files", schedule=None, catchup=False, tags=["insync", "cross-orchestrator"])
def watch_raw_files() -> None:
    observe("orders", ORDERS_CSV)
    observe("customers", CUSTOMERS_CSV)


ingest_raw()
watch_raw_files()
