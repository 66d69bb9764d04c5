"""Everything a Prefect task reads: parameters, partitions, `.map()`, unseen reads, stable deps.

Runs whose parameters change (and `.map()` backfills) each run in their own process, as a
scheduler would start them; the shared Prefect server of conftest.py serves them all.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest
from insync.adapters.prefect import versioned
from insync.core import (
    ConfigError,
    DynamicPartitions,
    EventStore,
    InvalidPartitionKey,
    ParameterError,
    SerializationError,
    StaleStatus,
    StaticPartitions,
    TimeWindowPartitions,
)
from prefect import flow, task

SCRIPT = textwrap.dedent(
    """
    import datetime as dt
    import json
    import sys
    from pathlib import Path

    from prefect import flow, task, unmapped
    from insync.adapters.prefect import versioned
    from insync.core import AssetSpec, EventStore, TimeWindowPartitions, observe_file

    DAYS = TimeWindowPartitions("daily", start="2026-11-01", end="2026-11-06")


    @versioned("demo/extract", code_version="v1")
    @task
    def extract(day: str) -> str:
        return f"rows for {day}"


    @flow
    def daily(day: str) -> str:
        return extract(day)


    @versioned("demo/orders", code_version="v1", deps=["demo/raw"], partitions=DAYS, partition="day")
    @task
    def orders(day: dt.date, folder: str) -> dict:
        lines = (Path(folder) / f"{day.isoformat()}.csv").read_text().splitlines()
        return {"day": day.isoformat(), "rows": len(lines), "first": lines[0]}


    @flow
    def backfill(days: list[dt.date], folder: str) -> list[dict]:
        return [future.result() for future in orders.map(days, unmapped(folder))]


    def observe(days: list[dt.date], folder: str) -> None:
        # What an observation flow does: one observation per day file, partition by partition.
        with EventStore() as store:
            store.register([AssetSpec("demo/raw", kind="observable", partitions=DAYS)])
            for day in days:
                version = observe_file(Path(folder) / f"{day.isoformat()}.csv")
                store.record_observation("demo/raw", version, partition=day.isoformat())


    @versioned("demo/flag", code_version="v1")
    @task
    def flag() -> bool:
        return True


    @versioned("demo/use", code_version="v1")
    @task
    def use(x: bool) -> str:
        return f"use {x}"


    @flow
    def submitted() -> str:
        return use.submit(flag.submit()).result()


    @flow
    def plain() -> str:
        return use(flag())


    if __name__ == "__main__":
        name, args = sys.argv[1], json.loads(sys.argv[2])
        if name == "backfill":
            days = [dt.date.fromisoformat(d) for d in args["days"]]
            observe(days, args["folder"])
            state = backfill(days, args["folder"], return_state=True)
        else:
            state = {"daily": daily, "submitted": submitted, "plain": plain}[name](
                **args, return_state=True
            )
        print("RESULT " + json.dumps(state.result()))
    """
)


@pytest.fixture
def run_process(tmp_path: Path) -> Any:
    """Run one flow of SCRIPT in a new process; return its value and insync's log lines."""
    script = tmp_path / "parameters_flow.py"
    script.write_text(SCRIPT)
    env = {
        **os.environ,
        "INSYNC_DATABASE_URL": f"sqlite:///{tmp_path / 'store' / 'insync.db'}",
        "PREFECT_LOCAL_STORAGE_PATH": str(tmp_path / "shared-results"),
    }

    def run(name: str, **args: Any) -> tuple[Any, list[str]]:
        done = subprocess.run(
            [sys.executable, str(script), name, json.dumps(args)],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
        )
        output = done.stdout + done.stderr
        assert done.returncode == 0, output
        result = next(line for line in done.stdout.splitlines() if line.startswith("RESULT "))
        decisions = [
            line.split(" - ", 1)[1]
            for line in output.splitlines()
            if " - run demo/" in line or " - skip demo/" in line
        ]
        return json.loads(result.removeprefix("RESULT ")), decisions

    return run


def test_a_changed_parameter_runs_the_task_again(run_process: Any, tmp_path: Path) -> None:
    # The case: `daily(day)` calls `extract(day)`; the second day must not get the
    # first day's rows.
    assert run_process("daily", day="2026-11-30") == (
        "rows for 2026-11-30",
        ["run demo/extract: Never materialized"],
    )
    assert run_process("daily", day="2026-12-01") == (
        "rows for 2026-12-01",
        ["run demo/extract: Unsynced, demo/extract has new parameter values: day"],
    )
    assert run_process("daily", day="2026-12-01") == ("rows for 2026-12-01", ["skip demo/extract: Synced"])
    with EventStore(f"sqlite:///{tmp_path / 'store' / 'insync.db'}") as store:
        assert len(store.history("demo/extract")) == 2


