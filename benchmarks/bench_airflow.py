"""Added latency per Airflow task of the insync check + record, on SQLite and PostgreSQL.

    .venv/bin/python benchmarks/bench_airflow.py [--tasks 30] [--postgres URL]

Runs a DAG of N chained versioned tasks with real `dag.test()` (temp Airflow home, sqlite
metadata DB) three times: run 1 executes every task for the first time (check + definition
registration + record + value cache write), run 2 skips every task (check + cached value read),
run 3 forces every task to run again (check + record + value cache write: the steady state).
Each task instance reports what insync added to it (`overhead_ms` in its `insync` XCom
marker: everything in the wrapper except the user's code).
Prints the median and 90th percentile per store.

Then a backfill (`--days N`, SQLite): a daily DAG with 3 tasks, each versioned with daily
partitions, run with `dag.test(logical_date=...)` for N days (first pass), again (every task
skips: the per-partition skip overhead), and again with one day's run conf changed (that day
recomputes); against the same DAG without insync run over the same N days (a plain re-run).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import uuid
from pathlib import Path

DAG_TEMPLATE = """
from airflow.sdk import dag, task
from insync.adapters.airflow import versioned

@dag(dag_id="{dag_id}", schedule=None)
def bench():
    previous = None
    for i in range({tasks}):
        @task(task_id=f"step_{{i:03d}}")
        @versioned(code_version="v1")
        def step(value=0):
            return value + 1

        previous = step(previous) if previous is not None else step()

bench()
"""


def _overheads(dag_id: str, dag_run_id: str) -> list[float]:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    found: list[float] = []
    with create_session() as session:
        for row in session.scalars(
            select(XComModel).where(
                XComModel.dag_id == dag_id,
                XComModel.run_id == dag_run_id,
                XComModel.key == "insync",
            )
        ):
            marker = XComModel.deserialize_value(row)
            found.append(float(marker["overhead_ms"]))
    return found


def _measure(dags: Path, tasks: int, label: str, store_url: str) -> dict[str, list[float]]:
    from airflow.dag_processing.dagbag import DagBag

    os.environ["INSYNC_DATABASE_URL"] = store_url
    dag_id = f"bench_{label}"
    path = dags / f"{dag_id}.py"
    path.write_text(DAG_TEMPLATE.format(dag_id=dag_id, tasks=tasks))
    dag = DagBag(dag_folder=str(path)).get_dag(dag_id)
    results: dict[str, list[float]] = {}
    for phase, conf in PHASES:
        dag_run = dag.test(run_conf=conf)
        results[phase] = _overheads(dag_id, dag_run.run_id)
    path.unlink()
    return results


BACKFILL_TEMPLATE = """
from airflow.sdk import dag, task
from insync.adapters.airflow import versioned
from insync.core import TimeWindowPartitions

DAILY = TimeWindowPartitions("daily", start="2024-12-01")

def maybe(fn):
    return versioned(code_version="v1", partitions=DAILY)(fn) if {versioned} else fn

@dag(dag_id="{dag_id}", schedule="@daily", catchup=False, params={{"scale": 1}})
def backfill():
    @task
    @maybe
    def extract(ds=None, params=None):
        return int(ds[-2:]) * params["scale"]

    @task
    @maybe
    def transform(value):
        return value * 2

    @task
    @maybe
    def load(value):
        return value + 1

    load(transform(extract()))

