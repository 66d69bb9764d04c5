"""The Prefect walkthrough runs as its README says: runs 1, 2, 3 and its deployments."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "prefect" / "walkthrough.py"


def load(path: Path, name: str, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, module)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def walkthrough(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> ModuleType:
    monkeypatch.setenv("INSYNC_HOME", str(tmp_path / ".insync"))
    monkeypatch.setenv("WALKTHROUGH_ORDERS_CSV", str(tmp_path / "orders.csv"))
    return load(EXAMPLE, "walkthrough", monkeypatch)


def test_walkthrough_runs_1_2_3_4(walkthrough: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = walkthrough.run_once(tmp_path)
    assert set(first["states"].values()) == {"Completed"}
    assert first["report"] == ["2026-11-01 (Sunday): 19.50", "2026-11-02 (Monday): 3.25"]

    second = walkthrough.run_once(tmp_path)
    assert set(second["states"].values()) == {"Cached"}
    assert second["report"] == first["report"]

    walkthrough.add_order(tmp_path)
    third = walkthrough.run_once(tmp_path)
    assert third["states"] == {
        "staging/orders": "Completed",
        "analytics/daily_totals": "Completed",
        "reference/calendar": "Cached",
        "analytics/report": "Completed",
    }
    assert third["report"][-1] == "2026-11-03 (Tuesday): 20.00"

    # Run 4: a refactor of the `cents` helper (same results). `auto` re-runs staged_orders; its
    # fingerprint data version is unchanged, so everything downstream stays Cached.
    source = EXAMPLE.read_text()
    helper = "return round(float(amount) * 100)"
    assert helper in source
    edited = tmp_path / "walkthrough_edited.py"
    edited.write_text(source.replace(helper, "return int(round(float(amount) * 100))"))
    fourth = load(edited, "walkthrough_edited", monkeypatch).run_once(tmp_path)
    assert fourth["states"] == {
        "staging/orders": "Completed",
        "analytics/daily_totals": "Cached",
        "reference/calendar": "Cached",
        "analytics/report": "Cached",
    }
    assert fourth["report"] == third["report"]


def test_walkthrough_deployments_point_at_the_example(
    walkthrough: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from prefect.flows import load_flow_from_entrypoint

    monkeypatch.chdir(EXAMPLE.parent)
    observer = walkthrough.observe_orders.to_deployment(name="observe", interval=60)
    assert observer.entrypoint == "walkthrough.py:observe_orders"
    pipeline = walkthrough.pipeline.to_deployment(
        name="pipeline", triggers=[walkthrough.source_changed_trigger("raw/orders_csv")]
    )
    assert pipeline.triggers[0].expect == {"insync.source.changed"}
    # What a worker does with the entrypoint: import the file, take the flow, run it.
    loaded = load_flow_from_entrypoint(str(EXAMPLE) + ":observe_orders")
    assert loaded.name == "observe-orders-csv"
    (tmp_path / "orders.csv").write_text(walkthrough.ORDERS)
    assert list(loaded()) == ["raw/orders_csv"]


def test_a_temporary_server_that_does_not_start_in_time_says_what_to_do(tmp_path: Path) -> None:
    """No PREFECT_API_URL: the walkthrough announces Prefect's temporary server, and when it misses
    its start-up timeout (as on a busy machine) exits with the two ways out, not a traceback."""
    import os
    import subprocess

    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "INSYNC_"))}
    env.update(
        PREFECT_HOME=str(tmp_path / "prefect-home"),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="1",  # no server starts in 1 s here
    )
    done = subprocess.run(
        [sys.executable, str(EXAMPLE), "run", "--workdir", str(tmp_path / "wt")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "starting Prefect's temporary server" in done.stderr
    assert "did not answer within 1 s" in done.stderr
    assert "prefect server start" in done.stderr and "PREFECT_API_URL" in done.stderr
    assert "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "wt" / ".insync").exists()  # nothing ran
