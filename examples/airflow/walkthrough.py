"""Run the asset-versioning walkthrough on real Airflow 3 (`dag.test()`) and print task states.

    .venv/bin/python examples/airflow/walkthrough.py

Everything happens in a temporary folder (Airflow home, sqlite metadata DB, insync store, the
source file), removed at the end unless --keep is given.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

HERE = Path(__file__).parent
TASKS = ("observe_numbers_file", "number", "multiplied")


def _prepare(work: Path) -> Path:
    dags = work / "dags"
    shutil.copytree(HERE / "dags", dags, ignore=shutil.ignore_patterns("__pycache__", "data"))
    source = work / "numbers.txt"
    source.write_text("3\n")
    os.environ.update(
        {
            "AIRFLOW_HOME": str(work / "airflow"),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{work / 'airflow.db'}",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "ERROR",
            "INSYNC_HOME": str(work / "insync"),
            "INSYNC_EXAMPLE_NUMBERS_FILE": str(source),
        }
    )
    return dags


@contextmanager
def _saying_still_running(what: str, every: float = 10.0) -> Iterator[None]:
    """A plain line every `every` seconds while the block runs (a busy machine can take minutes)."""
    done = threading.Event()
    started = time.perf_counter()

    def remind() -> None:
        while not done.wait(every):
            print(f"  {what}: still running ({time.perf_counter() - started:.0f} s)...", flush=True)

    reminder = threading.Thread(target=remind, daemon=True)
    reminder.start()
    try:
        yield
    finally:
        done.set()
        reminder.join()


def _run(dags: Path, label: str) -> list[tuple[str, str, str, object]]:
    from airflow.dag_processing.dagbag import DagBag
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    dag = DagBag(dag_folder=str(dags / "asset_versioning.py")).get_dag("asset_versioning")
    started = time.perf_counter()
    with _saying_still_running(label.split(":")[0]):
        dag_run = dag.test()
    elapsed = time.perf_counter() - started
    rows = []
    with create_session() as session:
        states = {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances(session=session)}
        xcoms = {
            (x.task_id, x.key): XComModel.deserialize_value(x)
            for x in session.scalars(
                select(XComModel).where(
                    XComModel.dag_id == "asset_versioning", XComModel.run_id == dag_run.run_id
                )
            )
        }
    print(f"\n{label}  ({elapsed:.1f} s)", flush=True)
    print(f"  {'task':<22} {'Airflow state':<14} {'insync':<10} value")
    for task_id in TASKS:
        marker = xcoms.get((task_id, "insync"), {})
        decision = marker.get("decision", "-")
        if decision == "observed":
            decision += " (new)" if marker.get("new") else " (same)"
        value = xcoms.get((task_id, "return_value"))
        if task_id == TASKS[0] and isinstance(value, dict):
            value = value["data_version"][:16] + "..."
        rows.append((task_id, states[task_id], decision, value))
        print(f"  {task_id:<22} {states[task_id]:<14} {decision:<10} {value}")
    return rows


def main(argv: list[str] | None = None) -> list[list[tuple[str, str, str, object]]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="insync-airflow-walkthrough-"))
    try:
        dags = _prepare(work)
        # Importing Airflow and migrating its metadata DB take tens of seconds: say so first.
        print(f"setting up Airflow's metadata database in {work} (first run ~40 s)...", flush=True)
        started = time.perf_counter()
        with _saying_still_running("Airflow's metadata database"):
            from airflow.utils.db import upgradedb

            upgradedb()
        print(f"Airflow's metadata database is ready ({time.perf_counter() - started:.1f} s)", flush=True)
        print("running the DAG with dag.test() (the first run in a process takes longest)...", flush=True)
        runs = [_run(dags, "Run 1: first run, nothing recorded yet")]
        runs.append(_run(dags, "Run 2: nothing changed"))
        Path(os.environ["INSYNC_EXAMPLE_NUMBERS_FILE"]).write_text("4\n")
        runs.append(_run(dags, "Run 3: the source file now says 4"))
        dag_file = dags / "asset_versioning.py"
        text = dag_file.read_text()
        marker = '@versioned(code_version="v1")  # the runner bumps'
        dag_file.write_text(text.replace(marker, marker.replace('"v1"', '"v2"')))
        runs.append(_run(dags, 'Run 4: multiplied has code_version "v2"'))
        from insync.core import EventStore

        with EventStore() as store:
            print("\ninsync status after run 4:")
            for key, status in sorted(store.statuses().items()):
                print(f"  {key!s:<26} {status.status.label:<8} data version {status.data_version}")
        return runs
    finally:
        if args.keep:
            print(f"\nkept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
