"""Versioned flows, async, `auto` code versions, source observation and Prefect assets."""

from __future__ import annotations

import asyncio
import importlib.util
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from insync.adapters.prefect import (
    SOURCE_CHANGED_EVENT,
    observation_flow,
    source_changed_trigger,
    versioned,
)
from insync.core import INITIAL, EventStore, StaleStatus, observe_file
from prefect import flow, task
from prefect.assets import materialize
from prefect.client.orchestration import get_client
from prefect.events.filters import EventFilter, EventNameFilter, EventResourceFilter
from prefect.events.worker import EventsWorker


def read_events(name: str, resource_id: str | None = None, count: int = 1) -> list[Any]:
    """Events named `name` on the server, oldest first, waiting until `count` have arrived."""
    EventsWorker.drain_all()
    event_filter = EventFilter(
        event=EventNameFilter(name=[name]),
        resource=EventResourceFilter(id=[resource_id]) if resource_id else None,
    )
    deadline = time.monotonic() + 20
    with get_client(sync_client=True) as client:
        while True:
            events = client.read_events(filter=event_filter, limit=50).events
            if len(events) >= count or time.monotonic() > deadline:
                return sorted(events, key=lambda e: e.occurred)
            time.sleep(0.1)


HELPER_MODULE = """
from prefect import task
from insync.adapters.prefect import versioned


def scale(value):
    return value * {factor}


@versioned("analytics/scaled", code_version="auto")
@task
def scaled(rows):
    return [scale(row) for row in rows]
"""


def load_module(path: Path, source: str, name: str) -> ModuleType:
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_auto_code_version_reruns_when_a_helper_function_changes(run_flow: Any, tmp_path: Path) -> None:
    def pipeline_from(module: ModuleType) -> Any:
        @flow
        def pipeline() -> list[int]:
            return module.scaled([1, 2, 3])

        return pipeline

    path = tmp_path / "steps.py"
    first = load_module(path, HELPER_MODULE.format(factor=2), "steps_v1")
    assert run_flow(pipeline_from(first), tasks=1) == ([2, 4, 6], {"scaled": "Completed"})
    # The same source, loaded again (a new process would do the same): in sync.
    same = load_module(path, HELPER_MODULE.format(factor=2), "steps_v1_again")
    assert run_flow(pipeline_from(same), tasks=1) == ([2, 4, 6], {"scaled": "Cached"})
    # Only the helper changed; Prefect's own TASK_SOURCE policy would not see it.
    edited = load_module(path, HELPER_MODULE.format(factor=10), "steps_v2")
    assert run_flow(pipeline_from(edited), tasks=1) == ([10, 20, 30], {"scaled": "Completed"})


def test_changed_source_observation_reruns_the_chain(run_flow: Any, tmp_path: Path) -> None:
    source = tmp_path / "orders.csv"
    source.write_text("1\n2\n")
    calls: list[str] = []
    observe = observation_flow({"raw/orders_file": lambda: observe_file(source)}, name="observe-orders-file")

    @versioned("analytics/file_total", code_version="v1", deps=["raw/orders_file"])
    @task
    def total() -> dict[str, int]:
        calls.append("total")
        return {"total": sum(int(line) for line in source.read_text().split())}

    @versioned("analytics/file_report", code_version="v1")
    @task
    def report(totals: dict[str, int]) -> str:
        calls.append("report")
        return f"total={totals['total']}"

    @flow
    def pipeline() -> str:
        return report(total())

    first = observe()
    assert first == {"raw/orders_file": str(observe_file(source))}
    assert run_flow(pipeline, tasks=2) == ("total=3", {"total": "Completed", "report": "Completed"})

    with EventStore() as store:
        before = (store.last_event_id(), store.definitions_revision())
    assert observe() == first  # unchanged source: nothing recorded, no change event, in sync
    with EventStore() as store:
        assert (store.last_event_id(), store.definitions_revision()) == before
    assert run_flow(pipeline, tasks=2) == ("total=3", {"total": "Cached", "report": "Cached"})

    source.write_text("1\n2\n30\n")
    second = observe()
    assert second != first
    calls.clear()
    assert run_flow(pipeline, tasks=2) == (
        "total=33",
        {"total": "Completed", "report": "Completed"},
    )
    assert calls == ["total", "report"]

    events = read_events(SOURCE_CHANGED_EVENT, "insync.asset.raw/orders_file", count=2)
    assert [e.payload for e in events] == [
        {
            "asset_key": "raw/orders_file",
            "old_data_version": str(INITIAL),
            "new_data_version": first["raw/orders_file"],
            "insync_event_id": events[0].payload["insync_event_id"],
        },
        {
            "asset_key": "raw/orders_file",
            "old_data_version": first["raw/orders_file"],
            "new_data_version": second["raw/orders_file"],
            "insync_event_id": events[1].payload["insync_event_id"],
        },
    ]
    with EventStore() as store:
        observations = store.history("raw/orders_file")
        assert [e.kind for e in observations] == ["observation"] * 2
        assert store.status("raw/orders_file").kind == "observable"


