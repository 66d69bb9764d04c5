"""`insync automate` end to end, against real services the test starts: Airflow 3 (api-server,
scheduler with the LocalExecutor, dag-processor; sqlite metadata in a temp AIRFLOW_HOME), a
Prefect server with a served deployment, and dbt on DuckDB, all recording into one insync store.

The scenario (examples/cross_orchestrator): a source file changes -> automate triggers the Airflow
ingest DAG, where only the load of that file runs -> dbt rebuilds the two models below it ->
the Prefect report reruns; nothing else runs; the next loop does nothing. A second automate
instance started while the first one's run is in flight sees the claim and launches nothing.
Last, a daily-partitioned Airflow task: its policy launches one DAG run per never-built day, and
each run computes exactly its own day.

Run it alone with `pytest -m automation`. This process imports no orchestrator: it drives them
through their REST APIs and the `insync` command, as an operator would.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pendulum
import pytest

pytestmark = pytest.mark.automation

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "cross_orchestrator"
BIN = Path(sys.executable).parent
NEW_ORDER = "5,2,2026-11-03 11:00:00,19.99\n"
POLICIES = """\
[policies."raw"]
eager = true

[policies."staging"]
eager = true

[policies."marts"]
eager = true

[policies."reports"]
eager = true
freshness = "6h"

[airflow]
url = "{url}"
"""
# A daily-partitioned task (no partition=): its partition is the window of its run's data
# interval. The scheduler builds the latest day; the policy added last launches the others.
PARTITIONED_DAG = """\
import pendulum
from airflow.sdk import dag, task
from insync.adapters.airflow import versioned
from insync.core import TimeWindowPartitions

START = pendulum.parse("{start}")
DAILY = TimeWindowPartitions("daily", start=START.to_date_string())


@dag(dag_id="daily_parts", schedule="@daily", start_date=START, catchup=False)
def daily_parts():
    @task
    @versioned(code_version="v1", partitions=DAILY)
    def compute(ds=None):
        return f"computed for {{ds}}"

    compute()


daily_parts()
"""
SERVE = """\
from reporting import build_reports

if __name__ == "__main__":
    build_reports.serve(name="reports", print_starting_message=False)
"""


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _say(message: str) -> None:
    print(f"[automation e2e {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _wait(what: str, check: Any, timeout: float, processes: dict[str, subprocess.Popen[bytes]]) -> Any:
    """Poll `check()` until it returns something truthy; fail with the services' state otherwise."""
    deadline = time.monotonic() + timeout
    said = time.monotonic()
    while True:
        for name, process in processes.items():
            if process.poll() is not None:
                pytest.fail(f"{name} exited ({process.returncode}) while waiting for {what}")
        try:
            found = check()
        except httpx.TransportError:  # a service too busy to answer in time: ask again
            found = None
        if found:
            return found
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not after {timeout:.0f} s")
        if time.monotonic() - said > 10:
            _say(f"still waiting for {what}...")
            said = time.monotonic()
        time.sleep(1)


