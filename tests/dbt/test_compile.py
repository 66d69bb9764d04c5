"""Compiling only what changed gives the code versions a full compile gives.

Each case warms target/insync_compiled.json, edits the project, takes the versions through the
fast path, deletes the file and takes them again from a full compile: they must be equal, the
edited nodes' versions must have moved, and the fast path must have compiled only what the edit
touched.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest
from insync.adapters.dbt._compile import CACHE_FILE

if TYPE_CHECKING:
    from tests.dbt.conftest import Shop

USES_VAR = "select * from {{ ref('stg_orders') }} where quantity >= {{ var('min_quantity', 1) }}\n"
EPHEMERAL = ("{{ config(materialized='ephemeral') }}\n"
             "select * from {{ ref('stg_orders') }} where quantity > 1\n")


def versions(shop: Shop, *args: str) -> dict[str, str | None]:
    report = shop.project().status(*args, observe=False)
    return {o.asset.name: o.asset.code_version for o in report.outcomes}


def compiled_counts(records: list[logging.LogRecord]) -> tuple[int, int] | None:
    """(compiled, of) from the last `dbt compile of N of M` line; (0, 0) if compile was skipped."""
    found = None
    for record in records:
        text = record.getMessage()
        match = re.match(r"dbt compile of (\d+) of (\d+)", text)
        if match:
            found = (int(match[1]), int(match[2]))
        elif text.startswith("dbt compile skipped"):
            found = (0, 0)
    return found


def edit_model(shop: Shop) -> None:
    shop.replace("models/marts/customers.sql", "group by 1, 2, 3", "group by all")


def edit_macro(shop: Shop) -> None:
    shop.replace("macros/cents_to_dollars.sql", "/ 100.0, 2)", "/ 100.0, 3)")


def edit_source(shop: Shop) -> None:
    shop.replace("models/sources.yml", "    schema: raw\n", "    schema: landing\n")


def edit_ephemeral(shop: Shop) -> None:
    shop.replace("models/staging/big_orders.sql", "quantity > 1", "quantity > 2")


def add_models(shop: Shop) -> None:
    shop.edit("models/marts/uses_var.sql", USES_VAR)
    shop.edit("models/staging/big_orders.sql", EPHEMERAL)
    shop.edit("models/marts/big_order_count.sql", "select count(*) as n from {{ ref('big_orders') }}\n")


# (edit, dbt args after the edit, nodes whose version moves, how many nodes the fast path compiles)
CASES: dict[str, tuple[Callable[[Shop], None], tuple[str, ...], set[str], int | None]] = {
    "one model": (edit_model, (), {"customers"}, 1),
    "a macro": (edit_macro, (), {"stg_payments", "stg_products"}, None),  # every node: macros are global
    "vars": (lambda shop: None, ("--vars", "{min_quantity: 2}"), {"uses_var"}, None),
    "a source file": (edit_source, (), {"stg_orders", "stg_payments"}, 2),
    "an ephemeral model": (edit_ephemeral, (), {"big_order_count"}, 1),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_fast_path_versions_equal_a_full_compile(
    built_shop: Shop, case: str, caplog: pytest.LogCaptureFixture
) -> None:
    edit, args, moved, compiled = CASES[case]
    cache = built_shop.dir / "target" / CACHE_FILE
    add_models(built_shop)
    before = versions(built_shop)
    assert cache.exists()
    with caplog.at_level(logging.INFO, logger="insync.adapters.dbt"):
        assert versions(built_shop) == before
        assert compiled_counts(caplog.records) == (0, 0)  # nothing changed: nothing compiled
        caplog.clear()
        edit(built_shop)
        fast = versions(built_shop, *args)
        counts = compiled_counts(caplog.records)
    assert {name for name in fast if fast[name] != before.get(name)} == moved
    assert counts is not None
    if compiled is not None:
        assert counts[0] == compiled and counts[1] > compiled
    else:
        assert counts[0] == counts[1] > 0
    cache.unlink()
    assert versions(built_shop, *args) == fast
