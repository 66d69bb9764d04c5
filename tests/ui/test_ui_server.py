"""The catalog's JSON endpoints, `serve`/`insync ui`, packaging of the static files, and scale."""

from __future__ import annotations

import json
import random
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from importlib.resources import files
from pathlib import Path
from typing import Any

import pytest
from _ui_seed import EXPECTED_LABELS, Served, seed
from insync.core import AssetSpec, ConfigError, EventStore, Materialization, fingerprint_parameters
from insync.core.ui import serve
from playwright.sync_api import Page, expect


def get(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_graph_endpoint(seeded: Served) -> None:
    code, body = get(seeded.url + "api/graph")
    assert code == 200
    assert {n["key"]: n["label"] for n in body["nodes"]} == EXPECTED_LABELS
    assert body["frameworks"] == ["airflow", "dbt", "prefect"]
    marts = next(n for n in body["nodes"] if n["key"] == "marts/customer_orders")
    assert marts["deps"] == ["staging/customers", "staging/orders"]
    assert marts["status"] == "FRESH" and marts["code_version"] == "v1" and marts["framework"] == "dbt"
    # Both staging models it reads are Unsynced: two pending upstream changes (the page marks it).
    assert {n["key"]: n["pending"] for n in body["nodes"] if n["pending"]} == {
        "marts/customer_orders": 2,
        "reports/weekly": 2,
        "reports/adhoc": 2,
    }
    assert body["cursor"] == get(seeded.url + "api/changes")[1]["cursor"]


def test_graph_endpoint_on_postgresql(postgres_url: str, serve_store: Callable[[EventStore], str]) -> None:
    store = EventStore(postgres_url)
    seed(store)
    code, body = get(serve_store(store) + "api/graph")
    assert code == 200
    assert {n["key"]: n["label"] for n in body["nodes"]} == EXPECTED_LABELS
    store.close()


def test_asset_endpoint_and_unknown_keys(seeded: Served) -> None:
    code, body = get(seeded.url + "api/assets/staging/customers")
    assert code == 200
    assert body["label"] == "Unsynced"
    assert [c["text"] for c in body["root_causes"]] == ["staging/customers has a new code version"]
    assert body["explain"][0] == "staging/customers: Unsynced"
    assert [e["run_id"] for e in body["history"]] == ["dbt-run-1"]
    assert (body["history_limit"], body["history_next"]) == (20, None)  # one page holds it all
    assert (body["metadata"], body["metadata_omitted"]) == ({}, 0)

    code, body = get(seeded.url + "api/assets/staging/nope")
    assert code == 404 and "staging/nope" in body["error"]
    code, body = get(seeded.url + "api/assets/staging//orders")
    assert code == 404 and "empty part" in body["error"]


def test_changes_cursor_moves_on_events_and_definitions(
    tmp_path: Path, serve_store: Callable[[EventStore], str]
) -> None:
    store = EventStore(f"sqlite:///{tmp_path / 'c.db'}")
    url = serve_store(store)
    first = get(url + "api/changes")[1]["cursor"]
    assert get(url + "api/changes")[1]["cursor"] == first  # stable while nothing happens
    store.register([AssetSpec("a", code_version="1")])
    second = get(url + "api/changes")[1]["cursor"]
    assert second != first
    store.record_materialization("a", run_id="r1")
    third = get(url + "api/changes")[1]["cursor"]
    assert third != second and third.startswith("1-")
    store.close()


def test_concurrent_readers_while_a_pipeline_writes(
    tmp_path: Path, serve_store: Callable[[EventStore], str]
) -> None:
    """Endpoints run in Starlette's thread pool: parallel page loads during writes all succeed."""
    store = EventStore(f"sqlite:///{tmp_path / 'busy.db'}")
    seed(store)
    url = serve_store(store)
    paths = ["api/graph", "api/changes", "api/assets/staging/orders", "api/assets/raw/orders"] * 10
    with ThreadPoolExecutor(max_workers=8) as pool:
        readers = [pool.submit(get, url + path) for path in paths]
        for i in range(20):
            store.record_observation("raw/orders", f"rows-{200 + i}", run_id=f"airflow-run-{3 + i}")
        codes = [future.result()[0] for future in readers]
    assert codes == [200] * len(paths)
    assert get(url + "api/assets/raw/orders")[1]["history"][0]["run_id"] == "airflow-run-22"
    store.close()


def test_store_errors_become_json(tmp_path: Path, serve_store: Callable[[EventStore], str]) -> None:
    store = EventStore(f"sqlite:///{tmp_path / 'gone.db'}")
    url = serve_store(store)
    store.close()
    (tmp_path / "gone.db").unlink()
    (tmp_path / "gone.db").write_text("not a database")
    code, body = get(url + "api/graph")
    assert code == 503 and "Error" in body["error"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_insync_ui_command_serves_the_catalog(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    with EventStore(url) as store:
        store.register([AssetSpec("raw/a", kind="observable", framework="airflow")])
    port = free_port()
    cli = [sys.executable, "-c", "from insync.core.cli import main; main()"]
    proc = subprocess.Popen(
        [*cli, "--database-url", url, "ui", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                code, body = get(f"http://127.0.0.1:{port}/api/graph")
                break
            except (urllib.error.URLError, ConnectionError):
                assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
                assert time.monotonic() < deadline, "insync ui did not answer within 30 s"
                time.sleep(0.1)
        assert code == 200 and [n["key"] for n in body["nodes"]] == ["raw/a"]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/") as response:
            assert b"insync asset catalog" in response.read()
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=20)
    assert f"http://127.0.0.1:{port}/" in out
    assert "warning" not in out  # loopback: no "no authentication" warning


def test_empty_store_says_how_to_fill_it(
    tmp_path: Path, serve_store: Callable[[EventStore], str], page: Page
) -> None:
    store = EventStore(f"sqlite:///{tmp_path / 'empty.db'}")
    page.goto(serve_store(store))
    page.wait_for_selector("svg#graph[data-state=ready]")
    expect(page.locator("#empty")).to_have_text(
        "No assets in this store yet: run a pipeline with an insync adapter, or register assets."
    )
    expect(page.locator("#counts")).to_have_text("0 Synced0 Unsynced0 Never materialized0 pending")
    store.close()


@pytest.mark.parametrize("missing", ["starlette", "uvicorn"])
def test_without_the_ui_extra_the_import_error_says_what_to_install(missing: str) -> None:
    code = f"import sys; sys.modules[{missing!r}] = None; import insync.core.ui"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 1
    assert f"ImportError: the insync asset catalog needs {missing}: pip install 'insync[ui]'" in result.stderr


def test_serve_rejects_a_bad_port() -> None:
    with pytest.raises(ConfigError, match="--port between 1 and 65535"):
        serve("sqlite://", port=70000)


def test_static_files_ship_with_the_package_and_dagre_keeps_its_license() -> None:
    static = files("insync.core.ui") / "static"
    for name in ("index.html", "app.js", "layout.js", "layout-worker.js", "style.css"):
        assert (static / name).is_file(), name
    dagre = (static / "vendor" / "dagre.min.js").read_text(encoding="utf-8")
    assert dagre.startswith("/*! @dagrejs/dagre 3.1.3 (MIT")
    assert "Permission is hereby granted, free of charge" in dagre[:3000]
    assert "sourceMappingURL" not in dagre  # no request for a map file that is not shipped
    assert (static / "vendor" / "dagre.LICENSE.txt").is_file()


def test_five_thousand_assets_stay_responsive(
    tmp_path: Path, serve_store: Callable[[EventStore], str], page: Page
) -> None:
    """The benchmark's graph shape: every key in one folder (`asset/`), so it opens by itself and
    every asset is drawn. How fast is measured by benchmarks/bench_ui.py, not asserted here."""
    rng = random.Random(3)
    specs = [
        AssetSpec(
            f"asset/{i}",
            code_version="1",
            deps=sorted({f"asset/{rng.randrange(i)}" for _ in range(min(i, 3))}) if i else [],
            framework=("airflow", "dbt", "prefect")[i % 3],
        )
        for i in range(5000)
    ]
    store = EventStore(f"sqlite:///{tmp_path / 'big.db'}")
    store.register(specs)
    store.record_materializations([Materialization(s.key, run_id="seed") for s in specs[:4900]])
    url = serve_store(store)
    page.goto(url)
    page.wait_for_selector("svg#graph[data-state=ready]", timeout=60_000)
    metrics = page.evaluate("window.insyncMetrics")
    assert metrics["nodes"] == 5000 and metrics["edges"] > 10_000
    assert 0 < metrics["drawnNodes"] < 500  # only what is on screen is in the DOM
    expect(page.locator("#counts")).to_have_text("4900 Synced0 Unsynced100 Never materialized0 pending")
    expect(page.locator("#layout-info")).to_contain_text("fast layered layout")
    expect(page.locator("svg#graph")).to_have_attribute("data-grouped", "folders")
    expect(page.locator("#nodes [data-folder]")).to_have_count(0)

    page.click("#fit")  # every asset at once, drawn as plain boxes
    expect(page.locator("svg#graph")).to_have_attribute("data-detail", "boxes")
    expect(page.locator("#nodes .node-box")).to_have_count(5000)
    page.select_option("#filter-status", "MISSING")
    page.wait_for_function("insyncMetrics.nodes === 100")
    page.wait_for_selector("svg#graph[data-state=ready]")
    assert page.locator("#nodes [data-key]").count() > 0
    store.close()


def test_partition_counts_lists_and_one_partition_endpoint(partitioned: Served) -> None:
    code, body = get(partitioned.url + "api/graph")
    assert code == 200
    nodes = {n["key"]: n for n in body["nodes"]}
    assert nodes["daily/revenue"]["partitions"] == {"total": 30, "synced": 27, "unsynced": 2, "missing": 1}
    assert nodes["daily/revenue"]["label"] == "Unsynced"
    assert nodes["raw/orders"]["partitions"] == {"total": 30, "synced": 30, "unsynced": 0, "missing": 0}
    assert nodes["legacy/partitions/old"]["partitions"] is None

    code, body = get(partitioned.url + "api/assets/daily/revenue")
    assert code == 200 and body["partition"] is None
    assert body["partitions"] == {
        "total": 30,
        "synced": 27,
        "unsynced": ["2026-11-28", "2026-11-29"],
        "missing": ["2026-11-30"],
    }

    code, body = get(partitioned.url + "api/assets/daily/revenue/partitions/2026-11-28")
    assert code == 200
    assert (body["key"], body["partition"], body["label"]) == ("daily/revenue", "2026-11-28", "Unsynced")
    assert body["explain"] == [
        "daily/revenue[2026-11-28]: Unsynced",
        "  root cause: raw/orders[2026-11-28] has a new data version",
    ]
    (cause,) = body["causes"]
    assert (cause["partition"], cause["dependency"], cause["dependency_partition"]) == (
        "2026-11-28",
        "raw/orders",
        "2026-11-28",
    )
    assert body["parameters"] == dict(fingerprint_parameters({"day": "2026-11-28"}))
    assert [(e["partition"], e["run_id"]) for e in body["history"]] == [("2026-11-28", "revenue-1")]

    # A partition key with "/" travels as one encoded path segment.
    code, body = get(partitioned.url + "api/assets/sales/by_region/partitions/us%2Feast")
    assert code == 200 and body["partition"] == "us/east"
    assert [c["text"] for c in body["root_causes"]] == ["sales/by_region[us/east] has a new code version"]
    # An asset whose key has a part named "partitions" is still an asset.
    code, body = get(partitioned.url + "api/assets/legacy/partitions/old")
    assert code == 200 and body["key"] == "legacy/partitions/old" and body["label"] == "Never materialized"


@pytest.mark.parametrize(
    ("path", "code", "message"),
    [
        (
            "daily/revenue/partitions/2026-11-31",
            400,
            "InvalidPartitionKey: partition '2026-11-31' is not a daily window key in UTC",
        ),
        (
            "daily/revenue/partitions/2026-12-05",
            400,
            "InvalidPartitionKey: partition '2026-12-05' is outside the time partitions",
        ),
        (
            "sales/by_region/partitions/apac",
            400,
            "InvalidPartitionKey: partition 'apac' is not one of the static",
        ),
        ("legacy/partitions/old/partitions/x", 400, "asset legacy/partitions/old is not partitioned"),
        ("daily/revenue/partitions/", 400, "InvalidPartitionKey: partition key is empty"),
        ("daily/nope/partitions/2026-11-28", 404, "no asset 'daily/nope' in this store"),
    ],
)
def test_partition_endpoint_errors_are_json(partitioned: Served, path: str, code: int, message: str) -> None:
    status, body = get(partitioned.url + "api/assets/" + path)
    assert status == code and message in body["error"], body