def test_map_backfills_one_partition_per_call_and_reruns_only_the_changed_day(
    run_process: Any, tmp_path: Path
) -> None:
    folder = tmp_path / "days"
    folder.mkdir()
    days = [(dt.date(2026, 11, 1) + dt.timedelta(days=n)).isoformat() for n in range(5)]
    for day in days:
        (folder / f"{day}.csv").write_text(f"{day},a\n{day},b\n")

    value, decisions = run_process("backfill", days=days, folder=str(folder))
    assert value == [{"day": day, "rows": 2, "first": f"{day},a"} for day in days]
    assert sorted(decisions) == [f"run demo/orders[{day}]: Never materialized" for day in days]

    (folder / "2026-11-03.csv").write_text("late,fix\n")
    value, decisions = run_process("backfill", days=days, folder=str(folder))
    assert value[2] == {"day": "2026-11-03", "rows": 1, "first": "late,fix"}
    assert value[:2] + value[3:] == [
        {"day": day, "rows": 2, "first": f"{day},a"} for day in days if day != "2026-11-03"
    ]
    assert sorted(decisions) == sorted(
        [f"skip demo/orders[{day}]: Synced" for day in days if day != "2026-11-03"]
        + ["run demo/orders[2026-11-03]: Unsynced, demo/raw[2026-11-03] has a new data version"]
    )
    with EventStore(f"sqlite:///{tmp_path / 'store' / 'insync.db'}") as store:
        rollup = store.status("demo/orders").partitions
        assert rollup is not None
        assert (rollup.total, rollup.synced, rollup.unsynced, rollup.missing) == (5, 5, (), ())
        assert len(store.history("demo/orders", partition="2026-11-03")) == 2
        assert len(store.history("demo/orders", partition="2026-11-01")) == 1


def test_a_dep_inferred_once_stays_when_the_call_shape_hides_it(run_process: Any, tmp_path: Path) -> None:
    # `flag.submit()` hands `use` a future: Prefect links it, the dep is inferred. `use(flag())`
    # hands it `True`, which Prefect cannot link to the run that returned it: the argument is
    # a parameter now, but the dep on demo/flag is not "removed".
    assert run_process("submitted")[0] == "use True"
    value, decisions = run_process("plain")
    assert value == "use True"
    assert decisions == [
        "skip demo/flag: Synced",
        "run demo/use: Unsynced, demo/use has new parameter values: x",
    ]
    assert run_process("plain")[1] == ["skip demo/flag: Synced", "skip demo/use: Synced"]
    with EventStore(f"sqlite:///{tmp_path / 'store' / 'insync.db'}") as store:
        deps = {str(k): [str(d) for d in spec.deps] for k, spec in store.definitions().items()}
    assert deps["demo/use"] == ["demo/flag"]


def test_versioned_flow_parameters_are_its_parameters(run_flow: Any) -> None:
    calls: list[str] = []

    @versioned("demo/summary", code_version="v1")
    @flow
    def summary(day: str, scale: int = 1) -> str:
        calls.append(day)
        return f"{day} x{scale}"

    assert run_flow(summary, "2026-11-30", tasks=0)[0] == "2026-11-30 x1"
    assert run_flow(summary, "2026-12-01", tasks=0)[0] == "2026-12-01 x1"
    assert run_flow(summary, "2026-12-01", tasks=0)[0] == "2026-12-01 x1"  # Cached, from the value cache
    assert run_flow(summary, "2026-12-01", scale=2, tasks=0)[0] == "2026-12-01 x2"
    assert calls == ["2026-11-30", "2026-12-01", "2026-12-01"]
    with EventStore() as store:
        status = store.status("demo/summary")
        assert status.status is StaleStatus.FRESH
        assert [name for name, _ in status.parameters] == ["day", "scale"]


def test_a_versioned_flow_partitioned_by_its_parameter(run_flow: Any) -> None:
    calls: list[str] = []

    @versioned(
        "demo/regions", code_version="v1", partitions=StaticPartitions(["eu", "us"]), partition="region"
    )
    @flow
    def regional(region: str) -> str:
        calls.append(region)
        return f"sales in {region}"

    assert [run_flow(regional, r, tasks=0)[0] for r in ("eu", "us", "eu")] == [
        "sales in eu",
        "sales in us",
        "sales in eu",
    ]
    assert calls == ["eu", "us"]
    error, _ = run_flow(regional, "asia", tasks=0, expect="Failed")
    assert isinstance(error, InvalidPartitionKey) and "'asia'" in str(error)
    with EventStore() as store:
        rollup = store.status("demo/regions").partitions
        assert rollup is not None and (rollup.total, rollup.synced) == (2, 2)


