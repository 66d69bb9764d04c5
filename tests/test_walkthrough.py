"""Examples run as tests: the walkthrough is `make demo`.

It runs once, as the README's Quick start types it (tests/readme_harness.py runs every README
command once per test process); this checks what it printed and the store it left.
"""

from __future__ import annotations

import json
import subprocess

from readme_harness import run_readme


def test_walkthrough_runs_end_to_end() -> None:
    readme = run_readme("README.md")
    out = readme.output_of("python examples/walkthrough.py")
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
    in_sync = out[out.rindex("all in sync again") : out.index("Parameters are inputs")]
    assert "Unsynced" not in in_sync and "Never" not in in_sync
    backfilled = out[out.rindex("backfill done") : out.index("Left for you")]
    assert "Unsynced" not in backfilled and "Never" not in backfilled
    # It ends with something to explain, and says how to ask, with the store's path as typed.
    assert out.rstrip().splitlines()[-1].strip() == (
        "insync --database-url sqlite:///.insync-walkthrough/insync.db why multiplied_number"
    )


def test_the_walkthrough_ends_where_why_has_something_to_explain() -> None:
    readme = run_readme("README.md")
    insync = readme.copy / ".venv" / "bin" / "insync"
    url = f"sqlite:///{readme.copy / '.insync-walkthrough' / 'insync.db'}"
    shown = subprocess.run(
        [str(insync), "--database-url", url, "status", "--json"], capture_output=True, text=True, check=True
    )
    labels = {row["key"]: row["label"] for row in json.loads(shown.stdout)}
    assert labels.pop("versioned_number") == "Unsynced"
    assert set(labels.values()) == {"Synced"}
    why = readme.output_of("why multiplied_number")
    assert "will be unsynced after versioned_number is materialized (Unsynced)" in why
