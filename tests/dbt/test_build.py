"""Memoized dbt builds on the example shop project, with real dbt-core + dbt-duckdb."""

from __future__ import annotations

from typing import TYPE_CHECKING

from insync.core import AssetKey, StaleStatus

if TYPE_CHECKING:
    from tests.dbt.conftest import Shop

STAGING = ["stg_customers", "stg_orders", "stg_payments", "stg_products"]
MARTS = ["orders", "customers", "revenue_by_country"]
SEEDS = ["raw_customers", "raw_products"]
ALL = sorted([*SEEDS, *STAGING, *MARTS])


def key(name: str) -> AssetKey:
    return AssetKey(["shop", "main", name])


def test_full_build_records_every_node_then_noop_reuses_everything(shop: Shop) -> None:
    first = shop.build()
    assert sorted(first.built) == ALL
    assert first.invocations == 1
    assert all(o.reason == "never materialized" for o in first.outcomes)
    statuses = shop.store.statuses([key(n) for n in ALL])
    assert all(s.status is StaleStatus.FRESH for s in statuses.values())
    event = shop.store.latest_event(key("orders"))
    assert event is not None and event.framework == "dbt"
    assert {str(i.key) for i in event.inputs} == {
        "shop/main/stg_orders", "shop/main/stg_payments", "shop/main/stg_products"}

    before = (shop.store.last_event_id(), shop.store.definitions_revision())
    second = shop.build()
    assert second.built == []
    assert sorted(second.reused) == ALL
    assert second.invocations == 0  # dbt is not even called
    # Nothing written either: no observation of the unchanged sources, no registration.
    assert (shop.store.last_event_id(), shop.store.definitions_revision()) == before
    assert shop.store.latest_event(key("orders")).id == event.id


def test_editing_a_staging_model_rebuilds_it_and_its_descendants(built_shop: Shop) -> None:
    built_shop.replace("models/staging/stg_orders.sql", "    quantity,",
                       "    quantity,\n    quantity * 2 as double_quantity,")
    report = built_shop.build()
    assert report.built == ["stg_orders", "orders", "customers", "revenue_by_country"]
    assert "has a new code version" in report.outcome("stg_orders").reason
    assert "stg_orders is rebuilt in this run" in report.outcome("orders").reason
    assert built_shop.sql("select count(*) from main.stg_orders where double_quantity > 0") == [(4,)]


def test_whitespace_and_comment_edits_rebuild_nothing(built_shop: Shop) -> None:
    built_shop.edit("models/staging/stg_orders.sql", """
-- Orders, cleaned.   (a comment insync ignores)
select order_id,   customer_id, /* block comment */ sku,
       quantity,
       CAST(ordered_at AS date) as order_date
from {{ source('raw', 'orders') }}

""")
    report = built_shop.build()
    assert report.built == []
    assert report.invocations == 0


def test_string_literal_edits_are_code_changes(built_shop: Shop) -> None:
    # (Whitespace-only edits inside a literal are invisible to dbt 1.12's partial parser itself,
    # whose file checksums collapse all whitespace; so this edit changes a character.)
    built_shop.replace("models/staging/stg_customers.sql", "' ' ||", "', ' ||")
    assert built_shop.build().built == ["stg_customers", "customers", "revenue_by_country"]


def test_cosmetic_refactor_with_content_version_rebuilds_only_that_model(built_shop: Shop) -> None:
    # stg_customers has meta insync data_version: content; same rows, new SQL.
    built_shop.edit("models/staging/stg_customers.sql", """
with source as (select * from {{ ref('raw_customers') }})
select id as customer_id, concat(first_name, ' ', last_name) as customer_name, country
from source
""")
    report = built_shop.build()
    assert report.built == ["stg_customers"]
    assert report.invocations == 1
    statuses = built_shop.store.statuses([key(n) for n in ALL])
    assert all(s.status is StaleStatus.FRESH for s in statuses.values())
    event = built_shop.store.latest_event(key("stg_customers"))
    assert event.user_provided and event.metadata["data_version_kind"] == "content"


def test_real_change_under_content_version_reaches_descendants(built_shop: Shop) -> None:
    built_shop.replace("models/staging/stg_customers.sql", "    country\n", "    lower(country) as country\n")
    report = built_shop.build()
    # The content changed, so its children are built by a second dbt call in the same command.
    assert report.built == ["stg_customers", "customers", "revenue_by_country"]
    assert report.invocations == 2
    assert "stg_customers has a new data version" in report.outcome("customers").reason
    assert built_shop.sql("select country from main.revenue_by_country order by 1")[0] == ("gb",)


def test_new_source_data_rebuilds_the_chain(built_shop: Shop) -> None:
    built_shop.load_more()
    report = built_shop.build()
    assert report.built == ["stg_orders", "stg_payments", "orders", "customers", "revenue_by_country"]
    assert "raw/orders has a new data version" in report.outcome("stg_orders").reason
    assert sorted(report.reused) == ["raw_customers", "raw_products", "stg_customers", "stg_products"]
    assert built_shop.sql("select count(*) from main.orders") == [(6,)]
    # Observed once per change: a second build observes the same versions and reuses all.
    assert built_shop.build().built == []
    assert len(built_shop.store.history("raw/orders")) == 2


