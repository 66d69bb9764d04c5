"""Partitions: definitions, mappings, per-partition status and memo, on SQLite and PostgreSQL."""

from __future__ import annotations

import pendulum
import pytest
from hypothesis import given
from hypothesis import strategies as st
from insync.core import (
    AllPartitionsMapping,
    AssetKey,
    AssetSpec,
    ConfigError,
    DynamicPartitions,
    EventStore,
    FunctionMapping,
    IdentityMapping,
    InvalidPartitionKey,
    StaticPartitions,
    Step,
    TimeWindowMapping,
    TimeWindowPartitions,
    ValueCache,
)
from insync.core._partitions import upstream_partitions
from insync.core._staleness import inputs_digest

DAILY = TimeWindowPartitions("daily", start="2026-11-01")
MONTHLY = TimeWindowPartitions("monthly", start="2026-01-01")
NOW = pendulum.datetime(2026, 12, 2, 12)


def reasons(store: EventStore, key: str, partition: str | None = None) -> list[str]:
    return [str(c) for c in store.status(key, partition=partition).root_causes]


# ------------------------------------------------------------------------------ definitions
def test_time_windows_daily_weekly_monthly_hourly() -> None:
    assert DAILY.keys(NOW)[:2] == ["2026-11-01", "2026-11-02"]
    assert DAILY.keys(NOW)[-1] == "2026-12-01"  # today's window has not ended
    assert len(DAILY.keys(NOW)) == 31
    weekly = TimeWindowPartitions("weekly", start="2026-11-02")
    assert weekly.keys(NOW) == ["2026-11-02", "2026-11-09", "2026-11-16", "2026-11-23"]
    assert MONTHLY.keys(NOW)[-1] == "2026-11-01"
    hourly = TimeWindowPartitions("hourly", start="2026-12-01")
    assert hourly.keys(NOW)[:2] == ["2026-12-01-00:00", "2026-12-01-01:00"]
    assert len(hourly.keys(NOW)) == 36


def test_hourly_windows_keep_the_repeated_hour_apart_when_clocks_go_back() -> None:
    berlin = TimeWindowPartitions("hourly", start="2026-10-25", end="2026-10-26", timezone="Europe/Berlin")
    keys = berlin.keys(NOW)
    assert len(keys) == 25 == len(set(keys))
    assert "2026-10-25-02:00+02:00" in keys and "2026-10-25-02:00+01:00" in keys
    assert berlin.window("2026-10-25-02:00+01:00")[0].in_timezone("UTC").hour == 1


