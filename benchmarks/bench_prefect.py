"""Added latency per Prefect task of insync's check + record, against Prefect's default caching.

One flow of N chained tasks (each passes a small dict to the next, so every versioned task has
one inferred dependency), run against a real Prefect server:

- `prefect-default`: `@task` as a user writes it (Prefect's DEFAULT cache policy, which keys
  on the flow run id: it never hits across flow runs);
- `prefect-inputs`: `@task(cache_policy=INPUTS, persist_result=True)`: Prefect's own
  cross-run cache, with the result persistence insync uses;
- `insync-<store>`: `@versioned(key, code_version="v1")` above `@task`, on SQLite and (if
  reachable) PostgreSQL.

Each repetition runs a variant's flow twice: first every task executes, then (except for
prefect-default) every task ends Cached. Also timed in process: the cache-policy check
(`Step.check` + result-store lookup) and the record, per task run.

    python benchmarks/bench_prefect.py [--tasks 50] [--runs 5] [--postgres ADMIN_URL]
    python benchmarks/bench_prefect.py --backfill 365

`--backfill N`: a flow mapping one daily-partitioned versioned task over N days
(`partition="day"`, each day reading its partition of an observed source), run once, then
again after one day's source changed, then with nothing changed; against the same flow of
plain `@task`s, which computes every day on every run.

Starts `prefect server start` on 127.0.0.1 under a temp dir unless PREFECT_API_URL is set.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

HOME = Path(tempfile.mkdtemp(prefix="insync-bench-prefect-"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def prefect_server() -> Iterator[None]:
    """A `prefect server start` for the benchmark, unless one is configured already."""
    if os.environ.get("PREFECT_API_URL"):
        yield
        return
    port = _free_port()
    env = {
        "PREFECT_HOME": str(HOME / "home"),
        "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_MEMO_STORE_PATH": str(HOME / "memo_store.toml"),
        "PREFECT_API_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{HOME / 'prefect.db'}",
        "PREFECT_LOCAL_STORAGE_PATH": str(HOME / "results"),
        "PREFECT_LOGGING_LEVEL": "WARNING",
    }
    os.environ.update(env)
    with (HOME / "server.log").open("wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env},
        )
        try:
            deadline = time.monotonic() + 120
            while True:
                try:
                    with urllib.request.urlopen(env["PREFECT_API_URL"] + "/health", timeout=1):
                        break
                except OSError:
                    if server.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError("Prefect server did not start") from None
                    time.sleep(0.3)
            yield
        finally:
            server.terminate()
            server.wait(timeout=30)


def _step(i: int) -> Callable[[dict[str, int]], dict[str, int]]:
    def compute(previous: dict[str, int]) -> dict[str, int]:
        return {"i": i, "sum": previous["sum"] + i}

    compute.__name__ = compute.__qualname__ = f"step_{i}"
    return compute


def _chain(name: str, tasks: list[Any], rep: int) -> Any:
    from prefect import flow

    def chain() -> dict[str, int]:
        # Distinct inputs per repetition: Prefect's INPUTS policy keys on nothing else.
        value = {"i": -1, "sum": rep * 1_000_003}
        for t in tasks:
            value = t(value)
        return value

    return flow(chain, name=f"bench-{name}")


def build_flows(n: int, store_urls: dict[str, str], rep: int) -> dict[str, Any]:
    """The variants' flows; insync assets get fresh keys per repetition (so run 1 executes)."""
    from insync.adapters.prefect import versioned
    from prefect import task
    from prefect.cache_policies import INPUTS

    flows = {
        "prefect-default": _chain("default", [task(_step(i)) for i in range(n)], rep),
        "prefect-inputs": _chain(
            "inputs", [task(_step(i), cache_policy=INPUTS, persist_result=True) for i in range(n)], rep
        ),
    }
    for store, url in store_urls.items():
        flows[f"insync-{store}"] = _chain(
            f"insync-{store}",
            [
                versioned(f"bench/r{rep}/step_{i}", code_version="v1", store=url)(task(_step(i)))
                for i in range(n)
            ],
            rep,
        )
    return flows


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def instrument() -> dict[str, list[float]]:
    """Time the policy's check and the wrapper's record, in place, for every task run."""
    from insync.adapters.prefect import _task

    samples: dict[str, list[float]] = {"check": [], "record": []}
    decide, record = _task.InsyncCachePolicy._decide, _task._record

    def timed_decide(*args: Any) -> Any:
        start = time.perf_counter()
        try:
            return decide(*args)
        finally:
            samples["check"].append(time.perf_counter() - start)

    def timed_record(*args: Any) -> Any:
        start = time.perf_counter()
        try:
            return record(*args)
        finally:
            samples["record"].append(time.perf_counter() - start)

    _task.InsyncCachePolicy._decide = staticmethod(timed_decide)  # type: ignore[method-assign]
    _task._record = timed_record
    return samples