def test_user_select_and_exclude_are_respected(built_shop: Shop) -> None:
    built_shop.replace("models/staging/stg_orders.sql", "    quantity,", "    quantity + 0 as quantity,")
    built_shop.replace("models/staging/stg_products.sql", "as price", "as price, 1 as one")
    report = built_shop.build("--select", "stg_orders+", "--exclude", "revenue_by_country")
    assert report.built == ["stg_orders", "orders", "customers"]
    assert {o.asset.name for o in report.outcomes} == {"stg_orders", "orders", "customers"}
    status = built_shop.store.status(key("stg_products"))
    assert status.status is StaleStatus.STALE  # not selected: left unsynced
    rest = built_shop.build("-s", "stg_products", "revenue_by_country")
    assert rest.built == ["stg_products", "revenue_by_country"]


def test_failing_model_records_nothing_and_children_stay_unsynced(built_shop: Shop) -> None:
    before = {n: built_shop.store.latest_event(key(n)).id for n in MARTS}
    built_shop.replace("models/staging/stg_orders.sql", "    quantity,", "    quantity + 1 as quantity,")
    built_shop.replace("models/marts/orders.sql", "o.order_date,", "o.no_such_column,")
    report = built_shop.build()
    assert not report.success
    assert report.outcome("stg_orders").action == "built"
    assert report.outcome("orders").action == "failed"
    assert report.outcome("customers").action == "skipped"
    assert report.outcome("revenue_by_country").action == "skipped"
    assert {n: built_shop.store.latest_event(key(n)).id for n in MARTS} == before
    assert built_shop.store.status(key("orders")).status is StaleStatus.STALE

    built_shop.replace("models/marts/orders.sql", "o.no_such_column,", "o.order_date,")
    fixed = built_shop.build()
    assert fixed.built == ["orders", "customers", "revenue_by_country"]


def test_macro_edit_that_changes_sql_rebuilds_its_users(built_shop: Shop) -> None:
    built_shop.replace("macros/cents_to_dollars.sql", "/ 100.0, 2)", "/ 100.0, 3)")
    report = built_shop.build()
    assert report.built == ["stg_payments", "stg_products", "orders", "customers",
                            "revenue_by_country"]
    assert "has a new code version" in report.outcome("stg_products").reason


def test_macro_edit_that_leaves_sql_alone_rebuilds_nothing(built_shop: Shop) -> None:
    built_shop.replace("macros/cents_to_dollars.sql", "{% macro cents_to_dollars(column) -%}",
                       "{# dollars with cents #}\n{% macro cents_to_dollars(column) -%}\n   ")
    assert built_shop.build().built == []


def test_seed_file_change_rebuilds_the_seed_and_users(built_shop: Shop) -> None:
    built_shop.replace("seeds/raw_products.csv", "B2,Pen,120", "B2,Pen,130")
    report = built_shop.build()
    assert report.built == ["raw_products", "stg_products", "orders", "customers",
                            "revenue_by_country"]


def test_failing_test_keeps_the_model_unrecorded(built_shop: Shop) -> None:
    before = built_shop.store.latest_event(key("stg_customers")).id
    built_shop.replace("seeds/raw_customers.csv", "5,Barbara,Liskov,US",
                       "5,Barbara,Liskov,US\n5,Bis,Liskov,US")
    report = built_shop.build()
    assert report.outcome("raw_customers").action == "built"
    assert report.outcome("stg_customers").action == "test failed"
    assert "unique_stg_customers_customer_id" in report.outcome("stg_customers").reason
    assert built_shop.store.latest_event(key("stg_customers")).id == before
    # The next build retries the model and its tests rather than trusting it.
    again = built_shop.build()
    assert again.outcome("stg_customers").action == "test failed"


def test_force_and_full_refresh_rebuild_everything_selected(built_shop: Shop) -> None:
    assert sorted(built_shop.build(force=True).built) == ALL
    report = built_shop.build("--select", "orders", "--full-refresh")
    assert report.built == ["orders"]
    assert "full-refresh" in report.outcome("orders").reason


def test_dropped_relation_is_rebuilt_even_when_the_store_says_synced(built_shop: Shop) -> None:
    built_shop.sql("drop table main.customers")
    report = built_shop.build()
    assert report.built == ["customers", "revenue_by_country"]
    assert "missing from the warehouse" in report.outcome("customers").reason


def test_run_builds_models_only(built_shop: Shop) -> None:
    built_shop.replace("seeds/raw_products.csv", "B2,Pen,120", "B2,Pen,125")
    built_shop.replace("models/staging/stg_orders.sql", "    quantity,", "    quantity + 0 as quantity,")
    report = built_shop.project().run()
    assert report.built == ["stg_orders", "orders", "customers", "revenue_by_country"]
    assert "raw_products" not in {o.asset.name for o in report.outcomes}


def test_a_failure_stops_the_second_call_and_says_what_waits(built_shop: Shop) -> None:
    built_shop.replace("models/staging/stg_customers.sql", "    country\n", "    lower(country) as country\n")
    built_shop.edit("models/marts/broken.sql", "select no_such_column from {{ ref('raw_products') }}\n")
    report = built_shop.build()
    assert report.invocations == 1
    assert report.outcome("stg_customers").action == "built"
    assert report.outcome("broken").action == "failed"
    waiting = report.outcome("customers")
    assert waiting.action == "skipped"
    assert waiting.reason.startswith("not built after a failure: ")
    assert "stg_customers has a new data version" in waiting.reason
    assert report.outcome("revenue_by_country").action == "skipped"
    assert built_shop.store.status(key("customers")).status is StaleStatus.STALE
