"""What insync adds to a Prefect task run: plain `@task` against `@versioned` `@task`, same process.

A flow of N chained tasks (each passes a small dict to the next, so every versioned task has one
inferred dependency), run against a real `prefect server start`. Every round builds fresh tasks
and runs each variant's flow twice, in one process, the variants' order alternating from round
to round so that load on the machine falls on all of them alike:

- `plain`: `@task` as a user writes it (Prefect's DEFAULT cache policy: inputs, task source and
  flow run id, so its second run executes again);
- `prefect-inputs`: `@task(cache_policy=INPUTS, persist_result=True)`, Prefect's own cache
  across flow runs (its second run ends Cached);
- `insync-<store>`: `@versioned(key, code_version=...)` above `@task`, with fresh asset keys per
  round, on SQLite and PostgreSQL: the first run executes every task, the second ends Cached.

Each round also runs an empty flow: a flow run's fixed cost (creating it on the server) is
subtracted, so "ms per task" is what one more task run costs. Wall time and this process's
CPU time (`time.process_time`, all its threads) are both reported; per task, median over rounds.
Prefect logs at INFO to its API as in a deployment (the console handler is quieted), so the
adapter's one decision line per task is counted.

    python -m benchmarks.bench_prefect [--tasks 30] [--rounds 7] [--code-version v1]
        [--postgres ADMIN_URL] [--profile insync-sqlite]
    python -m benchmarks.bench_prefect --backfill 365

`--profile VARIANT` prints cProfile's top functions for that variant's runs (after the table).
`--backfill N`: a flow mapping one daily-partitioned versioned task over N days
(`partition="day"`, each day reading its partition of an observed source), run once, then
again after one day's source changed, then with nothing changed; against the same flow of
plain `@task`s, which computes every day on every run.

Starts `prefect server start` on 127.0.0.1 under a temp dir unless PREFECT_API_URL is set.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HOME = Path(tempfile.mkdtemp(prefix="insync-bench-prefect-"))


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


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
    }
    os.environ.update(env)
    _progress(f"starting `prefect server start` on port {port} (15-70 s on a busy machine)...")
    started = time.monotonic()
    with (HOME / "server.log").open("wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env},
        )
        try:
            deadline = time.monotonic() + 180
            while True:
                try:
                    with urllib.request.urlopen(env["PREFECT_API_URL"] + "/health", timeout=1):
                        break
                except OSError:
                    if server.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(
                            "Prefect server did not start: " + (HOME / "server.log").read_text()[-2000:]
                        ) from None
                    time.sleep(0.3)
            _progress(f"Prefect server up after {time.monotonic() - started:.0f} s")
            yield
        finally:
            server.terminate()
            server.wait(timeout=30)


@contextmanager
def quiet_prefect() -> Iterator[None]:
    """No flow heartbeat thread (joined at each flow run's end), no console log lines; logs still
    reach the API at INFO, as in a deployment."""
    import logging

    import prefect.main  # noqa: F401  # configures Prefect's logging, as `from prefect import flow` does
    from prefect.logging.handlers import PrefectConsoleHandler
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        # Prefect configured logging when imported: its console handler sits on the root logger.
        for handler in logging.getLogger().handlers:
            if isinstance(handler, PrefectConsoleHandler):
                handler.setLevel(logging.WARNING)
        yield


def _step(i: int) -> Callable[[dict[str, int]], dict[str, int]]:
    def compute(previous: dict[str, int]) -> dict[str, int]:
        return {"i": i, "sum": previous["sum"] + i}

    compute.__name__ = compute.__qualname__ = f"step_{i}"
    return compute


def _chain(name: str, tasks: list[Any], seed: int) -> Any:
    from prefect import flow

    def chain() -> dict[str, int]:
        # Distinct inputs per round: Prefect's INPUTS policy keys on nothing else.
        value = {"i": -1, "sum": seed * 1_000_003}
        for t in tasks:
            value = t(value)
        return value

    return flow(chain, name=f"bench-{name}")


def build_flows(
    n: int, stores: dict[str, str], code_version: str, seed: int, fresh_keys: bool = False
) -> dict[str, Any]:
    """Each variant's flow, with fresh tasks. The chain's input changes every round, so every
    task of run 1 executes; insync's assets keep their keys (registered once: the everyday path)
    unless `fresh_keys` (each round is then the first run ever of new assets)."""
    from insync.adapters.prefect import versioned
    from prefect import task
    from prefect.cache_policies import INPUTS

    flows = {
        "plain": _chain("plain", [task(_step(i)) for i in range(n)], seed),
        "prefect-inputs": _chain(
            "inputs", [task(_step(i), cache_policy=INPUTS, persist_result=True) for i in range(n)], seed
        ),
    }
    prefix = f"bench/r{seed}" if fresh_keys else "bench/chain"
    for store, url in stores.items():
        flows[f"insync-{store}"] = _chain(
            f"insync-{store}",
            [
                versioned(f"{prefix}/step_{i}", code_version=code_version, store=url)(task(_step(i)))
                for i in range(n)
            ],
            seed,
        )
    return flows


@dataclass
class Timings:
    """Per variant and run ("first", "again"): wall and CPU seconds of each round's flow."""

    wall: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    cpu: dict[tuple[str, str], list[float]] = field(default_factory=dict)

    def add(self, variant: str, run: str, wall: float, cpu: float) -> None:
        self.wall.setdefault((variant, run), []).append(wall)
        self.cpu.setdefault((variant, run), []).append(cpu)


def _timed(fn: Callable[[], Any], profiler: cProfile.Profile | None = None) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    if profiler is not None:
        profiler.enable()
    try:
        fn()
    finally:
        if profiler is not None:
            profiler.disable()
    return time.perf_counter() - wall, time.process_time() - cpu


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
    parser.add_argument("--tasks", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds of every variant")
    parser.add_argument("--code-version", default="v1", help="code_version of the versioned tasks")
    parser.add_argument("--profile", default="", help="a variant to profile with cProfile")
    parser.add_argument(
        "--fresh-keys", action="store_true", help="new asset keys each round: first runs ever (registration)"
    )
    parser.add_argument("--backfill", type=int, default=0, help="days: run the backfill benchmark")
    parser.add_argument(
        "--postgres",
        default="postgresql+psycopg://postgres@127.0.0.1:5432/test",
        help="admin URL of a PostgreSQL server to bench on too ('' to skip)",
    )
    args = parser.parse_args()
    stores = {"sqlite": f"sqlite:///{HOME / 'store' / 'insync.db'}"}
    try:
        if not args.backfill and args.postgres and (url := _postgres_url(args.postgres)):
            stores["postgres"] = url
        with prefect_server(), quiet_prefect():
            if args.backfill:
                backfill_report(args.backfill, stores["sqlite"])
            else:
                report(args.tasks, args.rounds, stores, args.code_version, args.profile, args.fresh_keys)
    finally:
        shutil.rmtree(HOME, ignore_errors=True)


def _ms(values: list[float], q: float) -> str:
    ordered = sorted(values)
    return f"{ordered[min(len(ordered) - 1, int(len(ordered) * q))] * 1000:.2f}"


def _load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def report(
    n: int, rounds: int, stores: dict[str, str], code_version: str, profile: str, fresh_keys: bool
) -> None:
    from insync.adapters.prefect import _runtime
    from prefect import flow

    def empty() -> None:
        return None

    empty_flow = flow(empty, name="bench-empty")
    _progress("warm-up: imports, the API client, each store's schema...")
    for seed in (-1, -2):  # twice: the first flow run of a process pays one-time imports
        for flow_obj in build_flows(n, stores, code_version, seed, fresh_keys).values():
            flow_obj()
    empty_flow()
    for url in stores.values():
        _runtime.open_store(url)
    samples = instrument()
    timings = Timings()
    inside: dict[str, dict[str, list[float]]] = {}
    profiler = cProfile.Profile() if profile else None
    loads = [_load()]
    for seed in range(rounds):  # interleaved, so load changes on the machine hit every variant
        flows = build_flows(n, stores, code_version, seed, fresh_keys)
        order = list(flows) if seed % 2 == 0 else list(reversed(flows))
        _progress(f"round {seed + 1}/{rounds}: {', '.join(order)} (load {_load()})")
        timings.add("empty", "first", *_timed(empty_flow))
        for name in order:
            before = {k: len(v) for k, v in samples.items()}
            prof = profiler if name == profile else None
            timings.add(name, "first", *_timed(flows[name], prof))
            timings.add(name, "again", *_timed(flows[name], prof))
            got = inside.setdefault(name, {k: [] for k in samples})
            for k in samples:
                got[k] += samples[k][before[k] :]
        timings.add("empty", "again", *_timed(empty_flow))
        loads.append(_load())
    print_report(n, rounds, stores, code_version, timings, inside, loads, fresh_keys)
    if profiler is not None:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(45)
        print(f"\ncProfile of {profile}, {rounds} rounds x 2 runs:\n\n```\n{out.getvalue()}```")


def print_report(
    n: int,
    rounds: int,
    stores: dict[str, str],
    code_version: str,
    timings: Timings,
    inside: dict[str, dict[str, list[float]]],
    loads: list[str],
    fresh_keys: bool,
) -> None:
    def per_task(table: dict[tuple[str, str], list[float]], variant: str, run: str) -> list[float]:
        # Each round's flow minus that round's empty flow, per task, in ms.
        fixed = statistics.median(table[("empty", "first")] + table[("empty", "again")])
        return [(t - fixed) / n * 1000 for t in table[(variant, run)]]

    def cell(variant: str, run: str) -> str:
        wall = statistics.median(per_task(timings.wall, variant, run))
        cpu = statistics.median(per_task(timings.cpu, variant, run))
        if variant == "plain":
            return f"{wall:.1f} / {cpu:.1f}"
        base_wall = statistics.median(per_task(timings.wall, "plain", run))
        base_cpu = statistics.median(per_task(timings.cpu, "plain", run))
        return f"{wall:.1f} / {cpu:.1f} ({wall / base_wall - 1:+.0%} / {cpu / base_cpu - 1:+.0%})"

    empty = timings.wall[("empty", "first")] + timings.wall[("empty", "again")]
    print(
        f"A flow of {n} chained tasks against a real Prefect server, {rounds} interleaved rounds in "
        f"one process; versioned tasks: code_version={code_version!r}, "
        f"{'new asset keys each round (first runs ever)' if fresh_keys else 'registered asset keys'}. "
        f"ms per task = (flow - empty "
        f"flow) / {n}, median over rounds, wall / CPU of this process; in brackets: against "
        f"`plain` on the same run. An empty flow run took {statistics.median(empty) * 1000:.0f} ms. "
        f"Load average (1/5/15 min) before and after each round: {', '.join(loads)}.\n"
    )
    print("| variant | first run (all execute), ms/task | second run, ms/task |")
    print("|---|---:|---:|")
    labels = {"plain": "executes again", "prefect-inputs": "Cached"}
    for variant in ["plain", "prefect-inputs", *(f"insync-{s}" for s in stores)]:
        again = labels.get(variant, "Cached")
        print(f"| {variant} | {cell(variant, 'first')} | {cell(variant, 'again')} {again} |")
    print("\nPer round, insync's wall time per task against plain's (first run / second run):\n")
    for store in stores:
        ratios = []
        for run in ("first", "again"):
            mine = per_task(timings.wall, f"insync-{store}", run)
            base = per_task(timings.wall, "plain", run)
            ratios.append(" ".join(f"{m / b:.2f}" for m, b in zip(mine, base, strict=True)))
        print(f"- {store}: {ratios[0]} / {ratios[1]}")
    print("\nInside each insync task run (timed in process), median / p90 ms:\n")
    print("| store | check | record |")
    print("|---|---:|---:|")
    for store in stores:
        got = inside[f"insync-{store}"]
        print(
            f"| {store} | {_ms(got['check'], 0.5)} / {_ms(got['check'], 0.9)} | "
            f"{_ms(got['record'], 0.5)} / {_ms(got['record'], 0.9)} |"
        )
    print(
        "\ncheck = the cache policy's Step.check (status + input snapshot) + cache key + "
        "result-store lookup, on both runs; record = Step.record after the function returned "
        "(first run)."
    )


def _day_total(day: Any) -> dict[str, Any]:
    return {"day": day.isoformat(), "total": day.toordinal() % 97}


def backfill_report(days: int, store_url: str) -> None:
    """Time a backfill of `days` daily partitions with `.map()`, insync vs plain tasks."""
    import datetime as dt

    from insync.adapters.prefect import _runtime, versioned
    from insync.core import AssetSpec, DataVersion, TimeWindowPartitions
    from prefect import flow, task

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
    _timed(lambda: backfill_of(task(_day_total, name="warm"), "bench-warm")(dates[:3]))
    samples = instrument()
    loads = [_load()]
    _progress("plain backfill, twice...")
    plain_runs = [_timed(lambda: plain(dates))[0] for _ in range(2)]
    _progress("insync backfill: first pass, one day changed, nothing changed...")
    first = _timed(lambda: insync(dates))[0]
    changed = dates[days // 2]
    store.record_observation("bench/raw", DataVersion(f"fixed-{changed}"), partition=changed.isoformat())
    before = len(samples["check"])
    one_changed = _timed(lambda: insync(dates))[0]
    checks_changed = samples["check"][before:]
    before = len(samples["check"])
    unchanged = _timed(lambda: insync(dates))[0]
    checks_unchanged = samples["check"][before:]
    loads.append(_load())
    assert store.status("bench/daily", partition=changed.isoformat()).is_fresh
    assert len(store.history("bench/daily", partition=changed.isoformat())) == 2
    print(
        f"A backfill of {days} daily partitions (`.map()` over one task), against a real Prefect "
        f"server. Load average before / after: {' / '.join(loads)}.\n"
    )
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
