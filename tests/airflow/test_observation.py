"""Source observation: the sensor in its three modes and the event trigger."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from insync.core import ConfigError, EventStore

OBSERVED = """
from pathlib import Path
from airflow.sdk import dag, task, Asset
from insync.adapters.airflow import InsyncObservationSensor, versioned
from insync.adapters.airflow.observe import observe_file

SOURCE = {source!r}

@dag(dag_id="observed", schedule=None)
def observed():
    watch = InsyncObservationSensor(
        task_id="watch",
        outlets=[Asset("raw/numbers")],
        observe=observe_file,
        observe_kwargs={{"path": SOURCE}},
        poke_interval=0.1,
        timeout=1,
        soft_fail=True,
    )

    @task
    @versioned(code_version="v1")
    def number():
        return int(Path(SOURCE).read_text())

    @task
    @versioned(code_version="v1")
    def multiplied(n):
        return n * 2

    @task
    @versioned(code_version="v1")
    def unrelated():
        return 0

    n = number()
    watch >> n
    multiplied(n)
    unrelated()

observed()
"""


def test_edited_source_reruns_exactly_the_downstream_chain(airflow, tmp_path: Path):
    source = tmp_path / "numbers.txt"
    source.write_text("3")
    path = airflow.write(OBSERVED.format(source=str(source)))

    first = airflow.run(path, "observed")
    assert first.states == dict.fromkeys(["watch", "number", "multiplied", "unrelated"], "success")
    assert first.decisions["watch"] == "observed"
    assert first.xcoms["multiplied"] == 6

    # Unchanged source: the sensor times out softly, Airflow skips its chain; the rest is in sync.
    # Its pokes write nothing: no event, no registration.
    with EventStore() as store:
        before = (store.last_event_id(), store.definitions_revision())
    second = airflow.run(path, "observed")
    assert second.states["watch"] == "skipped"
    assert second.decisions == {"unrelated": "skip"}
    with EventStore() as store:
        assert (store.last_event_id(), store.definitions_revision()) == before

    source.write_text("5")
    third = airflow.run(path, "observed")
    assert third.states == dict.fromkeys(["watch", "number", "multiplied", "unrelated"], "success")
    assert third.decisions == {
        "watch": "observed",
        "number": "run",
        "multiplied": "run",
        "unrelated": "skip",
    }
    assert third.xcoms["multiplied"] == 10

    with EventStore() as store:
        observations = store.history("raw/numbers", kind="observation")
        assert len(observations) == 2  # unchanged looks are not recorded again
        number = store.latest_event("observed/number")
        assert [(str(i.key), i.data_version) for i in number.inputs] == [
            ("raw/numbers", observations[0].data_version)
        ]
    events = airflow.asset_events("raw/numbers")
    assert [e["data_version"] for e in events] == [str(o.data_version) for o in reversed(observations)]


WAITING = """
from airflow.sdk import dag, task
from insync.adapters.airflow import InsyncObservationSensor, versioned
from insync_airflow_test_sources import flip

@dag(dag_id="waiting_{mode}", schedule=None)
def waiting():
    watch = InsyncObservationSensor(
        task_id="watch",
        key="raw/flipping",
        observe=flip,
        observe_kwargs={{"counter": {counter!r}, "switch_at": 3}},
        poke_interval=0.1,
        timeout=30,
        {mode_arg},
    )

    @task
    @versioned(code_version="v1")
    def consume():
        return "done"

    watch >> consume()

