"""Versioned Prefect tasks against a real Prefect server: Completed vs Cached, end to end."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from insync.adapters.prefect import versioned
from insync.core import (
    ConfigError,
    EventStore,
    StaleStatus,
    ValueCache,
    fingerprint_value,
)
from prefect import flow, task

CHAIN = ("raw", "orders", "report", "side")


def make_pipeline(calls: list[str], **versions: str) -> Any:
    """raw -> orders -> report, and raw -> side; deps inferred from the results passed in."""
    v = {name: "v1" for name in CHAIN} | versions

    @versioned("raw/orders", code_version=v["raw"])
    @task
    def raw() -> list[int]:
        calls.append("raw")
        return [1, 2, 3]

    @versioned("analytics/orders", code_version=v["orders"])
    @task
    def orders(rows: list[int]) -> dict[str, int]:
        calls.append("orders")
        return {"total": sum(rows)}

    @versioned("analytics/report", code_version=v["report"])
    @task
    def report(totals: dict[str, int]) -> str:
        calls.append("report")
        return f"total={totals['total']}"

    @versioned("analytics/side", code_version=v["side"])
    @task
    def side(rows: list[int]) -> dict[str, int]:
        calls.append("side")
        return {"rows": len(rows)}

    @flow
    def pipeline() -> tuple[str, dict[str, int]]:
        rows = raw()
        return report(orders(rows)), side(rows)

    return pipeline


def test_first_run_executes_second_run_is_cached(run_flow: Any) -> None:
    calls: list[str] = []
    pipeline = make_pipeline(calls)

    value, states = run_flow(pipeline, tasks=4)
    assert value == ("total=6", {"rows": 3})
    assert states == dict.fromkeys(CHAIN, "Completed")
    assert sorted(calls) == sorted(CHAIN)

    calls.clear()
    value, states = run_flow(pipeline, tasks=4)
    assert value == ("total=6", {"rows": 3})  # last values, from Prefect's result store
    assert states == dict.fromkeys(CHAIN, "Cached")
    assert calls == []

    with EventStore() as store:
        statuses = store.statuses()
        assert {str(k): s.status for k, s in statuses.items()} == {
            "raw/orders": StaleStatus.FRESH,
            "analytics/orders": StaleStatus.FRESH,
            "analytics/report": StaleStatus.FRESH,
            "analytics/side": StaleStatus.FRESH,
        }
        # Deps were inferred from the task graph and provenance names the upstream events.
        definitions = {str(k): sorted(map(str, s.deps)) for k, s in store.definitions().items()}
        assert definitions["analytics/orders"] == ["raw/orders"]
        assert definitions["analytics/report"] == ["analytics/orders"]
        assert definitions["analytics/side"] == ["raw/orders"]
        report = store.history("analytics/report")
        assert len(report) == 1
        (source,) = report[0].inputs
        assert source.event_id == store.history("analytics/orders")[0].id
        assert report[0].framework == "prefect"
        assert report[0].metadata["prefect_cache_key"].startswith("insync-")


def test_code_version_bump_reruns_exactly_the_task_and_its_dependents(run_flow: Any) -> None:
    calls: list[str] = []
    run_flow(make_pipeline(calls), tasks=4)

    calls.clear()
    value, states = run_flow(make_pipeline(calls, orders="v2"), tasks=4)
    assert states == {
        "raw": "Cached",
        "orders": "Completed",
        "report": "Completed",
        "side": "Cached",
    }
    assert sorted(calls) == ["orders", "report"]
    assert value == ("total=6", {"rows": 3})

    calls.clear()
    _, states = run_flow(make_pipeline(calls, orders="v2"), tasks=4)
    assert states == dict.fromkeys(CHAIN, "Cached")


def test_reverted_code_version_runs_again_instead_of_reusing_an_old_record(
    run_flow: Any,
) -> None:
    # v1 -> v2 -> v1: Prefect still holds v1's record under the v1 key, but insync sees a new
    # code version relative to the last materialization (v2), so the task must run, not hit.
    calls: list[str] = []
    run_flow(make_pipeline(calls), tasks=4)
    run_flow(make_pipeline(calls, orders="v2"), tasks=4)
    calls.clear()
    _, states = run_flow(make_pipeline(calls), tasks=4)
    assert states["orders"] == "Completed"
    assert sorted(calls) == ["orders", "report"]
    calls.clear()
    _, states = run_flow(make_pipeline(calls), tasks=4)
    assert states == dict.fromkeys(CHAIN, "Cached")
    with EventStore() as store:
        assert store.status("analytics/orders").status is StaleStatus.FRESH


def test_user_data_version_stops_propagation_when_the_value_is_unchanged(
    run_flow: Any,
) -> None:
    calls: list[str] = []

    def build(raw_version: str) -> Any:
        @versioned("raw/rows", code_version=raw_version, data_version=fingerprint_value)
        @task
        def rows() -> list[int]:
            calls.append("rows")
            return [1, 2, 3]

        @versioned("analytics/total", code_version="v1")
        @task
        def total(values: list[int]) -> dict[str, int]:
            calls.append("total")
            return {"total": sum(values)}

        @flow
        def pipeline() -> dict[str, int]:
            return total(rows())

        return pipeline

    run_flow(build("v1"), tasks=2)
    calls.clear()
    # A new code version re-runs `rows`, but it returns the same value: same data version, so
    # `total` stays in sync (what a logical data version could not tell).
    _, states = run_flow(build("v2"), tasks=2)
    assert states == {"rows": "Completed", "total": "Cached"}
    assert calls == ["rows"]
    with EventStore() as store:
        latest = store.latest_event("raw/rows")
        assert latest is not None and latest.user_provided
        assert latest.data_version == fingerprint_value([1, 2, 3])


def test_refresh_cache_and_force_run_a_fresh_task(run_flow: Any) -> None:
    calls: list[str] = []

    @versioned("analytics/once", code_version="v1")
    @task
    def once() -> dict[str, int]:
        calls.append("once")
        return {"n": len(calls)}

    @flow
    def normal() -> dict[str, int]:
        return once()

    @flow
    def refreshed() -> dict[str, int]:
        return once.with_options(refresh_cache=True)()

    forced_task = versioned("analytics/once", code_version="v1", force=True)(
        task(once.fn.__wrapped__, name="once")
    )

    @flow
    def forced() -> dict[str, int]:
        return forced_task()

    assert run_flow(normal, tasks=1)[1] == {"once": "Completed"}
    assert run_flow(normal, tasks=1) == ({"n": 1}, {"once": "Cached"})
    assert run_flow(refreshed, tasks=1) == ({"n": 2}, {"once": "Completed"})
    # The refreshed run overwrote Prefect's record: the next normal run returns its value.
    assert run_flow(normal, tasks=1) == ({"n": 2}, {"once": "Cached"})
    assert run_flow(forced, tasks=1) == ({"n": 3}, {"once": "Completed"})
    assert run_flow(normal, tasks=1) == ({"n": 3}, {"once": "Cached"})
    with EventStore() as store:
        assert len(store.history("analytics/once")) == 3


def test_failed_task_records_nothing_and_retries_record_once(run_flow: Any) -> None:
    attempts: list[int] = []

    @versioned("raw/input", code_version="v1")
    @task
    def source() -> list[int]:
        return [1]

    @versioned("analytics/broken", code_version="v1")
    @task
    def broken(rows: list[int]) -> list[int]:
        raise RuntimeError("boom")

    @versioned("analytics/flaky", code_version="v1")
    @task(retries=2)
    def flaky(rows: list[int]) -> list[int]:
        attempts.append(1)
        if len(attempts) < 2:
            raise RuntimeError("first attempt fails")
        return rows

    @flow
    def failing() -> list[int]:
        return broken(source())

    @flow
    def retrying() -> list[int]:
        return flaky(source())

    _, states = run_flow(failing, tasks=2, expect="Failed")
    assert states == {"source": "Completed", "broken": "Failed"}
    _, states = run_flow(retrying, tasks=2)
    assert states == {"source": "Cached", "flaky": "Completed"}
    assert len(attempts) == 2
    with EventStore() as store:
        assert store.history("analytics/broken") == []
        assert store.status("analytics/broken").status is StaleStatus.MISSING
        assert len(store.history("analytics/flaky")) == 1


def test_futures_and_wait_for_are_inferred_deps_and_declared_deps_win(run_flow: Any) -> None:
    @versioned("raw/a", code_version="v1")
    @task
    def a() -> int:
        return 1  # small ints cannot be tracked by Prefect; futures can

    @versioned("raw/b", code_version="v1")
    @task
    def b() -> int:
        return 2

    @versioned("analytics/ab", code_version="v1")
    @task
    def ab(x: int) -> int:
        return x + 1

    # Declared deps are the deps: `wait_for` on raw/b adds nothing.
    @versioned("analytics/declared", code_version="v1", deps=["raw/a", "raw/explicit"])
    @task
    def declared(x: int) -> int:
        return x + 2

    @versioned("analytics/undeclared", code_version="v1", deps=["raw/explicit"])
    @task
    def undeclared(x: int) -> int:
        return x + 3

    @flow
    def pipeline() -> tuple[int, int]:
        fa = a.submit()
        fb = b.submit()
        return ab.submit(fa, wait_for=[fb]).result(), declared.submit(fa, wait_for=[fb]).result()

    @flow
    def wrong() -> int:
        return undeclared.submit(a.submit()).result()

    assert run_flow(pipeline, tasks=4)[0] == (2, 3)
    with EventStore() as store:
        deps = {str(k): sorted(map(str, s.deps)) for k, s in store.definitions().items()}
    assert deps["analytics/ab"] == ["raw/a", "raw/b"]
    assert deps["analytics/declared"] == ["raw/a", "raw/explicit"]
    # The value of a versioned task the declared deps leave out is refused, naming the fix.
    error, states = run_flow(wrong, tasks=2, expect="Failed")
    assert states == {"a": "Cached", "undeclared": "Failed"}
    assert isinstance(error, ConfigError)
    assert "add 'raw/a' to deps" in str(error)


@pytest.mark.parametrize("as_url", [False, True], ids=["ValueCache", "URL"])
def test_insync_value_cache_refills_a_cleared_prefect_result_store(
    run_flow: Any, tmp_path: Path, as_url: bool
) -> None:
    from prefect.settings import PREFECT_LOCAL_STORAGE_PATH, temporary_settings

    calls: list[str] = []
    # `cache=` takes a ValueCache or its URL, as in the Airflow adapter.
    cache: ValueCache | str = str(tmp_path / "values") if as_url else ValueCache(str(tmp_path / "values"))

    @versioned("analytics/kept", code_version="v1", cache=cache)
    @task
    def kept() -> dict[str, str]:
        calls.append("kept")
        return {"value": "kept"}

    @flow
    def pipeline() -> dict[str, str]:
        return kept()

    assert run_flow(pipeline, tasks=1) == ({"value": "kept"}, {"kept": "Completed"})
    # A fresh Prefect result store (another machine, or cleared storage): the value comes
    # back from the insync value cache and the run is still Cached.
    with temporary_settings(updates={PREFECT_LOCAL_STORAGE_PATH: tmp_path / "elsewhere"}):
        assert run_flow(pipeline, tasks=1) == ({"value": "kept"}, {"kept": "Cached"})
    assert calls == ["kept"]


def test_code_version_defaults_to_auto_as_in_airflow(run_flow: Any) -> None:
    # Without code_version= a task is versioned by its source: in sync, the next run is Cached.
    calls: list[str] = []

    @versioned("analytics/auto_default")
    @task
    def auto_default() -> int:
        calls.append("auto_default")
        return 1

    @flow
    def pipeline() -> int:
        return auto_default()

    assert run_flow(pipeline, tasks=1) == (1, {"auto_default": "Completed"})
    assert run_flow(pipeline, tasks=1) == (1, {"auto_default": "Cached"})
    assert calls == ["auto_default"]


def test_missing_prefect_record_runs_the_task_again(run_flow: Any, tmp_path: Path) -> None:
    from prefect.settings import PREFECT_LOCAL_STORAGE_PATH, temporary_settings

    calls: list[str] = []

    @versioned("analytics/lost", code_version="v1")
    @task
    def lost() -> list[str]:
        calls.append("lost")
        return ["x"]

    @flow
    def pipeline() -> list[str]:
        return lost()

    run_flow(pipeline, tasks=1)
    with temporary_settings(updates={PREFECT_LOCAL_STORAGE_PATH: tmp_path / "elsewhere"}):
        assert run_flow(pipeline, tasks=1) == (["x"], {"lost": "Completed"})
    assert calls == ["lost", "lost"]
    with EventStore() as store:
        assert len(store.history("analytics/lost")) == 2


@pytest.mark.parametrize("url_fixture", ["sqlite_url", "postgres_url"])
def test_explicit_store_url(run_flow: Any, url_fixture: str, request: Any) -> None:
    url = request.getfixturevalue(url_fixture)

    @versioned("analytics/remote", code_version="v1", store=url)
    @task
    def remote() -> list[int]:
        return [1]

    @flow
    def pipeline() -> list[int]:
        return remote()

    assert run_flow(pipeline, tasks=1)[1] == {"remote": "Completed"}
    assert run_flow(pipeline, tasks=1)[1] == {"remote": "Cached"}
    with EventStore(url) as store:
        assert len(store.history("analytics/remote")) == 1
    assert not Path(".insync").exists()
