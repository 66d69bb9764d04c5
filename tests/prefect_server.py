"""One `prefect server start` per test process, for commands run in child processes.

The README harness and the cross-orchestrator example share it: their children reach it through
PREFECT_API_URL, so no child pays an ephemeral server's cold start (15-70 s on this machine).
The server runs under a temp dir with its own database and stops when the process exits.
"""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path

START_TIMEOUT = 300  # seconds; 15 on a quiet machine, over 120 on a 2-core one at load 20
POSTGRES_ADMIN_URL = os.environ.get(
    "INSYNC_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def healthy(api_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{api_url}/health", timeout=5) as response:  # busy: slow
            return bool(response.status == 200)
    except OSError:
        return False


def framework_free_env() -> dict[str, str]:
    """This process's environment without any insync, Airflow, Prefect or dbt setting."""
    prefixes = ("INSYNC_", "AIRFLOW", "PREFECT_", "DBT_", "CROSS_ORCHESTRATOR_")
    return {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}


def server_database(home: Path) -> tuple[str, Callable[[], None]]:
    """A Prefect server's database and how to drop it: a new PostgreSQL database, else SQLite.

    Why not SQLite: Prefect 3.7's server on SQLite can deadlock its event loop while it saves an
    automation (PrefectHQ/prefect#23055: a blocking after-commit listener; fixed in 3.8, which
    Airflow 3.3's FastAPI bound rules out). A deployment with `source_changed_trigger` saves one.
    SQLite stays the fallback outside CI, where PostgreSQL may not run.
    """
    import sqlalchemy as sa

    name = f"insync_prefect_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError:
        admin.dispose()
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            raise
        return f"sqlite+aiosqlite:///{home / 'prefect.db'}", lambda: None

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    url = sa.make_url(POSTGRES_ADMIN_URL).set(drivername="postgresql+asyncpg", database=name)
    return url.render_as_string(hide_password=False), drop


@functools.cache
def shared_prefect_server() -> str:
    """Start the server on first use (under a temp dir) and return its API URL."""
    home = Path(tempfile.mkdtemp(prefix="insync-prefect-server-"))
    port = _free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    database, drop_database = server_database(home)
    env = {
        **framework_free_env(),
        "PREFECT_HOME": str(home / "home"),
        # Its default ignores PREFECT_HOME (Prefect 3.7): keep the server out of ~/.prefect.
        "PREFECT_SERVER_MEMO_STORE_PATH": str(home / "memo_store.toml"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_API_DATABASE_CONNECTION_URL": database,
        # The server's own services (scheduler, late runs, ...) play no part in the tests.
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

    def stop() -> None:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()
        drop_database()
        shutil.rmtree(home, ignore_errors=True)

    deadline = time.monotonic() + START_TIMEOUT
    print(f"[prefect] starting prefect server on port {port}", file=sys.stderr, flush=True)
    while not healthy(api_url):
        if server.poll() is not None or time.monotonic() > deadline:
            tail = (home / "server.log").read_text()[-2000:]
            stop()
            raise RuntimeError(f"Prefect server did not start:\n{tail}")
        time.sleep(0.3)
    atexit.register(stop)
    return api_url
