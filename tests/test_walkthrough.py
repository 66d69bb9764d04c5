"""Examples run as tests: the walkthrough is `make demo`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_walkthrough_runs_end_to_end(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "walkthrough.py"), "--home", str(tmp_path / "demo")],
        capture_output=True,
        text=True,
        check=True,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
    )
    out = result.stdout
    assert "skip versioned_number: FRESH" in out
    assert "will be unsynced after versioned_number is materialized" in out
    assert "v5 produced the same data version 20" in out
    assert "run versioned_number: STALE, input_number has a new data version" in out
    assert out.rstrip().splitlines()[-1].startswith("Store: sqlite:///")
    last_table = out[out.rindex("all in sync again") :]
    assert "Unsynced" not in last_table and "Never" not in last_table
