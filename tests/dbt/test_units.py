"""Pieces of the dbt adapter that need no warehouse: SQL normalization, argument splitting,
meta validation."""

from __future__ import annotations

import pytest
from insync.adapters.dbt import _manifest, _sql
from insync.adapters.dbt._runner import split_args
from insync.core import (
    AssetKey,
    AssetStatus,
    ConfigError,
    StaleStatus,
    fingerprint_value,
)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("select a+b from t", "SELECT a + b\nFROM   t ;"),
        ("select 1 -- note\n, 2", "select 1 /* other\nnote */ , 2"),
        ("select x from t", "\n\n  select   x\tfrom t\n"),
    ],
)
def test_formatting_and_comments_do_not_change_normalized_sql(a: str, b: str) -> None:
    assert _sql.normalize_sql(a) == _sql.normalize_sql(b)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("select 'a b'", "select 'a  b'"),  # inside a string, whitespace is data
        ("select '--x'", "select ''"),  # a comment marker inside a string is not a comment
        ('select "Col"', 'select "col"'),  # quoted identifiers are case-sensitive
        ("select ab from t", "select a b from t"),
        ("select 1 from t", "select 2 from t"),
    ],
)
def test_real_changes_change_normalized_sql(a: str, b: str) -> None:
    assert _sql.normalize_sql(a) != _sql.normalize_sql(b)


def test_split_args_separates_selection_project_and_build_options() -> None:
    args = split_args(["--select", "a", "b+", "--target", "prod", "--threads", "4",
                       "--exclude=c", "-s", "d", "--full-refresh", "--vars", "{x: 1}"])
    assert args.selection == ("--select", "a", "b+", "--exclude", "c", "--select", "d")
    assert args.project == ("--target", "prod", "--vars", "{x: 1}")
    assert args.build == ("--threads", "4", "--full-refresh")
    assert args.full_refresh


def test_split_args_refuses_an_option_without_value() -> None:
    with pytest.raises(ConfigError, match="--select needs a value"):
        split_args(["--select"])
    with pytest.raises(ConfigError, match="--target needs a value"):
        split_args(["--target"])


def test_split_args_refuses_empty_builds() -> None:
    with pytest.raises(ConfigError, match="--empty builds relations without rows"):
        split_args(["--empty"])


def test_unknown_meta_key_is_named_with_the_fix() -> None:
    with pytest.raises(ConfigError, match=r"model\.x\.y: unknown meta\.insync key\(s\) colour; use"):
        _manifest._insync_meta("model.x.y", {"insync": {"colour": "red"}})


def test_bad_data_version_mode_is_refused() -> None:
    with pytest.raises(ConfigError, match="data_version is 'fast'; use 'content' or 'logical'"):
        _manifest._insync_meta("model.x.y", {"insync": {"data_version": "fast"}})


def test_meta_insync_must_be_a_mapping() -> None:
    with pytest.raises(ConfigError, match=r"meta\.insync must be a mapping"):
        _manifest._insync_meta("model.x.y", {"insync": "content"})


def test_bad_key_names_the_node() -> None:
    with pytest.raises(ConfigError, match=r"model\.x\.y: cannot form an asset key.*meta: \{insync"):
        _manifest._key("model.x.y", {"key": "a//b"}, ())


