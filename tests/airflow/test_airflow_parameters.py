"""Everything a versioned task reads is an input: arguments, context values, rendered templated
fields, expanded values; what insync cannot see makes the task run, saying why."""

from __future__ import annotations

from pathlib import Path

import pytest
from insync.core import EventStore

DAILY = """
from airflow.sdk import dag, task
from airflow.providers.standard.operators.bash import BashOperator
from insync.adapters.airflow import versioned, versioned_operator

@dag(dag_id="daily", schedule="@daily", catchup=False)
def daily():
    @task
    @versioned(code_version="v1")
    def report(ds=None):
        return f"report for {ds}"

    report()
    versioned_operator(
        BashOperator(task_id="export", bash_command="echo exported {{ ds }}"),
        code_version="auto",
    )

daily()
"""


def test_a_daily_task_reading_its_date_runs_for_each_new_date(airflow):
    """The bug this fixes: `ds` in the signature, `{{ ds }}` in a command, and the next logical
    date used to skip and hand yesterday's value downstream."""
    path = airflow.write(DAILY)
    first = airflow.run(path, "daily", logical_date="2026-12-01")
    assert first.decisions == {"report": "run", "export": "run"}
    assert first.xcoms == {"report": "report for 2026-12-01", "export": "exported 2026-12-01"}

    again = airflow.run(path, "daily", logical_date="2026-12-01")
    assert again.decisions == {"report": "skip", "export": "skip"}

    nextday = airflow.run(path, "daily", logical_date="2026-12-02")
    assert nextday.decisions == {"report": "run", "export": "run"}
    assert nextday.xcoms == {"report": "report for 2026-12-02", "export": "exported 2026-12-02"}
    assert nextday.messages["report"] == (
        "run daily/report: Unsynced, daily/report has new parameter values: ds"
    )
    assert nextday.messages["export"] == (
        "run daily/export: Unsynced, daily/export has new parameter values: bash_command"
    )


ARGS = """
import pandas as pd
from airflow.sdk import dag, task
from insync.adapters.airflow import versioned
from insync.core import fingerprint_table

@dag(dag_id="args", schedule=None, params={{"scale": 2}})
def args():
    @task
    @versioned(code_version="v1")
    def base():
        return pd.DataFrame({{"a": [1, 2]}})  # a value with no parameter fingerprint

    @task
    def loose():
        return pd.DataFrame({{"a": [3, 4]}})  # not versioned: a parameter of its reader

    @task
    @versioned(code_version="v1"{extra})
    def scaled(z, w, label, params=None):
        return f"{{label}}: {{(z['a'].sum() + w['a'].sum()) * params['scale']}}"

    scaled(base(), loose(), label="{{{{ params.scale }}}}x")

args()
"""


def test_arguments_params_and_templated_arguments_are_parameters(airflow):
    path = airflow.write(ARGS.format(extra=", parameter_fingerprints={'w': fingerprint_table}"))
    first = airflow.run(path, "args")
    assert first.decisions == {"base": "run", "scaled": "run"}
    assert first.xcoms["scaled"] == "2x: 20"
    second = airflow.run(path, "args")
    assert second.decisions == {"base": "skip", "scaled": "skip"}

    conf = airflow.run(path, "args", conf={"scale": 3})
    assert conf.decisions == {"base": "skip", "scaled": "run"}
    assert conf.xcoms["scaled"] == "3x: 30"
    assert conf.messages["scaled"].endswith("has new parameter values: label, params")
    with EventStore() as store:
        (latest, *_) = store.history("args/scaled")
    # `z` is the value of a versioned dependency: counted by its data version, not as a parameter.
    assert [name for name, _ in latest.parameters] == ["label", "params", "w"]


