"""One insync store across Airflow, dbt and Prefect, end to end.

    python examples/cross_orchestrator/run.py [--database-url URL] [--workdir DIR]

    Airflow 3 (dag.test)          dbt (insync's DbtProject)            Prefect 3 (flow)
    raw/orders_csv -> raw/orders -> staging/orders -> marts/daily_revenue -> reports/daily_revenue
    raw/customers_csv -> raw/customers -> staging/customers -> marts/customers_by_country
                                                                  -> reports/customers_by_country

Pass 1 builds everything; then raw orders are edited; pass 2 rebuilds only what that reaches.
Everything lives in --workdir (default: a temporary folder, removed at the end): the Airflow
home and its sqlite metadata DB, the dbt project copy and its DuckDB warehouse, Prefect's home,
the reports, and the insync store (SQLite in <workdir>/insync unless --database-url, e.g.
postgresql+psycopg://postgres@127.0.0.1:5432/insync). Prefect uses $PREFECT_API_URL when set,
else a temporary local server that stops at exit. --json FILE writes what happened (for tests).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

HERE = Path(__file__).resolve().parent
NEW_ORDER = "5,2,2026-11-03 11:00:00,19.99\n"
# First parts of the asset keys this example defines (raw/..., staging/..., marts/..., reports/...).
EXAMPLE_PREFIXES = ("raw", "staging", "marts", "reports")
# Wide enough for the reasons when printing to a file or a pipe.
console = Console(highlight=False, width=None if sys.stdout.isatty() else 150)


# ----------------------------------------------------------------------------- set-up
def configure(workdir: Path, database_url: str | None) -> dict[str, str]:
    """Copy the example into `workdir` and point the three frameworks and insync at it.

    Airflow and Prefect read their settings when first imported, so this runs before either is.
    """
    shutil.copytree(HERE / "dags", workdir / "dags", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(
        HERE / "warehouse", workdir / "warehouse", ignore=shutil.ignore_patterns("target", "logs", "*.duckdb")
    )
    shutil.copytree(HERE / "data", workdir / "data")
    # The Prefect flow's module too, so importing it writes no bytecode into the source tree.
    (workdir / "flows").mkdir()
    shutil.copy2(HERE / "reporting.py", workdir / "flows" / "reporting.py")
    env = {
        # The data the example works on.
        "CROSS_ORCHESTRATOR_DATA": str(workdir / "data"),
        "CROSS_ORCHESTRATOR_DUCKDB": str(workdir / "warehouse.duckdb"),
        "CROSS_ORCHESTRATOR_REPORTS": str(workdir / "reports"),
        # insync: one store for all three (value cache next to it in INSYNC_HOME).
        "INSYNC_HOME": str(workdir / "insync"),
        # Airflow 3: a temporary home, sqlite metadata DB, the copied DAG file.
        "AIRFLOW_HOME": str(workdir / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(workdir / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{workdir / 'airflow' / 'airflow.db'}",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "ERROR",
        # Prefect 3: its home, and the paths whose defaults ignore PREFECT_HOME, in the workdir.
        "PREFECT_HOME": str(workdir / "prefect"),
        "PREFECT_LOCAL_STORAGE_PATH": str(workdir / "prefect" / "results"),
        "PREFECT_SERVER_MEMO_STORE_PATH": str(workdir / "prefect" / "memo_store.toml"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
        "PREFECT_LOGGING_LEVEL": "WARNING",
        "PREFECT_API_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{workdir / 'prefect' / 'prefect.db'}",
        # dbt: offline, and its own log lines off (run.py prints insync's summary instead).
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "DBT_LOG_LEVEL": "none",
    }
    if database_url:
        env["INSYNC_DATABASE_URL"] = database_url
    else:
        os.environ.pop("INSYNC_DATABASE_URL", None)
    (workdir / "airflow").mkdir()
    (workdir / "prefect").mkdir()
    os.environ.update(env)
    return env


@contextmanager
def timed(label: str, timings: dict[str, float]) -> Iterator[None]:
    started = time.perf_counter()
    yield
    timings[label] = round(time.perf_counter() - started, 2)


# ----------------------------------------------------------------------------- the three steps
def run_airflow(dag_id: str) -> list[dict[str, Any]]:
    """`dag.test()` of one DAG from the dags folder; each task's state and insync decision."""
    from airflow.dag_processing.dagbag import DagBag
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    if bag.import_errors:
        raise RuntimeError(f"the DAG file does not import: {bag.import_errors}")
    dag = bag.get_dag(dag_id)
    dag_run = dag.test()
    with create_session() as session:
        tis = {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances(session=session)}
        markers = {
            x.task_id: XComModel.deserialize_value(x)
            for x in session.scalars(
                select(XComModel).where(
                    XComModel.dag_id == dag_id, XComModel.run_id == dag_run.run_id, XComModel.key == "insync"
                )
            )
        }
    rows = []
    for task_id in dag.task_ids:  # the order the DAG file defines them
        marker = markers.get(task_id, {})
        decision = marker.get("decision", "-")
        if decision == "observed":
            decision += " (new)" if marker.get("new") else " (same)"
            detail = f"{marker.get('key')} at {str(marker.get('data_version'))[:18]}…"
        else:
            detail = marker.get("message", "")
        rows.append({"task": task_id, "state": tis[task_id], "decision": decision, "detail": detail})
    if any(row["state"] != "success" for row in rows):
        raise RuntimeError(f"Airflow DAG {dag_id} did not succeed: {rows}")
    return rows


