"""Startup and everyday commands: what a person waits for after typing `insync`, what a DAG file
pays to import the Airflow adapter, and what every task process pays to open the store.

Run: `python -m benchmarks startup` (or `python -m benchmarks.bench_startup [--runs 15]
[--before REV] [--postgres URL]`). Prints Markdown tables; benchmarks/README.md records a run.

Every command runs in a fresh interpreter, timed from the outside (wall, and the child's CPU
from `wait4`), median of `--runs`. Bytecode is compiled once into a private cache first
(PYTHONPYCACHEPREFIX), as `pip install` leaves it: without .pyc files (PYTHONDONTWRITEBYTECODE
and a venv installed without them) every import compiles its source and all figures grow 3-5x.
`--before REV` also measures `core/` and `adapters/` as of a git revision, interleaved run
by run, so both see the same machine load.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
POSTGRES_URL = os.environ.get("INSYNC_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
# Modules that `insync --help` and `insync status` should never load.
HEAVY = ("alembic", "airflow", "prefect", "dbt", "fsspec", "psycopg", "sqlalchemy.dialects.postgresql")

# What a DAG file imports from Airflow (the DAG processor has loaded it already), then from insync.
AIRFLOW_BASELINE = (
    "import airflow.sdk; from airflow.sdk import DAG, Asset, BaseOperator, BaseSensorOperator, task"
)
ADAPTER_IMPORTS = (
    "import insync.adapters.airflow",
    "from insync.adapters.airflow import versioned",
    "from insync.adapters.airflow import *",
)
AIRFLOW_TIMING = (
    "import time; t0 = time.perf_counter(); {baseline}; t1 = time.perf_counter()\n"
    "{adapter}; t2 = time.perf_counter(); print(t1 - t0, t2 - t1)"
)


# ------------------------------------------------------------------------------- processes
def child_env(pycache: Path, before: Path | None = None, **extra: str) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE" and not k.startswith("INSYNC_")
    }
    env["PYTHONPYCACHEPREFIX"] = str(pycache)
    if before is not None:  # its `insync/core` comes before the installed (editable) one
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(before), env.get("PYTHONPATH", "")) if p)
    env.update(extra)
    return env


def run(command: Sequence[str], env: dict[str, str], cwd: Path) -> tuple[float, float, str]:
    """(wall seconds, child CPU seconds, stdout) of one fresh process."""
    start = time.perf_counter()
    child = subprocess.Popen(command, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert child.stdout is not None
    out = child.stdout.read().decode()
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode:
        raise RuntimeError(f"{' '.join(command)} failed with exit code {child.returncode}")
    return wall, usage.ru_utime + usage.ru_stime, out


def medians(samples: list[tuple[float, float]]) -> tuple[float, float]:
    return statistics.median(s[0] for s in samples), statistics.median(s[1] for s in samples)


def load() -> str:
    return ", ".join(f"{x:.1f}" for x in os.getloadavg())


def interleaved(
    variants: dict[str, Callable[[], tuple[float, float]]], runs: int
) -> dict[str, tuple[float, float]]:
    """Median (wall, CPU) of each variant, run in turn so that all see the same load."""
    samples: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for _ in range(runs):
        for name, measure in variants.items():
            samples[name].append(measure())
    return {name: medians(found) for name, found in samples.items()}


# ------------------------------------------------------------------------------- importtime
def import_offenders(command: Sequence[str], env: dict[str, str], cwd: Path, after: str | None = None) -> str:
    """The packages that cost most in `-X importtime` of `command`, self time summed per top-level
    package; with `after`, only what was imported after that module (the adapter beyond Airflow)."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", *command], env=env, cwd=cwd, capture_output=True, text=True
    )
    lines = [line for line in result.stderr.splitlines() if line.startswith("import time:")][1:]
    if after is not None:
        index = next(i for i, line in enumerate(lines) if line.split("|")[2].strip() == after)
        lines = lines[index + 1 :]
    per_package: dict[str, int] = defaultdict(int)
    for line in lines:
        self_us, _, name = (part.strip() for part in line.removeprefix("import time:").split("|"))
        per_package[name.split(".")[0]] += int(self_us)
    total = sum(per_package.values()) / 1000
    top = sorted(per_package.items(), key=lambda item: -item[1])[:6]
    return f"{total:.0f} ms in all: " + ", ".join(f"{name} {us / 1000:.0f}" for name, us in top)


def cli_code(command: str) -> str:
    """Python code running `insync COMMAND` in-process (click exits when done)."""
    return f"from insync.core.cli import main\ntry: main({command.split()!r})\nexcept SystemExit: pass\n"