def _postgres_url(admin_url: str) -> str | None:
    """A fresh database on the local PostgreSQL server, or None if it is not reachable."""
    import uuid

    import sqlalchemy as sa

    name = f"insync_bench_{uuid.uuid4().hex[:8]}"
    try:
        engine = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        engine.dispose()
    except sa.exc.OperationalError:
        return None
    return sa.make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def main() -> None:
    parser = argparse.ArgumentParser(description="insync Prefect adapter overhead per task")
    parser.add_argument("--tasks", type=int, default=50)
    parser.add_argument("--runs", type=int, default=5, help="repetitions per variant")
    parser.add_argument("--backfill", type=int, default=0, help="days: run the backfill benchmark")
    parser.add_argument(
        "--postgres",
        default="postgresql+psycopg://postgres@127.0.0.1:5432/test",
        help="admin URL of a PostgreSQL server to bench on too ('' to skip)",
    )
    args = parser.parse_args()
    stores = {"sqlite": f"sqlite:///{HOME / 'store' / 'insync.db'}"}
    if args.backfill:
        try:
            with prefect_server():
                from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

                with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
                    backfill_report(args.backfill, stores["sqlite"])
        finally:
            shutil.rmtree(HOME, ignore_errors=True)
        return
    if args.postgres and (url := _postgres_url(args.postgres)):
        stores["postgres"] = url
    try:
        with prefect_server():
            from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

            with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
                report(args.tasks, args.runs, stores)
    finally:
        shutil.rmtree(HOME, ignore_errors=True)


def _ms(values: list[float], q: float) -> str:
    ordered = sorted(values)
    return f"{ordered[min(len(ordered) - 1, int(len(ordered) * q))] * 1000:.2f}"


def report(n: int, runs: int, stores: dict[str, str]) -> None:
    import logging

    from insync.adapters.prefect import _runtime

    logging.getLogger("prefect").setLevel(logging.WARNING)
    timed(build_flows(n, stores, -1)["prefect-default"])  # warm-up: imports, client
    for url in stores.values():
        _runtime.open_store(url)  # schema creation is once per store, not per task
    samples = instrument()
    execute: dict[str, list[float]] = {}
    cached: dict[str, list[float]] = {}
    inside: dict[str, dict[str, list[float]]] = {}
    for rep in range(runs):  # interleaved, so load changes on the machine hit every variant
        for name, flow_obj in build_flows(n, stores, rep).items():
            before = {k: len(v) for k, v in samples.items()}
            execute.setdefault(name, []).append(timed(flow_obj))
            if name != "prefect-default":  # its DEFAULT policy never hits across flow runs
                cached.setdefault(name, []).append(timed(flow_obj))
            got = inside.setdefault(name, {k: [] for k in samples})
            for k in samples:
                got[k] += samples[k][before[k] :]

    def per_task(values: list[float] | None) -> str:
        return f"{statistics.median(values) / n * 1000:.1f}" if values else "-"

    print(
        f"A flow of {n} chained tasks, run against a real Prefect server; median of {runs} "
        f"repetitions per variant, interleaved. First run: every task executes (insync: "
        f"fresh asset keys). Second run: the same flow again (Cached where the policy hits).\n"
    )
    print("| variant | first run, ms/task | second run, ms/task |")
    print("|---|---:|---:|")
    for name in execute:
        print(f"| {name} | {per_task(execute[name])} | {per_task(cached.get(name))} |")
    print("\nInside each insync task run (what the adapter adds, timed in process):\n")
    print("| store | check median / p90 ms | record median / p90 ms |")
    print("|---|---:|---:|")
    for store in stores:
        got = inside[f"insync-{store}"]
        print(
            f"| {store} | {_ms(got['check'], 0.5)} / {_ms(got['check'], 0.9)} | "
            f"{_ms(got['record'], 0.5)} / {_ms(got['record'], 0.9)} |"
        )
    print(
        "\ncheck = Step.check (status + input snapshot) + cache key + result-store lookup at "
        "task-run start, on both runs; record = Step.record after the function returned (first "
        "run). prefect-default = `@task`; prefect-inputs = `@task(cache_policy=INPUTS, "
        "persist_result=True)`, Prefect's own cross-run cache."
    )


