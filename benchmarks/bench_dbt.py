"""dbt benchmark: a generated project of N models on DuckDB (default 500).

Measures, in one process (dbt imported once, as in a long-lived worker), wall and CPU time
(the machine may be shared: CPU time is what insync's own work costs):
- plain `dbt build` of everything (the baseline), twice;
- `insync dbt build` of everything on an empty store: the decision overhead it adds;
- `insync dbt build` with nothing changed (no-op: everything reused, dbt not called), and
  dbt's own parse alone: what the no-op costs beyond dbt's parse is insync's overhead;
- one model edited in the middle of the graph: its descendants only (one model recompiled).

Then a microbatch project (issue 11): a source of D days of events, two chained daily microbatch
models and a table over them; one day's events change (a late correction), and the rebuild is
timed against what plain dbt offers: `dbt build` (its lookback batches only: misses the change),
`dbt build --full-refresh` (every batch: correct) and a hand-picked `--event-time-start/end`.

Run: `python -m benchmarks.bench_dbt [--models 500] [--days 180] [--keep DIR]`. Prints
Markdown tables.
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


Row = tuple[str, float, float | None, str]  # measurement, wall s, CPU s (or None), notes


def _dbt(project: Path, *command: str) -> tuple[float, float]:
    """Wall and CPU seconds of one in-process dbt command (the baseline's measure)."""
    from dbt.cli.main import dbtRunner
    from insync.adapters.dbt._runner import release_warehouse

    args = ["--log-level", "none", *command, "--project-dir", str(project),
            "--profiles-dir", str(project)]
    start, cpu = time.perf_counter(), time.process_time()
    result = dbtRunner().invoke(args)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    # dbt-duckdb keeps the database open in-process; close it before the file is replaced.
    release_warehouse()
    if not result.success:
        raise SystemExit(f"plain dbt {' '.join(command)} failed: {result.exception}")
    return elapsed, cpu


def _plain_build(project: Path) -> tuple[float, float]:
    return _dbt(project, "build")


def _insync_build(project: Path, store_url: str) -> tuple[float, Any, float]:
    """Wall seconds, the report, CPU seconds (dbt's threads included) of one insync build."""
    import logging

    from insync.adapters.dbt import DbtProject

    logging.getLogger("insync").setLevel(logging.WARNING)
    start, cpu = time.perf_counter(), time.process_time()
    with DbtProject(project, profiles_dir=project, store=store_url,
                    dbt_args=["--log-level", "none"]) as dbt_project:
        report = dbt_project.build()
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    if not report.success:
        raise SystemExit(f"insync dbt build failed: {report.failed}")
    return elapsed, report, cpu


def run(models: int, keep: Path | None) -> list[Row]:
    workdir = Path(keep or tempfile.mkdtemp(prefix="insync-bench-dbt-"))
    project = workdir / "project"
    if project.exists():
        shutil.rmtree(project)
    generate(project, models)
    os.chdir(project)  # dbt-duckdb resolves the relative warehouse path against the cwd
    store_url = f"sqlite:///{workdir / 'insync.db'}"
    Path(workdir / "insync.db").unlink(missing_ok=True)
    rows: list[Row] = []

    _dbt(project, "parse")  # cold parse: not measured
    plain = min(_plain_build(project), _plain_build(project))
    rows.append(("plain `dbt build` (all nodes)", *plain, "the better of two runs"))

    (project / "bench.duckdb").unlink()
    full, report, cpu = _insync_build(project, store_url)
    if report.reused:
        raise SystemExit(f"expected a full build, {len(report.reused)} nodes were reused")
    rows.append(("insync dbt build, empty store (all nodes)", full, cpu,
                 f"{len(report.built)} built; {_phases(report)}"))
    overhead = full - report.timings.get("dbt", 0.0)
    rows.append(("  decision + recording overhead (wall)", overhead, None,
                 f"{overhead / plain[0] * 100:.0f}% of a plain build; compiles every model"))

    # Interleaved: dbt's own parse (as insync runs it) and the no-op, three times each.
    parses: list[tuple[float, float]] = []
    noops: list[tuple[float, Any, float]] = []
    for _ in range(3):
        parses.append(_dbt(project, "parse", "--no-write-json"))
        noops.append(_insync_build(project, store_url))
    noop, report, noop_cpu = min(noops, key=lambda run: run[0])
    if report.built:
        raise SystemExit(f"no-op rebuilt {report.built[:5]}: {report.outcomes[0].reason}")
    rows.append(("insync dbt build, nothing changed (no-op)", noop, noop_cpu,
                 f"{len(report.reused)} reused, {report.invocations} dbt calls; {_phases(report)}; "
                 f"**{plain[0] / noop:.1f}x** faster than plain (CPU: {plain[1] / noop_cpu:.1f}x)"))
    parse = min(p[0] for p in parses), min(p[1] for p in parses)
    rows.append(("  dbt's own parse (`dbt parse --no-write-json`)", *parse, "best of 3"))
    rows.append(("  insync's overhead beyond dbt's parse", noop - parse[0], noop_cpu - parse[1],
                 "no-op minus parse"))

    middle = project / "models" / f"m{models // 2}.sql"
    middle.write_text(middle.read_text().replace("sum(v)", "sum(v) + 1"))
    edit, report, cpu = _insync_build(project, store_url)
    rows.append((f"insync dbt build after editing m{models // 2}", edit, cpu,
                 f"{len(report.built)} built, {len(report.reused)} reused; {_phases(report)}"))
    if keep is None:
        os.chdir(tempfile.gettempdir())
        shutil.rmtree(workdir, ignore_errors=True)
    return rows


def generate_microbatch(root: Path, days: int, rows_per_day: int) -> list[str]:
    """A source of `days` days of events ending yesterday, two chained daily microbatch models
    and a table over the second; returns the days."""
    import datetime as dt

    import duckdb

    today = dt.datetime.now(dt.UTC).date()
    dates = [(today - dt.timedelta(days=n)).isoformat() for n in range(days, 0, -1)]
    (root / "models").mkdir(parents=True, exist_ok=True)
    (root / "dbt_project.yml").write_text(
        "name: mbench\nversion: '1.0'\nprofile: mbench\n"
        "models:\n  mbench:\n    +materialized: table\n")
    (root / "profiles.yml").write_text(
        "mbench:\n  target: dev\n  outputs:\n    dev:\n      type: duckdb\n"
        "      path: mbench.duckdb\n      threads: 2\n")
    (root / "models" / "sources.yml").write_text(
        "version: 2\nsources:\n  - name: raw\n    schema: raw\n    tables:\n"
        "      - name: events\n        config: {event_time: event_at}\n")
    batch = (f"{{{{ config(materialized='incremental', incremental_strategy='microbatch', "
             f"event_time='event_at', batch_size='day', begin='{dates[0]}', lookback=1) }}}}\n")
    (root / "models" / "clean.sql").write_text(
        batch + "select event_at, user_id, amount from {{ source('raw', 'events') }} where amount > 0\n")
    (root / "models" / "enriched.sql").write_text(
        batch + "select event_at, user_id, amount * 1.2 as gross from {{ ref('clean') }}\n")
    (root / "models" / "totals.sql").write_text(
        "select cast(event_at as date) as day, sum(gross) as gross from {{ ref('enriched') }} group by 1\n")
    with duckdb.connect(str(root / "mbench.duckdb")) as con:
        con.execute("create schema raw")
        con.execute(
            "create table raw.events as select "
            f"timestamp '{dates[0]}' + to_milliseconds(cast(i * 86400000 / {rows_per_day} as bigint))"
            " as event_at, i % 997 as user_id, (i * 7919) % 1000 as amount "
            f"from range({days * rows_per_day}) t(i)")
    return dates


def _correct(project: Path, day: str) -> bool:
    """Whether `enriched` holds what its code computes from the source for `day`."""
    import duckdb

    with duckdb.connect(str(project / "mbench.duckdb")) as con:
        row = con.execute(
            "select (select sum(amount * 1.2) from raw.events where amount > 0 and event_at::date = ?),"
            " (select sum(gross) from main.enriched where event_at::date = ?)", [day, day]).fetchone()
    assert row is not None
    want, got = row
    return bool(abs(float(want) - float(got)) < 1e-6)


def _phases(report: Any) -> str:
    return ", ".join(f"{k} {v:.2f}s" for k, v in report.timings.items())


def run_microbatch(days: int, rows_per_day: int, keep: Path | None) -> list[Row]:
    import datetime as dt

    import duckdb

    workdir = Path(keep or tempfile.mkdtemp(prefix="insync-bench-mb-"))
    project = workdir / "microbatch"
    if project.exists():
        shutil.rmtree(project)
    dates = generate_microbatch(project, days, rows_per_day)
    os.chdir(project)
    store_url = f"sqlite:///{workdir / 'insync-mb.db'}"
    Path(workdir / "insync-mb.db").unlink(missing_ok=True)
    rows: list[Row] = []

    def change(day: str) -> None:
        with duckdb.connect(str(project / "mbench.duckdb")) as con:
            con.execute("update raw.events set amount = amount + 1 where event_at::date = ?", [day])

    first, report, cpu = _insync_build(project, store_url)
    rows.append((f"insync dbt build, empty store ({days} batches x 2 models)", first, cpu,
                 f"{len(report.built)} built, first import of dbt included; {_phases(report)}"))
    noop, report, cpu = _insync_build(project, store_url)
    rows.append(("insync dbt build, nothing changed", noop, cpu,
                 f"{report.invocations} dbt calls; {_phases(report)}"))

    day = dates[len(dates) // 2]
    change(day)
    one, report, cpu = _insync_build(project, store_url)
    rows.append((f"insync dbt build, one day ({day}) changed", one, cpu,
                 f"{report.outcome('clean').reason[:40]}...; correct: {_correct(project, day)}; "
                 f"{_phases(report)}"))

    day = dates[len(dates) // 3]
    change(day)
    plain, cpu = _dbt(project, "build")
    rows.append(("plain `dbt build`, one day changed", plain, cpu,
                 f"lookback batches only; correct: {_correct(project, day)}"))
    full, cpu = _dbt(project, "build", "--full-refresh")
    rows.append(("plain `dbt build --full-refresh`", full, cpu,
                 f"every batch; correct: {_correct(project, day)}; {full / one:.1f}x insync's time"))
    change(day)
    end = (dt.date.fromisoformat(day) + dt.timedelta(days=1)).isoformat()
    picked, cpu = _dbt(project, "build", "--event-time-start", day, "--event-time-end", end)
    rows.append(("plain `dbt build --event-time-start/--end` of that day", picked, cpu,
                 f"the day picked by hand; correct: {_correct(project, day)}"))
    if keep is None:
        os.chdir(tempfile.gettempdir())
        shutil.rmtree(workdir, ignore_errors=True)
    return rows


def _table(title: str, rows: list[Row]) -> None:
    print(f"\n## {title}\n")
    print(f"load average before: {', '.join(f'{n:.1f}' for n in os.getloadavg())}\n")
    print("| measurement | seconds | CPU seconds | notes |")
    print("|---|---:|---:|---|")
    for name, seconds, cpu, notes in rows:
        print(f"| {name} | {seconds:.2f} | {'' if cpu is None else f'{cpu:.2f}'} | {notes} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=500, help="0 skips the generated DAG")
    parser.add_argument("--days", type=int, default=180, help="microbatch days; 0 skips it")
    parser.add_argument("--rows-per-day", type=int, default=20_000)
    parser.add_argument("--keep", type=Path, default=None, help="work in DIR and keep it")
    args = parser.parse_args()
    if args.models:
        _table(f"dbt: {args.models} generated models on DuckDB", run(args.models, args.keep))
    if args.days:
        _table(f"dbt: microbatch, {args.days} days x {args.rows_per_day} events on DuckDB",
               run_microbatch(args.days, args.rows_per_day, args.keep))


if __name__ == "__main__":
    main()
