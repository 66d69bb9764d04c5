"""Fixtures shared by every part's tests: a clean insync environment and the real stores."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

POSTGRES_ADMIN_URL = os.environ.get(
    "INSYNC_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


@pytest.fixture(autouse=True)
def clean_insync_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test sees the developer's INSYNC_* settings or writes `.insync/` into the source tree."""
    for name in list(os.environ):
        if name.startswith("INSYNC_") and name != "INSYNC_TEST_POSTGRES_URL":
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="module", autouse=True)
def no_event_loop_left_running() -> Iterator[None]:
    """A test file that leaves an asyncio loop marked running in the main thread fails there.

    Left alone, it would fail whatever file the same worker runs next (`asyncio.run()` refuses,
    Prefect takes its sync calls for async ones), far from the cause. (Within a file a loop may
    stay marked: Playwright's sync API does so while its browser is open.)
    """
    yield
    if asyncio._get_running_loop() is not None:
        asyncio._set_running_loop(None)
        pytest.fail("a test of this file left an asyncio event loop running in the main thread")


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'store' / 'insync.db'}"


@pytest.fixture(scope="session")
def postgres_server() -> str:
    """The local PostgreSQL server; in CI (CI=true) its absence fails the run instead of skipping."""
    import sqlalchemy as sa

    engine = sa.create_engine(POSTGRES_ADMIN_URL)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("select 1"))
    except sa.exc.OperationalError as exc:
        message = f"PostgreSQL is not reachable at {POSTGRES_ADMIN_URL}: {exc.orig}"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message + " (CI=true: start it, e.g. `pg_ctlcluster 15 main start`)")
        pytest.skip(message)
    finally:
        engine.dispose()
    return POSTGRES_ADMIN_URL


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A fresh, empty database per test, dropped afterwards."""
    import sqlalchemy as sa

    name = f"insync_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(postgres_server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.make_url(postgres_server).set(database=name)
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest) -> str:
    """Every store contract test runs on the embedded SQLite store and on PostgreSQL."""
    fixture = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    return str(request.getfixturevalue(fixture))
