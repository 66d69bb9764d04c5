"""Core benchmarks: whole-graph status, the single-asset skip check, appends, fingerprints.

Run all with `make bench` (or `python -m benchmarks.bench_core [--sizes 10000 100000]`).
Figures are written to stdout as a Markdown table; benchmarks/README.md records a run.
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import resource
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from insync.core import AssetSpec, EventStore, Materialization, Step, fingerprint_file


@contextmanager
def count_queries(store: EventStore) -> Iterator[list[str]]:
    statements: list[str] = []

    def before(conn, cursor, statement, *args):  # type: ignore[no-untyped-def]
        if not statement.lstrip().upper().startswith(("BEGIN", "PRAGMA", "COMMIT", "ROLLBACK")):
            statements.append(statement)

    engine = store._engine
    sa.event.listen(engine, "before_cursor_execute", before)
    try:
        yield statements
    finally:
        sa.event.remove(engine, "before_cursor_execute", before)


def random_dag(n: int, parents: int = 3, seed: int = 7) -> list[AssetSpec]:
    """Each asset after the first few depends on up to `parents` random earlier ones (~3 on average)."""
    rng = random.Random(seed)
    specs = []
    for i in range(n):
        deps = {f"asset/{rng.randrange(i)}" for _ in range(min(i, parents))} if i else set()
        specs.append(AssetSpec(f"asset/{i}", code_version="1", deps=sorted(deps)))
    return specs


def build_store(url: str, n: int) -> float:
    """Register and materialize a random graph; returns appends per second."""
    specs = random_dag(n)
    with EventStore(url) as store:
        store.register(specs)
        start = time.perf_counter()
        batch = 5_000
        for lo in range(0, n, batch):  # topological order: index order
            store.record_materializations(
                [Materialization(s.key, run_id="seed") for s in specs[lo : lo + batch]]
            )
        return n / (time.perf_counter() - start)


def time_statuses(url: str) -> tuple[float, int, int]:
    with EventStore(url) as store:
        store.statuses()  # warm: imports, connection, statement cache
        gc.collect()
        with count_queries(store) as queries:
            start = time.perf_counter()
            result = store.statuses()
            elapsed = time.perf_counter() - start
        return elapsed, len(queries), len(result)


def skip_check_latency(url: str, rounds: int = 2000) -> tuple[float, float, int]:
    with EventStore(url) as store:
        parents = [AssetSpec(f"p{i}", code_version="1") for i in range(5)]
        child = AssetSpec("child", code_version="1", deps=[p.key for p in parents])
        store.register([*parents, child])
        store.record_materializations([Materialization(s.key) for s in [*parents, child]])
        samples = []
        for _ in range(rounds):
            start = time.perf_counter()
            decision = Step(store, child, run_id="bench").check(needs_value=False)
            samples.append(time.perf_counter() - start)
            assert decision.skip
        with count_queries(store) as queries:
            Step(store, child, run_id="bench").check(needs_value=False)
        samples.sort()
        return statistics.median(samples), samples[int(len(samples) * 0.99)], len(queries)


def fingerprint_throughput(size_mib: int = 512) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "blob.bin"
        with path.open("wb") as fh:
            block = os.urandom(1 << 20)
            for _ in range(size_mib):
                fh.write(block)
        fingerprint_file(path)  # page cache warm for both
        start = time.perf_counter()
        fingerprint_file(path)
        ours = size_mib / (time.perf_counter() - start)
        start = time.perf_counter()
        subprocess.run(["sha256sum", str(path)], check=True, capture_output=True)
        theirs = size_mib / (time.perf_counter() - start)
        return ours, theirs


def in_subprocess(fn: Callable[..., object], *args: object) -> tuple[object, float]:
    """Run `fn` in a fresh process; returns its result and that process's peak RSS in MiB."""
    import multiprocessing as mp

    ctx = mp.get_context("fork")
    parent, child = ctx.Pipe()

    def target() -> None:
        result = fn(*args)
        child.send((result, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))

    process = ctx.Process(target=target)
    process.start()
    result, peak = parent.recv()
    process.join()
    return result, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--url", help="store URL template with {n} (default: SQLite in a temp dir)")
    args = parser.parse_args()
    rows = []
    tmp = Path(tempfile.mkdtemp(prefix="insync-bench-"))
    try:
        for n in args.sizes:
            url = args.url.format(n=n) if args.url else f"sqlite:///{tmp / f'g{n}.db'}"
            rate, _ = in_subprocess(build_store, url, n)
            (elapsed, queries, count), peak = in_subprocess(time_statuses, url)
            rows.append(
                (
                    f"statuses() of {count:,} assets (~3 parents each)",
                    f"{elapsed:.3f} s",
                    f"{queries} queries, peak RSS {peak:.0f} MiB",
                )
            )
            rows.append((f"batched appends while building {n:,}", f"{rate:,.0f} events/s", "5,000 per batch"))
        url = f"sqlite:///{tmp / 'skip.db'}"
        (p50, p99, queries), _ = in_subprocess(skip_check_latency, url)
        rows.append(
            (
                "skip check, 1 asset with 5 parents",
                f"p50 {p50 * 1e3:.3f} ms",
                f"p99 {p99 * 1e3:.3f} ms, {queries} queries",
            )
        )
        ours, theirs = fingerprint_throughput()
        rows.append(
            ("fingerprint_file (xxh3-128), 512 MiB", f"{ours:,.0f} MiB/s", f"sha256sum: {theirs:,.0f} MiB/s")
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("| benchmark | result | notes |\n|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
