"""Parameters and partitions with Prefect: a flow parameter, a daily backfill with `.map()`.

    python examples/prefect/partitions.py daily 2026-11-30 --workdir /tmp/pp
    python examples/prefect/partitions.py daily 2026-12-01 --workdir /tmp/pp
    python examples/prefect/partitions.py backfill 2026-11-01 2026-11-05 --workdir /tmp/pp
    python examples/prefect/partitions.py fix 2026-11-03 --workdir /tmp/pp    # rewrite one day

Without PREFECT_API_URL each command starts Prefect's temporary server first (and says so on
stderr). Each command prints the insync decision of every task run (sorted: mapped runs finish in any
order), then the flow's value. The store, the day files and Prefect's results live in
`--workdir`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import sys
from pathlib import Path
from typing import Any

from insync.adapters.prefect import ensure_prefect_api, versioned
from insync.core import AssetSpec, EventStore, InsyncError, TimeWindowPartitions, observe_file
from prefect import flow, task, unmapped

DAYS = TimeWindowPartitions("daily", start="2026-11-01")
SOURCE_KEY = "raw/day_files"


# A parameter: `day` is not the value of an upstream asset, so it is fingerprinted. Another
# day is another input, and the task runs again.
@versioned("demo/extract", code_version="v1")
@task
def extract(day: str) -> str:
    return f"rows for {day}"


@flow
def daily(day: str) -> str:
    return extract(day)


# A partition: each day is its own record stream, with its own status and Cached value. The
# day file of the same day (a partition of the observed source) is the upstream it reads.
@versioned("demo/orders", code_version="v1", deps=[SOURCE_KEY], partitions=DAYS, partition="day")
@task
def orders(day: dt.date, folder: Path) -> dict[str, Any]:
    lines = (folder / f"{day.isoformat()}.csv").read_text().splitlines()
    return {"day": day.isoformat(), "orders": len(lines)}


@flow
def backfill(days: list[dt.date], folder: Path) -> list[dict[str, Any]]:
    return [future.result() for future in orders.map(days, unmapped(folder))]


def observe(days: list[dt.date], folder: Path) -> None:
    """Record one observation per day file (what an observation flow would do)."""
    with EventStore() as store:
        store.register([AssetSpec(SOURCE_KEY, kind="observable", partitions=DAYS)])
        for day in days:
            store.record_observation(
                SOURCE_KEY, observe_file(folder / f"{day.isoformat()}.csv"), partition=day.isoformat()
            )


class _Decisions(logging.Handler):
    """Collects the one-line decisions the adapter logs on each task run."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message.startswith(("run demo/", "skip demo/")):
            self.lines.append(message)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=["daily", "backfill", "fix"])
    parser.add_argument("dates", nargs="+", type=dt.date.fromisoformat)
    parser.add_argument("--workdir", type=Path, default=Path("insync-partitions"))
    args = parser.parse_args()
    workdir = args.workdir.resolve()
    os.environ.setdefault("INSYNC_HOME", str(workdir / ".insync"))
    folder = workdir / "days"
    if args.command == "fix":
        (folder / f"{args.dates[0].isoformat()}.csv").write_text("late order\n")
        return
    try:
        ensure_prefect_api()  # a temporary server takes 10-30 s: say so (on stderr), not wait in silence
    except InsyncError as exc:
        sys.exit(f"error: {exc}")
    decisions = _Decisions()
    logging.getLogger("prefect.task_runs").addHandler(decisions)
    if args.command == "daily":
        value: Any = daily(args.dates[0].isoformat())
    else:
        first, last = args.dates[0], args.dates[-1]
        days = [first + dt.timedelta(days=n) for n in range((last - first).days + 1)]
        folder.mkdir(parents=True, exist_ok=True)
        for day in days:
            path = folder / f"{day.isoformat()}.csv"
            if not path.exists():
                path.write_text("".join(f"order {n}\n" for n in range(day.day)))
        observe(days, folder)
        value = backfill(days, folder)
    print("\n".join(sorted(decisions.lines)))
    print(value if isinstance(value, str) else "\n".join(f"{v['day']}: {v['orders']} orders" for v in value))


if __name__ == "__main__":
    main()