class Services:
    """Airflow's three services and a served Prefect deployment, in child processes."""

    def __init__(self, work: Path, env: dict[str, str]) -> None:
        self.work, self.env = work, env
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.airflow_url = f"http://127.0.0.1:{env['AIRFLOW__API__PORT']}"
        self._token: str | None = None

    def start(self, name: str, argv: list[str], cwd: Path, extra: dict[str, str] | None = None) -> None:
        with (self.work / f"{name}.log").open("wb") as log:
            self.processes[name] = subprocess.Popen(
                argv,
                env={**self.env, **(extra or {})},
                cwd=cwd,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')[-1500:]}" for p in sorted(self.work.glob("*.log"))
        )

    # ---------------------------------------------------------------------------- Airflow REST
    def airflow(self) -> httpx.Client:
        if self._token is None:  # simple_auth_manager_all_admins: a token without credentials
            self._token = httpx.get(f"{self.airflow_url}/auth/token", timeout=60).json()["access_token"]
        headers = {"Authorization": f"Bearer {self._token}"}
        return httpx.Client(base_url=self.airflow_url, timeout=60, headers=headers)

    def prefect_up(self) -> bool:
        try:
            return httpx.get(f"{self.env['PREFECT_API_URL']}/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def airflow_up(self) -> bool:
        try:
            health = httpx.get(f"{self.airflow_url}/api/v2/monitor/health", timeout=2).json()
        except (httpx.HTTPError, ValueError):
            return False
        return all(
            health.get(p, {}).get("status") == "healthy"
            for p in ("metadatabase", "scheduler", "dag_processor")
        )

    def dag_parsed(self, dag_id: str) -> bool:
        with self.airflow() as client:
            return client.get(f"/api/v2/dags/{dag_id}").status_code == 200

    def trigger(self, dag_id: str) -> str:
        with self.airflow() as client:
            response = client.post(f"/api/v2/dags/{dag_id}/dagRuns", json={"logical_date": None})
        assert response.status_code < 300, response.text
        return str(response.json()["dag_run_id"])

    def dag_run_done(self, dag_id: str, run_id: str) -> str | None:
        with self.airflow() as client:
            state = client.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}").json()["state"]
        if state == "failed":
            pytest.fail(f"{dag_id} run {run_id} failed:\n{self.logs()}")
        return state if state == "success" else None

    def dag_runs(self, dag_id: str) -> list[str]:
        with self.airflow() as client:
            runs = client.get(f"/api/v2/dags/{dag_id}/dagRuns").json()["dag_runs"]
        return sorted(r["dag_run_id"] for r in runs)

    def run_dag(self, dag_id: str) -> str:
        run_id = self.trigger(dag_id)
        _wait(
            f"Airflow {dag_id} run {run_id}", lambda: self.dag_run_done(dag_id, run_id), 180, self.processes
        )
        return run_id

    # ---------------------------------------------------------------------------- Prefect REST
    def flow_run_state(self, flow_run_id: str) -> str | None:
        state = httpx.get(f"{self.env['PREFECT_API_URL']}/flow_runs/{flow_run_id}", timeout=10).json()[
            "state"
        ]
        if state["type"] in ("FAILED", "CRASHED", "CANCELLED"):
            pytest.fail(f"Prefect flow run {flow_run_id} {state['type']}:\n{self.logs()}")
        return state["type"] if state["type"] == "COMPLETED" else None

    def deployment_runs(self) -> list[dict[str, Any]]:
        response = httpx.post(f"{self.env['PREFECT_API_URL']}/flow_runs/filter", json={}, timeout=10)
        return [r for r in response.json() if r.get("deployment_id")]


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    work = tmp_path / "work"
    shutil.copytree(EXAMPLE / "dags", work / "dags", ignore=shutil.ignore_patterns("__pycache__"))
    start = pendulum.now("UTC").start_of("day").subtract(days=3)
    (work / "dags" / "daily_parts.py").write_text(PARTITIONED_DAG.format(start=start.isoformat()))
    shutil.copytree(
        EXAMPLE / "warehouse", work / "warehouse", ignore=shutil.ignore_patterns("target", "logs", "*.duckdb")
    )
    shutil.copytree(EXAMPLE / "data", work / "data")
    (work / "flows").mkdir()
    shutil.copy2(EXAMPLE / "reporting.py", work / "flows" / "reporting.py")
    (work / "flows" / "serve_reports.py").write_text(SERVE)
    for folder in ("airflow", "prefect", "insync", "reports"):
        (work / folder).mkdir()
    return work


