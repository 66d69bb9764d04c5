"""The Airflow launcher against a small HTTP server started here (no api-server): the bodies it
posts pass Airflow's own TriggerDAGRunPostBody, a time-partitioned launch triggers one run per
Unsynced window whose data interval `partition_of` turns back into that partition, and a launch
it cannot aim at a partition triggers nothing."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace
from typing import Any

import pendulum
import pytest
from airflow.api_fastapi.core_api.datamodels.dag_run import TriggerDAGRunPostBody
from insync.adapters.airflow._automation import AirflowLauncher
from insync.adapters.airflow._inputs import partition_of, partition_source
from insync.adapters.airflow._keys import VersionSettings
from insync.core import AssetKey, AssetSpec, EventStore, InsyncError, StaticPartitions, TimeWindowPartitions
from insync.core.automation import (
    AutomationConfig,
    LaunchRequest,
    Owner,
    Policy,
    owner_metadata,
    plan,
    requests_for,
)

DAYS = TimeWindowPartitions("daily", start="2026-11-01", end="2026-11-04", timezone="Europe/Berlin")
EAGER = AutomationConfig({"*": Policy(eager=True)})


@dataclass
class FakeAirflow:
    """What the api-server would keep: runs by id, one per logical date."""

    posts: list[dict[str, Any]] = field(default_factory=list)
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)
    refuse_first_date: bool = False  # the first logical date tried for a run is another run's
    url: str = ""


@pytest.fixture
def store(sqlite_url: str) -> Iterator[EventStore]:
    with EventStore(sqlite_url) as s:
        yield s


@pytest.fixture
def airflow() -> Iterator[FakeAirflow]:
    state = FakeAirflow()

    class Handler(BaseHTTPRequestHandler):
        def _reply(self, status: int, body: object) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            parts = self.path.strip("/").split("/")
            if self.path == "/auth/token":
                self._reply(201, {"access_token": "t"})
            elif parts[-2:-1] == ["dagRuns"]:
                run = state.runs.get(parts[-1])
                self._reply(200 if run else 404, run or {"detail": "not found"})
            else:
                self._reply(200, {"dag_id": parts[-1], "is_paused": False})

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            state.posts.append(body)
            try:
                TriggerDAGRunPostBody.model_validate(body)  # what the api-server accepts
            except ValueError as exc:
                self._reply(422, {"detail": str(exc)})
                return
            dates = {r["logical_date"] for r in state.runs.values()}
            first_try = not any(p["dag_run_id"] == body["dag_run_id"] for p in state.posts[:-1])
            if (
                body["dag_run_id"] in state.runs
                or body["logical_date"] in dates
                or (state.refuse_first_date and first_try)
            ):
                self._reply(409, {"detail": "Unique constraint violation"})
                return
            state.runs[body["dag_run_id"]] = body
            self._reply(200, body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _request(store: EventStore) -> LaunchRequest:
    """Days 2 and 3 of a daily Berlin asset Unsynced, planned and grouped like `insync automate`."""
    store.register(
        [
            AssetSpec("src", kind="observable", partitions=DAYS),
            AssetSpec(
                "daily",
                code_version="1",
                deps=["src"],
                partitions=DAYS,
                metadata=owner_metadata("airflow", "days", "compute", partition_by="window"),
            ),
        ]
    )
    for day in ("2026-11-01", "2026-11-02", "2026-11-03"):
        store.record_observation("src", "1", partition=day)
        store.record_materialization("daily", partition=day)
        if day != "2026-11-01":
            store.record_observation("src", "2", partition=day)
    (request,) = requests_for(plan(store, EAGER), EAGER)
    return request


def _partition_of_run(body: dict[str, Any]) -> str | None:
    """The partition the task computes in the run `body` starts, the way the worker decides."""
    context = {
        "ti": SimpleNamespace(task_id="compute", map_index=-1),
        "data_interval_start": pendulum.parse(body["data_interval_start"]),
        "data_interval_end": pendulum.parse(body["data_interval_end"]),
        "logical_date": pendulum.parse(body["logical_date"]),
    }
    _, partition = partition_of(context, VersionSettings(partitions=DAYS), AssetKey("daily"))  # type: ignore[arg-type]
    return partition


def test_one_run_per_unsynced_window_with_that_window_as_its_data_interval(
    store: EventStore, airflow: FakeAirflow
) -> None:
    request = _request(store)
    ref = AirflowLauncher({"url": airflow.url}).launch(request)
    day2, day3 = airflow.posts
    assert ref == f"{request.idempotency_key}-2026-11-02, {request.idempotency_key}-2026-11-03"
    assert [_partition_of_run(day2), _partition_of_run(day3)] == ["2026-11-02", "2026-11-03"]
    # Berlin midnight, in UTC; the logical date is a few seconds in (the window's start is
    # usually the logical date of the run that built it first).
    assert (day2["data_interval_start"], day2["data_interval_end"]) == (
        "2026-11-01T23:00:00+00:00",
        "2026-11-02T23:00:00+00:00",
    )
    assert "2026-11-01T23:00:01" <= day2["logical_date"] <= "2026-11-01T23:00:59+00:00"
    assert day2["conf"]["insync"] == {
        "assets": ["daily"],
        "tasks": ["compute"],
        "partitions": {"daily": ["2026-11-02"]},
    }
    # Launched again (a restart before the claim recorded the run): the same runs, none new.
    assert AirflowLauncher({"url": airflow.url}).launch(request) == ref
    assert len(airflow.runs) == 2


def test_a_logical_date_another_run_holds_is_passed_over(store: EventStore, airflow: FakeAirflow) -> None:
    airflow.refuse_first_date = True
    AirflowLauncher({"url": airflow.url}).launch(_request(store))
    first, second = airflow.posts[:2]
    assert first["dag_run_id"] == second["dag_run_id"]
    assert first["logical_date"] != second["logical_date"]
    assert first["data_interval_start"] == second["data_interval_start"]
    assert len(airflow.runs) == 2


def test_a_partition_without_a_window_triggers_nothing(airflow: FakeAirflow) -> None:
    request = LaunchRequest(
        owner=Owner("airflow", "regions"),
        keys=(AssetKey("sales"),),
        items=("compute",),
        partitions={AssetKey("sales"): ("eu",)},
        idempotency_key="insync-x",
    )
    with pytest.raises(InsyncError, match=r"sales\[eu\]: insync does not know which time window"):
        AirflowLauncher({"url": airflow.url}).launch(request)
    assert airflow.posts == []


def test_an_unpartitioned_launch_is_one_run_without_a_logical_date(airflow: FakeAirflow) -> None:
    request = LaunchRequest(Owner("airflow", "d"), (AssetKey("a"),), ("t",), {}, "insync-y")
    assert AirflowLauncher({"url": airflow.url}).launch(request) == "insync-y"
    assert [(p["dag_run_id"], p["logical_date"]) for p in airflow.posts] == [("insync-y", None)]


def test_the_adapter_records_how_a_task_picks_its_partition() -> None:
    regions = StaticPartitions(["eu", "us"])
    assert partition_source(VersionSettings(), None) == ""
    assert partition_source(VersionSettings(partitions=DAYS), DAYS) == "window"
    assert partition_source(VersionSettings(partitions=DAYS, partition="{{ ds }}"), DAYS) == "partition="
    assert partition_source(VersionSettings(partitions=regions), regions) == "partition key"
    assert partition_source(VersionSettings(), StaticPartitions(["0", "1"])) == "map index"