backfill()
"""


def _backfill(dags: Path, days: int) -> None:
    import time

    import pendulum
    from airflow.dag_processing.dagbag import DagBag

    os.environ["INSYNC_DATABASE_URL"] = f"sqlite:///{dags.parent / 'backfill.db'}"
    dates = [pendulum.datetime(2025, 1, 1, tz="UTC").add(days=i) for i in range(days)]
    changed = dates[len(dates) // 2]
    timings: dict[str, float] = {}
    skips: list[float] = []
    for label, versioned in (("plain", False), ("insync", True)):
        dag_id = f"backfill_{label}"
        path = dags / f"{dag_id}.py"
        path.write_text(BACKFILL_TEMPLATE.format(dag_id=dag_id, versioned=versioned))
        dag = DagBag(dag_folder=str(path)).get_dag(dag_id)
        dag.test(logical_date=pendulum.datetime(2024, 12, 31, tz="UTC"))  # warm-up, not timed
        passes = ("first", "again", "one day changed") if versioned else ("plain re-run",)
        for phase in passes:
            started = time.perf_counter()
            for day in dates:
                conf = {"scale": 2} if phase == "one day changed" and day == changed else None
                run = dag.test(logical_date=day, run_conf=conf)
                if phase == "again":
                    skips += _overheads(dag_id, run.run_id)
            timings[phase] = time.perf_counter() - started
        path.unlink()
    print(f"\nBackfill of {days} days, 3 tasks per day (`dag.test(logical_date=...)` per day)\n")
    print("| pass | seconds | per day |")
    print("|---|---|---|")
    for phase, seconds in timings.items():
        print(f"| {phase} | {seconds:.1f} | {seconds / days:.2f} |")
    skips.sort()
    print(
        f"\nper-partition skip overhead: median {statistics.median(skips):.2f} ms, "
        f"p90 {skips[int(len(skips) * 0.9)]:.2f} ms over {len(skips)} task instances"
    )


PHASES = (
    ("first run (register + check + record)", None),
    ("skip (check + cached value read)", None),
    ("re-run (check + record)", {"insync_force": True}),
)


def _report(label: str, results: dict[str, list[float]]) -> None:
    for phase, _ in PHASES:
        values = sorted(results.get(phase, []))
        if not values:
            continue
        p90 = values[min(len(values) - 1, int(len(values) * 0.9))]
        print(f"| {label} | {phase} | {len(values)} | {statistics.median(values):.2f} | {p90:.2f} |")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=30)
    parser.add_argument("--days", type=int, default=30, help="backfill days (0: skip)")
    parser.add_argument("--backfill-only", action="store_true", help="only the backfill benchmark")
    parser.add_argument(
        "--postgres",
        default=os.environ.get(
            "INSYNC_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
        ),
        help="admin URL of a PostgreSQL server (a scratch database is created and dropped)",
    )
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="insync-bench-airflow-"))
    dags = work / "dags"
    dags.mkdir()
    os.environ.update(
        {
            "AIRFLOW_HOME": str(work / "airflow"),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{work / 'airflow.db'}",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "ERROR",
            "INSYNC_HOME": str(work / "insync"),
        }
    )
    import sqlalchemy as sa

    pg_name = f"insync_bench_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(args.postgres, isolation_level="AUTOCOMMIT")
    try:
        from airflow.utils.db import upgradedb

        upgradedb()
        if args.days:
            _backfill(dags, args.days)
        if args.backfill_only:
            return
        sqlite = _measure(dags, args.tasks, "sqlite", f"sqlite:///{work / 'insync.db'}")
        postgres: dict[str, list[float]] = {}
        try:
            with admin.connect() as conn:
                conn.execute(sa.text(f'CREATE DATABASE "{pg_name}"'))
            pg_url = sa.make_url(args.postgres).set(database=pg_name)
            postgres = _measure(dags, args.tasks, "postgres", pg_url.render_as_string(hide_password=False))
        except sa.exc.OperationalError as exc:
            print(f"PostgreSQL unavailable ({exc.orig}); SQLite only", file=sys.stderr)
        print(f"\ninsync overhead per Airflow task ({args.tasks} chained tasks, `dag.test()`)\n")
        print("| store | phase | tasks | median ms | p90 ms |")
        print("|---|---|---|---|---|")
        _report("SQLite", sqlite)
        _report("PostgreSQL", postgres)
    finally:
        try:
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)'))
        except sa.exc.OperationalError:
            pass
        admin.dispose()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
