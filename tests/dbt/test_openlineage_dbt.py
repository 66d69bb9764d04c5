"""`insync dbt build` sends dbt-ol's own events with insync's facets added; insync's own pair for
what dbt-ol has no event for (reused nodes, seeds), and for everything if dbt-ol is unavailable."""

from __future__ import annotations

import importlib.util
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from insync.core import AssetKey

if TYPE_CHECKING:
    from tests.dbt.conftest import Shop

_DATA = Path(__file__).parents[1] / "data" / "openlineage"
_spec = importlib.util.spec_from_file_location("ol_validate", _DATA / "ol_validate.py")
assert _spec is not None and _spec.loader is not None
ol_validate = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ol_validate)


ol_file = ol_validate.ol_file


def _valid(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for event in events:
        ol_validate.validate_event(event)  # dbt-ol's own facets are not vendored: skipped
    return events


def _own(events: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """insync's own COMPLETE events, by asset key."""
    return {e["outputs"][0]["name"]: e for e in events if e["eventType"] == "COMPLETE"
            and e["outputs"] and e["outputs"][0]["namespace"] == "insync"}


def _by_job(events: list[dict[str, Any]], state: str) -> dict[str, dict[str, Any]]:
    return {e["job"]["name"]: e for e in events if e["eventType"] == state}


def test_build_sends_dbt_ol_events_with_insync_facets(built_shop: Shop, ol_file: Path) -> None:
    built_shop.replace("models/marts/customers.sql", "    c.country,", "    upper(c.country) as country,")
    report = built_shop.build()
    assert report.success, report.render()
    events = _valid(ol_validate.read_events(ol_file))
    assert {e["job"]["namespace"] for e in events} == {"dbt"}

    # The built nodes: dbt-ol's events (its job names, warehouse datasets, SQL), insync's facets.
    complete = _by_job(events, "COMPLETE")
    customers = complete["shop.main.shop.customers.build.run"]
    assert customers["job"]["facets"]["dbt_node"]["unique_id"] == "model.shop.customers"
    assert "upper(c.country)" in customers["job"]["facets"]["sql"]["query"]
    (output,) = customers["outputs"]
    assert output["namespace"] == f"duckdb://{built_shop.warehouse}"
    assert output["name"] == "shop.main.customers"
    assert {"schema", "dataSource", "version", "insync"} <= set(output["facets"])
    recorded = built_shop.store.latest_event(AssetKey(["shop", "main", "customers"]))
    assert recorded is not None
    assert output["facets"]["version"]["datasetVersion"] == str(recorded.data_version)
    facet = output["facets"]["insync"]
    assert (facet["asset"], facet["decision"], facet["status"], facet["framework"]) == (
        "shop/main/customers", "run", "STALE", "dbt")
    assert facet["dataVersion"] == str(recorded.data_version)
    assert {c["category"] for c in facet["causes"]} == {"CODE"}
    assert customers["run"]["facets"]["insync"]["asset"] == "shop/main/customers"
    assert {i["name"] for i in customers["inputs"]} == {"shop.main.stg_customers", "shop.main.orders"}
    start = next(e for e in events if e["eventType"] == "START"
                 and e["run"]["runId"] == customers["run"]["runId"])
    assert start["outputs"][0]["facets"]["insync"] == facet
    revenue = complete["shop.main.shop.revenue_by_country.build.run"]["outputs"][0]["facets"]["insync"]
    assert (revenue["decision"], revenue["reason"]) == ("run", "shop/main/customers is rebuilt in this run")

    # dbt-ol's wrapper run around the dbt call is every node event's parent.
    wrapper = complete["dbt-run-shop"]
    parents = {e["run"]["facets"]["parent"]["run"]["runId"] for e in events
               if e["job"]["name"].startswith("shop.main.")}
    assert parents == {wrapper["run"]["runId"]}
    tests = complete["shop.main.shop.customers.build.test"]  # dbt-ol's test event, as it was
    assert "insync" not in tests["run"]["facets"]

    # The reused nodes (dbt did not run them: dbt-ol would say nothing): insync's own pair.
    own = _own(events)
    assert set(own) == {str(o.asset.key) for o in report.outcomes if o.action == "reused"}
    assert len(own) == 7
    orders = own["shop/main/orders"]
    assert orders["job"]["name"] == "model.shop.orders"
    insync = orders["outputs"][0]["facets"]["insync"]
    assert (insync["decision"], insync["status"]) == ("skip", "FRESH")
    # Every node of the report: exactly one COMPLETE carrying its insync facet.
    assets = [o["facets"]["insync"]["asset"] for e in events if e["eventType"] == "COMPLETE"
              for o in e["outputs"] if "insync" in o.get("facets", {})]
    assert sorted(assets) == sorted(str(o.asset.key) for o in report.outcomes)


def test_failed_nodes_fail_events_carry_the_insync_run_facet(built_shop: Shop, ol_file: Path) -> None:
    built_shop.replace("models/marts/orders.sql", "o.order_date,", "o.no_such_column,")
    built_shop.replace("seeds/raw_customers.csv", "5,Barbara,Liskov,US",
                       "5,Barbara,Liskov,US\n5,Bis,Liskov,US")  # a failing unique test
    failed = built_shop.build()
    assert failed.outcome("orders").action == "failed"
    assert failed.outcome("stg_customers").action == "test failed"
    assert failed.outcome("revenue_by_country").action == "skipped"
    events = _valid(ol_validate.read_events(ol_file))
    fails = _by_job(events, "FAIL")
    # dbt-ol counts tests dbt skipped (their model failed or was skipped) as failed assertions.
    assert set(fails) == {"dbt-run-shop", "shop.main.shop.orders.build.run",
                          "shop.main.shop.stg_customers.build.test",
                          "shop.main.shop.orders.build.test", "shop.main.shop.customers.build.test"}
    assert "insync" not in fails["shop.main.shop.customers.build.test"]["run"]["facets"]  # skipped

    # A model dbt failed: dbt-ol's FAIL (no outputs), insync's run facet and dbt's error.
    fail = fails["shop.main.shop.orders.build.run"]
    assert fail["outputs"] == []
    insync = fail["run"]["facets"]["insync"]
    assert (insync["decision"], insync["status"], insync["framework"]) == ("run", "STALE", "dbt")
    latest = built_shop.store.latest_event(AssetKey(["shop", "main", "orders"]))
    assert latest is not None and insync["dataVersion"] == str(latest.data_version)  # unchanged
    error = fail["run"]["facets"]["errorMessage"]
    assert error == {**error, "message": failed.outcome("orders").error, "programmingLanguage": "python"}
    assert error["message"].startswith("Runtime Error in model orders")
    (start,) = [e for e in events if e["eventType"] == "START" and e["run"]["runId"] == fail["run"]["runId"]]
    assert start["run"]["facets"]["insync"] == insync
    assert "version" not in start["outputs"][0]["facets"]  # nothing was recorded
    assert fails["shop.main.shop.orders.build.test"]["run"]["facets"]["insync"] == insync

    # A model whose tests failed: dbt built it (COMPLETE) but insync recorded nothing; the tests'
    # FAIL says why. Both carry insync's run facet, no version.
    tested = fails["shop.main.shop.stg_customers.build.test"]["run"]["facets"]
    assert tested["insync"]["decision"] == "run"
    assert "unique_stg_customers_customer_id" in tested["errorMessage"]["message"]
    built = _by_job(events, "COMPLETE")["shop.main.shop.stg_customers.build.run"]
    assert built["run"]["facets"]["insync"] == tested["insync"]
    assert not {"version", "insync"} & set(built["outputs"][0]["facets"])

    # A seed (dbt-ol has no seed events) keeps insync's own pair; skipped nodes send nothing.
    own = _own(events)
    assert own["shop/main/raw_customers"]["job"]["name"] == "seed.shop.raw_customers"
    assert own["shop/main/raw_customers"]["outputs"][0]["facets"]["insync"]["decision"] == "run"
    names = {o["name"] for e in events for o in e["outputs"]}
    assert not names & {"shop.main.revenue_by_country", "shop/main/revenue_by_country"}


def test_without_dbt_ol_insync_sends_its_own_events(
        built_shop: Shop, ol_file: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    # openlineage-dbt not installed: its import fails.
    monkeypatch.setitem(sys.modules, "openlineage.common.provider.dbt.local", None)
    monkeypatch.delitem(sys.modules, "insync.adapters.dbt._ol_events", raising=False)
    built_shop.replace("models/marts/customers.sql", "    c.country,", "    upper(c.country) as country,")
    with caplog.at_level(logging.WARNING, logger="insync"):
        report = built_shop.build()
    assert report.success, report.render()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "openlineage-dbt is not installed" in warnings[0], warnings
    events = _valid(ol_validate.read_events(ol_file))
    assert {o["namespace"] for e in events for o in e["outputs"]} == {"insync"}
    own = _own(events)
    assert set(own) == {str(o.asset.key) for o in report.outcomes}
    customers = own["shop/main/customers"]
    assert (customers["job"]["namespace"], customers["job"]["name"]) == ("dbt", "model.shop.customers")
    recorded = built_shop.store.latest_event(AssetKey(["shop", "main", "customers"]))
    assert recorded is not None
    assert customers["outputs"][0]["facets"]["version"]["datasetVersion"] == str(recorded.data_version)
    assert customers["outputs"][0]["facets"]["insync"]["decision"] == "run"


def test_no_fresh_run_results_falls_back_and_a_no_op_build_calls_no_dbt(
        built_shop: Shop, ol_file: Path, caplog: pytest.LogCaptureFixture) -> None:
    # --no-write-json: dbt-ol's processor has no run_results.json of this call to read.
    built_shop.replace("models/marts/customers.sql", "    c.country,", "    upper(c.country) as country,")
    with caplog.at_level(logging.WARNING, logger="insync"):
        report = built_shop.build("--no-write-json")
    assert report.success, report.render()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "run_results.json" in warnings[0], warnings
    events = _valid(ol_validate.read_events(ol_file))
    assert set(_own(events)) == {str(o.asset.key) for o in report.outcomes}
    assert {o["namespace"] for e in events for o in e["outputs"]} == {"insync"}

    # Nothing to build: no dbt call, no processor; every node is a reuse, insync's pair each.
    caplog.clear()
    again = built_shop.build()
    assert again.invocations == 0
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]  # no fallback warning
    later = _valid(ol_validate.read_events(ol_file)[len(events):])
    assert len(later) == 2 * len(again.outcomes)
    assert {e["outputs"][0]["facets"]["insync"]["decision"] for e in later} == {"skip"}
