"""Parameters and partitions on real Airflow 3 (`dag.test()` per logical date).

    .venv/bin/python examples/airflow/partitions.py

Backfills `daily_sales` over three days, backfills again (each day reuses its own value),
re-runs one day with another run configuration (that day only recomputes), then bumps the
`sales` code version and prints `insync airflow plan daily_sales` before any run.
Everything happens in a temporary folder, removed at the end unless --keep is given.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).parent
DAYS = ("2026-12-01", "2026-12-02", "2026-12-03")
TASKS = ("sales", "report")


def _prepare(work: Path) -> Path:
    dags = work / "dags"
    dags.mkdir()
    shutil.copy(HERE / "dags" / "daily_partitions.py", dags / "daily_partitions.py")
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
    return dags


def _run(dags: Path, day: str, conf: dict[str, str] | None = None) -> list[tuple[str, str, str, str]]:
    """One `dag.test()` at `day`; (day, task, insync decision message, value) per task."""
    import pendulum
    from airflow.dag_processing.dagbag import DagBag
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    dag = DagBag(dag_folder=str(dags / "daily_partitions.py")).get_dag("daily_sales")
    dag_run = dag.test(logical_date=pendulum.parse(day, tz="UTC"), run_conf=conf)
    with create_session() as session:
        xcoms = {
            (x.task_id, x.key): XComModel.deserialize_value(x)
            for x in session.scalars(
                select(XComModel).where(
                    XComModel.dag_id == "daily_sales", XComModel.run_id == dag_run.run_id
                )
            )
        }
    return [
        (day, t, xcoms[(t, "insync")]["message"], str(xcoms.get((t, "return_value"))))
        for t in TASKS
    ]


def _show(title: str, rows: list[tuple[str, str, str, str]]) -> None:
    print(f"\n{title}")
    for day, task, message, value in rows:
        print(f"  {day}  {task:<7} {value:<22} {message}")


def main(argv: list[str] | None = None) -> dict[str, list[tuple[str, str, str, str]]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="insync-airflow-partitions-"))
    results: dict[str, list[tuple[str, str, str, str]]] = {}
    try:
        dags = _prepare(work)
        from airflow.utils.db import upgradedb

        upgradedb()
        results["backfill"] = [row for day in DAYS for row in _run(dags, day)]
        _show("Backfill 2026-12-01..03 (nothing recorded yet)", results["backfill"])
        results["again"] = [row for day in DAYS for row in _run(dags, day)]
        _show("The same backfill again", results["again"])
        results["changed"] = [row for day in DAYS for row in _run(
            dags, day, {"currency": "USD"} if day == "2026-12-02" else None
        )]
        _show("Again, 2026-12-02 with run conf {\"currency\": \"USD\"}", results["changed"])

        path = dags / "daily_partitions.py"
        path.write_text(path.read_text().replace('code_version="v1"', 'code_version="v2"'))
        from insync.adapters.airflow.cli import airflow_group

        print('\nsales -> code_version="v2", then: insync airflow plan daily_sales')
        airflow_group.main(["plan", "daily_sales"], standalone_mode=False)
    finally:
        if args.keep:
            print(f"\nkept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    return results


if __name__ == "__main__":
    main()
