"""`insync dbt build|run|status|why` through the click group the `insync` command mounts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from click.testing import CliRunner
from insync.adapters.dbt.cli import dbt_group

if TYPE_CHECKING:
    from tests.dbt.conftest import Shop


def invoke(shop: Shop, *args: str) -> tuple[int, str]:
    project = ["--project-dir", str(shop.dir), "--profiles-dir", str(shop.dir)]
    url = shop.store.url.render_as_string(hide_password=False)
    command, *rest = args
    result = CliRunner().invoke(dbt_group, ["--database-url", url, command, *rest, *project])
    return result.exit_code, result.output


def test_build_prints_built_and_reused_with_reasons(shop: Shop) -> None:
    code, out = invoke(shop, "build")
    assert code == 0, out
    assert "built" in out and "never materialized" in out
    assert "insync dbt build: 9 built (1 dbt call(s))" in out
    # What starts, then dbt's own line per node: a build is never silent.
    assert "insync: dbt parse of " in out and "insync: dbt build of 9 node(s); 0 reused" in out
    assert "OK created sql table model main.customers" in out
    shop.replace("models/marts/customers.sql", "group by 1, 2, 3", "group by all")
    code, out = invoke(shop, "build", "--json")
    assert code == 0
    report = json.loads(out[out.index("{\n"):])
    actions = {n["name"]: (n["action"], n["reason"]) for n in report["nodes"]}
    assert actions["customers"] == ("built", "shop/main/customers has a new code version")
    assert actions["orders"] == ("reused", "Synced")


def test_status_and_why_explain_without_building(built_shop: Shop) -> None:
    built_shop.load_more()
    code, out = invoke(built_shop, "status", "--select", "stg_orders+")
    assert code == 0, out
    assert "would build" in out and "Unsynced, raw/orders has a new data version" in out
    assert "customers" in out and "stg_products" not in out
    # Nothing runs in a status: a child of a changed node says that node's status, not a plan.
    assert "Synced, upstream shop/main/stg_orders is Unsynced" in out
    assert "in this run" not in out
    code, out = invoke(built_shop, "why", "stg_orders")
    assert code == 0, out
    assert "model.shop.stg_orders -> asset shop/main/stg_orders" in out
    assert "Unsynced" in out and "raw/orders has a new data version" in out
    # status observed nothing new for the build to do differently: it still builds the chain.
    assert built_shop.build().built[:2] == ["stg_orders", "stg_payments"]


def test_failed_build_exits_non_zero(built_shop: Shop) -> None:
    built_shop.replace("models/marts/revenue_by_country.sql", "sum(lifetime_value)", "sum(nope)")
    code, out = invoke(built_shop, "run")
    assert code == 1
    assert "failed" in out


def test_unknown_node_and_bad_meta_give_clear_errors(built_shop: Shop) -> None:
    code, out = invoke(built_shop, "why", "custmers")
    assert code == 1
    assert "no dbt model, seed, snapshot or source named 'custmers'" in out
    built_shop.replace("models/staging/staging.yml", "data_version: content", "data_version: exact")
    code, out = invoke(built_shop, "status")
    assert code == 1
    assert "ConfigError: model.shop.stg_customers: meta.insync.data_version is 'exact'" in out


def test_broken_observe_query_names_the_source(built_shop: Shop) -> None:
    built_shop.replace("models/sources.yml", "max(ordered_at)", "max(no_such_column)")
    code, out = invoke(built_shop, "build")
    assert code == 1
    assert "ObservationError: could not observe dbt source raw.orders (raw/orders)" in out


def test_mounted_under_the_insync_command_it_uses_its_store(built_shop: Shop) -> None:
    import copy

    from insync.core.cli import main

    insync = copy.copy(main)  # what the `insync.cli` entry point does, without touching `main`
    insync.commands = {**main.commands, "dbt": dbt_group}
    url = built_shop.store.url.render_as_string(hide_password=False)
    project = ["--project-dir", str(built_shop.dir), "--profiles-dir", str(built_shop.dir)]
    result = CliRunner().invoke(insync, ["--database-url", url, "dbt", "status", *project])
    assert result.exit_code == 0, result.output
    assert "insync dbt status: 9 reuse" in result.output
    result = CliRunner().invoke(insync, ["--database-url", url, "status"])
    assert "0 unsynced, 11 synced" in result.output  # the same store, seen by the core command


def test_newcomer_errors_are_one_line_saying_the_fix(
    shop_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'insync.db'}"
    monkeypatch.delenv("DBT_PROFILES_DIR", raising=False)
    monkeypatch.delenv("DBT_PROJECT_DIR", raising=False)
    monkeypatch.chdir(tmp_path)  # no dbt project here
    cases = {
        (): f"no dbt_project.yml in {tmp_path}; run from your dbt project or pass --project-dir",
        ("--project-dir", str(tmp_path / "nowhere")):
            f"dbt project directory {tmp_path / 'nowhere'} does not exist; pass --project-dir",
        ("--project-dir", str(shop_dir), "--profiles-dir", str(tmp_path)):
            f"no dbt profile named 'shop': {tmp_path / 'profiles.yml'} does not exist; create it",
    }
    for args, message in cases.items():
        result = CliRunner().invoke(dbt_group, ["--database-url", url, "build", *args])
        assert result.exit_code == 1, result.output
        error = [line for line in result.output.splitlines() if line.startswith("Error")]
        assert len(error) == 1 and message in error[0], result.output
        assert "Traceback" not in result.output
