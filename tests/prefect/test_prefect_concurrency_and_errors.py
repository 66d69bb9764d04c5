"""Two flow runs racing on one asset, bad inputs with clear errors, the public face."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from insync.adapters.prefect import observation_flow, source_changed_trigger, versioned
from insync.core import (
    ConfigError,
    EventStore,
    InvalidAssetKey,
    InvalidCodeVersion,
    StaleStatus,
    StoreError,
)
from prefect import flow, task
from prefect.cache_policies import INPUTS
from prefect.locking.memory import MemoryLockManager

RACE_SCRIPT = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from prefect import flow, task
    from insync.adapters.prefect import versioned

    go = Path(sys.argv[1])
    Path(sys.argv[2]).touch()  # imported and ready
    lock = None
    if len(sys.argv) > 3:
        from prefect.locking.filesystem import FileSystemLockManager

        lock = FileSystemLockManager(Path(sys.argv[3]))

    @versioned("raw/race", code_version="v1", lock_manager=lock)
    @task
    def raw():
        return [1, 2, 3]

    @versioned("analytics/race", code_version="v1", lock_manager=lock)
    @task
    def slow(rows):
        time.sleep(1.0)  # both runs are inside the step at once
        return {"total": sum(rows)}

    @flow
    def race():
        return slow(raw())

    if __name__ == "__main__":
        while not go.exists():  # start line: both processes are imported and ready
            time.sleep(0.01)
        state = race(return_state=True)
        print("STATE", state.type.value)
        sys.exit(0 if state.is_completed() else 1)
    """
)


@pytest.mark.parametrize(
    ("store", "locked"),
    [("sqlite", False), ("postgres", False), ("sqlite", True)],
    ids=["sqlite", "postgres", "sqlite-locked"],
)
def test_two_concurrent_flow_runs_leave_one_consistent_record_set(
    store: str,
    locked: bool,
    tmp_path: Path,
    run_flow: Any,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store_url = request.getfixturevalue(f"{store}_url")
    script = tmp_path / "race_flow.py"
    script.write_text(RACE_SCRIPT)
    go = tmp_path / "go"
    env = {
        **os.environ,
        "INSYNC_DATABASE_URL": store_url,
        "PREFECT_LOCAL_STORAGE_PATH": str(tmp_path / "shared-results"),
    }
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(go), str(tmp_path / f"ready-{n}")]
            + ([str(tmp_path / "locks")] if locked else []),
            env=env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for n in range(2)
    ]
    deadline = time.monotonic() + 60
    while not all((tmp_path / f"ready-{n}").exists() for n in range(2)):
        assert time.monotonic() < deadline, "flow processes did not start"
        time.sleep(0.05)
    go.touch()
    outputs = [p.communicate(timeout=120)[0].decode() for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs

    with EventStore(store_url) as store:
        raw_events = store.history("raw/race")
        race_events = store.history("analytics/race")
        if locked:
            # The second run waited on the first one's transaction and ended Cached.
            assert (len(raw_events), len(race_events)) == (1, 1)
        else:
            assert 1 <= len(raw_events) <= 2 and 1 <= len(race_events) <= 2
        by_id = {e.id: e for e in raw_events}
        for event in race_events:
            # Every materialization names an upstream event that exists, with its version.
            (source,) = event.inputs
            assert by_id[source.event_id].data_version == source.data_version
        statuses = store.statuses()
        assert {str(k): s.status for k, s in statuses.items()} == {
            "raw/race": StaleStatus.FRESH,
            "analytics/race": StaleStatus.FRESH,
        }

    # A third run, here, finds everything in sync.
    os.environ["INSYNC_DATABASE_URL"] = store_url
    try:
        from prefect.settings import PREFECT_LOCAL_STORAGE_PATH, temporary_settings

        with temporary_settings(updates={PREFECT_LOCAL_STORAGE_PATH: tmp_path / "shared-results"}):
            namespace: dict[str, Any] = {"__name__": "race_flow"}
            # The script reads its paths from argv at import; pytest's own argv must not leak in.
            monkeypatch.setattr(sys, "argv", ["race_flow.py", str(go), str(tmp_path / "ready-here")])
            exec(compile(RACE_SCRIPT, str(script), "exec"), namespace)  # defines, runs nothing
            value, states = run_flow(namespace["race"], tasks=2)
    finally:
        del os.environ["INSYNC_DATABASE_URL"]
    assert value == {"total": 6}
    assert states == {"raw": "Cached", "slow": "Cached"}


def test_import_without_prefect_says_what_to_install() -> None:
    code = (
        "import sys; sys.modules['prefect'] = None\n"
        "try:\n    import insync.adapters.prefect\n"
        "except ImportError as exc:\n    print(exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "pip install 'insync[prefect]'" in out


def _task() -> Any:
    @task
    def plain() -> int:
        return 1

    return plain


def test_decoration_errors_name_the_problem_and_the_fix() -> None:
    with pytest.raises(InvalidAssetKey):
        versioned("raw//orders")
    with pytest.raises(InvalidCodeVersion):
        versioned("raw/orders", code_version=" v1")(_task())
    with pytest.raises(ConfigError, match="put it above @task"):
        versioned("raw/orders")(lambda: 1)  # type: ignore[type-var]
    with pytest.raises(ConfigError, match="data_version"):
        versioned("raw/orders", data_version="v1")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="store"):
        versioned("raw/orders", store=42)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="JSON"):
        versioned("raw/orders", metadata={"owner": object()})(_task())
    with pytest.raises(ConfigError, match="lock_manager applies to versioned tasks"):
        versioned("raw/orders", lock_manager=MemoryLockManager())(flow(lambda: 1, name="f"))
    bad_cache = r"cache for raw/orders must be a URL string or an insync\.core\.ValueCache"
    with pytest.raises(ConfigError, match=bad_cache):
        versioned("raw/orders", cache=42)  # type: ignore[arg-type]

    @task
    def generator() -> Any:
        yield 1

    with pytest.raises(ConfigError, match="generator"):
        versioned("raw/orders")(generator)

    @task(cache_policy=INPUTS)
    def own_policy() -> int:
        return 1

    with pytest.raises(ConfigError, match="cache_policy"):
        versioned("raw/orders")(own_policy)

    @task(persist_result=False)
    def not_persisted() -> int:
        return 1

    with pytest.raises(ConfigError, match="persist_result=False"):
        versioned("raw/orders")(not_persisted)

    @task(result_storage_key="fixed-{parameters}")
    def fixed_key() -> int:
        return 1

    with pytest.raises(ConfigError, match="result_storage_key"):
        versioned("raw/orders")(fixed_key)

    with pytest.raises(ConfigError, match="non-empty mapping"):
        observation_flow({})
    with pytest.raises(ConfigError, match="not callable"):
        observation_flow({"raw/orders": "orders.csv"})  # type: ignore[dict-item]
    with pytest.raises(InvalidAssetKey):
        observation_flow({"raw//orders": lambda: "v1"})
    with pytest.raises(ConfigError, match="at least one"):
        source_changed_trigger()


