"""The asset-versioning guide, step by step, on insync's core API and the embedded SQLite store.

Run it with `make demo` (or `python examples/walkthrough.py [--home DIR]`). Every step prints the
status table; the last one changes the source file and runs nothing, so that afterwards
`insync --database-url sqlite:///DIR/insync.db why versioned_number` has something to explain.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pendulum
from insync.core import (
    AssetSpec,
    DataVersion,
    EventStore,
    Step,
    TimeWindowPartitions,
    ValueCache,
    observe_file,
)
from rich.console import Console
from rich.table import Table

# Piped to a file or grep, rich would assume 80 columns and wrap every table; a terminal keeps its own.
console = Console(width=None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 200)


def materialize(
    store: EventStore,
    cache: ValueCache,
    spec: AssetSpec,
    run: int | str,
    fn: Callable[..., Any],
    *,
    partition: str | None = None,
    parameters: dict[str, Any] | None = None,
) -> Any:
    """The execution protocol every adapter follows: check, then skip (cached value) or run + record."""
    step = Step(
        store,
        spec,
        run_id=f"run-{run}",
        framework="python",
        cache=cache,
        partition=partition,
        parameters=parameters,
    )
    decision = step.check()
    console.print(f"  [dim]{decision.message}[/]")
    if decision.skip:
        return decision.value
    result = fn()
    value, version = result if isinstance(result, tuple) else (result, None)
    step.record(value, data_version=version)
    return value


def show(store: EventStore, title: str) -> None:
    table = Table(title=title, title_justify="left", box=None, pad_edge=False)
    for column in ("asset", "status", "code version", "data version", "why"):
        table.add_column(column)
    for key, s in sorted(store.statuses().items()):
        why = [str(c) for c in s.root_causes] + [str(u) for u in s.upstream]
        if s.partitions is not None:  # a partitioned asset: its status is the rollup
            why = [f"partitions: {s.partitions}"] + [str(c) for c in s.root_causes]
        elif s.status.value == "MISSING":
            why.insert(0, "never materialized")
        colour = {"FRESH": "green", "STALE": "yellow", "MISSING": "red"}[s.status.value]
        version = str(s.data_version) if s.partitions is None else "per partition"
        table.add_row(
            str(key),
            f"[{colour}]{s.status.label}[/]",
            s.code_version or "-",
            version if len(version) <= 14 else version[:10] + "…",
            "; ".join(why),
        )
    console.print(table)
    console.print()


def _shown(path: Path) -> Path:
    """`path` as the reader would type it: relative to the working directory when inside it."""
    try:
        return path.relative_to(Path.cwd())
    except ValueError:
        return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--home", default=".insync-walkthrough", help="folder for the demo store")
    home = Path(parser.parse_args().home).absolute()
    shutil.rmtree(home, ignore_errors=True)  # the walkthrough starts from an empty store
    home.mkdir(parents=True)
    store = EventStore(f"sqlite:///{home / 'insync.db'}")
    cache = ValueCache(str(home / "values"))
    source_file = home / "input_number.txt"
    source_file.write_text("3\n")
    run = 0

    def step(title: str) -> None:
        nonlocal run
        run += 1
        console.rule(f"[bold]{run}. {title}")

    step("An asset without a code version: every run computes and gets a new data version")
    for attempt in ("a", "b"):
        materialize(store, cache, AssetSpec("versioned_number"), f"{run}{attempt}", lambda: 20)
        console.print(f"  data version: {store.status('versioned_number').data_version}")
    show(store, "after two runs")

    step("Give it a code version: materialize once, then the next run is skipped (memoized)")
    spec = AssetSpec("versioned_number", code_version="v1")
    materialize(store, cache, spec, run, lambda: 20)
    materialize(store, cache, spec, run + 100, lambda: 20)
    show(store, "code version v1")

    step("Bump the code version: the asset is Unsynced until it runs again")
    spec = AssetSpec("versioned_number", code_version="v2")
    store.register([spec])
    show(store, "v2 registered, not run yet")
    materialize(store, cache, spec, run, lambda: 20)

    step("Add a dependent asset: Never materialized, then Synced")
    child = AssetSpec("multiplied_number", code_version="v1", deps=["versioned_number"])
    store.register([child])
    show(store, "multiplied_number registered")
    materialize(store, cache, child, run, lambda: 40)
    show(store, "both materialized")

    step("Change the parent's code: status is not transitive, but upstream shows what is coming")
    spec = AssetSpec("versioned_number", code_version="v3")
    store.register([spec])
    show(store, "v3 registered: the child is still Synced, with a pending upstream change")
    materialize(store, cache, spec, run, lambda: 20)
    show(store, "parent re-run: its new data version makes the child Unsynced")
    materialize(store, cache, child, run, lambda: 40)

    step("User-provided data versions: a cosmetic refactor leaves the child in sync")
    spec = AssetSpec("versioned_number", code_version="v4")
    materialize(store, cache, spec, run, lambda: (20, DataVersion("20")))
    materialize(store, cache, child, run, lambda: 40)
    spec = AssetSpec("versioned_number", code_version="v5")  # refactor: same value
    materialize(store, cache, spec, run, lambda: (20, DataVersion("20")))
    show(store, "v5 produced the same data version 20: multiplied_number stays Synced")

    step("An observable file source: editing the file makes the chain Unsynced")
    source = AssetSpec("input_number", kind="observable")
    spec = AssetSpec("versioned_number", code_version="v5", deps=["input_number"])
    store.register([source, spec])
    store.record_observation("input_number", observe_file(source_file))

    def read_number() -> tuple[int, DataVersion]:
        value = int(source_file.read_text())
        return value, DataVersion(str(value))

    materialize(store, cache, spec, run, read_number)
    materialize(store, cache, child, run, lambda: 6)
    show(store, "source observed and chain materialized")
    source_file.write_text("4\n")
    store.record_observation("input_number", observe_file(source_file))
    show(store, "input_number.txt edited and observed")
    run += 1
    materialize(store, cache, spec, run, read_number)
    show(store, "versioned_number re-read the file: new data version 4, so the child is Unsynced")
    materialize(store, cache, child, run, lambda: 8)
    show(store, "all in sync again")

    step("Parameters are inputs: another argument value is never served a value computed for the last one")
    extract = AssetSpec("extract", code_version="v1")
    for attempt, day in enumerate(("2026-11-30", "2026-12-01", "2026-12-01")):
        rows = materialize(
            store,
            cache,
            extract,
            f"{run}{'abc'[attempt]}",
            lambda d=day: f"rows for {d}",
            parameters={"day": day},
        )
        console.print(f"  extract(day={day!r}) -> {rows!r}")

    step("Partitions: a daily backfill reuses each day's own value and recomputes only the changed day")
    days = TimeWindowPartitions("daily", start="2026-11-01", end="2026-11-08")
    now = pendulum.now("UTC")
    landing = AssetSpec("landing/events", kind="observable", partitions=days)
    counts = AssetSpec("daily_counts", code_version="v1", deps=["landing/events"], partitions=days)
    store.register([landing, counts])
    for day in days.keys(now):
        store.record_observation("landing/events", DataVersion(f"etag-{day}"), partition=day)

    def backfill(label: str) -> None:
        ran = []
        for day in days.keys(now):
            step = Step(
                store, counts, partition=day, run_id=f"backfill-{label}", framework="python", cache=cache
            )
            if not step.check().skip:
                ran.append(day)
                step.record(f"count for {day}")
        console.print(f"  backfill {label}: computed {len(ran)} of {len(days.keys(now))} days {ran}")

    backfill("1")
    backfill("2")
    store.record_observation("landing/events", DataVersion("etag-late-fix"), partition="2026-11-04")
    show(store, "one day's landing file changed")
    backfill("3")
    show(store, "backfill done")

    step("Left for you to explain: the file changes again, and nothing runs yet")
    source_file.write_text("5\n")
    store.record_observation("input_number", observe_file(source_file))
    show(store, "input_number.txt edited and observed: versioned_number is Unsynced, multiplied_number waits")
    url = f"sqlite:///{_shown(home / 'insync.db')}"
    console.print("Ask insync why (the same store, from this folder):", highlight=False)
    for asset in ("versioned_number", "multiplied_number"):
        console.print(f"  insync --database-url {url} why {asset}", highlight=False, soft_wrap=True)
    store.close()


if __name__ == "__main__":
    main()
