"""Prefect emits no OpenLineage: versioned tasks send insync's events, valid against the spec."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

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
