"""Deliberate choices: sources shared with other orchestrators, ephemeral models, snapshots,
explicit code versions, and the Python API an Airflow task or Prefect flow calls."""

from __future__ import annotations

from typing import TYPE_CHECKING

from insync.core import AssetKey, AssetSpec, StaleStatus

if TYPE_CHECKING:
    from tests.dbt.conftest import Shop


def key(name: str) -> AssetKey:
    return AssetKey(["shop", "main", name])


def test_a_source_another_orchestrator_writes_is_one_asset_with_it(shop: Shop) -> None:
    # An Airflow task owns raw/orders (the key the dbt source maps to with meta insync.key).
    shop.store.register([AssetSpec("raw/orders", code_version="loader-v1", framework="airflow")])
    shop.store.record_materialization("raw/orders", run_id="airflow-1", framework="airflow")
    assert shop.build().success
    spec = shop.store.definitions()[AssetKey("raw/orders")]
    assert (spec.kind, spec.framework) == ("materializable", "airflow")  # not clobbered
    assert [e.framework for e in shop.store.history("raw/orders")] == ["airflow"]  # not observed

    # The loader runs again (a new materialization): dbt's chain downstream of it is unsynced.
    shop.store.register([AssetSpec("raw/orders", code_version="loader-v2", framework="airflow")])
    shop.store.record_materialization("raw/orders", run_id="airflow-2", framework="airflow")
    assert shop.store.status(key("stg_orders")).status is StaleStatus.STALE
    report = shop.build()
    assert report.built == ["stg_orders", "orders", "customers", "revenue_by_country"]


def test_ephemeral_models_are_inlined_into_their_users(built_shop: Shop) -> None:
    built_shop.edit("models/staging/big_orders.sql",
                    "{{ config(materialized='ephemeral') }}\n"
                    "select * from {{ ref('stg_orders') }} where quantity > 1\n")
    built_shop.edit("models/marts/big_order_count.sql",
                    "select count(*) as n from {{ ref('big_orders') }}\n")
    report = built_shop.build()
    assert report.built == ["big_order_count"]  # the ephemeral model is no asset
    spec = built_shop.store.definitions()[key("big_order_count")]
    assert spec.deps == (key("stg_orders"),)  # its parents are reached through the ephemeral

    built_shop.replace("models/staging/big_orders.sql", "quantity > 1", "quantity > 2")
    report = built_shop.build()
    assert report.built == ["big_order_count"]
    assert "has a new code version" in report.outcome("big_order_count").reason
    assert built_shop.sql("select n from main.big_order_count") == [(1,)]


def test_snapshots_always_run_and_keep_children_in_sync_when_nothing_changed(
    built_shop: Shop,
) -> None:
    built_shop.edit("snapshots/customers_snapshot.sql", """
{% snapshot customers_snapshot %}
{{ config(target_schema='snapshots', unique_key='customer_id', strategy='check',
          check_cols=['country']) }}
select * from {{ ref('stg_customers') }}
{% endsnapshot %}
""")
    built_shop.edit("models/marts/countries_seen.sql",
                    "select count(distinct country) as n from {{ ref('customers_snapshot') }}\n")
    first = built_shop.build()
    assert first.built == ["customers_snapshot", "countries_seen"]
    again = built_shop.build()
    assert again.built == ["customers_snapshot"]  # it runs, captures nothing...
    assert again.outcome("countries_seen").action == "reused"  # ...so its child stays reused
    assert "snapshots always run" in again.outcome("customers_snapshot").reason
    event = built_shop.store.latest_event(AssetKey(["shop", "snapshots", "customers_snapshot"]))
    assert event is not None and event.user_provided  # content data version


def test_explicit_code_version_wins_over_the_sql_hash(built_shop: Shop) -> None:
    built_shop.replace("models/marts/marts.yml", "  - name: customers\n",
                       "  - name: customers\n    config: {meta: {insync: {code_version: v1}}}\n")
    report = built_shop.build()
    assert report.built == ["customers", "revenue_by_country"]  # "v1" is a new code version
    assert built_shop.store.definitions()[key("customers")].code_version == "v1"
    built_shop.replace("models/marts/customers.sql", "group by 1, 2, 3", "group by all")
    assert built_shop.build().built == []  # SQL changed, declared version did not


def test_python_api_for_orchestrator_tasks(built_shop: Shop) -> None:
    """What an Airflow task or Prefect flow does: build, fail the task on failure, keep ids."""
    built_shop.load_more()
    with built_shop.project() as project:
        report = project.build("--select", "+orders", run_id="airflow__manual__2026-11-29")
    assert report.success
    assert report.built == ["stg_orders", "stg_payments", "orders"]
    event = built_shop.store.latest_event(key("orders"))
    assert event.run_id == "airflow__manual__2026-11-29"
    assert event.metadata["dbt_unique_id"] == "model.shop.orders"
    nodes = {n["name"]: n for n in report.to_json()["nodes"]}
    assert nodes["orders"]["action"] == "built"
    assert nodes["raw_products"]["action"] == "reused"
    # The warehouse is released when the call returns: another process could write it now.
    import duckdb

    with duckdb.connect(str(built_shop.warehouse)) as con:
        assert con.execute("select count(*) from main.orders").fetchone() == (6,)


def test_selection_by_fqn_does_not_catch_a_folder_named_like_a_model(built_shop: Shop) -> None:
    import json

    # models/marts/orders/ is a folder: "fqn:shop.marts.orders" would also select its models.
    built_shop.dir.joinpath("models/marts/orders").mkdir()
    built_shop.edit("models/marts/orders/orders_extra.sql", "select 1 as one\n")
    assert built_shop.build().built == ["orders_extra"]
    built_shop.replace("models/marts/orders.sql", "as order_total", "as order_total_amount")
    built_shop.replace("models/marts/customers.sql", "o.order_total", "o.order_total_amount")
    report = built_shop.build()
    assert report.built == ["orders", "customers", "revenue_by_country"]
    assert report.outcome("orders_extra").action == "reused"
    results = json.loads((built_shop.dir / "target" / "run_results.json").read_text())
    ran = {r["unique_id"] for r in results["results"]}
    assert "model.shop.orders_extra" not in ran
    assert "model.shop.orders" in ran


def test_loaded_at_field_observes_and_undeclared_sources_are_checksummed(shop: Shop) -> None:
    shop.edit("models/sources.yml", """
version: 2
sources:
  - name: raw
    schema: raw
    tables:
      - name: orders
        config: {loaded_at_field: ordered_at}
        meta: {insync: {key: raw/orders}}
      - name: payments
        meta: {insync: {key: raw/payments}}
""")
    assert shop.build().success
    kinds = {str(k): shop.store.definitions()[k].kind
             for k in (AssetKey("raw/orders"), AssetKey("raw/payments"))}
    assert kinds == {"raw/orders": "observable", "raw/payments": "observable"}
    shop.load_more()  # new orders (a later ordered_at) and new payments
    report = shop.build()
    assert report.outcome("stg_orders").action == "built"
    assert "raw/orders has a new data version" in report.outcome("stg_orders").reason
    # Nobody declared how to observe raw/payments: insync checksums its rows by default, so
    # the new payments are seen (before issue 11 it was `external`, and reused forever).
    assert report.outcome("stg_payments").action == "built"
    assert "raw/payments has a new data version" in report.outcome("stg_payments").reason
    assert shop.store.latest_event("raw/payments").metadata["observed_by"] == "content"
