"""The `insync` command, driven through click's runner and once as a real console script."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner, Result
from insync.core import (
    AssetSpec,
    EventStore,
    StaticPartitions,
    TimeWindowPartitions,
    fingerprint_parameters,
)
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
    assert "schema at 0003_automation_claims" in out


NOVEMBER = TimeWindowPartitions("daily", start="2026-11-01", end="2026-12-01")  # 30 ended windows


def day_parameters(day: str) -> tuple[tuple[str, str], ...]:
    return fingerprint_parameters({"day": day})


def seeded_partitions(url: str) -> None:
    """Daily orders feed daily revenue (run with a `day` parameter) and a monthly report; four
    order partitions are re-ingested, one revenue day was never computed; regions have new code."""
    with EventStore(url) as store:
        store.register(
            [
                AssetSpec("raw/orders", code_version="v1", partitions=NOVEMBER, framework="airflow"),
                AssetSpec("daily/revenue", code_version="v1", deps=["raw/orders"], partitions=NOVEMBER),
                AssetSpec("reports/monthly", code_version="v1", deps=["daily/revenue"]),
                AssetSpec(
                    "sales/by_region", code_version="v1", partitions=StaticPartitions(["eu", "us/east"])
                ),
            ]
        )
        days = NOVEMBER.keys()
        for day in days:
            store.record_materialization("raw/orders", partition=day, run_id="ingest-1")
        for day in days[:-1]:
            store.record_materialization(
                "daily/revenue", partition=day, run_id="revenue-1", parameters=day_parameters(day)
            )
        store.record_materialization("reports/monthly", run_id="report-1")
        for region in ("eu", "us/east"):
            store.record_materialization("sales/by_region", partition=region, run_id="sales-1")
        for day in days[25:29]:
            store.record_materialization(
                "raw/orders", partition=day, run_id="ingest-2", data_version=f"rows-{day}"
            )
        store.register(
            [AssetSpec("sales/by_region", code_version="v2", partitions=StaticPartitions(["eu", "us/east"]))]
        )


def cli(url: str, *args: str) -> Result:
    # COLUMNS: rich sizes its tables from it; wide enough that no cell wraps.
    result = CliRunner(env={"COLUMNS": "400"}).invoke(main, ["--database-url", url, *args])
    assert result.exit_code == 0, result.output
    return result


def test_status_rolls_up_partitions(sqlite_url: str) -> None:
    seeded_partitions(sqlite_url)
    out = cli(sqlite_url, "status").output
    revenue = next(line for line in out.splitlines() if line.startswith(" daily/revenue"))
    assert "Unsynced" in revenue and "per partition" in revenue
    assert (
        "25 synced, 4 unsynced (2026-11-26, 2026-11-27, 2026-11-28 … 1 more), "
        "1 never materialized (2026-11-30)" in revenue
    )
    # The why column lists a few root causes, then how many more.
    assert (
        "raw/orders[2026-11-26] has a new data version; raw/orders[2026-11-27] has a new data version"
        in revenue
    )
    assert "raw/orders[2026-11-28] has a new data version … 1 more" in revenue
    assert "30 synced, 0 unsynced, 0 never materialized" in out
    # Keys that look like markup are printed literally.
    assert "sales/by_region[eu] has a new code version" in out
    assert "0 never materialized, 2 unsynced, 2 synced" in out  # assets, not partitions

    data = {d["key"]: d for d in json.loads(cli(sqlite_url, "status", "--json").output)}
    assert data["daily/revenue"]["partitions"] == {
        "total": 30,
        "synced": 25,
        "unsynced": ["2026-11-26", "2026-11-27", "2026-11-28", "2026-11-29"],
        "missing": ["2026-11-30"],
    }
    assert data["daily/revenue"]["partition"] is None and data["daily/revenue"]["status"] == "STALE"
    assert data["reports/monthly"]["partitions"] is None and data["reports/monthly"]["parameters"] == {}
    cause = data["daily/revenue"]["causes"][0]
    assert (cause["key"], cause["partition"], cause["dependency"], cause["dependency_partition"]) == (
        "daily/revenue",
        "2026-11-26",
        "raw/orders",
        "2026-11-26",
    )
    assert cause["children"][0]["partition"] == "2026-11-26"
    assert cause["children"][0]["text"] == "raw/orders[2026-11-26] has a new data version"


def test_status_table_of_unpartitioned_assets_has_no_partitions_column(sqlite_url: str) -> None:
    seeded(sqlite_url)
    header = cli(sqlite_url, "status").output.splitlines()[0]
    assert "partitions" not in header and "why / pending upstream" in header


def test_why_explains_the_rollup_and_points_at_one_partition(sqlite_url: str) -> None:
    seeded_partitions(sqlite_url)
    lines = cli(sqlite_url, "why", "daily/revenue").output.splitlines()
    assert lines[:3] == [
        "daily/revenue: Unsynced",
        "  partitions: 25 synced, 4 unsynced (2026-11-26, 2026-11-27, 2026-11-28 … 1 more), "
        "1 never materialized (2026-11-30)",
        "  root cause: raw/orders[2026-11-26] has a new data version",
    ]
    assert "├── daily/revenue[2026-11-26] has a new dependency data version (DATA)" in lines
    assert lines[-1] == "explain one partition: insync why daily/revenue --partition 2026-11-26"

    lines = cli(sqlite_url, "why", "daily/revenue", "--partition", "2026-11-28").output.splitlines()
    fingerprint = day_parameters("2026-11-28")[0][1]
    assert lines == [
        "daily/revenue[2026-11-28]: Unsynced",
        "  root cause: raw/orders[2026-11-28] has a new data version",
        f"  parameters: day={fingerprint[:12]}…",
        "daily/revenue[2026-11-28] is Unsynced",
        "└── daily/revenue[2026-11-28] has a new dependency data version (DATA)",
        "    └── raw/orders[2026-11-28] has a new data version (DATA)",
    ]
    synced = cli(sqlite_url, "why", "daily/revenue", "-p", "2026-11-02").output.splitlines()
    assert synced[0] == "daily/revenue[2026-11-02]: Synced" and len(synced) == 2  # and its parameters
    never = cli(sqlite_url, "why", "daily/revenue", "-p", "2026-11-30").output.splitlines()
    assert never == ["daily/revenue[2026-11-30]: Never materialized", "  it has never been materialized"]

    data = json.loads(cli(sqlite_url, "why", "daily/revenue", "-p", "2026-11-28", "--json").output)
    assert data["partition"] == "2026-11-28" and data["partitions"] is None
    assert data["parameters"] == {"day": fingerprint}
    assert [(c["partition"], c["dependency_partition"]) for c in data["root_causes"]] == [
        ("2026-11-28", None)
    ]

    region = cli(sqlite_url, "why", "sales/by_region", "-p", "us/east").output.splitlines()
    assert region[:2] == [
        "sales/by_region[us/east]: Unsynced",
        "  root cause: sales/by_region[us/east] has a new code version",
    ]
    assert "sales/by_region[us/east] is Unsynced" in region  # the tree's title, not eaten as markup
    rollup = cli(sqlite_url, "why", "sales/by_region").output.splitlines()
    assert rollup[-1] == "explain one partition: insync why sales/by_region --partition eu"


def test_why_and_history_refuse_partitions_that_do_not_fit(sqlite_url: str) -> None:
    seeded_partitions(sqlite_url)
    runner = CliRunner()
    for args, message in [
        (
            ["why", "daily/revenue", "-p", "2026-11-31"],
            "partition '2026-11-31' is not a daily window key in UTC",
        ),
        (
            ["why", "daily/revenue", "-p", "2026-12-05"],
            "partition '2026-12-05' is outside the time partitions",
        ),
        (["why", "reports/monthly", "-p", "2026-11-01"], "asset reports/monthly is not partitioned"),
        (["history", "daily/revenue", "-p", "nope"], "partition 'nope' is not a daily window key in UTC"),
        (["history", "sales/by_region", "-p", "apac"], "partition 'apac' is not one of the static keys"),
    ]:
        result = runner.invoke(main, ["--database-url", sqlite_url, *args])
        assert result.exit_code == 1, (args, result.output)
        assert result.output.startswith("Error: InvalidPartitionKey: "), result.output
        assert message in result.output and "Traceback" not in result.output


def test_history_of_one_partition_with_its_parameters(sqlite_url: str) -> None:
    seeded_partitions(sqlite_url)
    events = json.loads(cli(sqlite_url, "history", "daily/revenue", "-p", "2026-11-28", "--json").output)
    assert len(events) == 1
    (event,) = events
    assert event["partition"] == "2026-11-28" and event["run_id"] == "revenue-1"
    assert event["parameters"] == {"day": day_parameters("2026-11-28")[0][1]}
    assert [(i["key"], i["partition"]) for i in event["inputs"]] == [("raw/orders", "2026-11-28")]
    orders = json.loads(
        cli(sqlite_url, "history", "raw/orders", "--partition", "2026-11-28", "--json").output
    )
    assert (orders[0]["run_id"], orders[0]["data_version"]) == ("ingest-2", "rows-2026-11-28")
    assert len(orders) == 2 and orders[0]["parameters"] == {}

    table = cli(sqlite_url, "history", "daily/revenue", "--limit", "2").output.splitlines()
    assert table[0].split() == [
        "id", "time", "(UTC)", "kind", "partition", "run", "id", "framework", "code", "version", "data",
        "version", "parameters",
    ]  # fmt: skip
    assert "2026-11-29" in table[1] and "revenue-1" in table[1] and "day=" in table[1]
    assert len(table) == 3
    # A partition nothing was recorded for is empty, not an error.
    assert len(cli(sqlite_url, "history", "daily/revenue", "-p", "2026-11-30").output.splitlines()) == 1
    plain = cli(sqlite_url, "history", "reports/monthly").output.splitlines()[0]
    assert "partition" not in plain and "parameters" not in plain


def test_rollups_of_many_unsynced_and_of_unmaterialized_partitions(sqlite_url: str) -> None:
    keys = [f"shard-{i:02}" for i in range(12)]
    shards = StaticPartitions(keys)
    with EventStore(sqlite_url) as store:
        store.register(
            [AssetSpec("shards", code_version="v1", partitions=shards), AssetSpec("fresh", partitions=shards)]
        )
        for shard in keys:
            store.record_materialization("shards", partition=shard)
        store.register([AssetSpec("shards", code_version="v2", partitions=shards)])
    lines = cli(sqlite_url, "why", "shards").output.splitlines()
    assert (
        lines[1]
        == "  partitions: 0 synced, 12 unsynced (shard-00, shard-01, shard-02 … 9 more), 0 never materialized"
    )
    # The rollup carries the causes of the first 10 Unsynced partitions, and says so.
    assert lines[12] == "  root causes shown for the first 10 of 12 unsynced partitions"
    assert lines[-1] == "explain one partition: insync why shards --partition shard-00"
    assert cli(sqlite_url, "why", "fresh").output.splitlines() == [
        "fresh: Never materialized",
        "  partitions: 0 synced, 0 unsynced, 12 never materialized (shard-00, shard-01, shard-02 … 9 more)",
        "  none of its 12 partitions has been materialized",
        "explain one partition: insync why fresh --partition shard-00",
    ]


def test_piped_status_prints_whole_keys_and_reasons(tmp_path: Path) -> None:
    """Piped to a file or grep, rich would assume 80 columns and cut keys (`walkthrough/multipl…`)."""
    import os

    url = f"sqlite:///{tmp_path / 'insync.db'}"
    key = "warehouse/analytics/" + "very_long_model_name_" * 4 + "orders"
    with EventStore(url) as store:
        store.register([AssetSpec("raw/source_of_the_orders", code_version="1"),
                        AssetSpec(key, code_version="1", deps=["raw/source_of_the_orders"])])
        store.record_materialization("raw/source_of_the_orders", run_id="r1")
        store.record_materialization(key, run_id="r1")
        store.register([AssetSpec("raw/source_of_the_orders", code_version="2")])
        store.record_materialization("raw/source_of_the_orders", run_id="r2")
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    insync = Path(sys.executable).with_name("insync")
    piped = subprocess.run(
        f"'{insync}' --database-url '{url}' status | grep very_long",
        shell=True, capture_output=True, text=True, env=env, check=True,
    )
    (line,) = piped.stdout.splitlines()
    assert key in line and "raw/source_of_the_orders has a new data version" in line
