"""`insync dbt build` sends insync's OpenLineage events (dbt-ol has no hook for custom facets)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING, Any

from insync.core import AssetKey

if TYPE_CHECKING:
    from tests.dbt.conftest import Shop

_DATA = Path(__file__).parents[1] / "data" / "openlineage"
_spec = importlib.util.spec_from_file_location("ol_validate", _DATA / "ol_validate.py")
assert _spec is not None and _spec.loader is not None
ol_validate = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ol_validate)


ol_file = ol_validate.ol_file


def test_build_emits_valid_events_for_built_and_reused_nodes(built_shop: Shop, ol_file: Path) -> None:
    built_shop.replace("models/marts/customers.sql", "    c.country,", "    upper(c.country) as country,")
    report = built_shop.build()
    assert report.success, report.render()
    events = ol_validate.read_events(ol_file)
    for event in events:
        ol_validate.validate_event(event)
    complete: dict[str, dict[str, Any]] = {
        e["outputs"][0]["name"]: e for e in events if e["eventType"] == "COMPLETE"
    }
    assert len(events) == 2 * len(complete)
    assert set(complete) == {str(o.asset.key) for o in report.outcomes}
    customers = complete["shop/main/customers"]
    facet = customers["outputs"][0]["facets"]["insync"]
    assert (facet["decision"], facet["status"], facet["framework"]) == ("run", "STALE", "dbt")
    assert {c["category"] for c in facet["causes"]} == {"CODE"}
    recorded = built_shop.store.latest_event(AssetKey(["shop", "main", "customers"]))
    assert recorded is not None
    assert customers["outputs"][0]["facets"]["version"]["datasetVersion"] == str(recorded.data_version)
    assert {i["name"] for i in customers["inputs"]} == {str(i.key) for i in recorded.inputs}
    assert (customers["job"]["namespace"], customers["job"]["name"]) == ("dbt", "model.shop.customers")
    orders = complete["shop/main/orders"]["outputs"][0]["facets"]["insync"]
    assert (orders["decision"], orders["status"]) == ("skip", "FRESH")