def imported(command: str, env: dict[str, str], cwd: Path) -> list[str]:
    """Which of HEAVY a CLI command imports."""
    code = cli_code(command) + "import json, sys; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=cwd, capture_output=True, text=True, check=True
    ).stdout
    modules = json.loads(out.splitlines()[-1])
    return sorted({heavy for heavy in HEAVY for m in modules if m == heavy or m.startswith(heavy + ".")})


# ------------------------------------------------------------------------------- set-up
def seed_store(url: str) -> None:
    """10 assets in a chain, all materialized, the first one's code bumped: 1 unsynced."""
    from insync.core import AssetSpec, EventStore

    with EventStore(url) as store:
        keys = [f"shop/step_{i}" for i in range(10)]
        store.register([AssetSpec(k, code_version="1", deps=keys[i - 1 : i]) for i, k in enumerate(keys)])
        for key in keys:
            store.record_materialization(key, run_id="r1")
        store.register([AssetSpec(keys[0], code_version="2")])


def export_tree(revision: str, into: Path) -> Path:
    """`core/` and `adapters/` as of `revision`, laid out as `insync/...` for PYTHONPATH."""
    target = into / "insync"
    target.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", revision, "core", "adapters"], capture_output=True, check=True
    )
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive.stdout, check=True)
    return into


# ------------------------------------------------------------------------------- PostgreSQL
def postgres_worker(url: str, runs: int) -> None:
    """In one process: per task, open + check + close, against the same queries on a bare
    psycopg connection and on a bare SQLAlchemy engine. Prints JSON medians in ms."""
    import psycopg
    import sqlalchemy as sa
    from insync.core import AssetSpec, EventStore

    source = AssetSpec("bench/source", code_version="1")
    task = AssetSpec("bench/task", code_version="1", deps=["bench/source"])
    with EventStore(url) as store:
        store.register([source, task])
        store.record_materialization("bench/source", run_id="r1")
        store.record_materialization("bench/task", run_id="r1")
        queries: list[tuple[str, Any]] = []

        def capture(conn: Any, cursor: Any, statement: str, parameters: Any, *rest: Any) -> None:
            if not statement.startswith(("BEGIN", "SELECT version_num")):
                queries.append((statement, parameters))

        sa.event.listen(store._engine, "before_cursor_execute", capture)
        store.check_view(task)
        sa.event.remove(store._engine, "before_cursor_execute", capture)
    dsn = sa.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)

    def bare() -> None:
        with psycopg.connect(dsn) as conn:
            for statement, parameters in queries:
                conn.execute(statement, parameters).fetchall()

    def engine() -> None:
        bare_engine = sa.create_engine(url, use_native_hstore=False)
        with bare_engine.connect() as conn:
            for statement, parameters in queries:
                conn.exec_driver_sql(statement, parameters).fetchall()
        bare_engine.dispose()

    def insync() -> None:
        with EventStore(url) as opened:
            opened.check_view(task)

    samples: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for _ in range(runs + 3):  # the first three warm up
        for name, work in (("bare", bare), ("engine", engine), ("insync", insync)):
            start, cpu = time.perf_counter(), time.process_time()
            work()
            samples[name].append(((time.perf_counter() - start) * 1000, (time.process_time() - cpu) * 1000))
    print(json.dumps({name: medians(found[3:]) for name, found in samples.items()}))


def postgres_database(admin_url: str) -> tuple[str, Callable[[], None]]:
    import uuid

    import sqlalchemy as sa

    name = f"insync_bench_startup_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return sa.make_url(admin_url).set(database=name).render_as_string(hide_password=False), drop


