"""Prefect's part of the cross-orchestrator example: reports from the dbt marts.

    marts/daily_revenue         (dbt)  ->  reports/daily_revenue         (daily_revenue.json)
    marts/customers_by_country  (dbt)  ->  reports/customers_by_country  (customers_by_country.json)

Each report task declares the dbt mart it reads as an insync dependency; a report whose mart has
not been rebuilt since the report was written ends in Prefect's ``Cached`` state without
querying DuckDB. The flow reads the paths from $CROSS_ORCHESTRATOR_DUCKDB and
$CROSS_ORCHESTRATOR_REPORTS and hands them to the tasks as arguments: a task that read the
environment itself would read an input insync cannot see, and would run every time.
"""

from __future__ import annotations

import json
import os
from decimal import Decimal
from pathlib import Path
from typing import Any

from insync.adapters.prefect import versioned
from prefect import flow, task


def query(warehouse: str, sql: str) -> list[dict[str, Any]]:
    """Rows of a query on the warehouse, as JSON-friendly dicts (read-only, closed at once)."""
    import duckdb

    with duckdb.connect(warehouse, read_only=True) as con:
        cursor = con.execute(sql)
        names = [column[0] for column in cursor.description]
        rows = cursor.fetchall()
    return [
        {
            name: float(value)
            if isinstance(value, Decimal)
            else str(value)
            if name.endswith("date")
            else value
            for name, value in zip(names, row, strict=True)
        }
        for row in rows
    ]


def write_report(reports: str, name: str, rows: list[dict[str, Any]]) -> str:
    path = Path(reports) / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rows, indent=2) + "\n")
    return str(path)


@versioned("reports/daily_revenue", code_version="v1", deps=["marts/daily_revenue"])
@task
def daily_revenue_report(warehouse: str, reports: str) -> list[dict[str, Any]]:
    rows = query(warehouse, "select order_date, orders, revenue from main.daily_revenue order by order_date")
    write_report(reports, "daily_revenue", rows)
    return rows


@versioned("reports/customers_by_country", code_version="v1", deps=["marts/customers_by_country"])
@task
def customers_report(warehouse: str, reports: str) -> list[dict[str, Any]]:
    rows = query(warehouse, "select country, customers from main.customers_by_country order by country")
    write_report(reports, "customers_by_country", rows)
    return rows


@flow(name="build-reports")
def build_reports() -> dict[str, str]:
    """Run both report tasks (one after the other: one DuckDB reader at a time); return
    {asset key: final state name}, ``Completed`` when it ran, ``Cached`` when insync skipped it."""
    warehouse, reports = os.environ["CROSS_ORCHESTRATOR_DUCKDB"], os.environ["CROSS_ORCHESTRATOR_REPORTS"]
    states = {
        "reports/daily_revenue": daily_revenue_report(warehouse, reports, return_state=True),
        "reports/customers_by_country": customers_report(warehouse, reports, return_state=True),
    }
    for state in states.values():
        state.result()  # raise the task's error, if any
    return {key: state.name for key, state in states.items()}
