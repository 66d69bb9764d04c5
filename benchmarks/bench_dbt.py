"""dbt benchmark: a generated project of N models on DuckDB (default 500).

Measures, in one process (dbt imported once, as in a long-lived worker):
- plain `dbt build` of everything (the baseline), twice;
- `insync dbt build` of everything on an empty store: the decision overhead it adds;
- `insync dbt build` with nothing changed (no-op: everything reused, dbt not called);
- one model edited in the middle of the graph: its descendants only.

Run: `python -m benchmarks.bench_dbt [--models 500] [--keep DIR]`. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")


def generate(root: Path, models: int, *, seed: int = 7) -> None:
    """A layered DAG: every model reads 1-3 of the 50 models before it (or the seed)."""
    rnd = random.Random(seed)
    (root / "models").mkdir(parents=True, exist_ok=True)
    (root / "seeds").mkdir(exist_ok=True)
    (root / "dbt_project.yml").write_text(
        "name: bench\nversion: '1.0'\nprofile: bench\n"
        "models:\n  bench:\n    +materialized: table\n"
    )
    (root / "profiles.yml").write_text(
        "bench:\n  target: dev\n  outputs:\n    dev:\n      type: duckdb\n"
        "      path: bench.duckdb\n      threads: 8\n"
    )
    (root / "seeds" / "base.csv").write_text(
        "id,v\n" + "".join(f"{i},{i * 3}\n" for i in range(100))
    )
    for i in range(models):
        parents = rnd.sample(range(max(0, i - 50), i), k=min(i, rnd.randint(1, 3))) if i else []
        if not parents:
            body = "select id, v from {{ ref('base') }}"
        else:
            union = " union all ".join(
                f"select id, v + {j} as v from {{{{ ref('m{p}') }}}}" for j, p in enumerate(parents)
            )
            body = f"select id, sum(v) as v from ({union}) group by id"
        materialized = "view" if i % 10 == 9 else "table"
        (root / "models" / f"m{i}.sql").write_text(
            f"{{{{ config(materialized='{materialized}') }}}}\n{body}\n"
        )


def _plain_build(project: Path) -> float:
    from dbt.cli.main import dbtRunner
    from insync.adapters.dbt._runner import release_warehouse

    args = ["--log-level", "none", "build", "--project-dir", str(project),
            "--profiles-dir", str(project)]
    start = time.perf_counter()
    result = dbtRunner().invoke(args)
    elapsed = time.perf_counter() - start
    # dbt-duckdb keeps the database open in-process; close it before the file is replaced.
    release_warehouse()
    if not result.success:
        raise SystemExit(f"plain dbt build failed: {result.exception}")
    return elapsed


def _insync_build(project: Path, store_url: str) -> tuple[float, Any]:
    import logging

    from insync.adapters.dbt import DbtProject

    logging.getLogger("insync").setLevel(logging.WARNING)
    start = time.perf_counter()
    with DbtProject(project, profiles_dir=project, store=store_url,
                    dbt_args=["--log-level", "none"]) as dbt_project:
        report = dbt_project.build()
    elapsed = time.perf_counter() - start
    if not report.success:
        raise SystemExit(f"insync dbt build failed: {report.failed}")
    return elapsed, report


def run(models: int, keep: Path | None) -> list[tuple[str, float, str]]:
    workdir = Path(keep or tempfile.mkdtemp(prefix="insync-bench-dbt-"))
    project = workdir / "project"
    if project.exists():
        shutil.rmtree(project)
    generate(project, models)
    os.chdir(project)  # dbt-duckdb resolves the relative warehouse path against the cwd
    store_url = f"sqlite:///{workdir / 'insync.db'}"
    Path(workdir / "insync.db").unlink(missing_ok=True)
    rows: list[tuple[str, float, str]] = []

    from dbt.cli.main import dbtRunner

    dbtRunner().invoke(["--log-level", "none", "parse", "--project-dir", str(project),
                        "--profiles-dir", str(project)])  # cold parse: not measured
    plain = [_plain_build(project), _plain_build(project)]
    rows.append(("plain `dbt build` (all nodes)", min(plain), f"runs: {plain[0]:.1f}s, {plain[1]:.1f}s"))

    (project / "bench.duckdb").unlink()
    full, report = _insync_build(project, store_url)
    phases = ", ".join(f"{k} {v:.2f}s" for k, v in report.timings.items())
    if report.reused:
        raise SystemExit(f"expected a full build, {len(report.reused)} nodes were reused")
    rows.append(("insync dbt build, empty store (all nodes)", full,
                 f"{len(report.built)} built; {phases}"))
    overhead = full - report.timings.get("dbt", 0.0)
    rows.append(("  decision + recording overhead", overhead,
                 f"{overhead / min(plain) * 100:.0f}% of a plain build"))

    noops = [_insync_build(project, store_url) for _ in range(3)]
    noop, report = min(noops, key=lambda pair: pair[0])
    phases = ", ".join(f"{k} {v:.2f}s" for k, v in report.timings.items())
    if report.built:
        raise SystemExit(f"no-op rebuilt {report.built[:5]}: {report.outcomes[0].reason}")
    rows.append(("insync dbt build, nothing changed (no-op)", noop,
                 f"{len(report.reused)} reused, {report.invocations} dbt calls; {phases}; "
                 f"{min(plain) / noop:.1f}x faster than plain"))

    middle = project / "models" / f"m{models // 2}.sql"
    middle.write_text(middle.read_text().replace("sum(v)", "sum(v) + 1"))
    edit, report = _insync_build(project, store_url)
    rows.append((f"insync dbt build after editing m{models // 2}", edit,
                 f"{len(report.built)} built, {len(report.reused)} reused"))
    if keep is None:
        os.chdir(tempfile.gettempdir())
        shutil.rmtree(workdir, ignore_errors=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=500)
    parser.add_argument("--keep", type=Path, default=None, help="work in DIR and keep it")
    args = parser.parse_args()
    rows = run(args.models, args.keep)
    print(f"\n## dbt: {args.models} generated models on DuckDB\n")
    print("| measurement | seconds | notes |")
    print("|---|---:|---|")
    for name, seconds, notes in rows:
        print(f"| {name} | {seconds:.2f} | {notes} |")


if __name__ == "__main__":
    main()
