"""`insync airflow plan DAG_ID`: which versioned tasks would run, and why, before the run."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

from click.testing import CliRunner
from insync.adapters.airflow.cli import airflow_group

PLANNED = """
from airflow.sdk import dag, task, get_current_context
from insync.adapters.airflow import versioned

@dag(dag_id="planned", schedule="@daily", catchup=False)
def planned():
    @task
    @versioned(code_version="{number_version}")
    def number():
        return 3

    @task
    @versioned
    def multiplied(value):
        return value * FACTOR

    @task
    @versioned(code_version="v1")
    def dated(ds=None):
        return ds

    @task
    @versioned(code_version="v1")
    def peek():
        return get_current_context()["run_id"]

    @task
    def loose():
        return 1

    @task
    @versioned(code_version="v1")
    def added(x):
        return x + 1

    multiplied(number())
    dated()
    peek()
    added(loose())


FACTOR = {factor}  # a module constant: part of multiplied's auto code version

planned()
"""


def _plan(path: Path) -> dict[str, tuple[str, str]]:
    result = CliRunner().invoke(airflow_group, ["plan", "planned", "--dags-folder", str(path), "--json"])
    assert result.exit_code == 0, result.output
    return {p["task_id"]: (p["decision"], p["reason"]) for p in json.loads(result.stdout)}


def test_plan_shows_what_would_run_before_the_run(airflow):
    path = airflow.write(PLANNED.format(number_version="v1", factor=10))
    before = _plan(path)
    assert before == {
        "number": ("run", "never materialized"),
        "multiplied": ("run", "never materialized"),
        "dated": ("run", "never materialized"),
        "peek": ("run", "reads inputs insync cannot see: get_current_context"),
        "loose": ("unversioned", "not versioned by insync"),
        "added": ("run", "never materialized"),
    }
    airflow.run(path, "planned", logical_date="2026-12-01")

    after = _plan(path)
    assert after["number"] == ("skip", "Synced")
    assert after["multiplied"] == ("skip", "Synced")
    assert after["dated"] == ("depends", "in sync for the recorded values of ds")
    assert after["peek"][0] == "run"
    assert after["added"] == ("depends", "reads the value of unversioned loose")

    # A code bump (explicit, and a module constant under "auto") shows before any task runs.
    airflow.write(PLANNED.format(number_version="v2", factor=100), name=path.stem)
    bumped = _plan(path)
    assert bumped["number"] == ("run", "has a new code version (v1 -> v2)")
    assert bumped["multiplied"][0] == "run"
    assert bumped["multiplied"][1].startswith("has a new code version (")

    table = CliRunner().invoke(airflow_group, ["plan", "planned", "--dags-folder", str(path)])
    assert table.exit_code == 0, table.output
    assert table.stdout.splitlines()[0] == "plan for DAG planned: 5 versioned task(s) of 6"
    assert "has a new code version (v1 -> v2)" in table.output


def test_plan_errors_name_the_fix(airflow, tmp_path: Path):
    path = airflow.write(PLANNED.format(number_version="v1", factor=10))
    missing = CliRunner().invoke(airflow_group, ["plan", "nope", "--dags-folder", str(path)])
    assert missing.exit_code == 1
    assert "no DAG 'nope'" in missing.output and "planned" in missing.output
    broken = tmp_path / "broken.py"
    broken.write_text("from airflow.sdk import dag\nimport nothing_here_at_all\n")
    failed = CliRunner().invoke(airflow_group, ["plan", "planned", "--dags-folder", str(broken)])
    assert failed.exit_code == 1
    assert "do not import" in failed.output and "nothing_here_at_all" in failed.output


def test_the_plan_command_is_plugged_into_insync():
    pyproject = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    plugins = pyproject["project"]["entry-points"]["insync.cli"]
    assert plugins["airflow"] == "insync.adapters.airflow.cli:airflow_group"
