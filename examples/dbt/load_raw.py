"""The loader that fills the shop's raw tables (in real life an Airflow or Prefect task).

    python load_raw.py            # create raw.orders and raw.payments with the first orders
    python load_raw.py --more     # a new day: append orders and payments
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import duckdb

FIRST_ORDERS = [
    (1, 1, "A1", 2, "2026-11-01 09:00:00"),
    (2, 2, "C3", 1, "2026-11-01 10:30:00"),
    (3, 3, "B2", 5, "2026-11-02 14:00:00"),
    (4, 1, "B2", 1, "2026-11-03 08:15:00"),
]
FIRST_PAYMENTS = [(1, 1, 900), (2, 2, 3900), (3, 3, 600), (4, 4, 120)]
MORE_ORDERS = [(5, 4, "A1", 3, "2026-11-04 11:00:00"), (6, 5, "C3", 2, "2026-11-04 12:00:00")]
MORE_PAYMENTS = [(5, 5, 1350), (6, 6, 7800)]


def load(database: str | os.PathLike[str], *, more: bool = False) -> None:
    """Create the raw tables (first batch), or append the next batch with `more`."""
    with duckdb.connect(str(database)) as con:
        con.execute("create schema if not exists raw")
        if not more:
            con.execute("create or replace table raw.orders (order_id integer, customer_id "
                        "integer, sku varchar, quantity integer, ordered_at timestamp)")
            con.execute("create or replace table raw.payments (payment_id integer, order_id "
                        "integer, amount_cents integer)")
        orders, payments = (MORE_ORDERS, MORE_PAYMENTS) if more else (FIRST_ORDERS, FIRST_PAYMENTS)
        con.executemany("insert into raw.orders values (?, ?, ?, ?, ?)", orders)
        con.executemany("insert into raw.payments values (?, ?, ?)", payments)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--more", action="store_true", help="append the next day's orders")
    parser.add_argument("--database", default=os.environ.get("SHOP_DUCKDB", "shop.duckdb"),
                        help="DuckDB file (default: $SHOP_DUCKDB or shop.duckdb)")
    args = parser.parse_args()
    load(Path(args.database), more=args.more)
    print(f"loaded {'more' if args.more else 'first'} raw orders into {args.database}")