def test_a_failing_observation_records_nothing_and_names_the_source(tmp_path: Path) -> None:
    good = tmp_path / "good.csv"
    good.write_text("x")
    observe = observation_flow(
        {
            "raw/good": lambda: observe_file(good),
            "raw/missing": lambda: observe_file(tmp_path / "missing.csv"),
        },
        name="observe-with-a-missing-file",
    )
    state = observe(return_state=True)
    assert state.is_failed()
    assert "raw/missing" in state.message and "could not be observed" in state.message
    with EventStore() as store:
        assert store.history("raw/missing") == []
        assert len(store.history("raw/good")) == 1


def test_source_changed_trigger_matches_the_emitted_event() -> None:
    trigger = source_changed_trigger("raw/orders", ["raw", "customers"], within=60)
    assert trigger.expect == {SOURCE_CHANGED_EVENT}
    assert trigger.match.model_dump()["prefect.resource.id"] == [
        "insync.asset.raw/orders",
        "insync.asset.raw/customers",
    ]


def test_async_tasks_in_an_async_flow(run_flow: Any) -> None:
    calls: list[str] = []

    @versioned("raw/async_rows", code_version="v1")
    @task
    async def rows() -> list[int]:
        calls.append("rows")
        await asyncio.sleep(0)
        return [1, 2]

    @versioned("analytics/async_sum", code_version="v1")
    @task
    async def total(values: list[int]) -> dict[str, int]:
        calls.append("total")
        return {"sum": sum(values)}

    @versioned("analytics/async_len", code_version="v1")
    @task
    async def length(values: list[int]) -> dict[str, int]:
        calls.append("length")
        return {"len": len(values)}

    @flow
    async def pipeline() -> list[dict[str, int]]:
        values = await rows()
        return list(await asyncio.gather(total(values), length(values)))

    expected = [{"sum": 3}, {"len": 2}]
    value, states = run_flow(pipeline, tasks=3)
    assert (value, states) == (expected, dict.fromkeys(["rows", "total", "length"], "Completed"))
    value, states = run_flow(pipeline, tasks=3)
    assert (value, states) == (expected, dict.fromkeys(["rows", "total", "length"], "Cached"))
    assert sorted(calls) == ["length", "rows", "total"]
    with EventStore() as store:
        spec = {str(k): s for k, s in store.definitions().items()}["analytics/async_len"]
        assert [str(d) for d in spec.deps] == ["raw/async_rows"]


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_versioned_flow_ends_cached_with_its_last_value(is_async: bool) -> None:
    calls: list[str] = []

    if is_async:

        @versioned("analytics/flow_asset", code_version="v1", deps=["raw/upstream"])
        @flow
        async def produce() -> dict[str, int]:
            calls.append("produce")
            return {"n": len(calls)}

    else:

        @versioned("analytics/flow_asset", code_version="v1", deps=["raw/upstream"])
        @flow
        def produce() -> dict[str, int]:
            calls.append("produce")
            return {"n": len(calls)}

    def run() -> Any:
        state = produce(return_state=True)
        return asyncio.run(state) if asyncio.iscoroutine(state) else state

    first = run()
    assert (first.name, first.result()) == ("Completed", {"n": 1})
    second = run()
    assert (second.name, second.result()) == ("Cached", {"n": 1})
    assert calls == ["produce"]
    with get_client(sync_client=True) as client:
        stored = client.read_flow_run(second.state_details.flow_run_id)
        assert stored.state is not None and stored.state.name == "Cached"
    with EventStore() as store:
        assert store.status("analytics/flow_asset").status is StaleStatus.FRESH
        (event,) = store.history("analytics/flow_asset")
        assert [str(i.key) for i in event.inputs] == ["raw/upstream"]
        store.record_observation("raw/upstream", "v2")
    third = run()
    assert (third.name, third.result()) == ("Completed", {"n": 2})


def test_prefect_asset_materialization_carries_insync_versions(run_flow: Any) -> None:
    calls: list[str] = []

    @versioned("warehouse/orders", code_version="v7")
    @materialize("file://warehouse/orders.parquet")
    def write_orders() -> list[int]:
        calls.append("write")
        return [1, 2]

    @flow
    def pipeline() -> list[int]:
        return write_orders()

    assert run_flow(pipeline, tasks=1) == ([1, 2], {"write_orders": "Completed"})
    assert run_flow(pipeline, tasks=1) == ([1, 2], {"write_orders": "Cached"})
    assert calls == ["write"]
    (event,) = read_events("prefect.asset.materialization.succeeded", "file://warehouse/orders.parquet")
    with EventStore() as store:
        recorded = store.latest_event("warehouse/orders")
    assert recorded is not None
    assert event.payload == {
        "insync_asset_key": "warehouse/orders",
        "code_version": "v7",
        "data_version": str(recorded.data_version),
    }