def test_time_zone_shapes_daily_windows() -> None:
    tokyo = TimeWindowPartitions("daily", start="2026-12-01", timezone="Asia/Tokyo")
    start, end = tokyo.window("2026-12-01")
    assert start.in_timezone("UTC") == pendulum.datetime(2026, 11, 30, 15)
    assert (end - start).in_hours() == 24


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: TimeWindowPartitions("yearly", start="2026-01-01"), "cadence"),
        (lambda: TimeWindowPartitions("daily", start="not a date"), "not a date"),
        (lambda: TimeWindowPartitions("monthly", start="2026-01-15"), "start of a monthly window"),
        (lambda: TimeWindowPartitions("daily", start="2026-01-01", timezone="Mars/Olympus"), "timezone"),
        (lambda: TimeWindowPartitions("daily", start="2026-01-02", end="2026-01-01"), "not after start"),
        (lambda: StaticPartitions("eu"), "list of keys"),
        (lambda: StaticPartitions(["eu", "eu"]), "twice"),
        (lambda: StaticPartitions([]), "at least one"),
        (lambda: StaticPartitions([""]), "empty"),
        (lambda: StaticPartitions(["a\x00b"]), "control"),
        (lambda: StaticPartitions(["x" * 256]), "at most 255"),
        (lambda: DynamicPartitions(""), "empty"),
    ],
)
def test_bad_definitions_name_the_fix(make: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        make()  # type: ignore[operator]


def test_bad_partition_keys_are_refused() -> None:
    with pytest.raises(InvalidPartitionKey, match="write keys like '2026-11-01'"):
        DAILY.validate("2026/12/01")
    with pytest.raises(InvalidPartitionKey, match="outside"):
        DAILY.validate("2026-10-31")
    with pytest.raises(InvalidPartitionKey, match="not one of the static keys"):
        StaticPartitions(["eu", "us"]).validate("asia")


# --------------------------------------------------------------------------------- mappings
def test_mappings_between_windows() -> None:
    days_of_november = upstream_partitions(MONTHLY, "2026-11-01", DAILY, None, now=NOW)
    assert days_of_november is not None and len(days_of_november) == 30
    assert days_of_november[0] == "2026-11-01" and days_of_november[-1] == "2026-11-30"
    assert upstream_partitions(DAILY, "2026-11-17", MONTHLY, None, now=NOW) == ["2026-11-01"]
    assert upstream_partitions(DAILY, "2026-11-17", DAILY, None, now=NOW) == ["2026-11-17"]
    rolling = upstream_partitions(DAILY, "2026-11-17", DAILY, TimeWindowMapping(start_offset=-2), now=NOW)
    assert rolling == ["2026-11-15", "2026-11-16", "2026-11-17"]
    assert upstream_partitions(None, "", DAILY, None, now=NOW) == DAILY.keys(NOW)
    assert upstream_partitions(DAILY, "2026-11-17", None, None, now=NOW) == [""]
    regions = StaticPartitions(["eu", "us"])
    assert upstream_partitions(regions, "eu", regions, IdentityMapping()) == ["eu"]
    assert upstream_partitions(regions, "eu", DAILY, AllPartitionsMapping(), now=NOW) == DAILY.keys(NOW)
    both = FunctionMapping(lambda key: [key, "us"])
    assert upstream_partitions(regions, "eu", regions, both) == ["eu", "us"]
    with pytest.raises(ConfigError, match="list of keys"):
        upstream_partitions(regions, "eu", regions, FunctionMapping(lambda key: key))


# ---------------------------------------------------------------------- status per partition
def test_each_partition_has_its_own_status_and_the_asset_a_rollup(any_store: EventStore) -> None:
    store = any_store
    store.register([AssetSpec("orders", code_version="1", partitions=StaticPartitions(["eu", "us", "asia"]))])
    rollup = store.status("orders")
    assert rollup.status.value == "MISSING"
    assert rollup.partitions is not None and rollup.partitions.missing == ("eu", "us", "asia")
    store.record_materialization("orders", partition="eu")
    store.record_materialization("orders", partition="us")
    rollup = store.status("orders")
    assert rollup.status.value == "FRESH"
    assert (rollup.partitions.synced, rollup.partitions.missing) == (2, ("asia",))  # type: ignore[union-attr]
    assert store.status("orders", partition="eu").status.value == "FRESH"
    assert store.status("orders", partition="asia").status.value == "MISSING"
    assert store.history("orders", partition="us")[0].partition == "us"
    assert len(store.history("orders")) == 2


def test_partition_arguments_are_checked(any_store: EventStore) -> None:
    store = any_store
    store.register([AssetSpec("daily", partitions=DAILY), AssetSpec("plain")])
    with pytest.raises(InvalidPartitionKey, match="say which partition"):
        store.record_materialization("daily")
    with pytest.raises(InvalidPartitionKey, match="not partitioned"):
        store.record_materialization("plain", partition="2026-11-01")
    with pytest.raises(InvalidPartitionKey, match="write keys like"):
        store.record_materialization("daily", partition="yesterday")
    with pytest.raises(InvalidPartitionKey, match="write keys like"):
        store.status("daily", partition="yesterday")
    assert store.history("daily") == []  # nothing was written


def test_identity_mapping_names_the_changed_partition(any_store: EventStore) -> None:
    store = any_store
    store.register(
        [
            AssetSpec("raw/orders", code_version="1", partitions=DAILY),
            AssetSpec("orders", code_version="1", deps=["raw/orders"], partitions=DAILY),
        ]
    )
    for day in ("2026-11-30", "2026-12-01"):
        store.record_materialization("raw/orders", partition=day, data_version=f"v-{day}")
        store.record_materialization("orders", partition=day)
    assert store.status("orders", partition="2026-12-01").status.value == "FRESH"
    store.record_materialization("raw/orders", partition="2026-12-01", data_version="changed")
    assert reasons(store, "orders", "2026-12-01") == ["raw/orders[2026-12-01] has a new data version"]
    assert store.status("orders", partition="2026-11-30").status.value == "FRESH"
    rollup = store.status("orders")
    assert rollup.status.value == "STALE"
    assert rollup.partitions is not None and rollup.partitions.unsynced == ("2026-12-01",)
    cause = store.status("orders", partition="2026-12-01").causes[0]
    assert (cause.partition, cause.dependency, cause.dependency_partition) == (
        "2026-12-01",
        AssetKey("raw/orders"),
        "2026-12-01",
    )
    assert str(cause) == "orders[2026-12-01] has a new dependency data version"


def test_monthly_on_daily_sees_every_day_beyond_a_hundred(any_store: EventStore) -> None:
    """Dagster stops checking above 100 upstream partitions and reports Synced; we never stop."""
    store = any_store
    quarterly_days = TimeWindowPartitions("daily", start="2026-01-01")
    store.register(
        [
            AssetSpec("events", code_version="1", partitions=quarterly_days),
            AssetSpec(
                "summary",
                code_version="1",
                deps=["events"],
                partitions=TimeWindowPartitions("monthly", start="2026-01-01"),
                partition_mappings={"events": TimeWindowMapping(start_offset=-120)},
            ),
        ]
    )
    days = quarterly_days.keys(pendulum.datetime(2026, 5, 1))
    from insync.core import Materialization

    store.record_materializations([Materialization(AssetKey("events"), partition=d) for d in days])
    store.record_materialization("summary", partition="2026-04-01")
    event = store.history("summary")[0]
    assert len(event.inputs) > 100
    assert store.status("summary", partition="2026-04-01").status.value == "FRESH"
    store.record_materialization("events", partition="2026-01-15", data_version="late fix")
    assert reasons(store, "summary", "2026-04-01") == ["events[2026-01-15] has a new data version"]


def test_unpartitioned_child_reads_all_partitions(any_store: EventStore) -> None:
    store = any_store
    regions = StaticPartitions(["eu", "us"])
    store.register(
        [
            AssetSpec("sales", code_version="1", partitions=regions),
            AssetSpec("total", code_version="1", deps=["sales"]),
        ]
    )
    store.record_materialization("sales", partition="eu")
    store.record_materialization("total")
    assert [i.label for i in store.history("total")[0].inputs] == ["sales[eu]", "sales[us]"]
    assert store.status("total").status.value == "FRESH"  # us was never written: nothing new read
    store.record_materialization("sales", partition="us")
    assert reasons(store, "total") == ["sales[us] has a new data version"]
    store.record_materialization("total")
    store.record_materialization("sales", partition="eu", data_version="fixed")
    assert reasons(store, "total") == ["sales[eu] has a new data version"]


def test_partitioned_child_of_unpartitioned_parent(any_store: EventStore) -> None:
    store = any_store
    store.register(
        [
            AssetSpec("rates", code_version="1"),
            AssetSpec("prices", code_version="1", deps=["rates"], partitions=StaticPartitions(["eu", "us"])),
        ]
    )
    store.record_materialization("rates")
    store.record_materialization("prices", partition="eu")
    store.record_materialization("prices", partition="us")
    store.record_materialization("rates", data_version="new rates")
    rollup = store.status("prices")
    assert rollup.partitions is not None and rollup.partitions.unsynced == ("eu", "us")
    assert reasons(store, "prices", "us") == ["rates has a new data version"]


def test_new_code_version_makes_every_partition_unsynced(any_store: EventStore) -> None:
    store = any_store
    store.register([AssetSpec("p", code_version="1", partitions=StaticPartitions(["a", "b"]))])
    store.record_materialization("p", partition="a")
    store.record_materialization("p", partition="b")
    store.register([AssetSpec("p", code_version="2", partitions=StaticPartitions(["a", "b"]))])
    rollup = store.status("p")
    assert rollup.partitions is not None and rollup.partitions.unsynced == ("a", "b")
    assert [str(c) for c in rollup.causes] == ["p[a] has a new code version", "p[b] has a new code version"]


def test_function_mapping_is_checked_from_provenance_where_not_loaded(any_store: EventStore) -> None:
    store = any_store
    regions = StaticPartitions(["eu", "us"])
    both = FunctionMapping(lambda key: ["eu", "us"], name="tests.both_regions")
    child = AssetSpec(
        "report", code_version="1", deps=["sales"], partitions=regions, partition_mappings={"sales": both}
    )
    store.register([AssetSpec("sales", code_version="1", partitions=regions), child])
    store.record_materialization("sales", partition="eu")
    store.record_materialization("sales", partition="us")
    step = Step(store, child, partition="eu")
    assert not step.check(needs_value=False).skip
    step.record()
    assert [i.label for i in store.history("report")[0].inputs] == ["sales[eu]", "sales[us]"]
    store.record_materialization("sales", partition="us", data_version="changed")
    # The CLI has no function: it checks what the step recorded that it read.
    assert reasons(store, "report", "eu") == ["sales[us] has a new data version"]
    with pytest.raises(ConfigError, match="function that is not loaded"):
        store.record_materialization("report", partition="us")


def test_dynamic_partitions_are_added_at_run_time(any_store: EventStore) -> None:
    store = any_store
    store.register([AssetSpec("files", code_version="1", partitions=DynamicPartitions("uploads"))])
    assert store.status("files").partitions.total == 0  # type: ignore[union-attr]
    store.add_partitions("uploads", ["a.csv", "b.csv"])
    store.record_materialization("files", partition="c.csv")  # materializing adds the key too
    assert store.dynamic_partitions("uploads") == ["a.csv", "b.csv", "c.csv"]
    rollup = store.status("files")
    assert rollup.partitions is not None
    assert (rollup.partitions.synced, rollup.partitions.missing) == (1, ("a.csv", "b.csv"))
    with pytest.raises(InvalidPartitionKey, match="add_partitions"):
        store.status("files", partition="zzz.csv")
    with pytest.raises(InvalidPartitionKey, match="not the string"):
        store.add_partitions("uploads", "d.csv")


def test_partitioned_sources_are_observed_per_partition(any_store: EventStore) -> None:
    store = any_store
    store.register(
        [
            AssetSpec("landing", kind="observable", partitions=DAILY),
            AssetSpec("clean", code_version="1", deps=["landing"], partitions=DAILY),
        ]
    )
    store.record_observation("landing", "etag-1", partition="2026-11-05")
    store.record_materialization("clean", partition="2026-11-05")
    store.record_observation("landing", "etag-2", partition="2026-11-05")
    assert reasons(store, "clean", "2026-11-05") == ["landing[2026-11-05] has a new data version"]


# ------------------------------------------------------------------------ per-partition memo
def test_backfill_reuses_each_day_and_recomputes_only_the_changed_one(
    sqlite_url: str, tmp_path: object
) -> None:
    store = EventStore(sqlite_url)
    cache = ValueCache(str(tmp_path) + "/values")  # type: ignore[operator]
    source = AssetSpec("raw", kind="observable", partitions=DAILY)
    spec = AssetSpec("daily_rows", code_version="1", deps=["raw"], partitions=DAILY)
    store.register([source, spec])
    days = DAILY.keys(NOW)[:10]
    for day in days:
        store.record_observation("raw", f"etag-{day}", partition=day)
    runs: list[str] = []

    def backfill() -> dict[str, str]:
        values = {}
        for day in days:
            step = Step(store, spec, partition=day, cache=cache, run_id=f"backfill-{len(runs)}")
            decision = step.check()
            if decision.skip:
                values[day] = decision.value
            else:
                runs.append(day)
                values[day] = f"rows for {day}"
                step.record(values[day])
        return values

    first = backfill()
    assert runs == days
    runs.clear()
    store.record_observation("raw", "etag-changed", partition=days[3])
    second = backfill()
    assert runs == [days[3]]
    assert second == first == {day: f"rows for {day}" for day in days}  # each day its own value
    store.close()


def test_two_partitions_never_share_a_cached_value(sqlite_url: str, tmp_path: object) -> None:
    store = EventStore(sqlite_url)
    cache = ValueCache(str(tmp_path) + "/values")  # type: ignore[operator]
    spec = AssetSpec("p", code_version="1", partitions=StaticPartitions(["a", "b"]))
    for key in ("a", "b"):
        step = Step(store, spec, partition=key, cache=cache)
        assert not step.check().skip
        step.record(f"value of {key}", data_version="same")  # equal user data versions
    assert Step(store, spec, partition="a", cache=cache).check().value == "value of a"
    assert Step(store, spec, partition="b", cache=cache).check().value == "value of b"
    store.close()


# --------------------------------------------------------------------------- encodings
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["a", "a/b", "b"]), st.sampled_from(["", "x", "x]", "1"]), st.integers(-1, 3)
        ),
        max_size=4,
        unique_by=lambda r: (r[0], r[1]),
    ),
    st.lists(
        st.tuples(
            st.sampled_from(["a", "a/b", "b"]), st.sampled_from(["", "x", "x]", "1"]), st.integers(-1, 3)
        ),
        max_size=4,
        unique_by=lambda r: (r[0], r[1]),
    ),
)
def test_input_digest_is_injective(
    left: list[tuple[str, str, int]], right: list[tuple[str, str, int]]
) -> None:
    def digest(rows: list[tuple[str, str, int]]) -> str:
        return inputs_digest(((AssetKey(k), e) for k, _, e in rows), [p for _, p, _ in rows])

    if sorted(left) != sorted(right):
        assert digest(left) != digest(right)
    else:
        assert digest(left) == digest(right)


def test_a_dropped_static_key_stays_explainable(any_store: EventStore) -> None:
    store = any_store
    store.register([AssetSpec("p", code_version="1", partitions=StaticPartitions(["a", "b"]))])
    store.record_materialization("p", partition="a")
    store.record_materialization("p", partition="b")
    store.register([AssetSpec("p", code_version="2", partitions=StaticPartitions(["a"]))])
    assert store.status("p").partitions.unsynced == ("a", "b")  # type: ignore[union-attr]
    assert reasons(store, "p", "b") == ["p[b] has a new code version"]
    with pytest.raises(InvalidPartitionKey):
        store.status("p", partition="c")