@pytest.fixture
def services(workdir: Path) -> Iterator[Services]:
    api_port = _port()
    env = {
        # Nothing of this process's own insync, Airflow, Prefect or dbt settings.
        **{
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("INSYNC_", "AIRFLOW", "PREFECT_", "DBT_"))
        },
        "CROSS_ORCHESTRATOR_DATA": str(workdir / "data"),
        "CROSS_ORCHESTRATOR_DUCKDB": str(workdir / "warehouse" / "warehouse.duckdb"),
        "CROSS_ORCHESTRATOR_REPORTS": str(workdir / "reports"),
        "INSYNC_DATABASE_URL": f"sqlite:///{workdir / 'insync' / 'insync.db'}",
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "AIRFLOW_HOME": str(workdir / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(workdir / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        # One task at a time: DuckDB lets one process write the warehouse file.
        "AIRFLOW__CORE__PARALLELISM": "1",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{workdir / 'airflow' / 'airflow.db'}",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(api_port),
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(16),
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(_port()),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(_port()),
        "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "60",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
        "PREFECT_HOME": str(workdir / "prefect"),
        "PREFECT_LOCAL_STORAGE_PATH": str(workdir / "prefect" / "results"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_LOGGING_LEVEL": "WARNING",
    }
    prefect_port = _port()
    env["PREFECT_API_URL"] = f"http://127.0.0.1:{prefect_port}/api"
    started = Services(workdir, env)
    try:
        # Prefect's server boots while Airflow migrates and starts (both take tens of seconds).
        _say("starting a Prefect server, migrating Airflow's metadata DB...")
        server = [
            sys.executable,
            "-m",
            "prefect",
            "server",
            "start",
            "--host",
            "127.0.0.1",
            "--port",
            str(prefect_port),
        ]
        started.start(
            "prefect-server",
            server,
            workdir / "prefect",
            {
                "PREFECT_API_DATABASE_CONNECTION_URL": "sqlite+aiosqlite:///"
                + str(workdir / "prefect" / "s.db"),
                "PREFECT_SERVER_MEMO_STORE_PATH": str(workdir / "prefect" / "memo_store.toml"),
                # The server's own schedulers play no part: run_deployment schedules the runs itself.
                "PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED": "false",
                "PREFECT_SERVER_SERVICES_LATE_RUNS_ENABLED": "false",
                "PREFECT_SERVER_SERVICES_FOREMAN_ENABLED": "false",
            },
        )
        subprocess.run([str(BIN / "airflow"), "db", "migrate"], env=env, check=True, capture_output=True)
        _say("starting Airflow's api-server, scheduler, dag-processor...")
        for name, args in (
            ("api-server", ["api-server", "--workers", "1"]),
            ("scheduler", ["scheduler"]),
            ("dag-processor", ["dag-processor"]),
        ):
            started.start(name, [str(BIN / "airflow"), *args], workdir)
        _wait("the Prefect server", started.prefect_up, 300, started.processes)
        started.start("prefect-serve", [sys.executable, "serve_reports.py"], workdir / "flows")
        _wait("Airflow services healthy", started.airflow_up, 300, started.processes)
        _wait(
            "the DAGs parsed",
            lambda: started.dag_parsed("ingest_raw") and started.dag_parsed("watch_raw_files"),
            120,
            started.processes,
        )
        _say("services up")
        yield started
    finally:
        started.stop()


def _automate(services: Services, instance: str) -> list[str]:
    """One `insync automate --once` loop, as cron would run it; its decision lines."""
    done = subprocess.run(
        [str(BIN / "insync"), "automate", "--once", "--config", "automate.toml", "--instance", instance],
        env=services.env,
        cwd=services.work,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}\n{services.logs()}"
    lines = [line.split(" ", 1)[1] for line in done.stdout.splitlines() if line[:4].isdigit()]
    _say("automate: " + " | ".join(lines))
    return lines[1:]  # the first line names the store and the instance


def _history(services: Services) -> dict[str, int]:
    from insync.core import EventStore

    with EventStore(services.env["INSYNC_DATABASE_URL"], read_only=True) as store:
        return {
            str(key): len(store.history(key, kind="materialization"))
            for key, spec in store.definitions().items()
            if not spec.is_source
        }


def _partitions(services: Services) -> dict[str, str]:
    """The days of daily_parts/compute materialized so far, each with the run that built it."""
    from insync.core import EventStore
    from insync.core.errors import StoreError

    try:
        with EventStore(services.env["INSYNC_DATABASE_URL"], read_only=True) as store:
            if "daily_parts/compute" not in {str(k) for k in store.definitions()}:
                return {}
            events = store.history("daily_parts/compute", kind="materialization", limit=50)
    except StoreError:  # no task has created the store yet
        return {}
    return {str(e.partition): str(e.run_id) for e in events}


def test_a_source_change_runs_exactly_its_chain_across_airflow_dbt_and_prefect(services: Services) -> None:
    work = services.work
    # Pass 1, by hand: each orchestrator runs once, so every asset exists and each adapter records
    # its owner with the definitions (the DAG, the dbt project, the Prefect deployment).
    # The scheduler's run of the latest day records daily_parts/compute and its owner.
    _wait("the scheduled daily_parts run", lambda: _partitions(services), 180, services.processes)
    _say("pass 1: ingest_raw, dbt build, the reports deployment")
    services.run_dag("ingest_raw")
    subprocess.run(
        [str(BIN / "insync"), "dbt", "build", "--project-dir", ".", "--profiles-dir", "."],
        env=services.env,
        cwd=work / "warehouse",
        check=True,
        capture_output=True,
    )
    first_report = subprocess.run(
        [
            sys.executable,
            "-c",
            "from prefect.deployments import run_deployment; "
            "print(run_deployment('build-reports/reports', timeout=240).state.type.value)",
        ],
        env=services.env,
        cwd=work,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert first_report.stdout.strip() == "COMPLETED", first_report.stderr[-3000:] + services.logs()
    before = _history(services)
    assert set(before.values()) == {1}, before

    (work / "automate.toml").write_text(POLICIES.format(url=services.airflow_url))
    assert _automate(services, "first") == ["nothing to do"]

    _say("the orders file changes; the watch DAG observes it")
    orders = work / "data" / "orders.csv"
    orders.write_text(orders.read_text() + NEW_ORDER)
    services.run_dag("watch_raw_files")
    airflow_runs = services.dag_runs("ingest_raw")

    # Loop 1: only the Airflow load of the changed file is launched.
    (airflow,) = _automate(services, "first")
    assert re.fullmatch(
        r"launch raw/orders via airflow:ingest_raw \(load_orders\): raw/orders_csv has a new data version "
        r"-> run insync-\w+",
        airflow,
    ), airflow
    # A second instance, while that run is in flight or after: the claim stops it.
    (claimed,) = _automate(services, "second")
    assert claimed.startswith("claimed raw/orders via airflow:ingest_raw") and "launched by first" in claimed
    run_id = airflow.rsplit(" ", 1)[1]
    _wait(
        "the launched ingest_raw run",
        lambda: services.dag_run_done("ingest_raw", run_id),
        180,
        services.processes,
    )
    assert services.dag_runs("ingest_raw") == sorted([*airflow_runs, run_id])

    # Loop 2: dbt rebuilds the two models below raw/orders, in one build.
    dbt = _automate(services, "first")
    assert [line.split(" -> ")[0] for line in dbt] == [
        "launch marts/daily_revenue via dbt:"
        + str(work / "warehouse")
        + " (daily_revenue): joins the dbt run of staging/orders (will be unsynced after it)",
        "launch staging/orders via dbt:"
        + str(work / "warehouse")
        + " (stg_orders): raw/orders has a new data version",
    ]
    assert all(line.endswith("-> run exit 0") for line in dbt), dbt

    # Loop 3: the Prefect report of the rebuilt mart.
    (prefect,) = _automate(services, "first")
    assert prefect.startswith(
        "launch reports/daily_revenue via prefect:build-reports/reports: "
        "marts/daily_revenue has a new data version"
    ), prefect
    flow_run_id = prefect.rsplit(" ", 1)[1]
    _wait(
        "the launched report flow run", lambda: services.flow_run_state(flow_run_id), 180, services.processes
    )

    # Loop 4: everything is Synced; nothing is launched.
    assert _automate(services, "first") == ["nothing to do"]
    assert _automate(services, "second") == ["nothing to do"]

    after = _history(services)
    ran = sorted(key for key in after if after[key] > before[key])
    assert ran == ["marts/daily_revenue", "raw/orders", "reports/daily_revenue", "staging/orders"], after
    assert all(after[key] - before[key] == 1 for key in ran), after
    assert len(services.deployment_runs()) == 2  # pass 1 and loop 3

    # Partitions: an eager policy for the daily task launches one Airflow run per never-built
    # window, its data interval that window; each run computes exactly its own day.
    built = _partitions(services)
    assert len(built) == 1, built
    config = work / "automate.toml"
    config.write_text(config.read_text() + '\n[policies."daily_parts"]\neager = true\n')
    (launch,) = _automate(services, "first")
    assert launch.startswith("launch daily_parts/compute[") and "3 partitions never materialized" in launch
    runs = [r for r in services.dag_runs("daily_parts") if r.startswith("insync-")]
    assert len(runs) == 3, runs
    for run in runs:
        _wait(f"daily_parts run {run}", lambda r=run: services.dag_run_done("daily_parts", r), 180,
              services.processes)
    done = _partitions(services)
    launched = {day: run for day, run in done.items() if day not in built}
    assert len(done) == 4 and built.items() <= done.items(), done
    assert all(run.endswith(f"-{day}") for day, run in launched.items()), done  # each its own day
    assert _automate(services, "first") == ["nothing to do"]
    assert len(services.dag_runs("ingest_raw")) == 2  # pass 1 and loop 1
