"""decide(): the skip-or-run rule shared by Step and dbt's planner, and its one log line."""

from __future__ import annotations

from insync.core import (
    AssetKey,
    AssetStatus,
    DataVersion,
    StaleCause,
    StaleCauseCategory,
    StaleStatus,
    decide,
    decision_line,
)

KEY = AssetKey.parse("mart/orders")


def status(kind: StaleStatus, *causes: StaleCause, partition: str | None = None) -> AssetStatus:
    return AssetStatus(KEY, kind, DataVersion("v"), "1", "materializable", None, causes=causes,
                       partition=partition)


def cause(key: str, reason: str, partition: str | None = None) -> StaleCause:
    return StaleCause(AssetKey.parse(key), StaleCauseCategory.DATA, reason, partition=partition)


def test_the_rule_in_order() -> None:
    fresh = status(StaleStatus.FRESH)
    assert decide(fresh, code_version="1") == (True, "")
    assert decide(status(StaleStatus.MISSING), code_version="1", force=True) == (False, "never materialized")
    assert decide(fresh, code_version="1", force=True) == (False, "forced")
    assert decide(fresh, code_version="1", force="--full-refresh") == (False, "--full-refresh")
    assert decide(fresh, code_version="1", unseen_inputs=["os.environ"]) == (
        False, "reads inputs insync cannot see: os.environ")
    assert decide(fresh, code_version=None) == (False, "no code version, so it always runs")
    assert decide(fresh, code_version=None, same_run=True) == (True, "already materialized in this run")


def test_stale_reasons_name_three_root_causes_and_count_the_rest() -> None:
    many = [cause(f"raw/{n}", "has a new data version") for n in "abcde"]
    skip, reason = decide(status(StaleStatus.STALE, *many), code_version="1")
    assert not skip
    assert reason == ("raw/a has a new data version; raw/b has a new data version; "
                      "raw/c has a new data version (and 2 more)")
    # A rollup names its own causes once; one partition's status keeps the partition.
    own = [cause("mart/orders", "has a new code version", p) for p in ("d1", "d2")]
    rollup = status(StaleStatus.STALE, *own)
    assert decide(rollup, code_version="1")[1] == "mart/orders has a new code version"
    assert decide(status(StaleStatus.STALE, own[0], partition="d1"), code_version="1")[1] == (
        "mart/orders[d1] has a new code version")


def test_one_line_for_every_adapter() -> None:
    # The words of `insync status` and the catalog, not the enum's values.
    assert decision_line(True, "k", StaleStatus.FRESH) == "skip k: Synced"
    assert decision_line(False, "k", StaleStatus.STALE, "raw/a has a new data version") == (
        "run k: Unsynced, raw/a has a new data version")
    assert decision_line(False, "k", StaleStatus.MISSING, "never materialized") == "run k: Never materialized"
    assert decision_line(False, "k", StaleStatus.FRESH, "forced") == "run k: Synced, forced"
