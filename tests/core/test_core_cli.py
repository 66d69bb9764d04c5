"""The `insync` command, driven through click's runner and once as a real console script."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner
from insync.core import AssetSpec, EventStore
from insync.core.cli import main


def seeded(url: str) -> None:
    with EventStore(url) as store:
        store.register([AssetSpec("a", code_version="1"), AssetSpec("b", code_version="1", deps=["a"])])
        store.record_materialization("a", run_id="r1", framework="airflow")
        store.record_materialization("b", run_id="r1", framework="dbt")
        store.register([AssetSpec("a", code_version="2")])


def test_status_table_and_json(sqlite_url: str) -> None:
    seeded(sqlite_url)
    runner = CliRunner()
    result = runner.invoke(main, ["--database-url", sqlite_url, "status"], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "Unsynced" in result.output and "a has a new code version" in result.output
    assert "1 unsynced, 1 synced" in result.output
    data = json.loads(runner.invoke(main, ["--database-url", sqlite_url, "status", "--json"]).output)
    assert [(d["key"], d["status"], d["label"]) for d in data] == [
        ("a", "STALE", "Unsynced"),
        ("b", "FRESH", "Synced"),
    ]
    assert data[1]["upstream"] == [
        {"key": "a", "status": "STALE", "text": "will be unsynced after a is materialized (Unsynced)"}
    ]


def test_why_and_history(sqlite_url: str, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    seeded(sqlite_url)
    monkeypatch.setenv("INSYNC_DATABASE_URL", sqlite_url)  # the option's environment variable
    runner = CliRunner()
    why = runner.invoke(main, ["why", "a"], terminal_width=200)
    assert why.exit_code == 0 and "root cause: a has a new code version" in why.output
    why_b = runner.invoke(main, ["why", "b"], terminal_width=200)
    assert "will be unsynced after a is materialized" in why_b.output
    history = json.loads(runner.invoke(main, ["history", "b", "--json"]).output)
    assert history[0]["framework"] == "dbt" and history[0]["inputs"][0]["key"] == "a"
    table = runner.invoke(main, ["history", "a"], terminal_width=200)
    assert "airflow" in table.output and "r1" in table.output


def test_errors_are_one_clear_line(sqlite_url: str) -> None:
    seeded(sqlite_url)
    result = CliRunner().invoke(main, ["--database-url", sqlite_url, "why", "c"])
    assert result.exit_code == 1
    assert "UnknownAssetError: unknown asset 'c'" in result.output
    assert "Traceback" not in result.output


def test_db_upgrade_and_console_script(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh' / 'insync.db'}"
    out = subprocess.run(
        [str(Path(sys.executable).with_name("insync")), "--database-url", url, "db", "upgrade"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "schema at 0002_partitions_parameters" in out
