"""Added latency per Airflow task of the insync check + record, on SQLite and PostgreSQL.

    .venv/bin/python benchmarks/bench_airflow.py [--tasks 30] [--postgres URL]

Runs a DAG of N chained versioned tasks with real `dag.test()` (temp Airflow home, sqlite
metadata DB) three times: run 1 executes every task for the first time (check + definition
registration + record + value cache write), run 2 skips every task (check + cached value read),
run 3 forces every task to run again (check + record + value cache write: the steady state).
Each task instance reports what insync added to it before pushing its `insync` XCom marker
(`overhead_ms_before_push`: everything in the wrapper except the user's code and that push).
Prints the median and 90th percentile per store.

Then a backfill (`--days N`, SQLite): a daily DAG with 3 tasks, each versioned with daily
partitions, run with `dag.test(logical_date=...)` for N days (first pass), again (every task
skips: the per-partition skip overhead), and again with one day's run conf changed (that day
recomputes); against the same DAG without insync run over the same N days (a plain re-run).

Real services (`--services [--tasks 5] [--rounds 4]`): `airflow db migrate`, then api-server,
scheduler (LocalExecutor), dag-processor and triggerer on a temp home, each task instance in
its own process as in production. Three DAGs of N chained tasks: plain `@task`s, versioned on a
SQLite store, versioned on a PostgreSQL store; each triggered once (the versioned tasks record),
then `--rounds` times in turn (the versioned tasks skip). Per task instance: its duration from
Airflow's own TaskInstance start/end, and insync's first-to-last-line time from the task log's
`insync overhead:` line (its `insync` XCom push included).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

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
            found.append(float(marker["overhead_ms_before_push"]))
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


# ------------------------------------------------------------------------ real services

SERVICES_DAG = """
from airflow.sdk import dag, task
from insync.adapters.airflow import versioned

@dag(dag_id="{dag_id}", schedule=None, catchup=False, max_active_runs=1)
def services():
    previous = None
    for i in range({tasks}):
        @task(task_id=f"step_{{i:02d}}")
        {decorator}
        def step(value=0):
            return value + 1

        previous = step(previous) if previous is not None else step()

