"""versioned_operator on classic operators, mapped tasks, and the Airflow asset events."""

from __future__ import annotations

from pathlib import Path

from insync.core import EventStore

BASH = """
from airflow.sdk import dag, Asset
from airflow.providers.standard.operators.bash import BashOperator
from insync.adapters.airflow import versioned_operator

@dag(dag_id="bash", schedule=None)
def bash():
    versioned_operator(
        BashOperator(
            task_id="export",
            bash_command="echo ran >> {counter} && echo {message}",
            outlets=[Asset("exports/report")],
        ),
        code_version="{version}",
    )

bash()
"""


def test_bash_operator_wrapper_skips_and_emits_asset_events(airflow, tmp_path: Path):
    counter = tmp_path / "counter.txt"
    source = BASH.format(counter=counter, message="hello", version="v1")
    path = airflow.write(source)

    first = airflow.run(path, "bash")
    assert first.states == {"export": "success"}
    assert first.decisions == {"export": "run"}
    assert first.xcoms["export"] == "hello"

    second = airflow.run(path, "bash")
    assert second.decisions == {"export": "skip"}
    assert second.xcoms["export"] == "hello"  # the cached XCom, without running bash
    assert counter.read_text().count("ran") == 1

    airflow.write(BASH.format(counter=counter, message="hello", version="v2"), name=path.stem)
    third = airflow.run(path, "bash")
    assert third.decisions == {"export": "run"}
    assert counter.read_text().count("ran") == 2

    forced = airflow.run(path, "bash", conf={"insync_force": ["export"]})
    assert forced.decisions == {"export": "run"}
    assert counter.read_text().count("ran") == 3

    with EventStore() as store:
        history = store.history("exports/report")
    assert len(history) == 3
    events = airflow.asset_events("exports/report")
    # One Airflow asset event per real materialization (none for the skipped run 2), carrying
    # the insync versions.
    assert [e["data_version"] for e in events] == [str(e.data_version) for e in reversed(history)]
    assert [e["code_version"] for e in events] == ["v1", "v2", "v2"]
    assert {e["insync_key"] for e in events} == {"exports/report"}


def test_bash_operator_auto_code_version_follows_the_command(airflow, tmp_path: Path):
    counter = tmp_path / "counter.txt"
    source = BASH.format(counter=counter, message="a", version="auto")
    path = airflow.write(source)
    assert airflow.run(path, "bash").decisions == {"export": "run"}
    assert airflow.run(path, "bash").decisions == {"export": "skip"}
    airflow.write(BASH.format(counter=counter, message="b", version="auto"), name=path.stem)
    changed = airflow.run(path, "bash")
    assert changed.decisions == {"export": "run"}
    assert changed.xcoms["export"] == "b"


MAPPED = """
from airflow.sdk import dag, task
from airflow.providers.standard.operators.bash import BashOperator
from insync.adapters.airflow import versioned, versioned_operator

@dag(dag_id="mapped", schedule=None)
def mapped():
    @task
    @versioned(code_version="v1")
    def square(x):
        return x * x

    @task
    def total(values):
        return sum(values)

    total(square.expand(x=[1, 2, 3]))
    versioned_operator(
        BashOperator.partial(task_id="shout", do_xcom_push=True).expand(
            bash_command=["echo one", "echo two"]
        ),
        code_version="v1",
    )

mapped()
"""


def test_mapped_tasks_are_one_asset_partition_per_map_index(airflow):
    path = airflow.write(MAPPED)
    first = airflow.run(path, "mapped")
    assert set(first.states.values()) == {"success"}
    assert first.decisions == {
        "square[0]": "run",
        "square[1]": "run",
        "square[2]": "run",
        "shout[0]": "run",
        "shout[1]": "run",
    }
    assert first.xcoms["total"] == 14

    second = airflow.run(path, "mapped")
    assert set(second.decisions.values()) == {"skip"}
    assert second.xcoms["total"] == 14
    assert second.xcoms["shout[1]"] == "two"
    with EventStore() as store:
        keys = {str(k) for k in store.definitions()}
        square = store.status("mapped/square")
        shout = store.status("mapped/shout", partition="1")
    # One asset per mapped task; each map index is one of its partitions.
    assert {"mapped/square", "mapped/shout"} <= keys
    assert not any(k.startswith("mapped/square/") for k in keys)
    assert square.partitions is not None and square.partitions.total == 3
    assert square.partitions.synced == 3
    assert shout.partition == "1" and shout.status.value == "FRESH"


