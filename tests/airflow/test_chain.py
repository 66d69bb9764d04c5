from __future__ import annotations

from insync.core import EventStore

CHAIN = '''
from airflow.sdk import dag, task
from insync.adapters.airflow import versioned

@dag(dag_id="{dag_id}", schedule=None)
def chain():
    @task
    @versioned(code_version="v1")
    def a():
        return 2

    @task
    @versioned(code_version="v1")
    def b(x):
        return x * 10

    @task
    @versioned(code_version="{c_version}")
    def c(x):
        return x + 1

    c(b(a()))

chain()
'''


def test_chain_skips_in_sync_and_runs_new_code_version(airflow, insync_home):
    path = airflow.write(CHAIN.format(dag_id="chain", c_version="v1"))
    first = airflow.run(path, "chain")
    assert first.states == {"a": "success", "b": "success", "c": "success"}
    assert first.decisions == {"a": "run", "b": "run", "c": "run"}
    assert first.xcoms["c"] == 21

    second = airflow.run(path, "chain")
    assert second.decisions == {"a": "skip", "b": "skip", "c": "skip"}
    assert second.xcoms == {"a": 2, "b": 20, "c": 21}

    path = airflow.write(CHAIN.format(dag_id="chain", c_version="v2"), name=path.stem)
    third = airflow.run(path, "chain")
    assert third.states == {"a": "success", "b": "success", "c": "success"}
    assert third.decisions == {"a": "skip", "b": "skip", "c": "run"}
    assert third.xcoms["c"] == 21  # c received b's cached value
    with EventStore() as store:
        assert len(store.history("chain/c")) == 2
        assert len(store.history("chain/b")) == 1
        assert [str(i.key) for i in store.latest_event("chain/c").inputs] == ["chain/b"]
