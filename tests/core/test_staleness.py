"""The staleness rules of DESIGN.md, reason strings exactly as Dagster words them."""

from __future__ import annotations

import pytest
from insync.core import (
    INITIAL,
    NULL,
    AssetKey,
    AssetSpec,
    CycleError,
    DataVersion,
    EventStore,
    StaleCauseCategory,
    StaleStatus,
)
from insync.core._staleness import Graph, LatestRecords, Materialized, compute_statuses

K = AssetKey


def causes(store: EventStore, key: str) -> list[tuple[str, str, str, str | None]]:
    return [
        (str(c.key), c.category.value, c.reason, None if c.dependency is None else str(c.dependency))
        for c in store.status(key).causes
    ]


def test_missing_then_fresh(store: EventStore) -> None:
    store.register([AssetSpec("a", code_version="1")])
    assert store.status("a").status is StaleStatus.MISSING
    assert store.status("a").data_version == NULL
    store.record_materialization("a")
    assert store.status("a").status is StaleStatus.FRESH


def test_new_code_version(store: EventStore) -> None:
    store.register([AssetSpec("a", code_version="1")])
    store.record_materialization("a")
    store.register([AssetSpec("a", code_version="2")])
    assert causes(store, "a") == [("a", "CODE", "has a new code version", None)]
    assert store.status("a").status is StaleStatus.STALE


def test_no_code_version_is_never_a_code_cause(store: EventStore) -> None:
    store.register([AssetSpec("a")])
    store.record_materialization("a", run_id="r1")
    assert store.status("a").status is StaleStatus.FRESH


def test_revert_is_still_a_change(store: EventStore) -> None:
    store.register([AssetSpec("a", code_version="1")])
    store.record_materialization("a")
    store.register([AssetSpec("a", code_version="2")])
    store.record_materialization("a")
    store.register([AssetSpec("a", code_version="1")])
    assert causes(store, "a") == [("a", "CODE", "has a new code version", None)]


def test_dependency_added_and_removed(store: EventStore) -> None:
    store.register([AssetSpec("x", code_version="1"), AssetSpec("y", code_version="1")])
    store.register([AssetSpec("b", code_version="1", deps=["x"])])
    store.record_materialization("x")
    store.record_materialization("b")
    store.register([AssetSpec("b", code_version="1", deps=["y"])])
    assert causes(store, "b") == [
        ("b", "DEPENDENCIES", "removed dependency on x", "x"),
        ("b", "DEPENDENCIES", "has a new dependency on y", "y"),
    ]


def test_new_dependency_data_version_when_parent_is_versioned(store: EventStore) -> None:
    store.register([AssetSpec("a", code_version="1"), AssetSpec("b", code_version="1", deps=["a"])])
    store.record_materialization("a")
    store.record_materialization("b")
    store.register([AssetSpec("a", code_version="2")])
    store.record_materialization("a")
    status = store.status("b")
    assert status.status is StaleStatus.STALE
    (cause,) = status.causes
    assert (cause.category, cause.reason, cause.dependency) == (
        StaleCauseCategory.DATA,
        "has a new dependency data version",
        K("a"),
    )
    assert [(str(c.key), c.reason) for c in cause.children] == [("a", "has a new data version")]
    assert [str(c) for c in status.root_causes] == ["a has a new data version"]


def test_new_dependency_materialization_when_parent_is_unversioned(store: EventStore) -> None:
    store.register([AssetSpec("a"), AssetSpec("b", code_version="1", deps=["a"])])
    store.record_materialization("a", run_id="r1")
    store.record_materialization("b")
    store.record_materialization("a", run_id="r2")
    (cause,) = store.status("b").causes
    assert cause.reason == "has a new dependency materialization"
    assert [c.reason for c in cause.children] == ["has a new materialization"]


def test_user_provided_parent_version_reports_data_version(store: EventStore) -> None:
    store.register([AssetSpec("a"), AssetSpec("b", code_version="1", deps=["a"])])
    store.record_materialization("a", data_version="1")
    store.record_materialization("b")
    store.record_materialization("a", data_version="1")  # same value again: still in sync
    assert store.status("b").status is StaleStatus.FRESH
    store.record_materialization("a", data_version="2")
    assert [c.reason for c in store.status("b").causes] == ["has a new dependency data version"]


def test_sources_are_always_fresh_and_report_data_versions(store: EventStore) -> None:
    store.register([AssetSpec("src", kind="observable"), AssetSpec("b", code_version="1", deps=["src"])])
    assert store.status("src").status is StaleStatus.FRESH
    assert store.status("src").data_version == INITIAL
    store.record_materialization("b")  # recorded against INITIAL
    assert store.status("b").status is StaleStatus.FRESH
    store.record_observation("src", "v1")
    assert store.status("src").status is StaleStatus.FRESH
    assert [str(c) for c in store.status("b").root_causes] == ["src has a new data version"]
    store.record_materialization("b")
    store.record_observation("src", "v1")  # observed again, unchanged
    assert store.status("b").status is StaleStatus.FRESH


