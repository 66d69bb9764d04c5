"""The cluster policy path: tasks versioned by insync settings in their Assets' extra."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from insync.core import EventStore


@pytest.fixture(scope="session")
def policy_registered() -> None:
    """Register the policy module the way the `airflow.policy` entry point would."""
    from airflow.settings import get_policy_plugin_manager
    from insync.adapters.airflow import policy

    manager = get_policy_plugin_manager()
    if not manager.is_registered(policy):
        manager.register(policy)


POLICY_DAG = """
from airflow.sdk import dag, task, Asset
from airflow.providers.standard.operators.bash import BashOperator

@dag(dag_id="policy", schedule=None)
def policy():
    @task(outlets=[Asset("policy/numbers", extra={{"insync": {{"code_version": "v1"}}}})])
    def numbers():
        return [1, 2, 3]

    @task(outlets=[Asset("policy/total", extra={{"insync": True}})])
    def total(values):
        return sum(values)

    report = BashOperator(
        task_id="report",
        bash_command="echo report",
        outlets=[Asset("policy/report", extra={{"insync": {{"code_version": "{version}"}}}})],
    )
    plain = BashOperator(task_id="plain", bash_command="echo plain")
    total(numbers()) >> report >> plain

policy()
"""


def test_policy_versions_marked_tasks_only(airflow, policy_registered):
    path = airflow.write(POLICY_DAG.format(version="r1"))
    first = airflow.run(path, "policy")
    assert set(first.states.values()) == {"success"}
    assert first.decisions == {"numbers": "run", "total": "run", "report": "run"}  # not "plain"

    second = airflow.run(path, "policy")
    assert second.decisions == {"numbers": "skip", "total": "skip", "report": "skip"}
    assert second.xcoms["total"] == 6

    airflow.write(POLICY_DAG.format(version="r2"), name=path.stem)
    third = airflow.run(path, "policy")
    assert third.decisions == {"numbers": "skip", "total": "skip", "report": "run"}
    with EventStore() as store:
        total = store.latest_event("policy/total")
        assert [str(i.key) for i in total.inputs] == ["policy/numbers"]
        assert [e.code_version for e in store.history("policy/report")] == ["r2", "r1"]


BAD_POLICY_DAG = """
from airflow.sdk import dag, task, Asset

@dag(dag_id="bad_policy", schedule=None)
def bad_policy():
    @task(outlets=[Asset("bad/numbers", extra={"insync": {"code_verison": "v1"}})])
    def numbers():
        return 1

    numbers()

bad_policy()
"""


def test_policy_rejects_unknown_settings_as_an_import_error(airflow, policy_registered):
    from airflow.dag_processing.dagbag import DagBag

    path = airflow.write(BAD_POLICY_DAG)
    bag = DagBag(dag_folder=str(path))
    (message,) = bag.import_errors.values()
    assert "code_verison" in message and "unknown insync setting" in message


def test_airflow_local_settings_installs_the_policy(tmp_path: Path):
    (tmp_path / "airflow_local_settings.py").write_text(
        "from insync.adapters.airflow.policy import task_policy  # noqa: F401\n"
    )
    script = textwrap.dedent(
        """
        from airflow.sdk import Asset
        from airflow.providers.standard.operators.bash import BashOperator
        from airflow.settings import task_policy

        marked = BashOperator(
            task_id="t", bash_command="echo", outlets=[Asset("x/y", extra={"insync": True})]
        )
        plain = BashOperator(task_id="u", bash_command="echo")
        task_policy(marked)
        task_policy(plain)
        print(type(marked)._insync_settings.code_version, hasattr(type(plain), "_insync_settings"))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        env={**__import__("os").environ, "PYTHONPATH": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "auto False"


MAPPED_POLICY_DAG = """
from airflow.sdk import dag, Asset
from airflow.providers.standard.operators.bash import BashOperator

@dag(dag_id="policy_mapped", schedule=None)
def policy_mapped():
    BashOperator.partial(
        task_id="shout", outlets=[Asset("policy/shout", extra={"insync": True})]
    ).expand(bash_command=["echo one", "echo two"])

policy_mapped()
"""


def test_policy_versions_mapped_operators_per_map_index(airflow, policy_registered):
    path = airflow.write(MAPPED_POLICY_DAG)
    assert airflow.run(path, "policy_mapped").decisions == {"shout[0]": "run", "shout[1]": "run"}
    second = airflow.run(path, "policy_mapped")
    assert second.decisions == {"shout[0]": "skip", "shout[1]": "skip"}
    assert second.xcoms == {"shout[0]": "one", "shout[1]": "two"}
    with EventStore() as store:
        assert "policy/shout" in {str(k) for k in store.definitions()}
        assert store.status("policy/shout").partitions.total == 2  # map indexes 0 and 1
