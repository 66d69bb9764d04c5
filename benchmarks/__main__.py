"""`make bench`: run every benchmark module in its own process, one after another.

`python -m benchmarks core dbt` runs a subset. Each module prints a Markdown table; the figures
recorded in benchmarks/README.md come from this command.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent
ALL = sorted(p.stem.removeprefix("bench_") for p in HERE.glob("bench_*.py"))


def main() -> int:
    wanted = sys.argv[1:] or ALL
    unknown = sorted(set(wanted) - set(ALL))
    if unknown:
        print(f"unknown benchmark {', '.join(unknown)}; choose from {', '.join(ALL)}", file=sys.stderr)
        return 2
    failed = []
    for name in wanted:
        print(f"\n## {name}\n", flush=True)
        if subprocess.run([sys.executable, "-m", f"benchmarks.bench_{name}"], cwd=HERE.parent).returncode:
            failed.append(name)
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