services()
"""

#: The Airflow services a deployment runs, each in its own process (LocalExecutor: the scheduler
#: starts the task processes).
SERVICES = (
    ("api-server", ("api-server", "--workers", "1")),
    ("scheduler", ("scheduler",)),
    ("dag-processor", ("dag-processor",)),
    ("triggerer", ("triggerer",)),
)


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def services_environment(work: Path, dags: Path) -> dict[str, str]:
    """Airflow configuration for one set of services in `work`: own ports (parallel runs do not
    clash), one JWT secret shared by the api-server and the task processes, a quick DAG scan."""
    api_port = _free_port()
    return {
        "AIRFLOW_HOME": str(work / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "2",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{work / 'airflow.db'}",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(api_port),
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(16),
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(_free_port()),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(_free_port()),
        # A busy machine answers slower than the default 5 s: a timed-out start fails the task.
        "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "60",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "60",
    }


class AirflowServices:
    """api-server, scheduler (LocalExecutor), dag-processor and triggerer on a temp home.

    The benchmark process shares the sqlite metadata DB: it triggers runs and reads task
    instances there, as `airflow dags trigger` would.
    """

    def __init__(self, work: Path, env: dict[str, str]) -> None:
        self.work = work
        self.env = env
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def __enter__(self) -> AirflowServices:
        airflow = str(Path(sys.executable).with_name("airflow"))
        environ = {**os.environ, **self.env}
        _progress(f"migrating Airflow's metadata database in {self.work} (~5-45 s; minutes when busy)...")
        started = time.monotonic()
        with (self.work / "migrate.log").open("wb") as log:
            migrate = subprocess.Popen([airflow, "db", "migrate"], env=environ, stdout=log, stderr=log)
            while migrate.poll() is None:
                try:
                    migrate.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    _progress(f"  still migrating ({time.monotonic() - started:.0f} s)...")
        if migrate.returncode:
            tail = (self.work / "migrate.log").read_text(errors="replace")[-3000:]
            raise RuntimeError(f"airflow db migrate failed ({migrate.returncode}):\n{tail}")
        _progress(f"migrated in {time.monotonic() - started:.0f} s")
        _progress("starting " + ", ".join(name for name, _ in SERVICES) + " (40-80 s on 2 busy cores)...")
        started = time.monotonic()
        for name, args in SERVICES:
            with (self.work / f"{name}.log").open("wb") as log:
                self.processes[name] = subprocess.Popen(
                    [airflow, *args],
                    env=environ,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
        try:
            self._wait_until_up(started)
        except BaseException:
            self.__exit__()
            raise
        return self

    def _wait_until_up(self, started: float) -> None:
        url = f"http://127.0.0.1:{self.env['AIRFLOW__API__PORT']}/api/v2/monitor/health"
        deadline = started + 300
        last_said = started
        while True:
            for name, process in self.processes.items():
                if process.poll() is not None:
                    tail = (self.work / f"{name}.log").read_text(errors="replace")[-3000:]
                    raise RuntimeError(f"airflow {name} exited ({process.returncode}):\n{tail}")
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    health = json.load(response)
                if all(
                    health.get(part, {}).get("status") == "healthy"
                    for part in ("metadatabase", "scheduler", "triggerer", "dag_processor")
                ):
                    break
            except OSError:
                pass
            now = time.monotonic()
            if now > deadline:
                raise RuntimeError(f"Airflow services not healthy after 300 s; logs in {self.work}")
            if now - last_said > 10:
                _progress(f"  still starting ({now - started:.0f} s)...")
                last_said = now
            time.sleep(1)
        _progress(f"Airflow services up after {time.monotonic() - started:.0f} s")

    def __exit__(self, *exc: object) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()

    def wait_for_dags(self, dag_ids: list[str], timeout: float = 300) -> None:
        """Until the dag-processor has serialized every DAG of `dag_ids`."""
        from airflow.models.serialized_dag import SerializedDagModel
        from airflow.utils.session import create_session
        from sqlalchemy import select

        deadline = time.monotonic() + timeout
        while True:
            with create_session() as session:
                found = set(
                    session.scalars(
                        select(SerializedDagModel.dag_id).where(SerializedDagModel.dag_id.in_(dag_ids))
                    )
                )
            if found == set(dag_ids):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"DAGs {sorted(set(dag_ids) - found)} not parsed after {timeout:.0f} s")
            time.sleep(1)

    def run(self, dag_id: str, conf: dict[str, Any] | None = None, timeout: float = 600) -> str:
        """Trigger a DAG run and wait for it to finish; returns its run id.

        :raises RuntimeError: the run failed or timed out.
        """
        from airflow.api.common.trigger_dag import trigger_dag
        from airflow.models.dagrun import DagRun
        from airflow.utils.session import create_session
        from airflow.utils.types import DagRunTriggeredByType
        from sqlalchemy import select

        run_id = f"bench_{uuid.uuid4().hex[:12]}"
        trigger_dag(dag_id, run_id=run_id, conf=conf or {}, triggered_by=DagRunTriggeredByType.CLI)
        deadline = time.monotonic() + timeout
        while True:
            with create_session() as session:
                state = session.scalar(
                    select(DagRun.state).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id)
                )
            if state in ("success", "failed"):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{dag_id} run {run_id} still {state} after {timeout:.0f} s")
            time.sleep(0.5)
        if state != "success":
            raise RuntimeError(f"{dag_id} run {run_id} {state}; task logs in {self.env['AIRFLOW_HOME']}/logs")
        return run_id

    def task_instances(self, dag_id: str, run_id: str) -> dict[str, float]:
        """Task id -> the task instance's duration in seconds, as Airflow recorded it (start and
        end dates set by the api-server when the task process starts and when it finishes)."""
        from airflow.models.taskinstance import TaskInstance
        from airflow.utils.session import create_session
        from sqlalchemy import select

        with create_session() as session:
            rows = session.execute(
                select(TaskInstance.task_id, TaskInstance.start_date, TaskInstance.end_date).where(
                    TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id
                )
            ).all()
        return {task_id: (end - start).total_seconds() for task_id, start, end in rows}


def _markers(dag_id: str, run_id: str) -> dict[str, dict[str, Any]]:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.scalars(
            select(XComModel).where(
                XComModel.dag_id == dag_id, XComModel.run_id == run_id, XComModel.key == "insync"
            )
        ).all()
        return {row.task_id: XComModel.deserialize_value(row) for row in rows}


_OVERHEAD_LINE = re.compile(r"insync overhead: ([\d.]+) ms in this task instance \(([\d.]+) ms of it pushing")


def _logged_overheads(home: Path, dag_id: str, run_id: str) -> list[tuple[float, float]]:
    """(whole, marker push) ms from each task log's `insync overhead:` line: the wrapper's first
    line to its last, the push of the `insync` XCom included."""
    found = []
    run_logs = home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}"
    for log in sorted(run_logs.glob("task_id=*/attempt=*.log")):
        for line in log.read_text(errors="replace").splitlines():
            match = _OVERHEAD_LINE.search(line)
            if match:
                found.append((float(match[1]), float(match[2])))
    return found


def _services(work: Path, tasks: int, rounds: int, pg_url: str | None) -> None:
    """Plain against versioned (skipped) task instances under real Airflow services."""
    dags = work / "dags"
    env = services_environment(work, dags)
    os.environ.update(env)
    variants = {"svc_plain": ""}
    variants["svc_sqlite"] = f'@versioned(store="sqlite:///{work / "insync.db"}")'
    if pg_url is not None:
        variants["svc_postgres"] = f"@versioned(store={pg_url!r})"
    for dag_id, decorator in variants.items():
        source = SERVICES_DAG.format(dag_id=dag_id, tasks=tasks, decorator=decorator)
        (dags / f"{dag_id}.py").write_text(source)
    with AirflowServices(work, env) as services:
        services.wait_for_dags(list(variants))
        durations: dict[str, list[float]] = {name: [] for name in variants}
        first: dict[str, list[float]] = {name: [] for name in variants}
        insync_ms: dict[str, list[float]] = {name: [] for name in variants}
        push_ms: dict[str, list[float]] = {name: [] for name in variants}
        decisions: dict[str, set[str]] = {name: set() for name in variants}
        for round_ in range(rounds + 1):
            for dag_id in variants:
                started = time.monotonic()
                run_id = services.run(dag_id)
                measured = services.task_instances(dag_id, run_id)
                markers = _markers(dag_id, run_id)
                (first if round_ == 0 else durations)[dag_id].extend(measured.values())
                if round_ > 0:
                    logged = _logged_overheads(Path(env["AIRFLOW_HOME"]), dag_id, run_id)
                    insync_ms[dag_id].extend(whole for whole, _ in logged)
                    push_ms[dag_id].extend(push for _, push in logged)
                    decisions[dag_id].update(m["decision"] for m in markers.values())
                _progress(
                    f"round {round_}/{rounds} {dag_id}: {len(measured)} task instances, "
                    f"{time.monotonic() - started:.0f} s (load {_load()})"
                )
    plain = statistics.median(durations["svc_plain"])
    print(f"\nReal services ({tasks} chained tasks per DAG, {rounds} runs each, load {_load()})\n")
    print(
        "| DAG | decision | task instances | TI median ms | TI p90 ms | TI vs plain | "
        "insync first-to-last median ms (% of plain TI) | of it, marker XCom push ms |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for dag_id in variants:
        values = sorted(durations[dag_id])
        median = statistics.median(values)
        p90 = values[min(len(values) - 1, int(len(values) * 0.9))]
        own = push = "-"
        if insync_ms[dag_id]:
            whole = statistics.median(insync_ms[dag_id])
            own = f"{whole:.1f} ({whole / (plain * 1000):.1%})"
            push = f"{statistics.median(push_ms[dag_id]):.1f}"
        print(
            f"| {dag_id} | {'/'.join(sorted(decisions[dag_id])) or '-'} | {len(values)} | "
            f"{median * 1000:.0f} | {p90 * 1000:.0f} | {(median - plain) * 1000:+.0f} ms | {own} | {push} |"
        )
    print("\nFirst run of each DAG (versioned tasks run and record): TI median ms")
    for dag_id in variants:
        print(f"- {dag_id}: {statistics.median(first[dag_id]) * 1000:.0f}")


@contextmanager
def _scratch_postgres(admin_url: str) -> Iterator[str | None]:
    """A new database on the server of `admin_url` for the block (dropped after), or None."""
    import sqlalchemy as sa

    name = f"insync_bench_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        try:
            with admin.connect() as conn:
                conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        except sa.exc.OperationalError as exc:
            _progress(f"PostgreSQL unavailable ({exc.orig}); SQLite only")
            yield None
            return
        try:
            yield sa.make_url(admin_url).set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


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
        "--services", action="store_true", help="only the real-services benchmark (api-server, ...)"
    )
    parser.add_argument("--rounds", type=int, default=4, help="runs per DAG under real services")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (logs)")
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
    if args.services:
        try:
            with _scratch_postgres(args.postgres) as pg_url:
                _services(work, min(args.tasks, 10), args.rounds, pg_url)
        finally:
            if args.keep:
                _progress(f"kept {work}")
            else:
                shutil.rmtree(work, ignore_errors=True)
        return
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