def test_run_time_errors_fail_the_task_with_insync_messages(run_flow: Any, tmp_path: Path) -> None:
    @versioned("analytics/bad_version", code_version="v1", data_version=lambda value: 42)
    @task
    def bad_version() -> list[int]:
        return [1]

    @versioned(
        "analytics/unreachable", code_version="v1", store="postgresql+psycopg://postgres@127.0.0.1:1/nowhere"
    )
    @task
    def unreachable() -> list[int]:
        return [1]

    @versioned("analytics/cycle_a", code_version="v1", deps=["analytics/cycle_b"])
    @task
    def cycle_a() -> list[int]:
        return [1]

    @versioned("analytics/cycle_b", code_version="v1", deps=["analytics/cycle_a"])
    @task
    def cycle_b() -> list[int]:
        return [1]

    @flow
    def one(step: str) -> list[int]:
        return {"bad_version": bad_version, "unreachable": unreachable}[step]()

    @flow
    def cycle() -> list[int]:
        cycle_a()
        return cycle_b()

    error, states = run_flow(one, "bad_version", tasks=1, expect="Failed")
    assert states == {"bad_version": "Failed"}
    assert isinstance(error, ConfigError) and "return a string" in str(error)
    with EventStore() as store:
        assert store.history("analytics/bad_version") == []

    # The policy's error is not swallowed by Prefect (which would run the task uncached).
    error, states = run_flow(one, "unreachable", tasks=1, expect="Failed")
    assert states == {"unreachable": "Failed"}
    assert isinstance(error, StoreError), error

    error, states = run_flow(cycle, tasks=2, expect="Failed")
    assert states["cycle_b"] == "Failed"
    assert "analytics/cycle_a" in str(error) and "analytics/cycle_b" in str(error)


def test_observe_function_returning_a_non_version_is_refused(tmp_path: Path) -> None:
    observe = observation_flow({"raw/odd": lambda: 42}, name="observe-odd")  # type: ignore[dict-item]
    state = observe(return_state=True)
    assert state.is_failed() and "raw/odd" in state.message
    with EventStore() as store:
        assert store.history("raw/odd") == []
