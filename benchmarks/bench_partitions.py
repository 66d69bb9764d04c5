"""Partition benchmarks: N assets x P daily partitions, and the cases where Dagster stops checking.

    python -m benchmarks partitions                       # default: 300 assets x 1,000 days
    python -m benchmarks.bench_partitions --assets 1000   # the 1M goal configuration
    python -m benchmarks.bench_partitions --store DIR --profile statuses status

The graph is the core benchmark's random DAG (each asset up to 3 random earlier parents, ~3 on
average, same seed), every asset partitioned by the same 1,000 daily windows and reading its
parents' same day (identity: the default between like definitions; `--mapping identity` declares
`IdentityMapping()` on every edge instead). Every partition is materialized once, through
`record_materializations` batches in topological order, into a SQLite file store.

Measured, each in a fresh process (peak RSS is that process's ru_maxrss; whole-graph times also
in CPU seconds, which a loaded machine disturbs less than wall time): whole-graph `statuses()`,
one asset's rollup `status(key)`, one partition's skip check `Step.check()`, and one upstream
partition changed. Then a small store for the cases where Dagster 1.13.28 stops checking
(more than 100 upstream partitions): a monthly asset reading ~4 months of a daily one through
`TimeWindowMapping`, and an unpartitioned asset reading all 1,000 days. Every scenario asserts
the exact counts it expects, so a run is a correctness check too: a wrong count fails it.

Progress lines go to stderr (at least every 10 s); the Markdown table goes to stdout.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import gc
import io
import multiprocessing as mp
import pstats
import random
import resource
import shutil
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from insync.core import (
    AssetKey,
    AssetSpec,
    EventStore,
    IdentityMapping,
    Materialization,
    StaleStatus,
    Step,
    TimeWindowMapping,
    TimeWindowPartitions,
)

from benchmarks.bench_core import count_queries, random_dag

START = dt.date(2024, 1, 1)
HEARTBEAT_S = 10.0
ROOT = AssetKey("asset/0")  # the only asset without parents in random_dag


def log(message: str) -> None:
    print(f"[partitions {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def daily(partitions: int) -> TimeWindowPartitions:
    """`partitions` consecutive days from 2024-01-01 (all ended, so all count as partitions)."""
    return TimeWindowPartitions(
        "daily", start=START.isoformat(), end=(START + dt.timedelta(partitions)).isoformat()
    )


def partitioned_dag(n: int, partitions: int, mapping: str) -> list[AssetSpec]:
    definition = daily(partitions)
    specs = []
    for spec in random_dag(n):
        mappings = {dep: IdentityMapping() for dep in spec.deps} if mapping == "identity" else None
        specs.append(
            AssetSpec(
                spec.key, code_version="1", deps=spec.deps, partitions=definition, partition_mappings=mappings
            )
        )
    return specs


def day_keys(partitions: int) -> list[str]:
    return [(START + dt.timedelta(i)).isoformat() for i in range(partitions)]


# ------------------------------------------------------------------------------ processes
def run_child(label: str, fn: Callable[..., Any], *args: Any) -> tuple[Any, float]:
    """Run `fn(*args)` in a fresh forked process, saying every 10 s that it still runs.

    Returns its result and that process's peak RSS in MiB; an exception in it (a failed
    assertion) is raised here with its traceback.
    """
    ctx = mp.get_context("fork")
    receive, send = ctx.Pipe(duplex=False)

    def target() -> None:
        try:
            result = fn(*args)
            send.send(("ok", result, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))
        except BaseException:
            send.send(("error", traceback.format_exc(), 0.0))

    log(f"{label}: starting")
    start = time.monotonic()
    process = ctx.Process(target=target)
    process.start()
    send.close()
    while not receive.poll(HEARTBEAT_S):
        if not process.is_alive():
            break
        log(f"{label}: still running after {time.monotonic() - start:.0f} s")
    try:
        status, result, peak = receive.recv()
    except EOFError:
        process.join()
        raise RuntimeError(f"{label}: the measuring process died (exit code {process.exitcode})") from None
    process.join()
    if status == "error":
        raise RuntimeError(f"{label} failed in its process:\n{result}")
    log(f"{label}: done in {time.monotonic() - start:.1f} s (peak RSS {peak:.0f} MiB)")
    return result, peak


def repeated(fn: Callable[[], Any], *, budget_s: float = 5.0, most: int = 20) -> float:
    """Median seconds of `fn()` over up to `most` calls within about `budget_s`."""
    samples: list[float] = []
    deadline = time.perf_counter() + budget_s
    while len(samples) < most and (not samples or time.perf_counter() < deadline):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


# ------------------------------------------------------------------------------ the store
def generate(url: str, n: int, partitions: int, mapping: str, batch: int) -> dict[str, float]:
    specs = partitioned_dag(n, partitions, mapping)
    keys = day_keys(partitions)
    total = n * partitions
    with EventStore(url) as store:
        store.register(specs)
        start = last_said = time.monotonic()
        done = 0
        pending: list[Materialization] = []
        for spec in specs:  # index order is topological
            for day in keys:
                pending.append(Materialization(spec.key, partition=day, run_id="seed"))
                if len(pending) == batch or done + len(pending) == total:
                    store.record_materializations(pending)
                    done += len(pending)
                    pending = []
                    now = time.monotonic()
                    if now - last_said >= HEARTBEAT_S or done == total:
                        log(
                            f"generating: {done:,}/{total:,} materializations "
                            f"({done / (now - start):,.0f}/s, {now - start:.0f} s)"
                        )
                        last_said = now
        elapsed = time.monotonic() - start
    return {"seconds": elapsed, "rate": total / elapsed}


def measure_statuses(url: str, n: int, partitions: int, profile: bool) -> dict[str, Any]:
    with EventStore(url) as store:
        gc.collect()
        with count_queries(store) as queries:
            start, cpu = time.perf_counter(), time.process_time()
            result = store.statuses()
            elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
        check_all_synced(result, n, partitions)
        text = profiled(store.statuses) if profile else ""
    return {"seconds": elapsed, "cpu": cpu, "queries": len(queries), "profile": text}


def check_all_synced(result: dict[AssetKey, Any], n: int, partitions: int) -> None:
    assert len(result) == n, (len(result), n)
    totals = [0, 0, 0, 0]
    for key, status in result.items():
        counts = status.partitions
        assert counts is not None, key
        assert status.status is StaleStatus.FRESH, (key, status.status, counts)
        totals[0] += counts.total
        totals[1] += counts.synced
        totals[2] += len(counts.unsynced)
        totals[3] += len(counts.missing)
    assert totals == [n * partitions, n * partitions, 0, 0], totals


def measure_one_asset(url: str, n: int, partitions: int, profile: bool) -> dict[str, Any]:
    """One asset's rollup and one partition's status, for the deepest asset (most ancestors)."""
    key = AssetKey(f"asset/{n - 1}")
    day = day_keys(partitions)[partitions // 2]
    out: dict[str, Any] = {"key": str(key)}
    with EventStore(url) as store:
        for name, call in [
            ("rollup", lambda: store.status(key)),
            ("rollup_no_upstream", lambda: store.status(key, upstream=False)),
            ("partition", lambda: store.status(key, partition=day)),
            ("partition_no_upstream", lambda: store.status(key, partition=day, upstream=False)),
        ]:
            with count_queries(store) as queries:  # also the warm-up
                start = time.perf_counter()
                status = call()
                seconds = time.perf_counter() - start
            if seconds < 1.0:  # slow calls are measured once: warming up changes nothing there
                seconds = repeated(call)
            if status.partitions is not None:
                assert status.partitions.synced == status.partitions.total == partitions, status.partitions
            assert status.status is StaleStatus.FRESH, status
            out[name] = (seconds, len(queries))
            log(f"{name}: {seconds * 1e3:,.1f} ms")
        out["profile"] = profiled(lambda: store.status(key)) if profile else ""
        out["profile_flat"] = profiled(lambda: store.status(key, upstream=False)) if profile else ""
    return out


def measure_skip_checks(
    url: str, n: int, partitions: int, mapping: str, rounds: int, profile: bool
) -> dict[str, Any]:
    specs = partitioned_dag(n, partitions, mapping)
    keys = day_keys(partitions)
    rng = random.Random(11)
    picks = [(specs[rng.randrange(1, n)], keys[rng.randrange(partitions)]) for _ in range(rounds)]
    samples = []
    with EventStore(url) as store:
        Step(store, picks[0][0], partition=picks[0][1], run_id="bench").check(needs_value=False)  # warm
        for spec, day in picks:
            start = time.perf_counter()
            decision = Step(store, spec, partition=day, run_id="bench").check(needs_value=False)
            samples.append(time.perf_counter() - start)
            assert decision.skip, decision.message
            assert len(decision.inputs) == len(spec.deps), decision.inputs
        spec, day = picks[0]
        with count_queries(store) as queries:
            Step(store, spec, partition=day, run_id="bench").check(needs_value=False)
        text = ""
        if profile:
            text = profiled(lambda: [Step(store, s, partition=d).check(needs_value=False) for s, d in picks])
    samples.sort()
    return {
        "p50": statistics.median(samples),
        "p95": samples[int(len(samples) * 0.95)],
        "queries": len(queries),
        "profile": text,
    }


def one_upstream_changed(url: str, n: int, partitions: int, mapping: str) -> dict[str, Any]:
    """Re-materialize one day of the root with a new data version: exactly that day of each of its
    children turns Unsynced (status is not transitive); their descendants list the change upstream."""
    specs = partitioned_dag(n, partitions, mapping)
    children: dict[AssetKey, list[AssetKey]] = {}
    for spec in specs:
        for dep in spec.deps:
            children.setdefault(dep, []).append(spec.key)
    direct = set(children[ROOT])
    below: set[AssetKey] = set()
    todo = [c for d in direct for c in children.get(d, [])]
    while todo:
        key = todo.pop()
        if key not in below:
            below.add(key)
            todo.extend(children.get(key, []))
    day = day_keys(partitions)[partitions // 2]
    by_key = {spec.key: spec for spec in specs}
    with EventStore(url) as store:
        event = store.record_materialization(ROOT, partition=day, data_version="changed", run_id="change")
        assert event.partition == day
        gc.collect()
        with count_queries(store) as queries:
            start, cpu = time.perf_counter(), time.process_time()
            result = store.statuses()
            elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
        unsynced = {(k, p) for k, s in result.items() for p in s.partitions.unsynced}
        assert unsynced == {(k, day) for k in direct}, (len(unsynced), len(direct))
        for key, status in result.items():
            counts = status.partitions
            assert not counts.missing, key
            if key in direct:
                assert status.status is StaleStatus.STALE, (key, status.status)
                assert counts.synced == partitions - 1, (key, counts)
                assert any(c.dependency == ROOT and c.dependency_partition == day for c in status.causes), (
                    key,
                    status.causes,
                )
            else:
                assert status.status is StaleStatus.FRESH and counts.synced == partitions, (key, counts)
        with_upstream = {k for k, s in result.items() if s.upstream}
        assert with_upstream == below, (len(with_upstream), len(below))
        # The skip checks agree: that day of a child runs, another day of it and a grandchild skip.
        child = by_key[min(direct)]
        other = day_keys(partitions)[0]
        assert not Step(store, child, partition=day).check(needs_value=False).skip
        assert Step(store, child, partition=other).check(needs_value=False).skip
        if below - direct:
            assert Step(store, by_key[min(below - direct)], partition=day).check(needs_value=False).skip
    return {
        "seconds": elapsed,
        "cpu": cpu,
        "queries": len(queries),
        "children": len(direct),
        "below": len(below),
    }


# -------------------------------------------------------------- above Dagster's threshold
def months_reading(day: dt.date, months: list[str], lookback_days: int) -> set[str]:
    """Monthly keys whose window [month start - lookback, month end) holds `day` (plain datetime)."""
    found = set()
    for key in months:
        first = dt.date.fromisoformat(key)
        following = dt.date(first.year + first.month // 12, first.month % 12 + 1, 1)
        if first - dt.timedelta(lookback_days) <= day < following:
            found.add(key)
    return found


LOOKBACK_DAYS = 92  # a month plus the 92 days before it: about 4 months, 118-123 daily partitions
WIDE_DAYS = 1000  # 2024-01-01 .. 2026-09-26
CHANGED_DAY = dt.date(2025, 3, 15)  # read by the months 2025-03 .. 2025-06


def above_threshold(url: str) -> dict[str, Any]:
    """A monthly asset reading ~4 months of a daily one, and an unpartitioned asset reading every
    day: after one day changes, both must say Unsynced (Dagster 1.13.28 says Synced here)."""
    partitions = WIDE_DAYS
    days_def = daily(partitions)
    months_def = TimeWindowPartitions("monthly", start=START.isoformat(), end="2026-09-01")
    days = AssetSpec("bench/days", code_version="1", partitions=days_def)
    months = AssetSpec(
        "bench/months",
        code_version="1",
        deps=[days.key],
        partitions=months_def,
        partition_mappings={days.key: TimeWindowMapping(start_offset=-LOOKBACK_DAYS)},
    )
    summary = AssetSpec("bench/summary", code_version="1", deps=[days.key])
    day_list = day_keys(partitions)
    month_list = months_def.keys()
    assert len(month_list) == 32, month_list
    out: dict[str, Any] = {}
    with EventStore(url) as store:
        store.register([days, months, summary])
        store.record_materializations([Materialization(days.key, partition=d) for d in day_list])
        store.record_materializations([Materialization(months.key, partition=m) for m in month_list])
        store.record_materializations([Materialization(summary.key)])
        before = store.statuses()
        assert all(s.status is StaleStatus.FRESH for s in before.values()), before
        widths = [len(Step(store, months, partition=m).check(needs_value=False).inputs) for m in month_list]
        assert min(widths[4:]) > 100, widths  # past the first months, which the start clips
        out["widths"] = (min(widths[4:]), max(widths))
        samples = {"month": [], "summary": []}
        for _ in range(50):
            for name, step in [
                ("month", Step(store, months, partition=month_list[-1])),
                ("summary", Step(store, summary)),
            ]:
                start = time.perf_counter()
                assert step.check(needs_value=False).skip
                samples[name].append(time.perf_counter() - start)
        out["check_month"] = statistics.median(samples["month"])
        out["check_summary"] = statistics.median(samples["summary"])

        changed = CHANGED_DAY
        expected = months_reading(changed, month_list, LOOKBACK_DAYS)
        assert expected == {"2025-03-01", "2025-04-01", "2025-05-01", "2025-06-01"}, expected
        store.record_materialization(days.key, partition=changed.isoformat(), data_version="changed")
        start = time.perf_counter()
        after = store.statuses()
        out["statuses"] = time.perf_counter() - start
        rollup = after[months.key]
        assert rollup.status is StaleStatus.STALE, rollup
        assert set(rollup.partitions.unsynced) == expected, (rollup.partitions.unsynced, expected)
        assert rollup.partitions.synced == len(month_list) - len(expected)
        assert after[summary.key].status is StaleStatus.STALE, after[summary.key]
        causes = [c for c in after[summary.key].causes if c.dependency_partition == changed.isoformat()]
        assert causes, after[summary.key].causes
        for month in month_list:
            decision = Step(store, months, partition=month).check(needs_value=False)
            assert decision.skip is (month not in expected), (month, decision.message)
        assert not Step(store, summary).check(needs_value=False).skip
        out["unsynced"] = sorted(expected)
    return out


# ----------------------------------------------------------------------------- reporting
def profiled(fn: Callable[[], Any], lines: int = 25) -> str:
    profile = cProfile.Profile()
    profile.enable()
    fn()
    profile.disable()
    text = io.StringIO()
    pstats.Stats(profile, stream=text).sort_stats("cumtime").print_stats(lines)
    return text.getvalue()


def code_stamp() -> str:
    """A hash of insync.core's sources: a kept store is reused only by the code that wrote it
    (stored provenance digests are an implementation detail that may change)."""
    import hashlib

    import insync.core

    digest = hashlib.sha256()
    for path in sorted(Path(insync.core.__file__).parent.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def plural(queries: int) -> str:
    return f"{queries} query" if queries == 1 else f"{queries} queries"


def verdict(value: float, goal: float) -> str:
    return "met" if value < goal else "**missed**"


def main(argv: Iterable[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--assets", type=int, default=300, help="assets in the graph (goal: 1000)")
    parser.add_argument("--partitions", type=int, default=1000, help="daily partitions per asset")
    parser.add_argument(
        "--batch", type=int, default=5000, help="materializations per record_materializations"
    )
    parser.add_argument("--checks", type=int, default=200, help="skip checks timed")
    parser.add_argument(
        "--mapping",
        choices=["default", "identity"],
        default="default",
        help="default: no mapping declared (identity between like definitions); identity: IdentityMapping()",
    )
    parser.add_argument(
        "--store",
        type=Path,
        help="keep the generated store in this folder; reused while insync.core is unchanged",
    )
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="reuse a kept store even if insync.core changed since it was written",
    )
    parser.add_argument(
        "--profile",
        nargs="*",
        choices=["statuses", "status", "check"],
        default=[],
        help="print a cProfile (top 25 by cumtime) of these measurements",
    )
    parser.add_argument("--skip-threshold-cases", action="store_true", help="only the N x P graph")
    args = parser.parse_args(list(argv) if argv is not None else None)
    n, p = args.assets, args.partitions
    tmp = Path(tempfile.mkdtemp(prefix="insync-bench-partitions-"))
    folder = args.store or tmp
    folder.mkdir(parents=True, exist_ok=True)
    base = folder / f"g{n}x{p}-{args.mapping}.db"
    done_marker = base.with_suffix(".done")
    rows: list[tuple[str, str, str]] = []
    profiles: list[tuple[str, str]] = []
    try:
        stamp = code_stamp()
        if done_marker.exists() and (done_marker.read_text() == stamp or args.reuse):
            log(f"reusing the store {base}")
        else:
            if done_marker.exists():
                log(
                    f"{base} was written by other insync.core sources: generating it again (--reuse keeps it)"
                )
            base.unlink(missing_ok=True)
            generated, _ = run_child(
                f"generate {n:,} x {p:,}", generate, f"sqlite:///{base}", n, p, args.mapping, args.batch
            )
            done_marker.write_text(stamp)
            rows.append(
                (
                    f"generate {n * p:,} partitions (`record_materializations`, {args.batch:,} per batch)",
                    f"{generated['seconds']:.0f} s",
                    f"{generated['rate']:,.0f} materializations/s",
                )
            )
        url = f"sqlite:///{base}"
        label = f"{n:,} assets x {p:,} days ({n * p:,} partitions)"

        whole, peak = run_child("statuses()", measure_statuses, url, n, p, "statuses" in args.profile)
        rows.append(
            (
                f"`statuses()`, {label}",
                f"**{whole['seconds']:.2f} s** (CPU {whole['cpu']:.2f} s)",
                f"{plural(whole['queries'])}, peak RSS {peak:,.0f} MiB; goal at 1M partitions: < 5 s, < 2 GiB"
                + (
                    f" ({verdict(whole['seconds'], 5.0)}, {verdict(peak, 2048)})"
                    if n * p >= 1_000_000
                    else f" (not measured here: run with --assets {1_000_000 // p:,})"
                ),
            )
        )
        profiles.append(("statuses()", whole["profile"]))

        one, peak = run_child("one asset", measure_one_asset, url, n, p, "status" in args.profile)
        roll, roll_q = one["rollup"]
        rows.append(
            (
                f"`status(key)` rollup of {one['key']} (deepest: all its ancestors' rollups)",
                f"**{roll * 1e3:,.0f} ms**",
                f"{plural(roll_q)}, peak RSS {peak:,.0f} MiB; goal < 50 ms: {verdict(roll, 0.05)}",
            )
        )
        flat, flat_q = one["rollup_no_upstream"]
        rows.append(
            (
                f"`status(key, upstream=False)` rollup of {one['key']}",
                f"{flat * 1e3:,.1f} ms",
                f"{plural(flat_q)}; goal < 50 ms: {verdict(flat, 0.05)}",
            )
        )
        part, part_q = one["partition"]
        flat_part, flat_part_q = one["partition_no_upstream"]
        rows.append(
            (
                f"`status(key, partition=P)` of {one['key']}",
                f"{part * 1e3:,.1f} ms",
                f"{plural(part_q)}; with `upstream=False`: {flat_part * 1e3:,.1f} ms, {plural(flat_part_q)}",
            )
        )
        profiles.append(("status(key)", one["profile"]))
        profiles.append(("status(key, upstream=False)", one["profile_flat"]))

        checks, _ = run_child(
            "skip checks", measure_skip_checks, url, n, p, args.mapping, args.checks, "check" in args.profile
        )
        rows.append(
            (
                f"skip check `Step(..., partition=P).check()`, {args.checks} random partitions",
                f"**p50 {checks['p50'] * 1e3:.2f} ms**",
                f"p95 {checks['p95'] * 1e3:.2f} ms, {plural(checks['queries'])}; goal p50 < 2 ms: "
                f"{verdict(checks['p50'], 0.002)}",
            )
        )
        profiles.append(("Step.check()", checks["profile"]))

        changed_db = folder / f"changed-{n}x{p}.db"
        log(f"copying the store for the change scenario ({base.stat().st_size / 2**20:,.0f} MiB)")
        shutil.copyfile(base, changed_db)
        try:
            change, peak = run_child(
                "one upstream partition changed",
                one_upstream_changed,
                f"sqlite:///{changed_db}",
                n,
                p,
                args.mapping,
            )
        finally:
            changed_db.unlink(missing_ok=True)
        rows.append(
            (
                "one root partition re-materialized with a new data version, then `statuses()`",
                f"{change['seconds']:.2f} s (CPU {change['cpu']:.2f} s)",
                f"{plural(change['queries'])}, peak RSS {peak:,.0f} MiB; asserted: exactly that day of its "
                f"{change['children']} children Unsynced, {change['below']} descendants list it upstream",
            )
        )

        if not args.skip_threshold_cases:
            threshold, _ = run_child(
                "above Dagster's threshold", above_threshold, f"sqlite:///{tmp / 'wide.db'}"
            )
            low, high = threshold["widths"]
            rows.append(
                (
                    f"monthly on daily, `TimeWindowMapping(start_offset=-{LOOKBACK_DAYS})`: "
                    f"{low}-{high} upstream partitions each",
                    "Unsynced",
                    f"one day changed: exactly the {len(threshold['unsynced'])} months reading it "
                    f"({', '.join(threshold['unsynced'])}) Unsynced; skip check "
                    f"{threshold['check_month'] * 1e3:.1f} ms; Dagster 1.13.28: Synced (stops above 100)",
                )
            )
            rows.append(
                (
                    f"unpartitioned asset on all {WIDE_DAYS:,} days (`AllPartitionsMapping`)",
                    "Unsynced",
                    f"one day changed: Unsynced, cause names that day; skip check "
                    f"{threshold['check_summary'] * 1e3:.1f} ms; Dagster 1.13.28: Synced",
                )
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("| benchmark | result | notes |\n|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    for name, text in profiles:
        if text:
            print(f"\n### cProfile of {name}, top 25 by cumulative time\n\n```\n{text.strip()}\n```")


if __name__ == "__main__":
    main()
