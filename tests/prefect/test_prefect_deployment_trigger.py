"""A changed source starts a served deployment through `source_changed_trigger`, for real."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from insync.adapters.prefect import observation_flow, versioned
from insync.core import AssetKey, StaticPartitions
from prefect import flow, task
from prefect.client.orchestration import get_client
from prefect.events.worker import EventsWorker

SERVED = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from prefect import flow
    from insync.adapters.prefect import source_changed_trigger

    MARKER = Path(sys.argv[1])

    @flow(name="downstream-of-served-source")
    def downstream():
        with MARKER.open("a") as handle:
            handle.write("ran\\n")

    if __name__ == "__main__":
        downstream.serve(name="on-change", triggers=[source_changed_trigger("raw/served")])
    """
)


def _wait(condition: object, what: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def test_changed_source_starts_the_downstream_deployment(tmp_path: Path) -> None:
    script = tmp_path / "served_flow.py"
    script.write_text(SERVED)
    marker = tmp_path / "ran.txt"
    versions = iter(["v1", "v1", "v2"])
    observe = observation_flow({"raw/served": lambda: next(versions)}, name="observe-served")
    server = subprocess.Popen(
        [sys.executable, str(script), str(marker)],
        cwd=tmp_path,
        env={**os.environ, "PREFECT_RUNNER_POLL_FREQUENCY": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:

        def served() -> bool:
            with get_client(sync_client=True) as client:
                automations = client.read_automations_by_name("on-change__automation_1")
            return bool(automations)

        _wait(served, "the served deployment and its automation")
        observe()  # INITIAL -> v1: a change, the deployment runs once
        EventsWorker.drain_all()
        _wait(lambda: marker.exists(), "the triggered flow run")
        observe()  # v1 -> v1: no event
        observe()  # v1 -> v2: a change, a second run
        EventsWorker.drain_all()
        _wait(lambda: marker.read_text().count("ran") == 2, "the second triggered flow run")
        time.sleep(2)  # nothing else arrives for the unchanged observation
        assert marker.read_text().count("ran") == 2
    finally:
        server.terminate()
        try:
            output = server.communicate(timeout=20)[0].decode()
        except subprocess.TimeoutExpired:
            server.kill()
            output = server.communicate()[0].decode()
    assert "downstream-of-served-source" in output


@versioned("reports/owned", code_version="v1")
@task
def owned_report() -> int:
    return 1


@versioned(
    "reports/by_region", code_version="v1", partitions=StaticPartitions(["eu", "us"]), partition="region"
)
@task
def regional_report(region: str) -> str:
    return region


@flow(name="build-owned-reports")
def owned_reports(region: str = "eu") -> int:
    regional_report(region)
    return owned_report()


def test_a_deployment_run_records_its_deployment_as_owner(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a worker does: create a flow run of the deployment, run it in process. A local run of
    the same flow records no owner."""
    from insync.core import EventStore
    from insync.core.automation import Owner
    from prefect.flow_engine import run_flow

    store_url = f"sqlite:///{tmp_path / 'insync.db'}"
    monkeypatch.setenv("INSYNC_DATABASE_URL", store_url)
    key = AssetKey.parse("reports/owned")
    owned_reports()
    with EventStore(store_url) as store:
        assert Owner.recorded(store.definitions()[key]) is None
    deployment_id = owned_reports.to_deployment(name="nightly").apply()
    with get_client(sync_client=True) as client:
        flow_run = client.create_flow_run_from_deployment(deployment_id)
    assert run_flow(owned_reports, flow_run=flow_run) == 1
    with EventStore(store_url) as store:
        owner = Owner.recorded(store.definitions()[key])
        regional = Owner.recorded(store.definitions()[AssetKey.parse("reports/by_region")])
    assert owner is not None
    assert (owner.kind, owner.target, owner.partition_by) == ("prefect", "build-owned-reports/nightly", "")
    # The flow's own argument picks the partition: a launch cannot aim it (automate holds it).
    assert regional is not None and regional.partition_by == "partition="
