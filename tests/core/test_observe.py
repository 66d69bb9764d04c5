"""EventStore.observe: the one observation rule every adapter uses."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import sqlalchemy as sa
from insync.core import (
    INITIAL,
    AssetSpec,
    ConfigError,
    DataVersion,
    EventStore,
    InvalidDataVersion,
    InvalidPartitionKey,
    Observation,
    StaticPartitions,
)


@contextmanager
def count_queries(store: EventStore) -> Iterator[list[str]]:
    """The SQL statements `store` runs inside the block (transaction control left out)."""
    seen: list[str] = []
    control = ("BEGIN", "PRAGMA", "COMMIT", "ROLLBACK")
    listener = lambda *a: seen.append(a[2]) if not a[2].lstrip().upper().startswith(control) else None  # noqa: E731
    sa.event.listen(store._engine, "before_cursor_execute", listener)
    yield seen
    sa.event.remove(store._engine, "before_cursor_execute", listener)


def markers(store: EventStore) -> tuple[int, int]:
    return store.last_event_id(), store.definitions_revision()


def test_records_only_changed_versions_and_registers_new_sources(store: EventStore) -> None:
    first = store.observe({"raw/a": "v1", "raw/b": "v1"}, framework="test", run_id="r1")
    assert [(str(e.key), e.data_version.value, e.framework) for e in first.recorded] == [
        ("raw/a", "v1", "test"),
        ("raw/b", "v1", "test"),
    ]
    assert first.previous[(first.recorded[0].key, None)] == INITIAL
    assert store.definitions()[first.recorded[0].key] == AssetSpec(
        "raw/a", kind="observable", framework="test"
    )
    before = markers(store)
    again = store.observe({"raw/a": "v1", "raw/b": DataVersion("v2")})
    assert [str(e.key) for e in again.recorded] == ["raw/b"]
    assert [str(o.key) for o in again.unchanged] == ["raw/a"]
    assert again.changed("raw/b") and not again.changed("raw/a")
    assert again.previous[(again.recorded[0].key, None)] == DataVersion("v1")
    assert markers(store) == (before[0] + 1, before[1])  # one event, no registration


def test_unchanged_observations_write_nothing(store: EventStore) -> None:
    store.register(
        [AssetSpec("raw/a", kind="observable"), AssetSpec("mart", code_version="1", deps=["raw/a"])]
    )
    store.observe({"raw/a": "v1"})
    before = markers(store)
    result = store.observe({"raw/a": "v1"})
    assert result.recorded == () and markers(store) == before


def test_unread_lists_consumers_behind_the_current_version(store: EventStore) -> None:
    store.register(
        [
            AssetSpec("raw/a", kind="observable"),
            AssetSpec("x", code_version="1", deps=["raw/a"]),
            AssetSpec("y", code_version="1", deps=["raw/a"]),
            AssetSpec("other", code_version="1"),
        ]
    )
    assert dict(store.observe({"raw/a": "v1"}).unread) == {
        store.definitions()["x"].deps[0]: (_k("x"), _k("y"))
    }
    store.record_materialization("x")
    assert store.observe({"raw/a": "v1"}).unread[_k("raw/a")] == (_k("y"),)
    store.record_materialization("y")
    assert store.observe({"raw/a": "v1"}).unread[_k("raw/a")] == ()
    assert store.observe({"raw/a": "v2"}).unread[_k("raw/a")] == (_k("x"), _k("y"))
    # A revert: x and y read v1, which is current again.
    assert store.observe({"raw/a": "v1"}).unread[_k("raw/a")] == ()
    # Explicit consumers: only those are compared; one that does not read the source is behind.
    explicit = store.observe({"raw/a": "v1"}, consumers={"raw/a": ["x", "other"]})
    assert explicit.unread == {_k("raw/a"): (_k("other"),)}
    assert store.observe({"raw/a": "v1"}, consumers={}).unread == {}


def test_unread_after_inputs_moved_reads_provenance(store: EventStore) -> None:
    store.register(
        [
            AssetSpec("raw/a", kind="observable"),
            AssetSpec("raw/b", kind="observable"),
            AssetSpec("x", code_version="1", deps=["raw/a", "raw/b"]),
        ]
    )
    store.observe({"raw/a": "v1", "raw/b": "v1"})
    store.record_materialization("x")
    store.observe({"raw/b": "v2"})  # x's inputs moved on: its provenance rows are read
    result = store.observe({"raw/a": "v1"})
    assert result.unread == {_k("raw/a"): ()}
    assert store.observe({"raw/b": "v2"}).unread == {_k("raw/b"): (_k("x"),)}


def test_a_constant_number_of_queries(store: EventStore) -> None:
    def setup(n: int) -> None:
        specs = [AssetSpec(f"raw/s{i}", kind="observable") for i in range(n)]
        specs += [
            AssetSpec(f"m/{i}/{j}", code_version="1", deps=[f"raw/s{i}"]) for i in range(n) for j in range(3)
        ]
        store.register(specs)
        store.observe({f"raw/s{i}": "v1" for i in range(n)})
        store.record_materializations([])

    counts = []
    for n in (2, 40):
        setup(n)
        with count_queries(store) as unchanged:
            store.observe({f"raw/s{i}": "v1" for i in range(n)})
        with count_queries(store) as changed:
            store.observe({f"raw/s{i}": "v2" for i in range(n)})
        assert not any(q.lstrip().upper().startswith("INSERT") for q in unchanged)
        counts.append((len(unchanged), len(changed)))
    assert counts[0] == counts[1]


def test_placeholders_become_observable_but_owned_definitions_stay(store: EventStore) -> None:
    store.register(
        [AssetSpec("mart", code_version="1", deps=["raw/a"]), AssetSpec("built", code_version="1")]
    )
    store.observe({"raw/a": "v1", "built": "v1"}, framework="dbt")
    specs = store.definitions()
    assert specs[_k("raw/a")].kind == "observable" and specs[_k("raw/a")].framework == "dbt"
    assert specs[_k("built")].kind == "materializable"
    before = markers(store)
    assert store.observe({"built": "v1"}).recorded == ()  # compared with its latest observation
    assert markers(store) == before


def test_partitions_metadata_and_errors(store: EventStore) -> None:
    store.register([AssetSpec("raw/p", kind="observable", partitions=StaticPartitions(["a", "b"]))])
    result = store.observe(
        [
            Observation("raw/p", DataVersion("1"), "a", {"rows": 3}),
            Observation("raw/p", DataVersion("1"), "b"),
        ],
        metadata={"by": "test"},
    )
    assert [(e.partition, dict(e.metadata)) for e in result.recorded] == [
        ("a", {"by": "test", "rows": 3}),
        ("b", {"by": "test"}),
    ]
    again = store.observe(
        [Observation("raw/p", DataVersion("2"), "a"), Observation("raw/p", DataVersion("1"), "b")]
    )
    assert [e.partition for e in again.recorded] == ["a"] and again.changed("raw/p", "a")
    with pytest.raises(InvalidPartitionKey):
        store.observe([Observation("raw/p", DataVersion("1"), "zzz")])
    with pytest.raises(InvalidPartitionKey):
        store.observe({"raw/p": "1"})
    with pytest.raises(InvalidDataVersion):
        store.observe({"raw/q": "INITIAL"})
    with pytest.raises(ConfigError, match="Observation objects"):
        store.observe(["raw/q"])  # type: ignore[list-item]
    with pytest.raises(ConfigError, match="DataVersion or a string"):
        store.observe({"raw/q": 3})  # type: ignore[dict-item]


def test_absent_completes_a_scan_of_a_partitioned_source(store: EventStore) -> None:
    store.register([AssetSpec("raw/p", kind="observable", partitions=StaticPartitions(["a", "b", "c"]))])
    empty = Observation("raw/p", DataVersion("empty"), metadata={"scan": True})
    first = store.observe(
        [Observation("raw/p", DataVersion("1"), "a"), Observation("raw/p", DataVersion("1"), "b")]
    )
    assert len(first.recorded) == 2
    # b lost its rows: recorded as empty; c was never seen, so nothing is said about it.
    result = store.observe([Observation("raw/p", DataVersion("1"), "a")], absent=[empty])
    assert [(e.partition, e.data_version.value, dict(e.metadata)) for e in result.recorded] == [
        ("b", "empty", {"scan": True})
    ]
    before = markers(store)
    assert store.observe([Observation("raw/p", DataVersion("1"), "a")], absent=[empty]).recorded == ()
    assert markers(store) == before


def _k(key: str):  # type: ignore[no-untyped-def]
    from insync.core import AssetKey

    return AssetKey.parse(key)
