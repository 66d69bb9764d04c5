"""Issue 11: every input of a dbt model is in the decision, or the model rebuilds saying why.

Sources nobody declared an observation for, `--vars`, `env_var()`, the target and the profile,
and incremental models, on real dbt-core + dbt-duckdb.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from insync.core import AssetKey, StaleStatus

if TYPE_CHECKING:
    from tests.dbt.conftest import Shop

ALL = sorted(["raw_customers", "raw_products", "stg_customers", "stg_orders", "stg_payments",
              "stg_products", "orders", "customers", "revenue_by_country"])


def key(name: str) -> AssetKey:
    return AssetKey(["shop", "main", name])


# ------------------------------------------------------------------------ unobserved sources
def test_a_source_whose_table_is_missing_is_listed_and_its_readers_always_rebuild(
    built_shop: Shop,
) -> None:
    # A source declared for later (no table yet), which a model names without reading it.
    built_shop.replace("models/sources.yml", "      - name: payments\n",
                       "      - name: refunds\n      - name: payments\n")
    built_shop.edit("models/marts/refund_watch.sql",
                    "-- depends_on: {{ source('raw', 'refunds') }}\nselect 1 as watching\n")
    status = built_shop.project().status()
    assert status.unobserved == ("raw.refunds: its table is not in the warehouse",)
    assert "not observed (its readers always rebuild): raw.refunds" in status.render()
    first = built_shop.build()
    assert first.built == ["refund_watch"]
    again = built_shop.build()
    assert again.built == ["refund_watch"]  # an input insync cannot see: never reused
    assert again.outcome("refund_watch").reason == "raw.refunds is not observed"
    assert sorted(again.reused) == ALL

    # Once the table exists, insync checksums it like any undeclared source, and reuses.
    built_shop.sql("create table raw.refunds (id integer)")
    report = built_shop.build()
    assert report.built == ["refund_watch"]
    assert "shop/raw/refunds" in report.outcome("refund_watch").reason
    assert report.unobserved == ()
    assert built_shop.build().built == []
    built_shop.sql("insert into raw.refunds values (1)")
    assert built_shop.build().built == ["refund_watch"]


# ------------------------------------------------------------- what shapes the compiled SQL
SETTINGS = {
    "uses_var": "select {{ var('min_quantity', 0) }} as min_quantity\n",
    "uses_env": "select '{{ env_var('SHOP_REGION', 'eu') }}' as region\n",
    "uses_target": "select '{{ target.name }}' as target_name\n",
    "uses_profile": "select '{{ target.profile_name }}' as profile_name\n",
}
PROFILES = """
shop:
  target: dev
  outputs:
    dev: &warehouse
      type: duckdb
      path: "{{ env_var('SHOP_DUCKDB', 'shop.duckdb') }}"
      threads: 4
    ci: *warehouse
shop_ci:
  target: dev
  outputs:
    dev:
      type: duckdb
      path: "{{ env_var('SHOP_DUCKDB', 'shop.duckdb') }}"
      threads: 4
"""


def test_vars_env_vars_target_and_profile_unsync_exactly_the_models_using_them(
    built_shop: Shop,
) -> None:
    for name, body in SETTINGS.items():
        built_shop.edit(f"models/marts/{name}.sql", body)
    built_shop.edit("profiles.yml", PROFILES)
    assert sorted(built_shop.build().built) == sorted(SETTINGS)
    assert built_shop.build().built == []

    report = built_shop.build("--vars", "{min_quantity: 2}")
    assert report.built == ["uses_var"]
    assert report.outcome("uses_var").reason == "shop/main/uses_var has a new code version"
    assert built_shop.build("--vars", "{min_quantity: 2}").built == []
    assert built_shop.build().built == ["uses_var"]  # back to the default: a change again

    os.environ["SHOP_REGION"] = "us"
    try:
        assert built_shop.build().built == ["uses_env"]
        assert built_shop.sql("select region from main.uses_env") == [("us",)]
    finally:
        del os.environ["SHOP_REGION"]
    assert built_shop.build().built == ["uses_env"]

    assert built_shop.build("--target", "ci").built == ["uses_target"]
    assert built_shop.build("--target", "ci").built == []
    assert built_shop.build("--target", "dev").built == ["uses_target"]

    assert built_shop.build("--profile", "shop_ci").built == ["uses_profile"]
    assert built_shop.sql("select profile_name from main.uses_profile") == [("shop_ci",)]
    statuses = built_shop.store.statuses([key(n) for n in ALL])
    assert all(s.status is StaleStatus.FRESH for s in statuses.values())


# ------------------------------------------------------------------------ incremental models
ORDER_LOG = """
{{ config(materialized='incremental', unique_key='order_id') }}
select order_id, quantity from {{ ref('stg_orders') }}
{% if is_incremental() %}
where order_id > (select coalesce(max(order_id), 0) from {{ this }})
{% endif %}
"""


def test_incremental_models_reuse_run_incrementally_or_full_refresh_by_the_rule(
    built_shop: Shop,
) -> None:
    built_shop.edit("models/marts/order_log.sql", ORDER_LOG)
    assert built_shop.build().built == ["order_log"]
    # Its table now exists, so is_incremental() is true: its code version must not move.
    assert built_shop.build().built == []
    # A row only an incremental run keeps: it tells incremental runs from full refreshes.
    built_shop.sql("insert into main.order_log values (0, 0)")

    built_shop.load_more()  # new upstream data: an incremental run, as plain dbt would do
    report = built_shop.build()
    assert "order_log" in report.built
    assert report.outcome("order_log").reason == "shop/main/stg_orders is rebuilt in this run"
    assert built_shop.sql("select count(*) from main.order_log") == [(7,)]  # 6 orders + marker

    # New code inside the is_incremental() branch: rows the old code wrote would stay, so the
    # model is rebuilt from scratch (the marker row goes).
    built_shop.replace("models/marts/order_log.sql", "where order_id >", "where order_id >=")
    report = built_shop.build()
    assert report.built == ["order_log"]
    reason = report.outcome("order_log").reason
    assert reason.startswith("shop/main/order_log has a new code version (--full-refresh")
    assert built_shop.sql("select count(*) from main.order_log") == [(6,)]
    assert built_shop.build().built == []

    # The user's --full-refresh forces it; --force runs it as plain dbt would (incrementally).
    built_shop.sql("insert into main.order_log values (0, 0)")
    assert built_shop.build("--select", "order_log", force=True).built == ["order_log"]
    assert built_shop.sql("select count(*) from main.order_log") == [(7,)]
    forced = built_shop.build("--select", "order_log", "--full-refresh")
    assert "full-refresh rebuilds every selected node" in forced.outcome("order_log").reason
    assert built_shop.sql("select count(*) from main.order_log") == [(6,)]


def test_an_incremental_table_insync_never_recorded_is_rebuilt_from_scratch(
    built_shop: Shop,
) -> None:
    from dbt.cli.main import dbtRunner
    from insync.adapters.dbt._runner import release_warehouse

    built_shop.edit("models/marts/order_log.sql", ORDER_LOG)
    args = ["--log-level", "none", "run", "--select", "order_log",
            "--project-dir", str(built_shop.dir), "--profiles-dir", str(built_shop.dir)]
    assert dbtRunner().invoke(args).success  # plain dbt built it: no record in the store
    release_warehouse()
    report = built_shop.build()
    assert report.built == ["order_log"]
    assert report.outcome("order_log").reason.startswith("never materialized (--full-refresh")
    assert report.invocations == 1
