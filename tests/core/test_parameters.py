"""Parameters are inputs: a step is never reused for other argument values."""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import logging
import multiprocessing
import threading
import uuid
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from insync.core import (
    AssetKey,
    AssetSpec,
    DataVersion,
    Event,
    EventStore,
    ParameterError,
    StaleCauseCategory,
    StaticPartitions,
    Step,
    ValueCache,
    fingerprint_parameters,
    fingerprint_value,
    logical_data_version,
)

OLD_VERSION = "053b62cff084c8aac3297b1d32144454c7a3821c986149181b92c0ec58c8d116"


def run(step: Step, value: object = None) -> Event:
    step.check(needs_value=False)
    return step.record(value)


def extract(store: EventStore, cache: ValueCache, day: str, runs: list[str]) -> str:
    """The issue's reproduction: a versioned step with a `day` argument."""
    step = Step(store, AssetSpec("demo/extract", code_version="1"), parameters={"day": day}, cache=cache)
    decision = step.check()
    if decision.skip:
        return str(decision.value)
    runs.append(day)
    value = f"rows for {day}"
    step.record(value)
    return value


def test_a_new_parameter_value_runs_the_step(
    sqlite_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store, cache, runs = EventStore(sqlite_url), ValueCache(str(tmp_path / "values")), []
    caplog.set_level(logging.INFO, logger="insync")
    assert extract(store, cache, "2026-11-30", runs) == "rows for 2026-11-30"
    assert extract(store, cache, "2026-12-01", runs) == "rows for 2026-12-01"
    assert "run demo/extract: Unsynced, demo/extract has new parameter values: day" in caplog.text
    assert extract(store, cache, "2026-12-01", runs) == "rows for 2026-12-01"
    assert runs == ["2026-11-30", "2026-12-01"]
    status = store.status("demo/extract")
    assert dict(status.parameters) == {"day": fingerprint_value("2026-12-01").value}
    event = store.history("demo/extract")[0]
    assert event.parameters == (("day", fingerprint_value("2026-12-01").value),)
    store.close()


def test_parameter_cause_wording(sqlite_url: str) -> None:
    store = EventStore(sqlite_url)
    spec = AssetSpec("a", code_version="1")
    run(Step(store, spec, parameters={"day": "1", "limit": 5}))
    decision = Step(store, spec, parameters={"day": "2", "region": "eu", "limit": 5}).check(needs_value=False)
    assert not decision.skip
    (cause,) = decision.status.causes
    assert cause.category is StaleCauseCategory.PARAMETERS
    assert str(cause) == "a has new parameter values: day, region"
    store.close()


def test_parameters_enter_the_logical_data_version(sqlite_url: str) -> None:
    store = EventStore(sqlite_url)
    store.register([AssetSpec("up", code_version="1"), AssetSpec("down", code_version="1", deps=["up"])])
    spec = AssetSpec("up", code_version="1")
    first = run(Step(store, spec, parameters={"n": 1}))
    run(Step(store, AssetSpec("down", code_version="1", deps=["up"])))
    second = run(Step(store, spec, parameters={"n": 2}))
    assert first.data_version != second.data_version
    assert [str(c) for c in store.status("down").root_causes] == ["up has a new data version"]
    store.close()


def test_ignored_and_custom_fingerprinted_parameters(sqlite_url: str) -> None:
    store = EventStore(sqlite_url)
    spec = AssetSpec("a", code_version="1")
    lock = threading.Lock()
    with pytest.raises(
        ParameterError,
        match=r"parameter 'conn' of step a cannot be fingerprinted.*ignore_parameters=\['conn'\]",
    ):
        Step(store, spec, parameters={"conn": lock})
    run(Step(store, spec, parameters={"conn": lock, "day": "1"}, ignore_parameters=["conn"]))
    again = Step(store, spec, parameters={"conn": threading.Lock(), "day": "1"}, ignore_parameters=["conn"])
    assert again.check(needs_value=False).skip
    by_name = Step(
        store,
        spec,
        parameters={"conn": lock, "day": "1"},
        parameter_fingerprints={"conn": lambda c: "prod-db"},
    )
    assert not by_name.check(needs_value=False).skip  # a new parameter appeared: conn
    with pytest.raises(ParameterError, match="has no parameter 'dya'"):
        Step(store, spec, parameters={"day": "1"}, ignore_parameters=["dya"])
    store.close()


def test_unseen_inputs_always_run_and_say_why(sqlite_url: str) -> None:
    store = EventStore(sqlite_url)
    spec = AssetSpec("a", code_version="1")
    run(Step(store, spec))
    decision = Step(store, spec, unseen_inputs=["os.environ"]).check(needs_value=False)
    assert not decision.skip
    assert decision.message == "run a: Synced, reads inputs insync cannot see: os.environ"
    store.close()


def test_parameter_types_are_kept_apart() -> None:
    class Color(enum.Enum):
        RED = 1

    values = [
        dt.date(2026, 12, 1),
        dt.datetime(2026, 12, 1),
        dt.datetime(2026, 12, 1, tzinfo=dt.UTC),
        dt.datetime(2026, 12, 1, tzinfo=dt.timezone(dt.timedelta(hours=1))),
        "2026-12-01",
        decimal.Decimal("1.0"),
        decimal.Decimal("1.00"),
        uuid.UUID(int=1),
        Path("/a"),
        Color.RED,
        frozenset({1, 2}),
        (1, 2),
        dt.timedelta(days=1),
    ]
    fingerprints = [fingerprint_value(v) for v in values]
    assert len(set(fingerprints)) == len(values)
    assert fingerprint_value({2, 1}) == fingerprint_value(frozenset({1, 2}))  # equal in Python too
    assert fingerprint_value(float("nan")) == fingerprint_value(float("nan"))


def test_deep_and_strange_values_are_clear_errors() -> None:
    deep: list[object] = []
    for _ in range(2000):
        deep = [deep]
    with pytest.raises(ParameterError, match="nested"):
        fingerprint_value(deep)
    with pytest.raises(ParameterError, match="names are non-empty"):
        fingerprint_parameters({"": 1})


@given(
    st.dictionaries(
        st.sampled_from(["a", "b", "ab"]), st.one_of(st.integers(), st.text(max_size=3)), max_size=3
    ),
    st.dictionaries(
        st.sampled_from(["a", "b", "ab"]), st.one_of(st.integers(), st.text(max_size=3)), max_size=3
    ),
    st.sampled_from([None, "", "x", "xy"]),
    st.sampled_from([None, "", "x", "xy"]),
)
def test_logical_version_is_injective_over_parameters_and_partitions(
    left: dict[str, object], right: dict[str, object], left_part: str | None, right_part: str | None
) -> None:
    inputs = {AssetKey("up"): DataVersion("v1"), (AssetKey("up2"), "x"): DataVersion("v2")}

    def version(params: dict[str, object], part: str | None) -> DataVersion:
        fingerprints = fingerprint_parameters(params)
        return logical_data_version("1", inputs, partition=part or None, parameters=fingerprints)

    same = fingerprint_parameters(left) == fingerprint_parameters(right) and (left_part or None) == (
        right_part or None
    )
    assert (version(left, left_part) == version(right, right_part)) is same


def test_old_versions_are_unchanged_without_partitions_or_parameters() -> None:
    """Stores written before partitions existed keep their data versions after the upgrade."""
    inputs = {AssetKey("a"): DataVersion("x")}
    # The value the first release computed for these inputs (insync-logical-1 encoding).
    assert logical_data_version("1", inputs).value == OLD_VERSION
    assert logical_data_version("1", {(AssetKey("a"), ""): DataVersion("x")}).value == OLD_VERSION
    assert logical_data_version("1", inputs) != logical_data_version("1", inputs, partition="p")


# ------------------------------------------------------------ rolling deploy: checked version
def _old_worker(
    url: str, checked: multiprocessing.synchronize.Event, go: multiprocessing.synchronize.Event
) -> None:
    store = EventStore(url)
    step = Step(store, AssetSpec("model", code_version="v1"), run_id="old-worker")
    step.check(needs_value=False)
    checked.set()
    go.wait(30)
    step.record()
    store.close()


def test_a_record_carries_the_code_version_it_was_checked_with(store_url: str) -> None:
    """An old worker that records after a new worker registered v2 must not label its output v2."""
    EventStore(store_url).close()
    ctx = multiprocessing.get_context("spawn")
    checked, go = ctx.Event(), ctx.Event()
    old = ctx.Process(target=_old_worker, args=(store_url, checked, go))
    old.start()
    try:
        assert checked.wait(60)
        store = EventStore(store_url)
        store.register([AssetSpec("model", code_version="v2")])  # the new deploy
        go.set()
        old.join(60)
        assert old.exitcode == 0
        event = store.history("model")[0]
        assert (event.run_id, event.code_version) == ("old-worker", "v1")
        assert [str(c) for c in store.status("model").causes] == ["model has a new code version"]
        store.close()
    finally:
        if old.is_alive():
            old.kill()


def test_partition_and_parameters_together(sqlite_url: str, tmp_path: Path) -> None:
    store, cache = EventStore(sqlite_url), ValueCache(str(tmp_path / "values"))
    spec = AssetSpec("r", code_version="1", partitions=StaticPartitions(["eu", "us"]))
    run(Step(store, spec, partition="eu", parameters={"limit": 10}, cache=cache), "eu-10")
    run(Step(store, spec, partition="us", parameters={"limit": 10}, cache=cache), "us-10")
    assert Step(store, spec, partition="eu", parameters={"limit": 10}, cache=cache).check().value == "eu-10"
    changed = Step(store, spec, partition="us", parameters={"limit": 20}, cache=cache).check()
    assert not changed.skip
    assert changed.message == "run r[us]: Unsynced, r[us] has new parameter values: limit"
    store.close()