def test_ignored_and_fingerprinted_parameters(run_flow: Any) -> None:
    calls: list[str] = []

    class Client:
        """A connection: no fingerprint, and it does not change the result."""

    @versioned("demo/plain", code_version="v1")
    @task
    def plain(day: str, client: Client) -> str:
        return day

    @versioned("demo/ignored", code_version="v1", ignore_parameters=["client"])
    @task
    def ignored(day: str, client: Client) -> str:
        calls.append(day)
        return day

    @versioned("demo/custom", code_version="v1", parameter_fingerprints={"lock": lambda lock: "a lock"})
    @task
    def custom(lock: Any) -> str:
        calls.append("custom")
        return "locked"

    @flow
    def refused() -> str:
        return plain("2026-12-01", Client())

    @flow
    def accepted(day: str) -> tuple[str, str]:
        return ignored(day, Client()), custom(threading.Lock())

    error, states = run_flow(refused, tasks=1, expect="Failed")
    assert states == {"plain": "Failed"}
    assert isinstance(error, ParameterError)
    assert "'client'" in str(error) and "ignore" in str(error)
    assert run_flow(accepted, "2026-12-01", tasks=2) == (
        ("2026-12-01", "locked"),
        {"ignored": "Completed", "custom": "Completed"},
    )
    # Another Client object and another lock: still in sync.
    assert run_flow(accepted, "2026-12-01", tasks=2)[1] == {"ignored": "Cached", "custom": "Cached"}
    assert run_flow(accepted, "2026-12-02", tasks=2)[1] == {"ignored": "Completed", "custom": "Cached"}
    assert calls == ["2026-12-01", "custom", "2026-12-02"]


def test_partition_keys_from_str_date_and_datetime(run_flow: Any) -> None:
    @versioned(
        "demo/daily",
        code_version="v1",
        partitions=TimeWindowPartitions("daily", start="2026-11-01"),
        partition="day",
    )
    @task
    def daily(day: Any) -> str:
        return str(day)

    @versioned(
        "demo/hourly",
        code_version="v1",
        partition="hour",
        partitions=TimeWindowPartitions("hourly", start="2026-11-01", timezone="Europe/Berlin"),
    )
    @task
    def hourly(hour: Any) -> str:
        return str(hour)

    @versioned("demo/any", code_version="v1", partition="name")
    @task
    def anything(name: Any) -> str:
        return str(name)

    day_key = daily.__insync_binding__.partition_key  # type: ignore[attr-defined]
    assert day_key("2026-12-01") == day_key(dt.date(2026, 12, 1)) == "2026-12-01"
    assert day_key(dt.datetime(2026, 12, 1)) == "2026-12-01"  # naive: in the partitions' zone
    assert day_key(dt.datetime(2026, 12, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=1)))) == "2026-12-01"
    with pytest.raises(InvalidPartitionKey, match="does not start a daily window"):
        day_key(dt.datetime(2026, 12, 1, 13))
    with pytest.raises(InvalidPartitionKey, match="pass a str, date or datetime"):
        day_key(20261201)
    with pytest.raises(InvalidPartitionKey, match="outside"):
        day_key("2026-10-31")
    hour_key = hourly.__insync_binding__.partition_key  # type: ignore[attr-defined]
    assert hour_key(dt.datetime(2026, 12, 1, 13)) == "2026-12-01-13:00+01:00"
    with pytest.raises(InvalidPartitionKey, match="hourly"):
        hour_key(dt.date(2026, 12, 1))
    any_key = anything.__insync_binding__.partition_key  # type: ignore[attr-defined]
    assert anything.__insync_binding__.partitions == DynamicPartitions("demo/any")  # type: ignore[attr-defined]
    assert any_key(dt.date(2026, 12, 1)) == "2026-12-01"
    assert any_key(dt.datetime(2026, 12, 1, 13)) == "2026-12-01T13:00:00"

    @flow
    def bad() -> str:
        return daily(dt.datetime(2026, 12, 1, 13))

    error, states = run_flow(bad, tasks=1, expect="Failed")
    assert states == {"daily": "Failed"} and isinstance(error, InvalidPartitionKey)