OUTLETS = """
from airflow.sdk import dag, task, Asset
from insync.adapters.airflow import versioned

@dag(dag_id="outlets", schedule=None)
def outlets():
    @task(outlets=[Asset("s3://lake/raw/orders.csv")])
    @versioned(code_version="v1")
    def orders():
        return [1, 2]

    @task(inlets=[Asset("s3://lake/raw/orders.csv")], outlets=[Asset("analytics/summary")])
    @versioned(code_version="v1", data_version=lambda value: f"n={len(value)}")
    def summary():
        return ["x"]

    orders() >> summary()

outlets()
"""


def test_asset_names_map_to_keys_and_user_data_version(airflow):
    path = airflow.write(OUTLETS)
    airflow.run(path, "outlets")
    with EventStore() as store:
        orders = store.latest_event("s3/lake/raw/orders.csv")
        summary = store.latest_event("analytics/summary")
    assert orders is not None
    assert str(summary.data_version) == "n=1"
    assert summary.user_provided
    # The inlet and the versioned upstream task name the same asset: one dependency.
    assert [str(i.key) for i in summary.inputs] == ["s3/lake/raw/orders.csv"]
    assert airflow.asset_events("analytics/summary")[0]["data_version"] == "n=1"


DEFERRING = """
from datetime import timedelta
from airflow.sdk import dag, BaseOperator
from airflow.providers.standard.triggers.temporal import TimeDeltaTrigger
from insync.adapters.airflow import versioned_operator


class WaitThenAnswer(BaseOperator):
    def execute(self, context):
        self.defer(trigger=TimeDeltaTrigger(timedelta(seconds=0)), method_name="done")

    def done(self, context, event=None):
        return 42


@dag(dag_id="deferring", schedule=None)
def deferring():
    versioned_operator(WaitThenAnswer(task_id="answer"), code_version="v1")

deferring()
"""


def test_deferrable_operator_is_recorded_when_it_resumes(airflow):
    path = airflow.write(DEFERRING)
    first = airflow.run(path, "deferring")
    assert first.states == {"answer": "success"}
    assert first.decisions == {"answer": "run"}
    assert first.xcoms["answer"] == 42
    second = airflow.run(path, "deferring")
    assert second.decisions == {"answer": "skip"}  # no deferral at all this time
    assert second.xcoms["answer"] == 42
    with EventStore() as store:
        assert len(store.history("deferring/answer")) == 1


def test_a_postgres_store(airflow, postgres_url: str, monkeypatch):
    monkeypatch.setenv("INSYNC_DATABASE_URL", postgres_url)
    path = airflow.write(DEFERRING.replace('"deferring"', '"deferring_pg"'))
    assert airflow.run(path, "deferring_pg").decisions == {"answer": "run"}
    assert airflow.run(path, "deferring_pg").decisions == {"answer": "skip"}
    with EventStore(postgres_url) as store:
        assert [e.framework for e in store.history("deferring_pg/answer")] == ["airflow"]


TASK_BASH = """
from airflow.sdk import dag, task
from insync.adapters.airflow import versioned, versioned_operator

@dag(dag_id="task_bash", schedule=None)
def task_bash():
    @task.bash
    def shout():
        return "echo ran >> {counter} && echo loud"

    @task.bash
    @versioned(code_version="v1")
    def misplaced():
        return "echo never"

    versioned_operator(shout(), code_version="auto")
    misplaced()

task_bash()
"""


def test_task_bash_is_versioned_as_an_operator_and_refused_as_a_function(airflow, tmp_path: Path):
    counter = tmp_path / "counter.txt"
    path = airflow.write(TASK_BASH.format(counter=counter))
    first = airflow.run(path, "task_bash")
    assert first.states == {"shout": "success", "misplaced": "failed"}
    assert first.xcoms["shout"] == "loud"
    second = airflow.run(path, "task_bash")
    assert second.decisions == {"shout": "skip"}
    assert second.xcoms["shout"] == "loud"
    assert counter.read_text().count("ran") == 1
    with EventStore() as store:
        assert "task_bash/misplaced" not in {str(k) for k in store.definitions()}
