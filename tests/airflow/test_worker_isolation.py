"""Airflow 3 workers have no metadata-database access: insync must only use the task SDK."""

from __future__ import annotations

import sys
import traceback
from collections.abc import Iterator
from pathlib import Path

import insync.adapters.airflow as adapter
import pytest

ADAPTER_DIR = str(Path(adapter.__file__).parent)
EXECUTION_API = "api_fastapi/execution_api"

ISOLATION = """
from airflow.sdk import dag, task, Asset
from insync.adapters.airflow import versioned

@dag(dag_id="isolation", schedule=None)
def isolation():
    @task(outlets=[Asset("iso/numbers")])
    @versioned(code_version="v1")
    def numbers():
        return [1, 2]

    @task
    def direct_db_access():
        # Positive control: a task that reads Airflow's database behind the SDK's back.
        from airflow.settings import Session
        from sqlalchemy import text

        Session().execute(text("select 1"))

    @task
    @versioned(code_version="v1")
    def total(values):
        return sum(values)

    total(numbers()) >> direct_db_access()

isolation()
"""


def _origin(dags: str) -> str | None:
    """Who issued this statement: the first insync/DAG frame below any Execution API frame."""
    for frame in reversed(traceback.extract_stack()):
        if EXECUTION_API in frame.filename:
            return None  # went through the Execution API, as a worker must
        if frame.filename.startswith(ADAPTER_DIR):
            return "insync"
        if frame.filename.startswith(dags):
            return "dag"
    return None


@pytest.fixture
def statements(airflow) -> Iterator[list[str]]:
    from airflow import settings
    from sqlalchemy import event

    seen: list[str] = []
    dags = str(airflow.dags)

    def listener(conn, cursor, statement, *args) -> None:  # type: ignore[no-untyped-def]
        origin = _origin(dags)
        if origin is not None:
            seen.append(f"{origin}: {statement.split()[0].upper()}")

    event.listen(settings.engine, "before_cursor_execute", listener)
    yield seen
    event.remove(settings.engine, "before_cursor_execute", listener)


def test_versioned_tasks_never_touch_the_metadata_database(airflow, statements):
    path = airflow.write(ISOLATION)
    first = airflow.run(path, "isolation")
    second = airflow.run(path, "isolation")
    assert first.decisions == {"numbers": "run", "total": "run"}
    assert second.decisions == {"numbers": "skip", "total": "skip"}
    assert "dag: SELECT" in statements  # the detector sees a direct access when there is one
    assert [s for s in statements if s.startswith("insync")] == []


def test_the_adapter_imports_no_metadata_database_module():
    banned = ("airflow.models", "airflow.settings", "airflow.utils.session")
    for name, module in list(sys.modules.items()):
        if name.startswith("insync.adapters.airflow") and module is not None:
            source = Path(module.__file__).read_text()
            for ban in banned:
                assert f"import {ban}" not in source and f"from {ban} " not in source, (name, ban)
