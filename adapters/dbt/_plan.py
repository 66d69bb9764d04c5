"""Which selected dbt nodes one dbt invocation must build, and why.

Core answers "is this asset in sync now?". dbt runs a whole selection in one call, so the plan
also needs "will it be out of sync once its parents are rebuilt in this same call?": a child of a
node being rebuilt joins the call when that parent's data version is certain to change (logical
versions: new code or new inputs always give a new version). A parent with a content data
version may come out byte-identical (a cosmetic refactor), so its children wait: after the call
they are checked again and, only if the content changed, built by one more call.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

from insync.core import AssetKey, AssetStatus, StaleStatus

from ._manifest import DbtAsset, topological_order

__all__ = ["Decision", "plan"]


@dataclass(frozen=True, slots=True)
class Decision:
    """Build or reuse one node; `reason` in plain words."""

    unique_id: str
    build: bool
    reason: str


def _status_reason(status: AssetStatus) -> str | None:
    if status.status is StaleStatus.MISSING:
        return "never materialized"
    if status.status is StaleStatus.STALE:
        causes = status.root_causes or status.causes
        return "; ".join(str(c) for c in causes) or "unsynced"
    return None


def plan(
    assets: Mapping[str, DbtAsset],
    selected: Collection[str],
    statuses: Mapping[AssetKey, AssetStatus],
    *,
    existing: Collection[str] | None = None,
    force: str | None = None,
) -> list[Decision]:
    """A decision for every selected asset node, parents first.

    `existing` holds `schema.identifier` (lower case) of relations present in the warehouse, or
    None when unknown; `force` is the reason to rebuild everything selected (e.g. --full-refresh).
    """
    decisions: list[Decision] = []
    changing: dict[str, str] = {}  # unique id -> key, for nodes whose version will change
    for uid in topological_order(assets, selected):
        asset = assets[uid]
        if asset.is_source:
            continue
        status = statuses.get(asset.key)
        reason: str | None
        if force:
            reason = force
        elif asset.code_version is None:
            reason = "has no code version"
        elif asset.always_run:
            reason = "snapshots always run to capture source changes"
        elif status is None:
            reason = "never materialized"
        else:
            reason = _status_reason(status)
        if reason is None and existing is not None and asset.relation is not None and (
            f"{asset.schema}.{asset.identifier}".lower() not in existing
        ):
            reason = f"relation {asset.relation} is missing from the warehouse"
        if reason is None:
            moved = [changing[p] for p in asset.parents if p in changing]
            if moved:
                reason = f"{moved[0]} is rebuilt in this run"
                if len(moved) > 1:
                    reason += f" (and {len(moved) - 1} more)"
        if reason is None:
            decisions.append(Decision(uid, False, "in sync"))
            continue
        decisions.append(Decision(uid, True, reason))
        if asset.data_version == "logical":
            changing[uid] = str(asset.key)
    return decisions
