"""One migrated Airflow home per session (sqlite, temp dir); DAG files in its temp dags folder.

Airflow reads its configuration when it is first imported, so the environment is set here, at
conftest import, before any test module imports Airflow.
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
import textwrap
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

_HOME = Path(tempfile.mkdtemp(prefix="insync-airflow-home-"))
atexit.register(shutil.rmtree, _HOME, ignore_errors=True)
_DAGS = _HOME / "dags"
_DAGS.mkdir()
# Importable helpers for DAG files and triggers (a trigger imports its observe function by path).
_LIB = _HOME / "lib"
_LIB.mkdir()
(_LIB / "insync_airflow_test_sources.py").write_text(
    textwrap.dedent(
        '''
        """Observe functions for the tests: a source that changes after a number of looks."""
        from pathlib import Path


        def flip(*, counter: str, switch_at: int) -> str:
            path = Path(counter)
            looks = int(path.read_text()) + 1 if path.exists() else 1
            path.write_text(str(looks))
            return "v2" if looks >= switch_at else "v1"
        '''
    )
)
sys.path.insert(0, str(_LIB))
os.environ.update(
    {
        "AIRFLOW_HOME": str(_HOME),
        "AIRFLOW__CORE__DAGS_FOLDER": str(_DAGS),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{_HOME / 'airflow.db'}",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
    }
)

# Framework warnings that Airflow 3.3 itself triggers (pytest runs with warnings as errors).
_IGNORED_WARNINGS = (
    # dag.test() imports starlette's TestClient for the in-process Execution API.
    "ignore:Using `httpx` with `starlette.testclient` is deprecated",
    "ignore:.*HTTP_422_UNPROCESSABLE_ENTITY.*:DeprecationWarning",
    "ignore:.*datetime.datetime.utcnow.*:DeprecationWarning",
    "ignore:.*is deprecated.*:DeprecationWarning:airflow.*",
    "ignore::pytest.PytestUnraisableExceptionWarning",
    "ignore:.*unclosed.*:ResourceWarning",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            for spec in _IGNORED_WARNINGS:
                item.add_marker(pytest.mark.filterwarnings(spec))


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """Migrate the session's sqlite metadata database once (about 6 s)."""
    from airflow.utils.db import upgradedb

    upgradedb()
    return _HOME


@dataclass
class Run:
    """The outcome of one `dag.test()`: Airflow states and insync decisions per task."""

    dag_run: Any
    states: dict[str, str]
    decisions: dict[str, str]
    xcoms: dict[str, Any]
    messages: dict[str, str]
    markers: dict[str, dict[str, Any]]

    def state(self, task_id: str) -> str:
        return self.states[task_id]


class AirflowHarness:
    """Write DAG files into the session's dags folder, load them like a worker, run them."""

    def __init__(self, dags: Path) -> None:
        self.dags = dags
        self.files: list[Path] = []

    def write(self, source: str, name: str | None = None) -> Path:
        path = self.dags / f"{name or 'dag_' + uuid.uuid4().hex[:8]}.py"
        path.write_text(textwrap.dedent(source))
        # A rewrite within the same mtime tick must still be re-read by inspect/linecache.
        st = path.stat()
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
        if path not in self.files:
            self.files.append(path)
        return path

    def load(self, path: Path, dag_id: str) -> Any:
        from airflow.dag_processing.dagbag import DagBag

        bag = DagBag(dag_folder=str(path))
        assert not bag.import_errors, bag.import_errors
        return bag.get_dag(dag_id)

    def run(
        self,
        path: Path,
        dag_id: str,
        conf: dict[str, Any] | None = None,
        logical_date: str | None = None,
    ) -> Run:
        """`dag.test()` once (at `logical_date`, e.g. "2026-12-01", if given)."""
        import pendulum
        from airflow.models.xcom import XComModel
        from airflow.utils.session import create_session
        from sqlalchemy import select

        dag = self.load(path, dag_id)
        if logical_date is None:
            dag_run = dag.test(run_conf=conf)
        else:
            dag_run = dag.test(run_conf=conf, logical_date=pendulum.parse(logical_date, tz="UTC"))
        states: dict[str, str] = {}
        decisions: dict[str, str] = {}
        xcoms: dict[str, Any] = {}
        messages: dict[str, str] = {}
        markers: dict[str, dict[str, Any]] = {}
        with create_session() as session:
            for ti in dag_run.get_task_instances(session=session):
                name = ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]"
                states[name] = str(ti.state)
            rows = session.scalars(
                select(XComModel).where(XComModel.dag_id == dag_id, XComModel.run_id == dag_run.run_id)
            ).all()
            found = [(r.task_id, r.map_index, r.key, XComModel.deserialize_value(r)) for r in rows]
        for task_id, map_index, key, decoded in found:
            name = task_id if map_index < 0 else f"{task_id}[{map_index}]"
            if key == "insync":
                markers[name] = decoded
                decisions[name] = decoded["decision"]
                messages[name] = decoded.get("message", "")
            elif key == "return_value":
                xcoms[name] = decoded
        return Run(dag_run, states, decisions, xcoms, messages, markers)

    def asset_events(self, name: str) -> list[dict[str, Any]]:
        """The `extra` of every Airflow asset event of the Asset called `name`, oldest first."""
        from airflow.models.asset import AssetEvent, AssetModel
        from airflow.utils.session import create_session
        from sqlalchemy import select

        with create_session() as session:
            rows = session.scalars(
                select(AssetEvent)
                .join(AssetModel, AssetModel.id == AssetEvent.asset_id)
                .where(AssetModel.name == name)
                .order_by(AssetEvent.id)
            ).all()
            return [dict(row.extra or {}) for row in rows]

    def asset_event_partitions(self, name: str) -> list[str | None]:
        """The Airflow `partition_key` of every asset event of the Asset called `name`."""
        from airflow.models.asset import AssetEvent, AssetModel
        from airflow.utils.session import create_session
        from sqlalchemy import select

        with create_session() as session:
            return list(
                session.scalars(
                    select(AssetEvent.partition_key)
                    .join(AssetModel, AssetModel.id == AssetEvent.asset_id)
                    .where(AssetModel.name == name)
                    .order_by(AssetEvent.id)
                ).all()
            )

    def cleanup(self) -> None:
        for path in self.files:
            path.unlink(missing_ok=True)


@pytest.fixture
def insync_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The insync store and value cache the Airflow tasks see (sqlite under tmp_path)."""
    home = tmp_path / "insync-home"
    monkeypatch.setenv("INSYNC_HOME", str(home))
    return home


@pytest.fixture
def airflow(airflow_db: Path, insync_home: Path) -> Iterator[AirflowHarness]:
    harness = AirflowHarness(airflow_db / "dags")
    yield harness
    harness.cleanup()