waiting()
"""


@pytest.mark.parametrize(
    ("mode", "mode_arg"),
    [("reschedule", 'mode="reschedule"'), ("deferrable", "deferrable=True")],
)
def test_sensor_waits_until_the_source_changes(airflow, tmp_path: Path, mode: str, mode_arg: str):
    counter = tmp_path / "looks.txt"
    path = airflow.write(WAITING.format(mode=mode, counter=str(counter), mode_arg=mode_arg))
    dag_id = f"waiting_{mode}"

    first = airflow.run(path, dag_id)  # look 1: v1, never consumed -> succeeds at once
    assert first.states == {"watch": "success", "consume": "success"}
    assert first.xcoms["watch"]["data_version"] == "v1"

    second = airflow.run(path, dag_id)  # look 2: v1 already consumed -> waits; look 3: v2
    assert second.states == {"watch": "success", "consume": "success"}
    assert second.xcoms["watch"]["data_version"] == "v2"
    assert second.decisions["consume"] == "run"
    assert int(counter.read_text()) == 3
    with EventStore() as store:
        versions = [str(e.data_version) for e in store.history("raw/flipping")]
    assert versions == ["v2", "v1"]


def _first_event(trigger: Any, timeout: float) -> Any:
    async def go() -> Any:
        events = trigger.run()
        try:
            return await asyncio.wait_for(events.__anext__(), timeout)
        except TimeoutError:
            return None
        finally:
            await events.aclose()

    return asyncio.run(go())


def test_trigger_fires_on_change_and_not_without(tmp_path: Path, sqlite_url: str):
    from airflow.sdk import Asset, AssetWatcher
    from insync.adapters.airflow import InsyncObservationTrigger
    from insync.adapters.airflow.observe import observe_file

    source = tmp_path / "source.csv"
    source.write_text("a,b\n1,2\n")
    trigger = InsyncObservationTrigger(
        key="raw/source",
        observe=observe_file,
        observe_kwargs={"path": str(source)},
        poll_interval=0.05,
        store=sqlite_url,
    )
    # It is a valid AssetWatcher trigger and survives Airflow's serialize/rebuild round trip.
    Asset("raw/source", watchers=[AssetWatcher(name="source", trigger=trigger)])
    classpath, kwargs = trigger.serialize()
    assert classpath == "insync.adapters.airflow._trigger.InsyncObservationTrigger"
    trigger = InsyncObservationTrigger(**kwargs)

    first = _first_event(trigger, timeout=60)  # a bound for a busy machine, not a speed goal
    assert first is not None and first.payload["new"] is True  # never observed before
    assert _first_event(trigger, timeout=0.5) is None  # unchanged: no event
    with EventStore(sqlite_url) as store:
        before = (store.last_event_id(), store.definitions_revision())
    unchanged = trigger.poll()
    assert not unchanged.new and unchanged.unconsumed  # nobody reads raw/source yet
    with EventStore(sqlite_url) as store:  # a poll on an unchanged source writes nothing
        assert (store.last_event_id(), store.definitions_revision()) == before
    source.write_text("a,b\n1,3\n")
    changed = _first_event(trigger, timeout=60)
    assert changed is not None
    assert changed.payload["data_version"] != first.payload["data_version"]
    with EventStore(sqlite_url) as store:
        assert len(store.history("raw/source", kind="observation")) == 2


LOOP_PROBE = """
import asyncio


def on_loop():
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return "off the loop"
    return "on the loop"


WHERE = [("import", on_loop())]


def observe():
    WHERE.append(("observe", on_loop()))
    return "v1"
