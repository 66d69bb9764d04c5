"""Prefect emits no OpenLineage: versioned tasks send insync's events, valid against the spec."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest
from insync.adapters.prefect import versioned
from insync.core import EventStore
from prefect import flow, task

_DATA = Path(__file__).parents[1] / "data" / "openlineage"
_spec = importlib.util.spec_from_file_location("ol_validate", _DATA / "ol_validate.py")
assert _spec is not None and _spec.loader is not None
ol_validate = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ol_validate)


ol_file = ol_validate.ol_file


def test_task_runs_and_cached_runs_emit_valid_events(
    ol_file: Path, run_flow: Any, tmp_path: Path
) -> None:
    store_url = f"sqlite:///{tmp_path / 'insync.db'}"

    @versioned("raw/orders", code_version="v1", store=store_url)
    @task
    def raw() -> list[int]:
        return [1, 2, 3]

    @versioned("analytics/orders", code_version="v1", store=store_url)
    @task
    def orders(rows: list[int]) -> int:
        return sum(rows)

    @flow
    def shop() -> int:
        return orders(raw())

    run_flow(shop, tasks=2)
    first = ol_validate.read_events(ol_file)
    run_flow(shop, tasks=2)
    events = ol_validate.read_events(ol_file)
    second = events[len(first):]
    for event in events:
        ol_validate.validate_event(event)

    def completes(batch: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        return {e["outputs"][0]["name"]: e for e in batch if e["eventType"] == "COMPLETE"}

    assert [e["eventType"] for e in first].count("START") == 2
    ran, cached = completes(first), completes(second)
    assert set(ran) == set(cached) == {"raw/orders", "analytics/orders"}
    with EventStore(store_url) as store:
        raw_version = str(store.status("raw/orders").data_version)
        orders_version = str(store.status("analytics/orders").data_version)
    for batch, decision in ((ran, "run"), (cached, "skip")):
        event = batch["analytics/orders"]
        assert event["job"]["name"] == "shop.orders"
        output = event["outputs"][0]
        assert output["facets"]["version"]["datasetVersion"] == orders_version
        assert output["facets"]["insync"]["decision"] == decision
        assert output["facets"]["insync"]["framework"] == "prefect"
        assert [(i["name"], i["facets"]["version"]["datasetVersion"]) for i in event["inputs"]] == [
            ("raw/orders", raw_version)
        ]
        assert event["run"]["facets"]["insync"]["inputs"][0]["dataVersion"] == raw_version
    assert ran["analytics/orders"]["run"]["facets"]["insync"]["status"] == "MISSING"
    assert cached["analytics/orders"]["run"]["facets"]["insync"]["status"] == "FRESH"


def test_a_failing_task_emits_start_and_fail(ol_file: Path, run_flow: Any, tmp_path: Path) -> None:
    store_url = f"sqlite:///{tmp_path / 'insync.db'}"

    @versioned("raw/orders", code_version="v1", store=store_url)
    @task
    def raw() -> list[int]:
        return [1, 2, 3]

    @versioned("analytics/orders", code_version="v1", store=store_url)
    @task
    def orders(rows: list[int]) -> int:
        raise ValueError(f"bad rows {rows}")

    @versioned("analytics/totals", code_version="v1", store=store_url)
    @task
    async def totals(rows: list[int]) -> int:
        raise KeyError("total")

    @flow
    async def shop() -> list[Any]:
        rows = raw()
        return [orders(rows, return_state=True), await totals(rows, return_state=True)]

    states, names = run_flow(shop, tasks=3, expect="Failed")
    assert names == {"raw": "Completed", "orders": "Failed", "totals": "Failed"}
    # The task's own exception, unchanged.
    with pytest.raises(ValueError, match=r"bad rows \[1, 2, 3\]"):
        states[0].result()
    events = ol_validate.read_events(ol_file)
    by_asset: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        ol_validate.validate_event(event)  # errorMessage too
        by_asset.setdefault(event["outputs"][0]["name"], []).append(event)
    assert [e["eventType"] for e in by_asset["raw/orders"]] == ["START", "COMPLETE"]
    for asset, error in (("analytics/orders", "ValueError: bad rows [1, 2, 3]"),
                         ("analytics/totals", "KeyError: 'total'")):
        start, fail = by_asset[asset]
        assert (start["eventType"], fail["eventType"]) == ("START", "FAIL")
        assert start["run"]["runId"] == fail["run"]["runId"] == str(states[asset == "analytics/totals"]
                                                                      .state_details.task_run_id)
        assert fail["job"]["name"] == f"shop.{asset.split('/')[1]}"
        assert fail["outputs"][0]["facets"] == {}  # nothing recorded: no version
        assert fail["inputs"][0]["name"] == "raw/orders"
        insync = fail["run"]["facets"]["insync"]
        assert (insync["decision"], insync["status"], insync["codeVersion"]) == ("run", "MISSING", "v1")
        assert fail["run"]["facets"]["errorMessage"]["message"] == error
        assert "Traceback" in fail["run"]["facets"]["errorMessage"]["stackTrace"]
    with EventStore(store_url) as store:
        assert store.status("analytics/orders").status.value == "MISSING"
