"""One real Prefect server for the session; the example itself runs in child processes.

Why child processes: Airflow and Prefect read their configuration when first imported, and the
Airflow and Prefect suites' conftests set process-wide settings (their own homes, a Prefect API
URL) when a whole-repository run imports them. `run.py` in a fresh process gets exactly the
environment it sets up for itself, as a user running it would. Only the Prefect server is shared
(its cold start is the slowest part): the children reach it through PREFECT_API_URL.

No warning filters are needed here: this process imports no framework (the children do, and
print their frameworks' deprecation warnings to their stderr), and the suite passes under
`-W error` as it is.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUN = ROOT / "examples" / "cross_orchestrator" / "run.py"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _healthy(api_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{api_url}/health", timeout=0.5) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def _framework_free_env() -> dict[str, str]:
    """This process's environment without any insync, Airflow, Prefect or dbt setting."""
    prefixes = ("INSYNC_", "AIRFLOW", "PREFECT_", "DBT_", "CROSS_ORCHESTRATOR_")
    return {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}


@pytest.fixture(scope="session")
def prefect_api_url() -> Iterator[str]:
    """`prefect server start` on 127.0.0.1 under a temp dir (once per session)."""
    home = Path(tempfile.mkdtemp(prefix="insync-cross-prefect-"))
    port = _free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    env = {
        **_framework_free_env(),
        "PREFECT_HOME": str(home / "home"),
        # Its default ignores PREFECT_HOME (Prefect 3.7): keep the server out of ~/.prefect.
        "PREFECT_SERVER_MEMO_STORE_PATH": str(home / "memo_store.toml"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_API_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{home / 'prefect.db'}",
        # The server's own services (scheduler, late runs, ...) play no part here.
        "PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED": "false",
        "PREFECT_SERVER_SERVICES_LATE_RUNS_ENABLED": "false",
        "PREFECT_SERVER_SERVICES_FOREMAN_ENABLED": "false",
    }
    log = (home / "server.log").open("wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=home,
    )
    deadline = time.monotonic() + 90
    while not _healthy(api_url):
        if server.poll() is not None or time.monotonic() > deadline:
            server.kill()
            server.wait()
            log.close()
            pytest.fail("Prefect server did not start: " + (home / "server.log").read_text()[-2000:])
        time.sleep(0.3)
    try:
        yield api_url
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()
        shutil.rmtree(home, ignore_errors=True)


@dataclass
class Scenario:
    """One end-to-end run of examples/cross_orchestrator/run.py."""

    result: dict[str, Any]  # what run.py wrote with --json
    stdout: str
    workdir: Path
    store_url: str
    seconds: float

    def status(self, phase: str, key: str) -> dict[str, Any]:
        for row in self.result[phase]:
            if row["key"] == key:
                return dict(row)
        raise KeyError(f"{key} not in the {phase} status table")


@pytest.fixture
def run_example(prefect_api_url: str, tmp_path: Path) -> Any:
    """Run the example in a child process (its own Airflow home, dags folder, warehouse)."""

    def run(database_url: str | None) -> Scenario:
        workdir = tmp_path / "work"
        out = tmp_path / "result.json"
        argv = [sys.executable, str(RUN), "--workdir", str(workdir), "--json", str(out)]
        if database_url is not None:
            argv += ["--database-url", database_url]
        env = {**_framework_free_env(), "PREFECT_API_URL": prefect_api_url, "COLUMNS": "150"}
        started = time.perf_counter()
        done = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=240)
        seconds = time.perf_counter() - started
        assert done.returncode == 0, f"run.py failed:\n{done.stdout[-4000:]}\n{done.stderr[-6000:]}"
        store_url = database_url or f"sqlite:///{workdir / 'insync' / 'insync.db'}"
        return Scenario(json.loads(out.read_text()), done.stdout, workdir, store_url, seconds)

    return run
