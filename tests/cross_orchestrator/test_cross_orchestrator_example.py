"""The cross-orchestrator example end to end: real Airflow 3, dbt-duckdb and Prefect 3 sharing
one insync store, on SQLite (the default location) and on PostgreSQL (by URL)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from insync.core import AssetKey, AssetSpec, EventStore

# conftest.py's Scenario (conftest modules are not importable by name across test folders).
Scenario = Any

RUN = Path(__file__).resolve().parents[2] / "examples" / "cross_orchestrator" / "run.py"

FRAMEWORKS = {
    "raw/orders_csv": "airflow",
    "raw/orders": "airflow",
    "raw/customers_csv": "airflow",
    "raw/customers": "airflow",
    "staging/orders": "dbt",
    "staging/customers": "dbt",
    "marts/daily_revenue": "dbt",
    "marts/customers_by_country": "dbt",
    "reports/daily_revenue": "prefect",
    "reports/customers_by_country": "prefect",
}
# What the new order reaches (besides the observed file itself).
ORDERS_CHAIN = ("raw/orders", "staging/orders", "marts/daily_revenue", "reports/daily_revenue")
CUSTOMERS_CHAIN = (
    "raw/customers",
    "staging/customers",
    "marts/customers_by_country",
    "reports/customers_by_country",
)


def _statuses(scenario: Scenario, phase: str) -> dict[str, str]:
    return {row["key"]: row["status"] for row in scenario.result[phase]}


def check_scenario(s: Scenario) -> None:
    """Everything the example promises, from its JSON, its output and the store itself."""
    r = s.result
    # Pass 1: every asset of the three frameworks is in the one store, and all are in sync.
    assert {row["key"]: row["framework"] for row in r["after_pass1"]} == FRAMEWORKS
    assert set(_statuses(s, "after_pass1").values()) == {"FRESH"}
    assert not any(row["why"] for row in r["after_pass1"])
    pass1 = r["summary"]["pass1"]
    assert pass1 == {
        "airflow": {"ran": ["load_orders", "load_customers"], "skipped": []},
        "dbt": {
            "ran": ["stg_customers", "stg_orders", "customers_by_country", "daily_revenue"],
            "skipped": [],
        },
        "prefect": {"ran": ["reports/daily_revenue", "reports/customers_by_country"], "skipped": []},
    }

    # The edit, as Airflow's sensor sees it: only the orders file has a new version.
    watch = {row["task"]: row["decision"] for row in r["watch"]}
    assert watch == {"observe_orders_csv": "observed (new)", "observe_customers_csv": "observed (same)"}

    # After the edit was observed: the Airflow asset is Unsynced because of its file, and every
    # dbt model and Prefect report below it names it as the pending upstream change.
    raw = s.status("after_edit", "raw/orders")
    assert (raw["status"], raw["root_causes"]) == ("STALE", ["raw/orders_csv has a new data version"])
    for key in ORDERS_CHAIN[1:]:
        row = s.status("after_edit", key)
        assert (row["status"], row["upstream"]) == ("FRESH", ["raw/orders"]), row
        assert "will be unsynced after raw/orders is materialized (Unsynced)" in row["why"]
    for key in CUSTOMERS_CHAIN:
        assert s.status("after_edit", key)["why"] == [], key

    # Pass 2, once Airflow re-ingested: the dbt model reading raw/orders is Unsynced with
    # the Airflow asset as its root cause; the mart and the report wait on that model.
    mid = s.status("pass2_after_airflow", "staging/orders")
    assert (mid["status"], mid["root_causes"]) == ("STALE", ["raw/orders has a new data version"])
    assert s.status("pass2_after_airflow", "raw/orders")["status"] == "FRESH"
    for key in ("marts/daily_revenue", "reports/daily_revenue"):
        assert s.status("pass2_after_airflow", key)["upstream"] == ["staging/orders"], key
    assert "$ insync why staging/orders" in s.stdout
    assert "└── raw/orders has a new data version (DATA)" in s.stdout

    # Pass 2 rebuilt only what the new order reaches, in each orchestrator.
    assert r["summary"]["pass2"] == {
        "airflow": {"ran": ["load_orders"], "skipped": ["load_customers"]},
        "dbt": {"ran": ["stg_orders", "daily_revenue"], "skipped": ["stg_customers", "customers_by_country"]},
        "prefect": {"ran": ["reports/daily_revenue"], "skipped": ["reports/customers_by_country"]},
    }
    dbt = {row["node"]: row["reason"] for row in r["pass2"]["dbt"]}
    assert dbt["stg_orders"] == "raw/orders has a new data version"
    assert dbt["stg_customers"] == "Synced"

    # And everything is back in sync: new versions along the orders chain only.
    assert set(_statuses(s, "after_pass2").values()) == {"FRESH"}
    before = {row["key"]: row["data_version"] for row in r["after_pass1"]}
    after = {row["key"]: row["data_version"] for row in r["after_pass2"]}
    changed = {key for key in FRAMEWORKS if before[key] != after[key]}
    assert changed == {"raw/orders_csv", *ORDERS_CHAIN}

    _check_store(s)
    _check_outputs(s)


def _check_store(s: Scenario) -> None:
    """The store itself: who recorded what, and provenance across orchestrator boundaries."""
    with EventStore(s.store_url) as store:
        definitions = store.definitions()
        assert {str(k): spec.framework for k, spec in definitions.items()} == FRAMEWORKS
        # dbt's source raw.orders maps onto the Airflow asset and does not replace it.
        assert definitions[AssetKey("raw/orders")].kind == "materializable"
        assert definitions[AssetKey("raw/orders_csv")].kind == "observable"

        def materializations(key: str) -> list[Any]:
            return [e for e in store.history(key) if e.kind == "materialization"]

        for key in ORDERS_CHAIN:
            assert len(materializations(key)) == 2, key
        for key in CUSTOMERS_CHAIN:
            assert len(materializations(key)) == 1, key
        assert {e.framework for e in materializations("raw/orders")} == {"airflow"}
        # dbt's latest stg_orders read exactly the materialization Airflow made in pass 2, and
        # Prefect's report read exactly dbt's latest mart.
        for key, dep in (("staging/orders", "raw/orders"), ("reports/daily_revenue", "marts/daily_revenue")):
            inputs = {str(i.key): i.event_id for i in materializations(key)[0].inputs}
            assert inputs[dep] == materializations(dep)[0].id, (key, dep)


def _check_outputs(s: Scenario) -> None:
    report = json.loads((s.workdir / "reports" / "daily_revenue.json").read_text())
    assert report[-1] == {"order_date": "2026-11-03", "orders": 1, "revenue": 19.99}
    assert len(report) == 3
    # The real `insync status` on the same store agrees.
    cli = Path(sys.executable).parent / "insync"
    shown = subprocess.run(
        [str(cli), "--database-url", s.store_url, "status", "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert {row["key"]: row["label"] for row in json.loads(shown.stdout)} == dict.fromkeys(
        FRAMEWORKS, "Synced"
    )


def test_end_to_end_on_the_default_sqlite_store(scenario_type: Any) -> None:
    """The README's own command: tests/test_readme_commands.py runs it (once per process), this
    checks everything it left."""
    from readme_harness import run_readme

    readme = run_readme("examples/cross_orchestrator/README.md")
    output = readme.output_of("run.py --workdir cross-run")
    workdir = readme.copy / "cross-run"
    assert (workdir / "insync" / "insync.db").exists(), output[-4000:]
    result = json.loads((readme.copy / "cross-run.json").read_text())
    scenario = scenario_type(result, output, workdir, f"sqlite:///{workdir / 'insync' / 'insync.db'}", 0.0)
    assert scenario.result["store"].startswith("EventStore('sqlite:///")
    check_scenario(scenario)


def test_end_to_end_on_postgresql(run_example: Any, postgres_url: str) -> None:
    scenario = run_example(postgres_url)
    assert "postgresql" in scenario.result["store"]
    check_scenario(scenario)


def test_refuses_a_non_empty_workdir(tmp_path: Path) -> None:
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "file").write_text("x")
    done = subprocess.run(
        [sys.executable, str(RUN), "--workdir", str(tmp_path / "busy")], capture_output=True, text=True
    )
    assert done.returncode == 2
    assert "is not empty; give a new folder" in done.stderr


def test_refuses_a_store_that_already_has_the_example(tmp_path: Path) -> None:
    # A fresh workdir has an empty warehouse: a store saying raw/orders is loaded would make
    # Airflow skip the load and dbt fail on a missing table, so run.py stops before any of it.
    url = f"sqlite:///{tmp_path / 'used' / 'insync.db'}"
    with EventStore(url) as store:
        store.register([AssetSpec("raw/orders", code_version="v1", framework="airflow")])
        store.record_materialization("raw/orders", run_id="earlier")
    done = subprocess.run(
        [sys.executable, str(RUN), "--workdir", str(tmp_path / "work"), "--database-url", url],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1
    assert "already has this example's assets (raw/orders, ...); give a new store" in done.stderr
    assert not (tmp_path / "work" / "airflow" / "airflow.db").exists()


@pytest.fixture(autouse=True)
def _no_source_tree_writes() -> Any:
    """The example copies its project into the workdir: nothing lands in examples/."""
    example = RUN.parent
    before = sorted(p for p in example.rglob("*") if "__pycache__" not in p.parts)
    yield
    after = sorted(p for p in example.rglob("*") if "__pycache__" not in p.parts)
    assert after == before
