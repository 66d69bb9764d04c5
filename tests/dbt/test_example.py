"""The README walkthrough runs, and each step builds what the README says it does."""

from __future__ import annotations

import importlib.util
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "dbt"


def test_walkthrough(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("shop_walkthrough", EXAMPLE / "walkthrough.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    built = list(module.main(tmp_path).values())
    assert len(built[0]) == 9
    assert built[1] == []
    assert built[2] == ["stg_orders", "orders", "customers", "revenue_by_country"]
    assert built[3] == ["stg_customers"]
    assert built[4] == ["stg_orders", "stg_payments", "orders", "customers", "revenue_by_country"]


def _section(title: str) -> list[str]:
    """The console lines of one README section."""
    text = (EXAMPLE / "README.md").read_text()
    body = text.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]
    lines: list[str] = []
    for block in body.split("```console\n")[1:]:
        lines.extend(block.split("```", 1)[0].splitlines())
    return lines


def _normal(line: str) -> str:
    return " ".join(line.split())


def test_readme_parameters_and_partitions_commands(tmp_path: Path) -> None:
    """Runs every command the section shows, in a copy of the events project, and finds each
    output line it shows (`...` elides lines; `...  text` is part of a dbt log line)."""
    import os
    import shlex
    import shutil
    import subprocess
    import sys

    shutil.copytree(EXAMPLE / "events", tmp_path / "events",
                    ignore=shutil.ignore_patterns("target", "logs", "*.duckdb", ".insync"))
    shutil.copy(EXAMPLE / "load_events.py", tmp_path / "load_events.py")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("INSYNC_", "EVENTS_"))}
    env.update(COLUMNS="120", DBT_SEND_ANONYMOUS_USAGE_STATS="false")
    bin_dir = Path(sys.executable).parent
    output: list[str] = []
    commands = 0

    def check_previous() -> None:
        actual = [_normal(line) for line in output]
        for shown in expected:
            if shown == "...":
                continue
            if shown.startswith("..."):
                part = _normal(shown[3:])
                assert any(part in line for line in actual), (part, "\n".join(output))
            else:
                assert _normal(shown) in actual, (shown, "\n".join(output))

    expected: list[str] = []
    for line in _section("Parameters and partitions"):
        if not line.startswith("$ "):
            expected.append(line)
            continue
        check_previous()
        expected, argv = [], shlex.split(line[2:])
        if argv[0] == "cd":
            continue
        program = sys.executable if argv[0] == "python" else str(bin_dir / argv[0])
        argv = [program, *argv[1:]]
        done = subprocess.run(argv, cwd=tmp_path / "events", env=env, capture_output=True,
                              text=True, timeout=300, check=False)
        assert done.returncode == 0, (line, done.stdout, done.stderr)
        output = [_strip_ansi(x) for x in (done.stdout + done.stderr).splitlines()]
        commands += 1
    check_previous()
    assert commands == 7


def _strip_ansi(line: str) -> str:
    import re

    return re.sub(r"\x1b\[[0-9;]*m", "", line)