def test_initial_recorded_vs_null_current_is_unchanged(store: EventStore) -> None:
    # b was materialized while `a` was an unobserved source; `a` then became materializable and
    # has not run yet: nothing new reached b.
    store.register([AssetSpec("b", code_version="1", deps=["a"])])  # a: external placeholder
    store.record_materialization("b")
    assert store.history("b")[0].inputs[0].data_version == INITIAL
    store.register([AssetSpec("a", code_version="1")])
    assert store.status("a").data_version == NULL
    assert store.status("b").status is StaleStatus.FRESH
    store.record_materialization("a")
    assert store.status("b").status is StaleStatus.STALE


def test_status_is_not_transitive_but_upstream_shows_pending_changes(store: EventStore) -> None:
    store.register(
        [
            AssetSpec("a", code_version="1"),
            AssetSpec("b", code_version="1", deps=["a"]),
            AssetSpec("c", code_version="1", deps=["b"]),
        ]
    )
    for key in "abc":
        store.record_materialization(key)
    store.register([AssetSpec("a", code_version="2")])
    statuses = store.statuses()
    assert [statuses[K(k)].status for k in "abc"] == [StaleStatus.STALE, StaleStatus.FRESH, StaleStatus.FRESH]
    assert [str(u.key) for u in statuses[K("c")].upstream] == ["a"]
    assert str(statuses[K("c")].upstream[0]) == "will be unsynced after a is materialized (Unsynced)"
    assert [str(u.key) for u in store.status("c").upstream] == ["a"]
    store.record_materialization("a")
    statuses = store.statuses()
    assert statuses[K("b")].status is StaleStatus.STALE
    assert [str(u.key) for u in statuses[K("c")].upstream] == ["b"]


def test_upstream_lists_missing_and_stale_ancestors_in_topological_order(store: EventStore) -> None:
    store.register(
        [
            AssetSpec("a", code_version="1"),
            AssetSpec("b", code_version="1", deps=["a"]),
            AssetSpec("c", code_version="1", deps=["b", "a"]),
            AssetSpec("d", code_version="1", deps=["c"]),
        ]
    )
    upstream = store.status("d").upstream
    assert [(str(u.key), u.status) for u in upstream] == [
        ("a", StaleStatus.MISSING),
        ("b", StaleStatus.MISSING),
        ("c", StaleStatus.MISSING),
    ]


def test_provenance_is_the_snapshot_taken_at_step_start(store: EventStore) -> None:
    store.register([AssetSpec("a", code_version="1"), AssetSpec("b", code_version="1", deps=["a"])])
    first = store.record_materialization("a")
    snapshot = store.snapshot_inputs("b")  # the step starts here
    store.register([AssetSpec("a", code_version="2")])
    store.record_materialization("a")  # upstream changes while b computes
    event = store.record_materialization("b", inputs=snapshot)
    assert event.inputs[0].event_id == first.id
    assert store.status("b").status is StaleStatus.STALE  # b did not see a's new version


def test_batch_records_children_against_parents_written_earlier(store: EventStore) -> None:
    from insync.core import Materialization

    store.register([AssetSpec("a", code_version="1"), AssetSpec("b", code_version="1", deps=["a"])])
    events = store.record_materializations([Materialization(K("a")), Materialization(K("b"))])
    assert events[1].inputs[0].event_id == events[0].id
    assert all(s.status is StaleStatus.FRESH for s in store.statuses().values())


def test_cycles_are_rejected_with_the_cycle_named(store: EventStore) -> None:
    store.register([AssetSpec("a", deps=["c"]), AssetSpec("b", deps=["a"])])
    with pytest.raises(CycleError, match=r"a -> b -> c -> a") as info:
        store.register([AssetSpec("c", deps=["b"])])
    assert info.value.cycle == ["a", "b", "c"]
    assert store.definitions()[K("c")].kind == "external"  # nothing of the failed register stayed


def test_pure_engine_detects_cycles_in_loaded_graphs() -> None:
    specs = {K("a"): AssetSpec("a", deps=["b"]), K("b"): AssetSpec("b", deps=["a"])}
    with pytest.raises(CycleError, match=r"a -> b -> a|b -> a -> b"):
        compute_statuses(Graph(specs, {}))


def test_unknown_versions_never_compare_unchanged() -> None:
    specs = {K("a"): AssetSpec("a", code_version="1"), K("b"): AssetSpec("b", code_version="1", deps=["a"])}
    latest = {
        K("a"): LatestRecords(Materialized(1, "UNKNOWN", "1", False, None, {})),
        K("b"): LatestRecords(Materialized(2, "x", "1", False, None, {(K("a"), ""): ("UNKNOWN", 1)})),
    }
    assert compute_statuses(Graph(specs, latest))[K("b")].status is StaleStatus.STALE


def test_external_spec_never_overwrites_an_owning_definition(store: EventStore) -> None:
    store.register([AssetSpec("raw/orders", code_version="1", framework="airflow")])
    store.register([AssetSpec("raw/orders", kind="external", framework="dbt")])
    spec = store.definitions()[K("raw/orders")]
    assert (spec.kind, spec.framework, spec.code_version) == ("materializable", "airflow", "1")
    store.register([AssetSpec("new/source", kind="external", framework="dbt")])
    assert store.definitions()[K("new/source")].framework == "dbt"


def test_data_version_of_user_value_wins(store: EventStore) -> None:
    store.register([AssetSpec("a", code_version="1")])
    assert store.record_materialization("a", data_version=DataVersion("20")).data_version == DataVersion("20")
    assert store.record_materialization("a", data_version="21").user_provided
