"""The small cross-framework scenario the UI tests (and the README screenshot) show."""

from __future__ import annotations

from dataclasses import dataclass

from insync.core import (
    AssetKey,
    AssetSpec,
    EventStore,
    Materialization,
    StaticPartitions,
    TimeWindowPartitions,
    fingerprint_parameters,
)

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


NOVEMBER = TimeWindowPartitions("daily", start="2026-11-01", end="2026-12-01")  # 30 ended windows
REGIONS = StaticPartitions(["eu", "us/east"])  # a key with "/": one URL path segment, encoded


def seed_partitions(store: EventStore) -> None:
    """Partitions in the catalog: daily orders feed daily revenue (run with a `day` parameter);
    two order days were re-ingested and one revenue day never ran; regions got new code. An
    unpartitioned asset has a key part named "partitions", which the partition URL must not eat."""
    store.register(
        [
            AssetSpec("raw/orders", code_version="v1", partitions=NOVEMBER, framework="airflow"),
            AssetSpec(
                "daily/revenue",
                code_version="v1",
                deps=["raw/orders"],
                partitions=NOVEMBER,
                framework="prefect",
            ),
            AssetSpec("sales/by_region", code_version="v1", partitions=REGIONS, framework="dbt"),
            AssetSpec("legacy/partitions/old", code_version="v1", framework="dbt"),
        ]
    )
    days = NOVEMBER.keys()
    store.record_materializations(
        [Materialization(key=AssetKey("raw/orders"), partition=day, run_id="ingest-1") for day in days]
        + [
            Materialization(
                key=AssetKey("daily/revenue"),
                partition=day,
                run_id="revenue-1",
                parameters=fingerprint_parameters({"day": day}),
            )
            for day in days[:-1]
        ]
        + [
            Materialization(key=AssetKey("sales/by_region"), partition=r, run_id="sales-1")
            for r in ("eu", "us/east")
        ]
    )
    for day in ("2026-11-28", "2026-11-29"):
        store.record_materialization(
            "raw/orders", partition=day, run_id="ingest-2", data_version=f"rows-{day}"
        )
    store.register([AssetSpec("sales/by_region", code_version="v2", partitions=REGIONS, framework="dbt")])


LAYERS = ("raw", "staging", "marts", "reports")
DOMAINS = tuple(f"d{i}" for i in range(10))


def seed_prefixed(store: EventStore, n: int) -> None:
    """`n` assets keyed `layer/domain/aI` (4 layers x 10 domains): each reads up to two assets of
    the layer before, in any domain. One asset in 37 gets a new code version (Unsynced; its
    descendants pending), the last 5% are never materialized."""
    per_layer = n // len(LAYERS)
    keys = [f"{LAYERS[min(i // per_layer, 3)]}/{DOMAINS[i % len(DOMAINS)]}/a{i}" for i in range(n)]

    def spec(i: int, code_version: str) -> AssetSpec:
        layer = min(i // per_layer, 3)
        lo = (layer - 1) * per_layer
        deps = sorted({keys[lo + (i * 7 + j * 13) % per_layer] for j in range(2)}) if layer else []
        return AssetSpec(keys[i], code_version=code_version, deps=deps, framework=("airflow", "dbt")[i % 2])

    store.register([spec(i, "1") for i in range(n)])
    done = n - n // 20
    store.record_materializations([Materialization(key=AssetKey(k), run_id="seed") for k in keys[:done]])
    store.register([spec(i, "2") for i in range(3, done, 37)])