def test_partition_and_parameter_options_are_checked_when_decorating() -> None:
    @task
    def extract(day: str, limit: int = 10) -> str:
        return day

    with pytest.raises(ConfigError, match="partition='day'"):
        versioned("demo/x", partitions=StaticPartitions(["a"]))(extract)
    with pytest.raises(ConfigError, match=r"'hour' is not one of day, limit"):
        versioned("demo/x", partition="hour")(extract)
    with pytest.raises(ConfigError, match=r"names 'limt', which is not a parameter of extract\(day, limit\)"):
        versioned("demo/x", ignore_parameters=["limt"])(extract)
    with pytest.raises(ConfigError, match="not the string"):
        versioned("demo/x", ignore_parameters="limit")(extract)
    with pytest.raises(ConfigError, match="must be a function"):
        versioned("demo/x", parameter_fingerprints={"limit": 3})(extract)  # type: ignore[dict-item]
    with pytest.raises(ConfigError, match="is the partition"):
        versioned("demo/x", partition="day", ignore_parameters=["day"])(extract)


def test_a_value_prefect_cannot_persist_fails_and_records_nothing(run_flow: Any, tmp_path: Path) -> None:
    from prefect.settings import PREFECT_LOCAL_STORAGE_PATH, temporary_settings

    @versioned("demo/lock", code_version="v1")
    @task
    def lock() -> Any:
        return threading.Lock()

    @versioned("demo/rows", code_version="v1")
    @task
    def rows() -> list[int]:
        return [1, 2]

    @flow
    def locked() -> Any:
        return lock()

    @flow
    def pipeline() -> list[int]:
        return rows()

    for _ in range(2):  # and again: never "skip demo/lock: Synced"
        error, states = run_flow(locked, tasks=1, expect="Failed")
        assert states == {"lock": "Failed"}
        assert isinstance(error, SerializationError)
        assert "_thread.lock" in str(error) and "result_serializer" in str(error)
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    with temporary_settings(updates={PREFECT_LOCAL_STORAGE_PATH: blocked / "results"}):
        error, states = run_flow(pipeline, tasks=1, expect="Failed")
    assert states == {"rows": "Failed"}
    assert isinstance(error, SerializationError) and "result storage cannot be written" in str(error)
    with EventStore() as store:
        assert store.history("demo/lock") == [] and store.history("demo/rows") == []
    assert run_flow(pipeline, tasks=1) == ([1, 2], {"rows": "Completed"})
    assert run_flow(pipeline, tasks=1) == ([1, 2], {"rows": "Cached"})


UNSEEN_MODULE = """
import os

from prefect import runtime, task
from insync.adapters.prefect import versioned


@versioned("demo/env", code_version="v1")
@task
def from_env() -> str:
    return target()


@versioned("demo/runtime", code_version="v1")
@task
def from_runtime() -> str:
    return str(runtime.flow_run.parameters.get("day"))


@versioned("demo/helper", code_version="auto")
@task
def with_helper() -> str:
    return helper()


def target() -> str:  # defined below the task: found at the first run, not at decoration
    return os.environ.get("DEMO_TARGET", "prod")


def helper() -> str:
    return "v1"
"""


def _load(path: Path, name: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, module)
    spec.loader.exec_module(module)
    return module


def test_unseen_reads_run_every_time_and_auto_sees_helpers_defined_later(
    run_flow: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    source = tmp_path / "unseen_flow.py"
    source.write_text(UNSEEN_MODULE)
    module = _load(source, "unseen_flow", monkeypatch)

    @flow
    def pipeline(day: str) -> tuple[str, str, str]:
        return module.from_env(), module.from_runtime(), module.with_helper()

    expected = {"from_env": "Completed", "from_runtime": "Completed", "with_helper": "Completed"}
    assert run_flow(pipeline, "2026-12-01", tasks=3) == (("prod", "2026-12-01", "v1"), expected)
    caplog.clear()
    monkeypatch.setenv("DEMO_TARGET", "test")
    value, states = run_flow(pipeline, "2026-12-02", tasks=3)
    assert value == ("test", "2026-12-02", "v1")
    assert states == expected | {"with_helper": "Cached"}
    messages = [r.getMessage() for r in caplog.records if r.name.startswith("prefect.task_runs")]
    assert "run demo/env: Synced, reads inputs insync cannot see: os.environ.get" in messages
    assert any(
        m.startswith("run demo/runtime: Synced, reads inputs insync cannot see: prefect.runtime")
        for m in messages
    ), messages

    # An edit of `helper`, defined below the task: a new code version.
    edited = tmp_path / "unseen_flow_edited.py"
    edited.write_text(UNSEEN_MODULE.replace('return "v1"', 'return "v2"'))
    module = _load(edited, "unseen_flow_edited", monkeypatch)
    value, states = run_flow(pipeline, "2026-12-02", tasks=3)
    assert value[2] == "v2" and states["with_helper"] == "Completed"
