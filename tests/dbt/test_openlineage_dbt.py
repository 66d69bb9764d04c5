"""`insync dbt build` sends insync's OpenLineage events (dbt-ol has no hook for custom facets)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING, Any

from insync.core import AssetKey

if TYPE_CHECKING:
    from tests.dbt.conftest import Shop

_DATA = Path(__file__).parents[1] / "data" / "openlineage"
_spec = importlib.util.spec_from_file_location("ol_validate", _DATA / "ol_validate.py")
assert _spec is not None and _spec.loader is not None
ol_validate = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ol_validate)


ol_file = ol_validate.ol_file


def test_build_emits_valid_events_for_built_reused_and_failed_nodes(built_shop: Shop, ol_file: Path) -> None:
    built_shop.replace("models/marts/customers.sql", "    c.country,", "    upper(c.country) as country,")
    report = built_shop.build()
    assert report.success, report.render()
    events = ol_validate.read_events(ol_file)
    for event in events:
        ol_validate.validate_event(event)
    complete: dict[str, dict[str, Any]] = {
        e["outputs"][0]["name"]: e for e in events if e["eventType"] == "COMPLETE"
    }
    assert len(events) == 2 * len(complete)
    assert set(complete) == {str(o.asset.key) for o in report.outcomes}
    customers = complete["shop/main/customers"]
    facet = customers["outputs"][0]["facets"]["insync"]
    assert (facet["decision"], facet["status"], facet["framework"]) == ("run", "STALE", "dbt")
    assert {c["category"] for c in facet["causes"]} == {"CODE"}
    recorded = built_shop.store.latest_event(AssetKey(["shop", "main", "customers"]))
    assert recorded is not None
    assert customers["outputs"][0]["facets"]["version"]["datasetVersion"] == str(recorded.data_version)
    assert {i["name"] for i in customers["inputs"]} == {str(i.key) for i in recorded.inputs}
    assert (customers["job"]["namespace"], customers["job"]["name"]) == ("dbt", "model.shop.customers")
    orders = complete["shop/main/orders"]["outputs"][0]["facets"]["insync"]
    assert (orders["decision"], orders["status"]) == ("skip", "FRESH")

    # Failing nodes: START/FAIL with dbt's error; the nodes dbt then skipped emit nothing.
    built_shop.replace("models/marts/orders.sql", "o.order_date,", "o.no_such_column,")
    built_shop.replace("seeds/raw_customers.csv", "5,Barbara,Liskov,US",
                       "5,Barbara,Liskov,US\n5,Bis,Liskov,US")  # a failing unique test
    failed = built_shop.build()
    assert failed.outcome("orders").action == "failed"
    assert failed.outcome("stg_customers").action == "test failed"
    assert failed.outcome("revenue_by_country").action == "skipped"
    events = ol_validate.read_events(ol_file)[len(events):]
    for event in events:
        ol_validate.validate_event(event)  # errorMessage too
    fails = {e["job"]["name"]: e for e in events if e["eventType"] == "FAIL"}
    assert set(fails) == {"model.shop.stg_customers", "model.shop.orders"}
    tested = fails["model.shop.stg_customers"]["run"]["facets"]["errorMessage"]["message"]
    assert "unique_stg_customers_customer_id" in tested
    fail = fails["model.shop.orders"]
    (start,) = [e for e in events if e["eventType"] == "START" and e["run"]["runId"] == fail["run"]["runId"]]
    assert fail["outputs"] == start["outputs"]
    assert (fail["outputs"][0]["name"], fail["outputs"][0]["facets"]) == ("shop/main/orders", {})
    insync = fail["run"]["facets"]["insync"]
    assert (insync["decision"], insync["status"], insync["framework"]) == ("run", "STALE", "dbt")
    latest = built_shop.store.latest_event(AssetKey(["shop", "main", "orders"]))
    assert latest is not None and insync["dataVersion"] == str(latest.data_version)  # unchanged
    error = fail["run"]["facets"]["errorMessage"]
    # dbt's whole message: the report's line names the model, the lines below it the cause.
    assert error == {**error, "message": failed.outcome("orders").error, "programmingLanguage": "python"}
    assert error["message"].startswith("Runtime Error in model orders")
    assert "no_such_column" in error["message"]
    skipped = {str(o.asset.key) for o in failed.outcomes if o.action == "skipped"}
    assert skipped and not skipped & {e["outputs"][0]["name"] for e in events}
