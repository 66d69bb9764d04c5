"""The execution protocol end to end on real `dag.test()` runs."""

from __future__ import annotations

import logging
import re

import pytest
from insync.core import EventStore

CHAIN = """
from airflow.sdk import dag, task
from insync.adapters.airflow import versioned

@dag(dag_id="chain", schedule=None)
def chain():
    @task
    @versioned(code_version="v1")
    def a():
        return 2

    @task
    @versioned(code_version="{b_version}")
    def b(x):
        return x * 10

    @task
    @versioned(code_version="{c_version}")
    def c(x):
        return x + 1

    c(b(a()))

chain()
"""


def test_chain_skips_in_sync_and_runs_new_code_version(airflow):
    path = airflow.write(CHAIN.format(b_version="v1", c_version="v1"))
    first = airflow.run(path, "chain")
    assert first.states == {"a": "success", "b": "success", "c": "success"}
    assert first.decisions == {"a": "run", "b": "run", "c": "run"}
    assert first.xcoms["c"] == 21

    second = airflow.run(path, "chain")
    assert second.states == {"a": "success", "b": "success", "c": "success"}
    assert second.decisions == {"a": "skip", "b": "skip", "c": "skip"}
    assert second.xcoms == {"a": 2, "b": 20, "c": 21}

    # c has a new code version: a and b skip (and do not cascade), c runs on b's cached value.
    airflow.write(CHAIN.format(b_version="v1", c_version="v2"), name=path.stem)
    third = airflow.run(path, "chain")
    assert third.states == {"a": "success", "b": "success", "c": "success"}
    assert third.decisions == {"a": "skip", "b": "skip", "c": "run"}
    assert third.xcoms["c"] == 21

    # b's code version bump re-runs b and, after it, its dependent c; a stays skipped.
    airflow.write(CHAIN.format(b_version="v2", c_version="v2"), name=path.stem)
    fourth = airflow.run(path, "chain")
    assert fourth.decisions == {"a": "skip", "b": "run", "c": "run"}

    with EventStore() as store:
        assert len(store.history("chain/a")) == 1
        assert len(store.history("chain/b")) == 2
        assert len(store.history("chain/c")) == 3
        latest_c = store.latest_event("chain/c")
        assert [str(i.key) for i in latest_c.inputs] == ["chain/b"]
        assert latest_c.inputs[0].data_version == store.latest_event("chain/b").data_version
        assert latest_c.metadata["dag_id"] == "chain"
        assert latest_c.framework == "airflow"


FAILING = """
from airflow.sdk import dag, task
from insync.adapters.airflow import versioned

@dag(dag_id="failing", schedule=None)
def failing():
    @task
    @versioned(code_version="v1")
    def ok():
        return 1

    @task
    @versioned(code_version="v1")
    def boom(x):
        raise ValueError("upstream data is broken")

    boom(ok())

failing()
"""


def test_each_task_instance_says_what_insync_cost_it(airflow, caplog: pytest.LogCaptureFixture):
    """The marker cannot time its own push; the log line, written after it, has the whole cost."""
    path = airflow.write(CHAIN.format(b_version="v1", c_version="v1"))
    airflow.run(path, "chain")
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="insync.airflow"):
        second = airflow.run(path, "chain")
    assert second.decisions == {"a": "skip", "b": "skip", "c": "skip"}
    before_push = sorted(m["overhead_ms_before_push"] for m in second.markers.values())
    assert len(before_push) == 3 and before_push[0] > 0
    assert not any("overhead_ms" in m for m in second.markers.values())
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("insync overhead:")]
    totals = sorted(float(re.match(r"insync overhead: ([\d.]+) ms", line)[1]) for line in lines)  # type: ignore[index]
    assert len(totals) == 3
    # Each whole includes its marker's push, so it exceeds what the marker could say.
    assert all(total >= part for total, part in zip(totals, before_push, strict=True))


def test_failing_task_records_nothing(airflow):
    path = airflow.write(FAILING)
    run = airflow.run(path, "failing")
    assert run.states == {"ok": "success", "boom": "failed"}
    with EventStore() as store:
        assert len(store.history("failing/ok")) == 1
        assert store.history("failing/boom") == []
    # The next run retries the failed asset (still MISSING) and skips the good one.
    again = airflow.run(path, "failing")
    assert again.decisions == {"ok": "skip"}
    assert again.states["boom"] == "failed"


RETRY = """
from datetime import timedelta
from airflow.sdk import dag, task, Asset
from insync.adapters.airflow import versioned

def fail_first_try(context, result):
    if context["ti"].try_number == 1:
        raise RuntimeError("lost the worker after the record")

@dag(dag_id="retry", schedule=None)
def retry():
    @task(
        outlets=[Asset("retry/out")],
        retries=1,
        retry_delay=timedelta(0),
        post_execute=fail_first_try,
    )
    @versioned(code_version="v1")
    def produce():
        return 5

    produce()

retry()
"""


def test_retry_after_record_does_not_record_twice(airflow):
    path = airflow.write(RETRY)
    run = airflow.run(path, "retry")
    assert run.states == {"produce": "success"}
    assert run.decisions == {"produce": "skip"}  # try 2 found try 1's record
    assert run.xcoms["produce"] == 5
    with EventStore() as store:
        history = store.history("retry/out")
        assert len(history) == 1
    events = airflow.asset_events("retry/out")
    # The first try never succeeded in Airflow's eyes: the retry still emits the asset event.
    assert [e["data_version"] for e in events] == [str(history[0].data_version)]


CROSS_DAG = """
from airflow.sdk import dag, task, Asset
from insync.adapters.airflow import versioned

orders = Asset("raw/orders")

@dag(dag_id="producer", schedule=None)
def producer():
    @task(outlets=[orders])
    @versioned(code_version="{version}")
    def load_orders():
        return [1, 2, 3]

    load_orders()

@dag(dag_id="consumer", schedule=[orders])
def consumer():
    @task(inlets=[orders])
    @versioned(code_version="v1")
    def report():
        return "report"

    @task
    @versioned(code_version=None)
    def always():
        return "unversioned"

    report()
    always()

producer()
consumer()
"""


def test_asset_scheduled_dag_depends_on_the_producer_dag(airflow):
    path = airflow.write(CROSS_DAG.format(version="v1"))
    assert airflow.run(path, "producer").decisions == {"load_orders": "run"}
    first = airflow.run(path, "consumer")
    assert first.decisions == {"report": "run", "always": "run"}
    second = airflow.run(path, "consumer")
    # No code version: unknown, so it never skips.
    assert second.decisions == {"report": "skip", "always": "run"}

    airflow.write(CROSS_DAG.format(version="v2"), name=path.stem)
    assert airflow.run(path, "producer").decisions == {"load_orders": "run"}
    assert airflow.run(path, "consumer").decisions == {"report": "run", "always": "run"}
    with EventStore() as store:
        report = store.latest_event("consumer/report")
        producer = store.latest_event("raw/orders")
        assert [(str(i.key), i.event_id) for i in report.inputs] == [("raw/orders", producer.id)]


def test_a_bad_force_setting_fails_the_task_and_records_nothing(airflow):
    path = airflow.write(CROSS_DAG.format(version="v1"))
    run = airflow.run(path, "producer", conf={"insync_force": 3})
    assert run.states == {"load_orders": "failed"}
    with EventStore() as store:
        # Refused before the check: not even registered (history() of an unknown key raises).
        assert "raw/orders" not in {str(k) for k in store.definitions()}