# ------------------------------------------------------------------------------- main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=15, help="fresh processes per command (median)")
    parser.add_argument("--airflow-runs", type=int, default=5, help="processes importing Airflow")
    parser.add_argument("--task-runs", type=int, default=60, help="task opens per PostgreSQL variant")
    parser.add_argument(
        "--before", metavar="REV", help="also measure core/ and adapters/ as of this git revision"
    )
    parser.add_argument("--postgres", default=POSTGRES_URL, help="admin URL (a database is created)")
    parser.add_argument("--postgres-worker", nargs=2, metavar=("URL", "RUNS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.postgres_worker:
        postgres_worker(args.postgres_worker[0], int(args.postgres_worker[1]))
        return

    work = Path(tempfile.mkdtemp(prefix="insync-bench-startup-"))
    try:
        pycache = work / "pycache"
        trees: dict[str, Path | None] = {"now": None}
        if args.before:
            trees[f"before ({args.before})"] = export_tree(args.before, work / "before")
        envs = {
            label: child_env(pycache, tree, AIRFLOW_HOME=str(work / "airflow"))
            for label, tree in trees.items()
        }
        url = f"sqlite:///{work / 'store' / 'insync.db'}"
        seed_store(url)
        insync = str(BIN / "insync")
        commands = {
            "`python -c pass` (the interpreter alone)": [sys.executable, "-c", "pass"],
            "`insync --help`": [insync, "--help"],
            "`insync status` (10 assets, SQLite)": [insync, "--database-url", url, "status"],
        }
        print(f"Compiling bytecode into {pycache} (one run of each command) ...", flush=True)
        for env in envs.values():
            for command in commands.values():
                run(command, env, work)
            run([sys.executable, "-c", "import airflow.sdk, insync.adapters.airflow, rich.table"], env, work)

        print(f"\nload average before: {load()}\n")
        print("| command | variant | wall (median) | CPU (median) |\n|---|---|---|---|", flush=True)
        for title, command in commands.items():
            found = interleaved(
                {label: (lambda e=env, c=command: run(c, e, work)[:2]) for label, env in envs.items()},
                args.runs,
            )
            for label, (wall, cpu) in found.items():
                print(f"| {title} | {label} | {wall * 1000:.0f} ms | {cpu * 1000:.0f} ms |", flush=True)
        print(f"\nload average after: {load()}\n")

        print("| what | variant | heavy modules imported | import offenders (self ms per package) |")
        print("|---|---|---|---|")
        for label, env in envs.items():
            for command in ("--help", f"--database-url {url} status"):
                offenders = import_offenders(["-c", cli_code(command)], env, work)
                heavy = ", ".join(imported(command, env, work)) or "none"
                shown = command if command == "--help" else "status"
                print(f"| `insync {shown}` | {label} | {heavy} | {offenders} |", flush=True)
            offenders = import_offenders(["-c", "import insync.core"], env, work)
            print(f"| `import insync.core` | {label} | - | {offenders} |", flush=True)

        print(f"\nAirflow: what a DAG file pays for insync beyond Airflow itself (load {load()})\n")
        print("| variant | Airflow (sdk + DAG names) | insync import | median | what it adds (self ms) |")
        print("|---|---|---|---|---|")
        for label, env in envs.items():
            for adapter in ADAPTER_IMPORTS:
                code = AIRFLOW_TIMING.format(baseline=AIRFLOW_BASELINE, adapter=adapter)
                split = [
                    run([sys.executable, "-c", code], env, work)[2].split() for _ in range(args.airflow_runs)
                ]
                airflow = statistics.median(float(s[0]) for s in split)
                added = statistics.median(float(s[1]) for s in split)
                # `this` (the Zen of Python): a module no library imports, marking where insync starts.
                offenders = import_offenders(
                    ["-c", f"{AIRFLOW_BASELINE}; import this; {adapter}"], env, work, after="this"
                )
                cells = [
                    label,
                    f"{airflow * 1000:.0f} ms",
                    f"`{adapter}`",
                    f"{added * 1000:.0f} ms",
                    offenders,
                ]
                print(f"| {' | '.join(cells)} |", flush=True)

        print(f"\nPostgreSQL, per task: open + check_view + close (load {load()})\n")
        try:
            pg_url, drop = postgres_database(args.postgres)
        except Exception as exc:  # no server here: the other figures still stand
            print(f"(skipped: PostgreSQL not reachable at {args.postgres}: {type(exc).__name__})")
            return
        try:
            print(
                "| variant | bare psycopg: connect + the same queries | SQLAlchemy engine, same queries "
                "| insync: EventStore + check_view + close | insync over bare | insync over engine |"
            )
            print("|---|---|---|---|---|---|")
            worker = [sys.executable, "-m", "benchmarks.bench_startup", "--postgres-worker", pg_url]
            for label, env in envs.items():
                ms = json.loads(run([*worker, str(args.task_runs)], env, REPO)[2].splitlines()[-1])
                bare, engine, insync_ms = ms["bare"], ms["engine"], ms["insync"]
                cells = [f"{wall:.2f} ms (CPU {cpu:.2f})" for wall, cpu in (bare, engine, insync_ms)]
                cells += [
                    f"{insync_ms[0] - base[0]:+.2f} ms (CPU {insync_ms[1] - base[1]:+.2f})"
                    for base in (bare, engine)
                ]
                print(f"| {label} | {' | '.join(cells)} |", flush=True)
        finally:
            drop()
        print(f"\nload average at the end: {load()}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