def test_import_without_dbt_says_what_to_install() -> None:
    import subprocess
    import sys

    code = (
        "import importlib.metadata as m\n"
        "real = m.version\n"
        "def version(name):\n"
        "    if name == 'dbt-core':\n"
        "        raise m.PackageNotFoundError(name)\n"
        "    return real(name)\n"
        "m.version = version\n"
        "import insync.adapters.dbt\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=False)
    assert result.returncode == 1
    assert "pip install 'insync[dbt]'" in result.stderr


def test_split_args_takes_the_users_batch_range_for_insync_to_narrow() -> None:
    args = split_args(["--event-time-start", "2026-11-01", "--event-time-end=2026-11-05",
                       "--threads", "2"])
    assert args.event_time == ("2026-11-01", "2026-11-05")
    assert args.build == ("--threads", "2")  # insync passes its own range per call
    with pytest.raises(ConfigError, match="--event-time-end needs a value"):
        split_args(["--event-time-end"])


def _asset(short: str, parents: tuple[str, ...] = (), **kw: object) -> _manifest.DbtAsset:
    name = short
    fields: dict[str, object] = {
        "unique_id": f"model.p.{short}", "name": short, "resource_type": "model",
        "key": AssetKey(["p", name]), "materialized": "table", "code_version": "v1",
        "data_version": "logical", "parents": parents, "relation": None, "database": None,
        "schema": "main", "identifier": name, **kw}
    return _manifest.DbtAsset(**fields)  # type: ignore[arg-type]


def test_readers_of_an_unobserved_source_always_rebuild_and_say_so() -> None:
    from insync.adapters.dbt._plan import plan

    source = _asset("orders", resource_type="source", code_version=None,
                    unique_id="source.p.raw.orders", name="raw.orders")
    reader = _asset("stg", ("source.p.raw.orders",))
    child = _asset("mart", ("model.p.stg",))
    assets = {a.unique_id: a for a in (source, reader, child)}
    version = fingerprint_value("fresh")
    fresh = {a.key: AssetStatus(a.key, StaleStatus.FRESH, version, "v1", "materializable", "dbt")
             for a in (reader, child)}
    decisions = {d.unique_id: d for d in plan(assets, {reader.unique_id, child.unique_id}, fresh,
                                              unobserved={"source.p.raw.orders"})}
    assert decisions["model.p.stg"].reason == "raw.orders is not observed"
    assert decisions["model.p.mart"].reason == "p/stg is rebuilt in this run"
    calm = plan(assets, {reader.unique_id}, fresh)
    assert [d.build for d in calm] == [False]  # observed (not in `unobserved`): reused


def test_incremental_calls_split_around_full_refreshes_parents_first() -> None:
    from insync.adapters.dbt._plan import Decision
    from insync.adapters.dbt._project import _Context, _stages

    a = _asset("a")
    inc = _asset("inc", ("model.p.a",), materialized="incremental")
    b = _asset("b", ("model.p.inc",))
    other = _asset("other", ("model.p.a",), materialized="incremental")
    ctx = _Context(None, None, {x.unique_id: x for x in (a, inc, b, other)}, "duckdb", None)  # type: ignore[arg-type]
    stages = _stages(ctx, [Decision("model.p.a", True, "x"),
                           Decision("model.p.inc", True, "code", full_refresh=True),
                           Decision("model.p.b", True, "x"),
                           Decision("model.p.other", True, "data")])
    assert [[d.unique_id.rpartition(".")[2] for d in s] for s in stages] == [
        ["a", "other"], ["inc"], ["b"]]
    assert [s[0].full_refresh for s in stages] == [False, True, False]


def test_checksum_queries_on_another_warehouse_name_the_fix() -> None:
    with pytest.raises(ConfigError, match=r"no checksum query for the snowflake warehouse.*duckdb, postgres"):
        _sql.checksum_expression("snowflake", "db.s.t", "db", "s", "t")
    with pytest.raises(ConfigError, match=r"meta\.insync\.observe"):
        _sql.windows_query("snowflake", "source.p.raw.events", "raw.events", "happened_at", "daily",
                           "2026-01-01", "2026-01-02")


def test_report_outcome_of_an_unselected_node_names_close_ones() -> None:
    from insync.adapters.dbt import BuildReport
    from insync.adapters.dbt._report import NodeOutcome
    from insync.core import InsyncError

    report = BuildReport("build", run_id=None, invocations=0,
                         outcomes=[NodeOutcome(_asset("orders"), "reused", "Synced")])
    assert report.outcome("orders").reason == "Synced"
    with pytest.raises(ConfigError, match=r"'order' was not among the 1 selected nodes.*did you mean orders"):
        report.outcome("order")
    with pytest.raises(InsyncError, match="select it with --select"):
        report.outcome("zzz")


def test_plan_words_decisions_as_every_adapter_does() -> None:
    from insync.adapters.dbt._plan import plan
    from insync.core import StaleCause, StaleCauseCategory, decision_line

    model = _asset("stg")
    version = fingerprint_value("v")
    fresh = AssetStatus(model.key, StaleStatus.FRESH, version, "v1", "materializable", "dbt")
    (reuse,) = plan({model.unique_id: model}, {model.unique_id}, {model.key: fresh})
    assert not reuse.build and reuse.message == "Synced"
    assert decision_line(True, str(model.key), reuse.status, reuse.reason) == "skip p/stg: Synced"
    (missing,) = plan({model.unique_id: model}, {model.unique_id}, {})
    assert decision_line(False, str(model.key), missing.status, missing.reason) == (
        "run p/stg: Never materialized")
    cause = StaleCause(model.key, StaleCauseCategory.CODE, "has a new code version")
    stale = AssetStatus(model.key, StaleStatus.STALE, version, "v2", "materializable", "dbt",
                        causes=(cause,))
    (run,) = plan({model.unique_id: model}, {model.unique_id}, {model.key: stale})
    assert run.message == "Unsynced, p/stg has a new code version"
