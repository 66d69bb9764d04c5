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
    assert "skip versioned_number: Synced" in out
    assert "will be unsynced after versioned_number is materialized" in out
    assert "v5 produced the same data version 20" in out
    assert "run versioned_number: Unsynced, input_number has a new data version" in out
    assert "run extract: Unsynced, extract has new parameter values: day" in out
    assert "extract(day='2026-12-01') -> 'rows for 2026-12-01'" in out
    assert "extract(day='2026-11-30') -> 'rows for 2026-11-30'" in out
    assert "backfill 1: computed 7 of 7 days" in out
    assert "backfill 2: computed 0 of 7 days []" in out
    assert "landing/events[2026-11-04] has a new data version" in out
    assert "partitions: 6 synced, 1 unsynced, 0 never materialized" in out
    assert "backfill 3: computed 1 of 7 days ['2026-11-04']" in out
    assert out.rstrip().splitlines()[-1].startswith("Store: sqlite:///")
    in_sync = out[out.rindex("all in sync again") : out.index("Parameters are inputs")]
    assert "Unsynced" not in in_sync and "Never" not in in_sync
    last_table = out[out.rindex("backfill done") :]
    assert "Unsynced" not in last_table and "Never" not in last_table
