"""The insync walkthrough as Prefect flows: an observed CSV source and a versioned pipeline.

    raw/orders_csv (observed file) -> staging/orders -> analytics/daily_totals --+
                                                                                +-> analytics/report
                                      reference/calendar -------------------------+

Run it (a temporary Prefect server starts if PREFECT_API_URL is not set; the script says so, and
what to do if it does not start in time):

    python examples/prefect/walkthrough.py run        # observe the CSV, then run the pipeline
    python examples/prefect/walkthrough.py add-order  # append an order to the CSV
    python examples/prefect/walkthrough.py serve      # deployments: observe every minute,
                                                      # pipeline on `insync.source.changed`

The store and the CSV live in `--workdir` (default `./insync-walkthrough`).
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

from insync.adapters.prefect import ensure_prefect_api, observation_flow, source_changed_trigger, versioned
from insync.core import InsyncError, fingerprint_value, observe_file
from prefect import flow, task
from prefect.futures import wait

SOURCE_KEY = "raw/orders_csv"
ORDERS = "date,customer,amount\n2026-11-01,ada,12.50\n2026-11-01,bob,7.00\n2026-11-02,ada,3.25\n"


def orders_csv() -> Path:
    """Where the source file is: read at run time, so deployments can point elsewhere.

    The flow reads it and passes it to `staged_orders` as an argument: a parameter insync sees.
    Read inside the task, the environment variable would be an input insync cannot see, and the
    task would run every time.
    """
    return Path(os.environ.get("WALKTHROUGH_ORDERS_CSV", "orders.csv")).resolve()


def cents(amount: str) -> int:
    # A module-local helper: `staged_orders` has code_version="auto", so editing this function
    # re-runs it (and what depends on it); Prefect's TASK_SOURCE policy would not notice.
    return round(float(amount) * 100)


@versioned("staging/orders", code_version="auto", deps=[SOURCE_KEY], data_version=fingerprint_value)
@task
def staged_orders(path: Path) -> list[dict[str, Any]]:
    with path.open(newline="") as handle:
        return [
            {"date": row["date"], "customer": row["customer"], "cents": cents(row["amount"])}
            for row in csv.DictReader(handle)
        ]


@versioned("analytics/daily_totals", code_version="auto")
@task
def daily_totals(orders: list[dict[str, Any]]) -> dict[str, int]:
    totals: dict[str, int] = defaultdict(int)
    for order in orders:
        totals[order["date"]] += order["cents"]
    return dict(sorted(totals.items()))


@versioned("reference/calendar", code_version="v1")
@task
def calendar() -> dict[str, str]:
    return {"2026-11-01": "Sunday", "2026-11-02": "Monday", "2026-11-03": "Tuesday"}


@versioned("analytics/report", code_version="v1")
@task
def report(totals: dict[str, int], days: dict[str, str]) -> list[str]:
    return [f"{day} ({days.get(day, '?')}): {total / 100:.2f}" for day, total in totals.items()]


@flow(name="orders-walkthrough")
def pipeline() -> dict[str, Any]:
    """Run every asset; return the report and each task run's final state name."""
    staged = staged_orders.submit(orders_csv())
    totals = daily_totals.submit(staged)
    days = calendar.submit()
    lines = report.submit(totals, days)
    futures = {
        "staging/orders": staged,
        "analytics/daily_totals": totals,
        "reference/calendar": days,
        "analytics/report": lines,
    }
    wait(list(futures.values()))
    return {
        "states": {key: future.state.name for key, future in futures.items()},
        "report": lines.result(),
    }


observe_orders = observation_flow({SOURCE_KEY: lambda: observe_file(orders_csv())}, name="observe-orders-csv")


def run_once(workdir: Path) -> dict[str, Any]:
    """Observe the source, then run the pipeline, with store and CSV under `workdir`."""
    os.environ.setdefault("INSYNC_HOME", str(workdir / ".insync"))
    os.environ.setdefault("WALKTHROUGH_ORDERS_CSV", str(workdir / "orders.csv"))
    if not orders_csv().exists():
        orders_csv().parent.mkdir(parents=True, exist_ok=True)
        orders_csv().write_text(ORDERS)
    observe_orders()
    return pipeline()


def add_order(workdir: Path, line: str = "2026-11-03,cy,20.00") -> None:
    os.environ.setdefault("WALKTHROUGH_ORDERS_CSV", str(workdir / "orders.csv"))
    with orders_csv().open("a") as handle:
        handle.write(line + "\n")


def serve(workdir: Path) -> None:  # pragma: no cover - runs until interrupted
    """Two deployments in one process: the observer on a schedule, the pipeline on change."""
    from prefect import serve as serve_all

    os.environ.setdefault("INSYNC_HOME", str(workdir / ".insync"))
    os.environ.setdefault("WALKTHROUGH_ORDERS_CSV", str(workdir / "orders.csv"))
    serve_all(
        observe_orders.to_deployment(name="observe-orders-csv", interval=60),
        pipeline.to_deployment(name="orders-walkthrough", triggers=[source_changed_trigger(SOURCE_KEY)]),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=["run", "add-order", "serve"])
    parser.add_argument("--workdir", type=Path, default=Path("insync-walkthrough"))
    args = parser.parse_args()
    workdir = args.workdir.resolve()
    if args.command in ("run", "serve"):
        try:
            ensure_prefect_api()  # a temporary server takes 10-30 s: say so, not wait in silence
        except InsyncError as exc:
            sys.exit(f"error: {exc}")
    if args.command == "run":
        result = run_once(workdir)
        for key, state in result["states"].items():
            print(f"{key:24} {state}")
        print("\n".join(result["report"]))
    elif args.command == "add-order":
        add_order(workdir)
    else:
        serve(workdir)


if __name__ == "__main__":
    main()
