"""The example DAGs in examples/airflow run as documented in its README (whose commands run in
tests/test_readme_commands.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).parents[2] / "examples" / "airflow" / "dags"


def test_walkthrough_runs_1_2_3(airflow, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    source = tmp_path / "numbers.txt"
    source.write_text("3\n")
    monkeypatch.setenv("INSYNC_EXAMPLE_NUMBERS_FILE", str(source))
    path = airflow.write((EXAMPLES / "asset_versioning.py").read_text(), name="asset_versioning")

    first = airflow.run(path, "asset_versioning")
    assert first.decisions == {"observe_numbers_file": "observed", "number": "run", "multiplied": "run"}
    assert first.xcoms["multiplied"] == 30

    second = airflow.run(path, "asset_versioning")
    assert second.decisions == {
        "observe_numbers_file": "observed",
        "number": "skip",
        "multiplied": "skip",
    }
    assert set(second.states.values()) == {"success"}

    source.write_text("4\n")
    third = airflow.run(path, "asset_versioning")
    assert third.decisions == {"observe_numbers_file": "observed", "number": "run", "multiplied": "run"}
    assert third.xcoms["multiplied"] == 40
    events = airflow.asset_events("walkthrough/multiplied")
    assert [e["code_version"] for e in events] == ["v1", "v1"]
    # The unchanged source in run 2 emitted no Airflow asset event either.
    assert len(airflow.asset_events("raw/numbers_file")) == 2


def test_event_driven_example_parses(airflow, tmp_path: Path):
    from airflow.dag_processing.dagbag import DagBag

    copy = tmp_path / "event_driven.py"
    shutil.copy(EXAMPLES / "event_driven.py", copy)
    bag = DagBag(dag_folder=str(copy))
    assert not bag.import_errors
    dag = bag.get_dag("event_driven_numbers")
    (asset,) = dag.timetable.asset_condition.objects  # type: ignore[attr-defined]
    (watcher,) = asset.watchers
    assert type(watcher.trigger).__name__ == "InsyncObservationTrigger"

