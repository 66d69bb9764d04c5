"""Airflow's OpenLineage provider emits the events; insync adds its facets to them (no second stream).

The provider decides at import whether it is enabled, and Airflow loads its listener once per
process: the DAG runs in a subprocess with OpenLineage configured (the client's file transport),
on the session's migrated Airflow home.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

from insync.core import EventStore

_DATA = Path(__file__).parents[1] / "data" / "openlineage"
_spec = importlib.util.spec_from_file_location("ol_validate", _DATA / "ol_validate.py")
assert _spec is not None and _spec.loader is not None
ol_validate = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ol_validate)

DAG = """
from airflow.sdk import Asset, dag, task
from airflow.providers.standard.operators.bash import BashOperator
from insync.adapters.airflow import versioned, versioned_operator


@dag(dag_id="ol_shop", schedule=None)
def ol_shop():
    load = versioned_operator(
        BashOperator(task_id="load", bash_command="echo loaded", outlets=[Asset("raw/orders")]),
        code_version="v1",
    )

    @task(outlets=[Asset("analytics/orders")])
    @versioned(code_version="v1", deps=["raw/orders"])
    def orders():
        return 3

    @task
    @versioned(code_version="v1")
    def broken():
        raise ValueError("no orders today")

    load >> orders()
    broken()


ol_shop()
"""

RUN = """
import sys
from airflow.dag_processing.dagbag import DagBag

bag = DagBag(dag_folder=sys.argv[1])
assert not bag.import_errors, bag.import_errors
for _ in range(2):  # runs, then skips; `broken` fails both times
    run = bag.get_dag("ol_shop").test()
    states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
    assert states == {"load": "success", "orders": "success", "broken": "failed"}, states
"""


def _run_twice(tmp_path: Path, **env: str) -> list[dict[str, Any]]:
    """Run the DAG twice in a subprocess with OpenLineage's file transport; the events."""
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "ol_shop.py").write_text(textwrap.dedent(DAG))
    events_file = tmp_path / "openlineage.jsonl"
    environ = {
        **os.environ,
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "INSYNC_HOME": str(tmp_path / "insync-home"),
        "OPENLINEAGE__TRANSPORT__TYPE": "file",
        "OPENLINEAGE__TRANSPORT__LOG_FILE_PATH": str(events_file),
        "OPENLINEAGE__TRANSPORT__APPEND": "true",
        **env,
    }
    result = subprocess.run([sys.executable, "-c", RUN, str(dags)], env=environ, cwd=tmp_path,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    return ol_validate.read_events(events_file)


def test_provider_events_carry_insync_facets(airflow_db: Path, tmp_path: Path) -> None:
    # BashOperator has its own extractor: its run facet comes through the provider's hook.
    events = _run_twice(
        tmp_path,
        AIRFLOW__OPENLINEAGE__CUSTOM_RUN_FACETS="insync.adapters.airflow.lineage.insync_run_facets",
    )
    assert events, "the provider emitted nothing"
    for event in events:
        ol_validate.validate_event(event)
    # One stream: every event is the provider's, none is insync's own.
    assert all("insync.dev" not in e["producer"] for e in events)

    def completes(task_id: str) -> list[dict[str, Any]]:
        job = f"ol_shop.{task_id}"
        return [e for e in events if e["eventType"] == "COMPLETE" and e["job"]["name"] == job]

    with EventStore(f"sqlite:///{tmp_path / 'insync-home' / 'insync.db'}") as store:
        orders_version = str(store.status("analytics/orders").data_version)
        raw_version = str(store.status("raw/orders").data_version)
    orders = completes("orders")
    assert [e["run"]["facets"]["insync"]["decision"] for e in orders] == ["run", "skip"]
    for event in orders:
        (output,) = [d for d in event["outputs"] if d["namespace"] == "insync"]
        assert output["name"] == "analytics/orders"
        assert output["facets"]["version"]["datasetVersion"] == orders_version
        assert output["facets"]["insync"]["inputs"] == [
            {"asset": "raw/orders", "dataVersion": raw_version, "eventId": 1}
        ]
        assert [(d["name"], d["facets"]["version"]["datasetVersion"]) for d in event["inputs"]] == [
            ("raw/orders", raw_version)
        ]
    load = completes("load")
    assert [e["run"]["facets"]["insync"]["decision"] for e in load] == ["run", "skip"]
    assert load[0]["run"]["facets"]["insync"]["dataVersion"] == raw_version
    # The provider's own FAIL events get insync's run facet through the same hook.
    fails = [e for e in events if e["eventType"] == "FAIL" and e["job"]["name"] != "ol_shop"]  # the DAG run's
    assert [e["job"]["name"] for e in fails] == ["ol_shop.broken"] * 2
    for event in fails:
        facet = event["run"]["facets"]["insync"]
        assert (facet["decision"], facet["status"], facet["dataVersion"]) == ("run", "MISSING", "NULL")


def test_without_the_provider_insync_emits_its_own_events(airflow_db: Path, tmp_path: Path) -> None:
    events = _run_twice(tmp_path, AIRFLOW__OPENLINEAGE__DISABLED="True")
    assert events and all("insync.dev" in e["producer"] for e in events)
    for event in events:
        ol_validate.validate_event(event)
    pairs = [(e["job"]["name"], e["eventType"], e["run"]["facets"]["insync"]["decision"]) for e in events]
    assert [p for p in pairs if p[0] == "ol_shop.broken"] == [
        ("ol_shop.broken", "START", "run"), ("ol_shop.broken", "FAIL", "run")] * 2
    fails = [e for e in events if e["eventType"] == "FAIL"]
    for event in fails:
        assert event["run"]["facets"]["errorMessage"]["message"] == "ValueError: no orders today"
        assert (event["outputs"][0]["name"], event["outputs"][0]["facets"]) == ("ol_shop/broken", {})
    assert fails[0]["run"]["runId"] != fails[1]["run"]["runId"]
    assert [p for p in pairs if p[0] != "ol_shop.broken"] == [
        ("ol_shop.load", "START", "run"), ("ol_shop.load", "COMPLETE", "run"),
        ("ol_shop.orders", "START", "run"), ("ol_shop.orders", "COMPLETE", "run"),
        ("ol_shop.load", "START", "skip"), ("ol_shop.load", "COMPLETE", "skip"),
        ("ol_shop.orders", "START", "skip"), ("ol_shop.orders", "COMPLETE", "skip"),
    ]
