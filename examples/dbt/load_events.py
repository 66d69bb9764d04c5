"""The loader of the events project (in real life an Airflow or Prefect task).

    python load_events.py                  # raw.sales for 2026-11-20..24, and raw.fx_rates
    python load_events.py --late 2026-11-22   # a sale that arrives late, dated that day
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import duckdb

DAYS = ["2026-11-20", "2026-11-21", "2026-11-22", "2026-11-23", "2026-11-24"]


def load(database: str | os.PathLike[str], *, late: str | None = None) -> None:
    """Create the raw tables, or add one late sale dated `late`."""
    with duckdb.connect(str(database)) as con:
        con.execute("create schema if not exists raw")
        if late is not None:
            con.execute("insert into raw.sales values (cast(? as timestamp) + interval 18 hour, 40)",
                        [late])
            return
        con.execute("create or replace table raw.sales (sold_at timestamp, amount integer)")
        for i, day in enumerate(DAYS):
            con.execute("insert into raw.sales values (cast(? as timestamp) + interval 10 hour, ?),"
                        " (cast(? as timestamp) + interval 15 hour, ?)",
                        [day, 10 + i, day, 20 + i])
        con.execute("create or replace table raw.fx_rates (currency varchar, rate double)")
        con.execute("insert into raw.fx_rates values ('EUR', 1.0), ('USD', 1.1)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--late", metavar="DAY", help="add a late sale dated DAY")
    parser.add_argument("--database", default=os.environ.get("EVENTS_DUCKDB", "events.duckdb"),
                        help="DuckDB file (default: $EVENTS_DUCKDB or events.duckdb)")
    args = parser.parse_args()
    load(Path(args.database), late=args.late)
    print(f"loaded {'a late sale' if args.late else 'five days of sales'} into {args.database}")