"""


def test_trigger_does_no_blocking_work_on_the_event_loop(
    tmp_path: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
):
    """The triggerer rebuilds a trigger from its serialized kwargs inside its one event loop and
    runs it there: importing the observe module, observing, and opening (here creating and
    migrating) the store must all happen in worker threads, or every trigger of the triggerer
    stalls meanwhile."""
    import importlib

    import sqlalchemy as sa
    from insync.adapters.airflow import InsyncObservationTrigger

    module = f"insync_loop_probe_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{module}.py").write_text(LOOP_PROBE)
    monkeypatch.syspath_prepend(str(tmp_path))
    connects: list[str] = []

    def on_connect(*_: Any) -> None:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            connects.append("off the loop")
        else:
            connects.append("on the loop")

    async def as_the_triggerer() -> Any:
        trigger = InsyncObservationTrigger(
            key="raw/probe", observe=f"{module}.observe", poll_interval=60, store=sqlite_url
        )
        events = trigger.run()
        try:
            return await asyncio.wait_for(events.__anext__(), 60)
        finally:
            await events.aclose()

    sa.event.listen(sa.Engine, "connect", on_connect)
    try:
        event = asyncio.run(as_the_triggerer())
    finally:
        sa.event.remove(sa.Engine, "connect", on_connect)
    assert event.payload["data_version"] == "v1"
    assert importlib.import_module(module).WHERE == [("import", "off the loop"), ("observe", "off the loop")]
    assert connects and set(connects) == {"off the loop"}


def test_trigger_rejects_functions_the_triggerer_cannot_import():
    from insync.adapters.airflow import InsyncObservationTrigger

    with pytest.raises(ConfigError, match="cannot be imported by the triggerer"):
        InsyncObservationTrigger(key="raw/x", observe=lambda: "v1")
    with pytest.raises(ConfigError, match="cannot import observe function"):
        InsyncObservationTrigger(key="raw/x", observe="no_such_module.observe")
    with pytest.raises(ConfigError, match="fire_on"):
        InsyncObservationTrigger(key="raw/x", observe="os.getcwd", fire_on="always")  # type: ignore[arg-type]


def test_observe_sql_and_directory(tmp_path: Path, sqlite_url: str):
    import sqlalchemy as sa
    from insync.adapters.airflow.observe import observe_directory, observe_sql

    url = f"sqlite:///{tmp_path / 'src.db'}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("create table t (x int)"))
        conn.execute(sa.text("insert into t values (1)"))
    before = observe_sql(url=url, query="select x from t order by x")
    with engine.begin() as conn:
        conn.execute(sa.text("insert into t values (2)"))
    engine.dispose()
    assert observe_sql(url=url, query="select x from t order by x") != before
    with pytest.raises(ConfigError, match="exactly one of url"):
        observe_sql(query="select 1")

    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "a.txt").write_text("1")
    first = observe_directory(path=folder)
    (folder / "b.txt").write_text("2")
    assert observe_directory(path=folder) != first


SQL_SOURCE = """
from airflow.sdk import dag, task
from insync.adapters.airflow import InsyncObservationSensor, versioned
from insync.adapters.airflow.observe import observe_sql

@dag(dag_id="sql_source", schedule=None)
def sql_source():
    watch = InsyncObservationSensor(
        task_id="watch_orders",
        key="raw/orders_table",
        observe=observe_sql,
        observe_kwargs={"conn_id": "orders_db", "query": "select id from orders order by id"},
        wait_for_change=False,
    )

    @task
    @versioned(code_version="v1")
    def count_orders():
        return 1

    watch >> count_orders()

sql_source()
"""


def test_sql_source_through_an_airflow_connection(airflow, tmp_path: Path, monkeypatch):
    import sqlalchemy as sa

    database = tmp_path / "orders.db"
    engine = sa.create_engine(f"sqlite:///{database}")
    with engine.begin() as conn:
        conn.execute(sa.text("create table orders (id int)"))
        conn.execute(sa.text("insert into orders values (1)"))
    monkeypatch.setenv("AIRFLOW_CONN_ORDERS_DB", f'{{"conn_type": "sqlite", "host": "{database}"}}')
    path = airflow.write(SQL_SOURCE)
    first = airflow.run(path, "sql_source")
    assert first.decisions == {"watch_orders": "observed", "count_orders": "run"}
    assert airflow.run(path, "sql_source").decisions["count_orders"] == "skip"
    with engine.begin() as conn:
        conn.execute(sa.text("insert into orders values (2)"))
    engine.dispose()
    third = airflow.run(path, "sql_source")
    assert third.decisions["count_orders"] == "run"
    assert third.xcoms["watch_orders"]["new"] is True