def run_dbt(workdir: Path, run_id: str) -> list[dict[str, Any]]:
    """insync's memoized `dbt build`: only unsynced or never-built models run."""
    from insync.adapters.dbt import DbtProject

    project = workdir / "warehouse"
    # The adapter releases dbt-duckdb's handle on the warehouse when build() returns, so the
    # next writer (Airflow's load in pass 2) can open the file.
    with DbtProject(project, profiles_dir=project) as dbt:
        report = dbt.build(run_id=run_id)
    if not report.success:
        raise RuntimeError(report.render())
    return [
        {"node": o.asset.name, "key": str(o.asset.key), "action": o.action, "reason": o.reason}
        for o in report.outcomes
    ]


def run_prefect(workdir: Path) -> list[dict[str, Any]]:
    """The Prefect flow building the reports; each task's final state (Completed or Cached)."""
    sys.path.insert(0, str(workdir / "flows"))
    try:
        from reporting import build_reports
    finally:
        sys.path.remove(str(workdir / "flows"))
    states = build_reports()
    return [{"key": key, "state": state} for key, state in states.items()]


# ----------------------------------------------------------------------------- printing
def status_rows() -> list[dict[str, Any]]:
    """Every asset's status in the shared store (one `statuses()` call, like `insync status`)."""
    from insync.core import EventStore, StaleStatus

    with EventStore() as store:
        found = store.statuses()
    rows = []
    for s in sorted(found.values(), key=lambda s: s.key):
        why = [str(c) for c in s.root_causes] + [str(u) for u in s.upstream]
        if s.status is StaleStatus.MISSING:
            why.insert(0, "never materialized")
        rows.append(
            {
                "key": str(s.key),
                "framework": s.framework,
                "kind": s.kind,
                "status": s.status.value,
                "label": s.status.label,
                "data_version": str(s.data_version),
                "root_causes": [str(c) for c in s.root_causes],
                "upstream": [str(u.key) for u in s.upstream],
                "why": why,
            }
        )
    return rows


_COLOUR = {"FRESH": "green", "STALE": "yellow", "MISSING": "red"}


def show_status(title: str, rows: list[dict[str, Any]]) -> None:
    table = Table(title=title, title_justify="left", box=None, pad_edge=False)
    for column in ("asset", "framework", "status", "data version", "why / pending upstream"):
        table.add_column(column, overflow="fold")
    for row in rows:
        version = row["data_version"]
        table.add_row(
            row["key"],
            row["framework"] or "-",
            f"[{_COLOUR[row['status']]}]{row['label']}[/]",
            version if len(version) <= 14 else version[:12] + "…",
            "; ".join(row["why"]),
        )
    console.print()
    console.print(table)


