"""`make lint` as a test, so `make test` (what CI runs) enforces it: ruff over the tree and mypy
strict over `insync.core` and every adapter (configured in pyproject.toml, `[tool.mypy]`).

mypy keeps its incremental cache in the system temp dir, never in the source tree: the first run
takes about 40 s on two busy cores, a run after a small change a few seconds.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _run(*args: str, timeout: float) -> None:
    done = subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, f"{' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"


def test_ruff() -> None:
    _run("ruff", "check", "--no-cache", ".", timeout=60)


def test_mypy_strict_over_core_and_adapters() -> None:
    # One cache per checkout, so two worktrees never share (and invalidate) one.
    tag = hashlib.sha256(str(ROOT).encode()).hexdigest()[:12]
    cache = Path(tempfile.gettempdir()) / f"insync-mypy-cache-{tag}"
    _run("mypy", "--cache-dir", str(cache), timeout=300)
