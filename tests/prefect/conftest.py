"""One real Prefect server for the whole session, on 127.0.0.1, under a temp dir.

Prefect reads its settings when it is first imported, so the environment is set when this
conftest is imported (before any test module imports Prefect); the server itself starts on
first use and stops when the session ends.
"""

from __future__ import annotations

import asyncio
import atexit
import inspect
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prefect_server import server_database

_HOME = Path(tempfile.mkdtemp(prefix="insync-prefect-tests-"))
atexit.register(shutil.rmtree, _HOME, True)  # also when no Prefect test was selected


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


_PORT = _free_port()
API_URL = f"http://127.0.0.1:{_PORT}/api"
PREFECT_ENV = {
    "PREFECT_HOME": str(_HOME / "home"),
    "PREFECT_API_URL": API_URL,
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    # Its default ignores PREFECT_HOME (Prefect 3.7): keep the server out of ~/.prefect.
    "PREFECT_SERVER_MEMO_STORE_PATH": str(_HOME / "memo_store.toml"),
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
    "PREFECT_LOCAL_STORAGE_PATH": str(_HOME / "results"),
    # The server's own services (scheduler, late runs, ...) are not under test.
    "PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_LATE_RUNS_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_FOREMAN_ENABLED": "false",
    "PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW": "ignore",
}
os.environ.update(PREFECT_ENV)

# Prefect warnings that say nothing about insync (pytest turns warnings into errors).
_IGNORED_WARNINGS = (
    "ignore:.*Logger 'prefect.*' attempted to send logs to the API:UserWarning",
    # Prefect's async client leaves its keep-alive sockets to the garbage collector when an
    # async flow's event loop closes (asyncio.run).
    "ignore:unclosed <socket.socket:ResourceWarning",
    "ignore:Exception ignored in. <socket.socket:pytest.PytestUnraisableExceptionWarning",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            for spec in _IGNORED_WARNINGS:
                item.add_marker(pytest.mark.filterwarnings(spec))


def _healthy(timeout: float = 0.5) -> bool:
    try:
        with urllib.request.urlopen(f"{API_URL}/health", timeout=timeout) as response:
            return bool(response.status == 200)
    except OSError:
        return False


@pytest.fixture(scope="session")
def prefect_server() -> Iterator[str]:
    """`prefect server start` on 127.0.0.1 (one per session); yields the API URL."""
    log = (_HOME / "server.log").open("wb")
    database, drop_database = server_database(_HOME)
    server = subprocess.Popen(
        [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(_PORT)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, **PREFECT_ENV, "PREFECT_API_DATABASE_CONNECTION_URL": database},
        cwd=_HOME,
    )
    deadline = time.monotonic() + 240  # 15-70 s usually; far more on a 2-core machine under load
    while not _healthy():
        if server.poll() is not None or time.monotonic() > deadline:
            server.kill()
            log.close()
            drop_database()
            pytest.fail("Prefect server did not start: " + (_HOME / "server.log").read_text()[-2000:])
        time.sleep(0.3)
    try:
        yield API_URL
    finally:
        # Flush queued logs and events while the server still listens.
        from prefect.events.worker import EventsWorker
        from prefect.logging.handlers import APILogWorker

        APILogWorker.drain_all(timeout=10)
        EventsWorker.drain_all(timeout=10)
        server.terminate()
        try:
            server.wait(timeout=5)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        finally:
            log.close()
            drop_database()
        shutil.rmtree(_HOME, ignore_errors=True)


@pytest.fixture(autouse=True)
def prefect_run(prefect_server: str, tmp_path: Path) -> Iterator[None]:
    """Per test: its own Prefect result storage, no flow heartbeat, insync stores closed after.

    The heartbeat thread is joined at each flow run's end (about 1 s); tests don't need it.
    """
    from insync.adapters.prefect import _runtime
    from prefect.settings import (
        PREFECT_FLOWS_HEARTBEAT_FREQUENCY,
        PREFECT_LOCAL_STORAGE_PATH,
        temporary_settings,
    )

    updates: dict[Any, Any] = {
        PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None,
        PREFECT_LOCAL_STORAGE_PATH: tmp_path / "prefect-results",
    }
    with temporary_settings(updates=updates):
        try:
            yield
        finally:
            _runtime.close_all()


RunResult = tuple[Any, dict[str, str]]


@pytest.fixture
def run_flow() -> Any:
    """Run a flow; return its value and {task name: final state name} as the server has them.

    `tasks` is how many task runs the flow makes: the server learns of task runs through
    events, so the helper waits until it has seen them all in a final state.
    """
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
    from prefect.events.worker import EventsWorker

    def run(flow_obj: Any, *args: Any, tasks: int, expect: str = "Completed", **kwargs: Any) -> RunResult:
        state = flow_obj(*args, return_state=True, **kwargs)
        if inspect.iscoroutine(state):  # an async flow
            state = asyncio.run(state)
        if state.type.value != "COMPLETED" and expect == "Completed":
            state.result()  # raises the flow's error with its traceback
        flow_run_id = state.state_details.flow_run_id
        # Task run states reach the server as events, processed asynchronously: send what is
        # queued, then wait until the server shows every task run in a final state.
        EventsWorker.drain_all()
        deadline = time.monotonic() + 15
        with get_client(sync_client=True) as client:
            while True:
                task_runs = client.read_task_runs(
                    flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
                )
                if len(task_runs) >= tasks and all(tr.state and tr.state.is_final() for tr in task_runs):
                    break
                if time.monotonic() > deadline:
                    pytest.fail(f"task runs not final on the server: {task_runs}")
                time.sleep(0.05)
        names: dict[str, str] = {}
        for task_run in task_runs:
            name = task_run.name.rsplit("-", 1)[0]
            assert name not in names, f"task {name} ran twice in one flow run"
            names[name] = task_run.state.name if task_run.state else "?"
        value = state.result(raise_on_failure=False)
        return value, names

    return run