def show_why(key: str) -> None:
    """What `insync why KEY` prints: status, root causes, pending upstream, the cause tree."""
    from insync.core import EventStore
    from insync.core.cli import explain
    from rich.tree import Tree

    with EventStore() as store:
        status = store.status(key)
    console.print(f"\n[bold]$ insync why {key}[/]")
    for line in explain(status):
        console.print(line)
    if status.causes:
        tree = Tree(f"{status.key} is {status.status.label}")
        for cause in status.causes:
            add_cause(tree, cause)
        console.print(tree)


def add_cause(node: Any, cause: Any) -> None:
    branch = node.add(f"{cause} ({cause.category.value})")
    for child in cause.children:
        add_cause(branch, child)


def show_steps(title: str, columns: tuple[str, ...], rows: list[dict[str, Any]], seconds: float) -> None:
    table = Table(title=f"{title}  ({seconds:.1f} s)", title_justify="left", box=None, pad_edge=False)
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*(str(value) for value in row.values()))
    console.print(table)


def ran_and_skipped(steps: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, list[str]]]:
    """Per orchestrator: which assets' steps ran and which insync skipped."""
    airflow = [r for r in steps["airflow"] if not r["decision"].startswith("observed")]
    return {
        "airflow": {
            "ran": [r["task"] for r in airflow if r["decision"] == "run"],
            "skipped": [r["task"] for r in airflow if r["decision"] == "skip"],
        },
        "dbt": {
            "ran": [r["node"] for r in steps["dbt"] if r["action"] == "built"],
            "skipped": [r["node"] for r in steps["dbt"] if r["action"] == "reused"],
        },
        "prefect": {
            "ran": [r["key"] for r in steps["prefect"] if r["state"] == "Completed"],
            "skipped": [r["key"] for r in steps["prefect"] if r["state"] == "Cached"],
        },
    }


# ----------------------------------------------------------------------------- the scenario
def run_pass(
    number: int, workdir: Path, timings: dict[str, float], result: dict[str, Any]
) -> dict[str, list[dict[str, Any]]]:
    console.rule(f"Pass {number}")
    steps: dict[str, list[dict[str, Any]]] = {}
    with timed(f"pass{number}.airflow", timings):
        steps["airflow"] = run_airflow("ingest_raw")
    show_steps(
        "Airflow: DAG ingest_raw",
        ("task", "state", "insync", "detail"),
        steps["airflow"],
        timings[f"pass{number}.airflow"],
    )
    if number > 1:
        # Status is not transitive (as in Dagster): now that Airflow has re-ingested raw/orders,
        # the dbt model reading it is itself Unsynced, and its descendants list it as pending.
        result[f"pass{number}_after_airflow"] = rows = status_rows()
        show_status(f"insync status in pass {number}, after Airflow, before dbt", rows)
        show_why("staging/orders")
    with timed(f"pass{number}.dbt", timings):
        steps["dbt"] = run_dbt(workdir, run_id=f"dbt:pass-{number}:{uuid.uuid4().hex[:8]}")
    show_steps(
        "dbt: insync's DbtProject.build()",
        ("node", "asset", "action", "reason"),
        steps["dbt"],
        timings[f"pass{number}.dbt"],
    )
    with timed(f"pass{number}.prefect", timings):
        steps["prefect"] = run_prefect(workdir)
    show_steps(
        "Prefect: flow build-reports",
        ("asset", "task state"),
        steps["prefect"],
        timings[f"pass{number}.prefect"],
    )
    return steps


