"""The README walkthrough as one script: `python examples/dbt/walkthrough.py`.

Copies the shop project to a temporary folder (or DIR), then: full build, no-op rebuild,
edit a staging model, cosmetic refactor under a content version, new source data.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from load_raw import load  # noqa: E402


def _replace(path: Path, old: str, new: str) -> None:
    path.write_text(path.read_text().replace(old, new))


def main(workdir: str | os.PathLike[str] | None = None) -> dict[str, list[str]]:
    """Run every step; returns what each step built (used by the tests)."""
    from insync.adapters.dbt import DbtProject

    os.environ.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
    root = Path(workdir or tempfile.mkdtemp(prefix="insync-dbt-walkthrough-"))
    project_dir = root / "shop"
    shutil.copytree(HERE / "shop", project_dir,
                    ignore=shutil.ignore_patterns("target", "logs", "*.duckdb"))
    warehouse = project_dir / "shop.duckdb"
    previous = os.environ.get("SHOP_DUCKDB")
    os.environ["SHOP_DUCKDB"] = str(warehouse)
    built: dict[str, list[str]] = {}
    project = DbtProject(project_dir, profiles_dir=project_dir,
                         store=f"sqlite:///{root / '.insync' / 'insync.db'}",
                         dbt_args=["--log-level", "warn"])
    try:
        def step(title: str) -> None:
            report = project.build()
            print(f"\n== {title}\n{report.render()}")
            built[title] = report.built

        load(warehouse)
        step("1. full build: everything is new")
        step("2. no-op rebuild: everything reused, dbt not even called")
        _replace(project_dir / "models/staging/stg_orders.sql", "    quantity,",
                 "    quantity,\n    quantity > 1 as is_bulk,")
        step("3. edit stg_orders: it and its descendants rebuild")
        (project_dir / "models/staging/stg_customers.sql").write_text(
            "with source as (select * from {{ ref('raw_customers') }})\n"
            "select id as customer_id, concat(first_name, ' ', last_name) as customer_name,"
            " country\nfrom source\n")
        step("4. cosmetic refactor of stg_customers (content version): only it rebuilds")
        load(warehouse, more=True)
        step("5. new source data: the chain from raw.orders/raw.payments rebuilds")
    finally:
        project.close()
        if previous is None:
            os.environ.pop("SHOP_DUCKDB", None)
        else:
            os.environ["SHOP_DUCKDB"] = previous
    return built


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
