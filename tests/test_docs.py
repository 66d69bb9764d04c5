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
