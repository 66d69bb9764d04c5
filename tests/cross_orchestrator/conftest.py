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
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from prefect_server import framework_free_env, shared_prefect_server

ROOT = Path(__file__).resolve().parents[2]
RUN = ROOT / "examples" / "cross_orchestrator" / "run.py"


@pytest.fixture(scope="session")
def prefect_api_url() -> str:
    """`prefect server start` on 127.0.0.1 (once per process, shared with the README harness)."""
    return shared_prefect_server()


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
def scenario_type() -> type[Scenario]:
    return Scenario


@pytest.fixture
def run_example(prefect_api_url: str, tmp_path: Path) -> Any:
    """Run the example in a child process (its own Airflow home, dags folder, warehouse)."""

    def run(database_url: str | None) -> Scenario:
        workdir = tmp_path / "work"
        out = tmp_path / "result.json"
        argv = [sys.executable, str(RUN), "--workdir", str(workdir), "--json", str(out)]
        if database_url is not None:
            argv += ["--database-url", database_url]
        env = {**framework_free_env(), "PREFECT_API_URL": prefect_api_url, "COLUMNS": "150"}
        started = time.perf_counter()
        done = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
        seconds = time.perf_counter() - started
        assert done.returncode == 0, f"run.py failed:\n{done.stdout[-4000:]}\n{done.stderr[-6000:]}"
        store_url = database_url or f"sqlite:///{workdir / 'insync' / 'insync.db'}"
        return Scenario(json.loads(out.read_text()), done.stdout, workdir, store_url, seconds)

    return run