def test_an_unfingerprintable_parameter_names_the_ways_out(airflow, capfd: pytest.CaptureFixture[str]):
    path = airflow.write(ARGS.format(extra=""))
    refused = airflow.run(path, "args")
    # `w` comes from a task insync does not version: its value is a parameter, and a DataFrame
    # has no parameter fingerprint; the task fails naming the ways out instead of guessing.
    assert refused.states["scaled"] == "failed"
    output = capfd.readouterr().out
    assert "ParameterError" in output
    assert "parameter 'w' of step args/scaled cannot be fingerprinted" in output

    airflow.write(ARGS.format(extra=", ignore_parameters=['w']"), name=path.stem)
    assert airflow.run(path, "args").decisions == {"base": "skip", "scaled": "run"}
    assert airflow.run(path, "args").decisions == {"base": "skip", "scaled": "skip"}


UNSEEN = """
from airflow.sdk import dag, task, get_current_context, Variable
from insync.adapters.airflow import versioned

@dag(dag_id="unseen", schedule=None)
def unseen():
    @task
    @versioned(code_version="v1")
    def by_context():
        return get_current_context()["ds"]

    @task
    @versioned
    def by_helper():
        return threshold() + 1

    @task
    @versioned(code_version="v1")
    def by_task_instance(ti=None):
        return ti.task_id

    @task
    @versioned(code_version="v1")
    def declared(ds=None):
        return ds

    by_context()
    by_helper()
    by_task_instance()
    declared()


def threshold():
    # Defined below the DAG: the auto code version is computed at the first check, so it is found.
    return int(Variable.get("threshold", default=1))


unseen()
"""


def test_reads_insync_cannot_see_make_the_task_run_and_say_why(airflow):
    path = airflow.write(UNSEEN)
    airflow.run(path, "unseen")
    second = airflow.run(path, "unseen")
    assert second.decisions == {
        "by_context": "run",
        "by_helper": "run",
        "by_task_instance": "run",
        "declared": "skip",
    }
    assert second.messages["by_context"] == (
        "run unseen/by_context: Synced, reads inputs insync cannot see: get_current_context"
    )
    assert second.messages["by_helper"].endswith("reads inputs insync cannot see: Variable.get")
    assert second.messages["by_task_instance"].endswith(
        "reads inputs insync cannot see: ti (in the signature)"
    )


MAPPED = """
from airflow.sdk import dag, task
from airflow.providers.standard.operators.bash import BashOperator
from insync.adapters.airflow import versioned, versioned_operator

@dag(dag_id="expand", schedule=None)
def expand():
    versioned_operator(
        BashOperator.partial(task_id="say", do_xcom_push=True).expand(
            bash_command={commands!r}
        ),
    )

    @task
    @versioned(code_version="v1")
    def double(x):
        return x * 2

    @task
    @versioned(code_version="v1")
    def total(values):
        return sum(values)

    total(double.expand(x={numbers!r}))

expand()
"""


def test_an_edited_expanded_value_reruns_only_its_map_index(airflow, tmp_path: Path):
    path = airflow.write(MAPPED.format(commands=["echo one", "echo two"], numbers=[1, 2, 3]))
    first = airflow.run(path, "expand")
    assert set(first.decisions.values()) == {"run"}
    assert first.xcoms["total"] == 12
    assert set(airflow.run(path, "expand").decisions.values()) == {"skip"}

    airflow.write(MAPPED.format(commands=["echo one", "echo deux"], numbers=[1, 2, 4]), name=path.stem)
    edited = airflow.run(path, "expand")
    assert edited.decisions == {
        "say[0]": "skip",
        "say[1]": "run",
        "double[0]": "skip",
        "double[1]": "skip",
        "double[2]": "run",
        "total": "run",  # reads the mapped task's values: their data versions are a parameter
    }
    assert edited.xcoms["say[1]"] == "deux"
    assert edited.xcoms["total"] == 14
    assert edited.messages["say[1]"] == (
        "run expand/say[1]: Unsynced, expand/say[1] has new parameter values: bash_command"
    )

    # A shorter list: the reader sees fewer values, so it runs (no stale index is summed).
    airflow.write(MAPPED.format(commands=["echo one"], numbers=[1, 2]), name=path.stem)
    shorter = airflow.run(path, "expand")
    assert shorter.decisions["total"] == "run"
    assert shorter.xcoms["total"] == 6