def scenario(workdir: Path, database_url: str | None) -> dict[str, Any]:
    configure(workdir, database_url)
    timings: dict[str, float] = {}
    result: dict[str, Any] = {"store": None, "timings": timings}
    from insync.core import EventStore

    with EventStore() as store:
        result["store"] = str(store)
        taken = sorted(str(key) for key in store.definitions() if key.parts[0] in EXAMPLE_PREFIXES)
    if taken:
        # A new workdir means a new, empty warehouse: a store that says raw/orders is already
        # loaded would make Airflow skip the load and leave dbt without its source table.
        raise SystemExit(
            f"run.py: error: the insync store {result['store']} already has this example's assets "
            f"({', '.join(taken[:3])}, ...); give a new store: a new database in --database-url, "
            "or leave it out (SQLite in the workdir)"
        )
    from airflow.utils.db import upgradedb

    with timed("airflow.migrate", timings):
        upgradedb()
    console.print(f"insync store: [bold]{result['store']}[/]   workdir: {workdir}")

    result["pass1"] = run_pass(1, workdir, timings, result)
    result["after_pass1"] = status_rows()
    show_status("insync status after pass 1", result["after_pass1"])

    console.rule("The raw orders file gets a new order")
    orders = workdir / "data" / "orders.csv"
    orders.write_text(orders.read_text() + NEW_ORDER)
    console.print(f"appended to {orders}: {NEW_ORDER.strip()}")
    with timed("watch.airflow", timings):
        result["watch"] = run_airflow("watch_raw_files")
    show_steps(
        "Airflow: DAG watch_raw_files (observations only)",
        ("task", "state", "insync", "detail"),
        result["watch"],
        timings["watch.airflow"],
    )
    result["after_edit"] = status_rows()
    show_status("insync status after the edit was observed", result["after_edit"])
    show_why("reports/daily_revenue")

    result["pass2"] = run_pass(2, workdir, timings, result)
    result["after_pass2"] = status_rows()
    show_status("insync status after pass 2", result["after_pass2"])
    result["summary"] = {
        "pass1": ran_and_skipped(result["pass1"]),
        "pass2": ran_and_skipped(result["pass2"]),
    }
    show_summary(result["summary"], timings)
    return result


def show_summary(summary: dict[str, dict[str, dict[str, list[str]]]], timings: dict[str, float]) -> None:
    table = Table(title="What ran, what insync skipped", title_justify="left", box=None, pad_edge=False)
    for column in ("orchestrator", "pass 1 ran", "pass 1 s", "pass 2 ran", "pass 2 skipped", "pass 2 s"):
        table.add_column(column, overflow="fold")
    for name in ("airflow", "dbt", "prefect"):
        table.add_row(
            name,
            str(len(summary["pass1"][name]["ran"])),
            f"{timings[f'pass1.{name}']:.1f}",
            ", ".join(summary["pass2"][name]["ran"]) or "-",
            ", ".join(summary["pass2"][name]["skipped"]) or "-",
            f"{timings[f'pass2.{name}']:.1f}",
        )
    console.print()
    console.print(table)
    console.print("(pass 1 includes each framework's cold start in this process)")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", help="insync store URL (default: SQLite in <workdir>/insync)")
    parser.add_argument("--workdir", type=Path, help="empty or missing folder to work in (kept)")
    parser.add_argument("--json", type=Path, dest="json_out", help="write what happened to this file")
    args = parser.parse_args(argv)
    if args.workdir is not None:
        workdir = args.workdir.resolve()
        if workdir.exists() and any(workdir.iterdir()):
            parser.error(f"--workdir {workdir} is not empty; give a new folder")
        workdir.mkdir(parents=True, exist_ok=True)
    else:
        workdir = Path(tempfile.mkdtemp(prefix="insync-cross-orchestrator-"))
    from insync.core import InsyncError

    try:
        result = scenario(workdir, args.database_url)
        if args.json_out is not None:
            args.json_out.write_text(json.dumps(result, indent=2))
        return result
    except InsyncError as exc:  # a wrong --database-url and the like: one line, not a traceback
        parser.exit(1, f"run.py: error: {type(exc).__name__}: {exc}\n")
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
