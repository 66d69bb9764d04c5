"""A daily DAG whose versioned tasks are partitioned by day: each logical date is its own
partition, with its own record, data version and cached value.

    sales     (@versioned, daily partitions: the run's data interval names the day;
               `ds` and `params` in the signature are parameters)
      -> report  (BashOperator, daily partitions: `{{ ds }}` renders into the command)

`examples/airflow/partitions.py` backfills three days, re-runs them, changes one day's run
configuration and bumps a code version, printing what insync decided each time.
"""

from __future__ import annotations

from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import Asset, dag, task
from insync.adapters.airflow import versioned, versioned_operator
from insync.core import TimeWindowPartitions

DAILY = TimeWindowPartitions("daily", start="2026-11-01")


@dag(
    dag_id="daily_sales",
    schedule="@daily",
    catchup=False,
    params={"currency": "EUR"},
    tags=["insync"],
)
def daily_sales() -> None:
    @task(outlets=[Asset("shop/daily_sales")])
    @versioned(code_version="v1", partitions=DAILY)  # the runner bumps this to "v2"
    def sales(ds: str | None = None, params: dict | None = None) -> str:
        day = int(ds[-2:])
        return f"{ds}: {day * 100} {params['currency']}"

    report = versioned_operator(
        BashOperator(task_id="report", bash_command="echo 'report of {{ ds }}'"),
        partitions=DAILY,
    )
    sales() >> report


daily_sales()
