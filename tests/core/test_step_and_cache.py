"""The execution protocol (Step) and the value cache."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import pytest
from insync.core import (
    NO_VALUE,
    AssetSpec,
    ConfigError,
    DataVersion,
    EventStore,
    SerializationError,
    Step,
    ValueCache,
)


@pytest.fixture
def cache(tmp_path: Path) -> ValueCache:
    return ValueCache(str(tmp_path / "values"))


def run(store: EventStore, spec: AssetSpec, cache: ValueCache | None, run_id: str, fn, **kw):  # type: ignore[no-untyped-def]
    step = Step(store, spec, run_id=run_id, cache=cache, **kw)
    decision = step.check()
    if decision.skip:
        return decision, decision.value
    value = fn()
    step.record(value)
    return decision, value


def test_skip_returns_the_cached_value_and_logs_one_line(store, cache, caplog) -> None:  # type: ignore[no-untyped-def]
    spec = AssetSpec("a", code_version="1")
    calls = []
    caplog.set_level(logging.INFO, logger="insync")
    first, _ = run(store, spec, cache, "r1", lambda: calls.append(1) or {"n": 1})
    second, value = run(store, spec, cache, "r2", lambda: calls.append(1) or {"n": 1})
    assert (first.skip, second.skip, value, len(calls)) == (False, True, {"n": 1}, 1)
    assert [r.getMessage() for r in caplog.records] == ["run a: Never materialized", "skip a: Synced"]


def test_unversioned_steps_always_run_but_retries_in_the_same_run_do_not(store, cache) -> None:  # type: ignore[no-untyped-def]
    spec = AssetSpec("a")
    assert not run(store, spec, cache, "r1", lambda: 1)[0].skip
    retry, _ = run(store, spec, cache, "r1", lambda: 1)
    assert retry.skip and retry.reason == "already materialized in this run"
    later, _ = run(store, spec, cache, "r2", lambda: 1)
    assert not later.skip and later.reason == "no code version, so it always runs"
    assert len(store.history("a")) == 2


def test_force_runs_a_fresh_step(store, cache) -> None:  # type: ignore[no-untyped-def]
    spec = AssetSpec("a", code_version="1")
    run(store, spec, cache, "r1", lambda: 1)
    decision, _ = run(store, spec, cache, "r2", lambda: 2, force=True)
    assert not decision.skip and decision.message == "run a: Synced, forced"


def test_missing_or_corrupt_cache_entry_means_run(store, cache) -> None:  # type: ignore[no-untyped-def]
    spec = AssetSpec("a", code_version="1")
    run(store, spec, cache, "r1", lambda: 1)
    path = cache.path("a", store.status("a").data_version)
    Path(path).write_bytes(b"not a pickle")
    decision, _ = run(store, spec, cache, "r2", lambda: 1)
    assert not decision.skip and decision.reason == "cached value missing"
    os.remove(cache.path("a", store.status("a").data_version))
    assert not run(store, spec, cache, "r3", lambda: 1)[0].skip


def test_no_cache_skips_without_a_value(store) -> None:  # type: ignore[no-untyped-def]
    spec = AssetSpec("a", code_version="1")
    run(store, spec, None, "r1", lambda: 1)
    decision = Step(store, spec, run_id="r2").check()
    assert decision.skip and decision.value is NO_VALUE


def test_unserializable_value_records_nothing(store, cache) -> None:  # type: ignore[no-untyped-def]
    step = Step(store, AssetSpec("a", code_version="1"), run_id="r1", cache=cache)
    step.check()
    with pytest.raises(SerializationError, match="cannot cache the value of a with the pickle serializer"):
        step.record(lambda: 1)
    assert store.history("a") == []


def test_user_data_version_and_provenance_snapshot(store, cache) -> None:  # type: ignore[no-untyped-def]
    store.register([AssetSpec("p", code_version="1")])
    parent = store.record_materialization("p")
    step = Step(store, AssetSpec("c", code_version="1", deps=["p"]), run_id="r1", cache=cache)
    step.check()
    store.record_materialization("p", data_version="changed-meanwhile")
    event = step.record(5, data_version=DataVersion("five"))
    assert event.user_provided and event.data_version == DataVersion("five")
    assert event.inputs[0].event_id == parent.id
    assert cache.get("c", DataVersion("five")) == 5


def test_a_changed_spec_is_registered_by_the_check(store, cache) -> None:  # type: ignore[no-untyped-def]
    run(store, AssetSpec("a", code_version="1"), cache, "r1", lambda: 1)
    decision, _ = run(store, AssetSpec("a", code_version="2"), cache, "r2", lambda: 2)
    assert decision.message == "run a: Unsynced, a has a new code version"
    assert store.definitions()[decision.status.key].code_version == "2"


def test_json_serializer_and_atomic_files(tmp_path: Path) -> None:
    cache = ValueCache(str(tmp_path / "v"), serializer="json")
    cache.put("a/b", DataVersion("1"), {"x": [1, 2]})
    assert cache.get("a/b", DataVersion("1")) == {"x": [1, 2]}
    assert cache.get("a/b", DataVersion("2")) is NO_VALUE
    files = [p.name for p in (tmp_path / "v" / "a" / "b").iterdir()]
    assert len(files) == 1 and files[0].endswith(".json")  # no temp file left behind
    with pytest.raises(SerializationError, match="json serializer"):
        cache.put("a", DataVersion("1"), object())
    with pytest.raises(ConfigError, match="unknown serializer 'yaml'"):
        ValueCache(str(tmp_path), serializer="yaml")


def test_cache_works_on_any_fsspec_url() -> None:
    cache = ValueCache("memory://insync-test")
    cache.put("a", DataVersion("1"), [1])
    assert cache.get("a", DataVersion("1")) == [1]


def test_cache_location_follows_insync_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INSYNC_HOME", str(tmp_path / "h"))
    assert ValueCache().url == str(tmp_path / "h" / "values")
    monkeypatch.setenv("INSYNC_CACHE_URL", "memory://elsewhere")
    assert ValueCache().url == "memory://elsewhere"


def _same_run_worker(url: str, barrier: Any) -> None:
    store = EventStore(url)
    step = Step(store, AssetSpec("shared", code_version="1", deps=["up"]), run_id="run-1")
    step.check(needs_value=False)
    barrier.wait(60)
    step.record()
    store.close()


def test_concurrent_same_run_steps_record_once(store_url: str) -> None:
    """Eight workers retrying one task of one run at once: one materialization, not eight."""
    import multiprocessing

    with EventStore(store_url) as store:
        store.register(
            [AssetSpec("up", code_version="1"), AssetSpec("shared", code_version="1", deps=["up"])]
        )
        store.record_materialization("up")
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(8)
    workers = [ctx.Process(target=_same_run_worker, args=(store_url, barrier)) for _ in range(8)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
        assert worker.exitcode == 0
    with EventStore(store_url) as store:
        assert len(store.history("shared")) == 1
        assert store.status("shared").status.value == "FRESH"