def _day_total(day: Any) -> dict[str, Any]:
    return {"day": day.isoformat(), "total": day.toordinal() % 97}


def backfill_report(days: int, store_url: str) -> None:
    """Time a backfill of `days` daily partitions with `.map()`, insync vs plain tasks."""
    import datetime as dt
    import logging

    from insync.adapters.prefect import _runtime, versioned
    from insync.core import AssetSpec, DataVersion, TimeWindowPartitions
    from prefect import flow, task

    logging.getLogger("prefect").setLevel(logging.WARNING)
    window = TimeWindowPartitions("daily", start="2025-01-01")
    dates = [dt.date(2025, 1, 1) + dt.timedelta(days=k) for k in range(days)]
    store = _runtime.open_store(store_url)
    store.register([AssetSpec("bench/raw", kind="observable", partitions=window)])
    for day in dates:
        store.record_observation("bench/raw", DataVersion(f"etag-{day}"), partition=day.isoformat())

    def backfill_of(day_task: Any, name: str) -> Any:
        def backfill(days: list[Any]) -> list[Any]:
            return [future.result() for future in day_task.map(days)]

        return flow(backfill, name=name)

    plain = backfill_of(task(_day_total, name="plain_day"), "bench-backfill-plain")
    versioned_task = versioned(
        "bench/daily",
        code_version="v1",
        deps=["bench/raw"],
        partitions=window,
        partition="day",
        store=store_url,
    )(task(_day_total, name="versioned_day"))
    insync = backfill_of(versioned_task, "bench-backfill-insync")
    timed(lambda: backfill_of(task(_day_total, name="warm"), "bench-warm")(dates[:3]))
    samples = instrument()
    plain_runs = [timed(lambda: plain(dates)) for _ in range(2)]
    first = timed(lambda: insync(dates))
    changed = dates[days // 2]
    store.record_observation("bench/raw", DataVersion(f"fixed-{changed}"), partition=changed.isoformat())
    before = len(samples["check"])
    one_changed = timed(lambda: insync(dates))
    checks_changed = samples["check"][before:]
    before = len(samples["check"])
    unchanged = timed(lambda: insync(dates))
    checks_unchanged = samples["check"][before:]
    assert store.status("bench/daily", partition=changed.isoformat()).is_fresh
    assert len(store.history("bench/daily", partition=changed.isoformat())) == 2
    print(f"A backfill of {days} daily partitions (`.map()` over one task), against a real Prefect server.\n")
    print("| run | seconds | ms per day |")
    print("|---|---:|---:|")
    rows = [
        ("plain `@task`, every day computes (median of 2)", statistics.median(plain_runs)),
        ("insync, first run (every day computes)", first),
        ("insync, one day's source changed (1 computes, the rest Cached)", one_changed),
        ("insync, nothing changed (all Cached)", unchanged),
    ]
    for label, seconds in rows:
        print(f"| {label} | {seconds:.1f} | {seconds / days * 1000:.1f} |")
    print(
        f"\nPer-partition check inside each task run (Step.check of one partition + cache key + "
        f"record lookup), median / p90 ms: one day changed {_ms(checks_changed, 0.5)} / "
        f"{_ms(checks_changed, 0.9)}, nothing changed {_ms(checks_unchanged, 0.5)} / "
        f"{_ms(checks_unchanged, 0.9)}."
    )


if __name__ == "__main__":
    main()
