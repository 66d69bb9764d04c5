"""The small cross-framework scenario the UI tests (and the README screenshot) show."""

from __future__ import annotations

from dataclasses import dataclass

from insync.core import AssetSpec, EventStore, Materialization

# The seeded scenario: an Airflow-observed file feeding dbt models and a Prefect report.
# After seeding: staging/customers has a new code version, raw/orders a new observation.
EXPECTED_LABELS = {
    "raw/orders": "Synced",
    "raw/customers": "Synced",
    "staging/orders": "Unsynced",
    "staging/customers": "Unsynced",
    "marts/customer_orders": "Synced",
    "reports/weekly": "Synced",
    "reports/adhoc": "Never materialized",
}


def seed(store: EventStore) -> None:
    """Register the scenario's specs and record its events through the public core API only."""
    specs = [
        AssetSpec("raw/orders", kind="observable", framework="airflow"),
        AssetSpec("raw/customers", kind="external"),
        AssetSpec("staging/orders", code_version="v1", deps=["raw/orders"], framework="dbt"),
        AssetSpec("staging/customers", code_version="v1", deps=["raw/customers"], framework="dbt"),
        AssetSpec(
            "marts/customer_orders",
            code_version="v1",
            deps=["staging/orders", "staging/customers"],
            framework="dbt",
        ),
        AssetSpec("reports/weekly", code_version="v1", deps=["marts/customer_orders"], framework="prefect"),
        AssetSpec("reports/adhoc", code_version="v1", deps=["marts/customer_orders"], framework="prefect"),
    ]
    store.register(specs)
    store.record_observation("raw/orders", "rows-100", run_id="airflow-run-1", framework="airflow")
    store.record_materializations(
        [
            Materialization(key=spec.key, run_id=f"{spec.framework}-run-1", framework=spec.framework)
            for spec in specs[2:6]
        ]
    )
    # Two changes reach staging: new dbt code for customers, a new raw file for orders.
    store.register(
        [AssetSpec("staging/customers", code_version="v2", deps=["raw/customers"], framework="dbt")]
    )
    store.record_observation("raw/orders", "rows-120", run_id="airflow-run-2", framework="airflow")


@dataclass
class Served:
    url: str
    store: EventStore
