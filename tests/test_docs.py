"""The CLI reference in README.md is generated from --help; it must not drift (`make docs`)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_readme_cli_reference_is_current() -> None:
    cog = Path(sys.executable).with_name("cog")
    result = subprocess.run([str(cog), "--check", str(ROOT / "README.md")], capture_output=True, text=True)
    assert result.returncode == 0, (
        f"README.md CLI reference is stale; run `make docs`\n{result.stdout}{result.stderr}"
    )


def test_readme_partitions_example_runs_as_shown(tmp_path: Path) -> None:
    text = (ROOT / "README.md").read_text()
    start = text.index("```python", text.index("<!-- tested by tests/test_docs.py -->")) + len("```python")
    code = text[start : text.index("```", start)]
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, check=True
    )
    printed = result.stdout.splitlines()
    # Each printed line is shown in the block as the comment after it (or on the same line).
    assert printed == [
        "1 synced, 1 unsynced, 0 never materialized",
        "raw/orders[2026-11-01] has a new data version",
        "run orders[2026-11-02]: Unsynced, orders[2026-11-02] has new parameter values: currency",
    ]
    for line in printed:
        assert line in code
