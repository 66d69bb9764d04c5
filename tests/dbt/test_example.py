"""The README walkthrough runs, and each step builds what the README says it does.

The README's commands themselves run in tests/test_readme_commands.py."""

from __future__ import annotations

import importlib.util
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "dbt"


def test_walkthrough(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("shop_walkthrough", EXAMPLE / "walkthrough.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    built = list(module.main(tmp_path).values())
    assert len(built[0]) == 9
    assert built[1] == []
    assert built[2] == ["stg_orders", "orders", "customers", "revenue_by_country"]
    assert built[3] == ["stg_customers"]
    assert built[4] == ["stg_orders", "stg_payments", "orders", "customers", "revenue_by_country"]

