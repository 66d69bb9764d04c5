"""Which selected dbt nodes one dbt invocation must build, and why.

Core answers "is this asset in sync now?". dbt runs a whole selection in one call, so the plan
also needs "will it be out of sync once its parents are rebuilt in this same call?": a child of a
node being rebuilt joins the call when that parent's data version is certain to change (logical
versions: new code or new inputs always give a new version). A parent with a content data
version may come out byte-identical (a cosmetic refactor), so its children wait: after the call
they are checked again and, only if the content changed, built by one more call.

Incremental models (the rule, see examples/dbt/README.md): one whose inputs did not change is
reused; one whose upstream data changed runs incrementally, as plain dbt would; one whose code or
dependencies changed, or whose table insync has no record of, is rebuilt with --full-refresh (an
incremental run would keep the rows the old code wrote); `--full-refresh` forces every one.
A microbatch model is built batch by batch: only the batches (partitions) that are missing or
unsynced, or that read a window a parent rebuilds in this run.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

import pendulum
from insync.core import (
    AssetKey,
    AssetStatus,
    StaleCauseCategory,
    StaleStatus,
    TimeWindowPartitions,
    decide,
)

from ._manifest import DbtAsset, topological_order

__all__ = ["Decision", "due_windows", "plan"]

_REBUILD_CAUSES = (StaleCauseCategory.CODE, StaleCauseCategory.DEPENDENCIES)


@dataclass(frozen=True, slots=True)
class Decision:
    """Build or reuse one node; `reason` in plain words.

    `partitions` are the batches of a microbatch model to build (None: the whole node);
    `full_refresh` asks dbt to rebuild an incremental model from scratch.
    """

    unique_id: str
    build: bool
    reason: str
    partitions: tuple[str, ...] | None = None
    full_refresh: bool = False
    status: StaleStatus = StaleStatus.MISSING  # the node's status before this call

    @property
    def message(self) -> str:
        """The node's status and why, worded as every adapter words it: `Synced`,
        `Unsynced, orders has a new code version`, `Never materialized`."""
        said = self.reason and self.reason.lower() != self.status.label.lower()
        return self.status.label + (f", {self.reason}" if said else "")


@dataclass(frozen=True, slots=True)
class _Change:
    """A node rebuilt in this run: its key, and the batches it rebuilds (None: all of it)."""

    key: str
    windows: tuple[str, ...] | None
    partitions: TimeWindowPartitions | None
    status: StaleStatus  # before the run

    def why(self, dry_run: bool) -> str:
        """Why its readers are rebuilt: plan words for a build, status words for a dry run."""
        if not dry_run:
            return f"{self.key} is rebuilt in this run"
        if self.status is StaleStatus.FRESH:  # a snapshot, a missing relation, an unobserved input
            return f"upstream {self.key} is rebuilt by the next build"
        return f"upstream {self.key} is {self.status.label}"


def due_windows(asset: DbtAsset, now: pendulum.DateTime,
                bounds: tuple[str | None, str | None] = (None, None)) -> list[str]:
    """The batches of a microbatch model insync may build now: every window from `begin` that
    has ended by `now`, within the user's --event-time-start/--event-time-end."""
    assert asset.partitions is not None
    since = pendulum.parse(bounds[0], tz="UTC") if bounds[0] else pendulum.parse(
        asset.partitions.start, tz="UTC")
    until = min(now, pendulum.parse(bounds[1], tz="UTC")) if bounds[1] else now
    assert isinstance(since, pendulum.DateTime) and isinstance(until, pendulum.DateTime)
    windows: list[str] = asset.partitions.windows(since, until)
    return windows


def _label(status: AssetStatus | None) -> StaleStatus:
    return StaleStatus.MISSING if status is None else status.status


def _first_of(names: Sequence[str], what: str) -> str | None:
    """`a is not observed (and 2 more)`, or None for no names."""
    return _and_more(f"{names[0]} {what}", len(names)) if names else None


def _and_more(first: str, count: int) -> str:
    return first + (f" (and {count - 1} more)" if count > 1 else "")


def _preview(keys: Sequence[str]) -> str:
    shown = ", ".join(keys[:3])
    return shown + (f" and {len(keys) - 3} more" if len(keys) > 3 else "")


def plan(
    assets: Mapping[str, DbtAsset],
    selected: Collection[str],
    statuses: Mapping[AssetKey, AssetStatus],
    *,
    existing: Collection[str] | None = None,
    force: str | None = None,
    unobserved: Collection[str] = (),
    now: pendulum.DateTime | None = None,
    bounds: tuple[str | None, str | None] = (None, None),
    dry_run: bool = False,
) -> list[Decision]:
    """A decision for every selected asset node, parents first.

    `existing` holds `schema.identifier` (lower case) of relations present in the warehouse, or
    None when unknown; `force` is the reason to rebuild everything selected (e.g. --full-refresh);
    `unobserved` the unique ids of sources insync cannot observe (their readers always rebuild);
    `now` cuts the microbatch windows that have ended, within the user's `bounds`; `dry_run`
    (status: nothing runs) words a parent's rebuild as that parent's status.
    """
    now = now or pendulum.now("UTC")
    decisions: list[Decision] = []
    changing: dict[str, _Change] = {}  # nodes whose version will change in this run
    for uid in topological_order(assets, selected):
        asset = assets[uid]
        if asset.is_source:
            continue
        status = statuses.get(asset.key)
        # The core's rule first; then what only dbt knows: snapshots, relations, one call.
        if status is None:
            skip, because = False, "never materialized"
        else:
            skip, because = decide(status, code_version=asset.code_version, force=force or False)
        if skip and asset.always_run:
            skip, because = False, "snapshots always run to capture source changes"
        reason: str | None = None if skip else because
        # The reason concerns some batches only.
        partial = (not force and reason is not None and asset.partitions is not None
                   and status is not None and status.status is StaleStatus.STALE)
        exists = existing is None or asset.relation is None or (
            f"{asset.schema}.{asset.identifier}".lower() in existing)
        if reason is None and not exists:
            reason = f"relation {asset.relation} is missing from the warehouse"
        if reason is None:
            reason = _first_of([assets[p].name for p in asset.parents if p in unobserved],
                               "is not observed")
        windows: tuple[str, ...] | None = None
        if asset.partitions is not None:
            windows = _batches(asset, status, reason, partial, changing, now, bounds)
            if windows:
                if reason is None:
                    # A window that ended since the last build, or one a parent rebuilds now.
                    reason = next((changing[p].why(dry_run) for p in asset.parents
                                   if p in changing), "never materialized")
                if len(windows) < len(due_windows(asset, now, bounds)):
                    reason = f"batches {_preview(windows)}: {reason}"
            else:
                reason = None
        elif reason is None:
            rebuilt = [changing[p] for p in asset.parents if p in changing]
            reason = _and_more(rebuilt[0].why(dry_run), len(rebuilt)) if rebuilt else None
        if reason is None:
            decisions.append(Decision(uid, False, "", status=_label(status)))
            continue
        full = _needs_full_refresh(asset, status, exists, existing is not None) and not force
        if full:
            reason += " (--full-refresh: an incremental run would keep rows the old code wrote)"
        if asset.is_microbatch and asset.partitions is None:
            full = not force
            reason += " (batch_size year: every batch is rebuilt)"
        decisions.append(Decision(uid, True, reason, windows, full, _label(status)))
        if asset.data_version == "logical":
            changing[uid] = _Change(str(asset.key), windows, asset.partitions, _label(status))
    return decisions


def _batches(asset: DbtAsset, status: AssetStatus | None, reason: str | None, partial: bool,
             changing: Mapping[str, _Change], now: pendulum.DateTime,
             bounds: tuple[str | None, str | None]) -> tuple[str, ...]:
    """The batches of a microbatch model to build: all of them for a whole-model reason, else
    its missing and unsynced partitions and the windows its rebuilt parents change."""
    assert asset.partitions is not None
    candidates = due_windows(asset, now, bounds)
    if reason is not None and not partial:
        return tuple(candidates)
    wanted: set[str] = set()
    if status is not None and status.partitions is not None:
        wanted |= set(status.partitions.unsynced) | set(status.partitions.missing)
    for parent in asset.parents:
        change = changing.get(parent)
        if change is None:
            continue
        if change.windows is None or change.partitions is None:
            return tuple(candidates)  # the parent changes as a whole
        if change.partitions.cadence == asset.partitions.cadence:
            wanted |= set(change.windows)
            continue
        for key in change.windows:  # another cadence: the windows of ours it overlaps
            start, end = change.partitions.window(key)
            wanted |= set(asset.partitions.windows(start, end, ended=False))
    return tuple(k for k in candidates if k in wanted)


def _needs_full_refresh(asset: DbtAsset, status: AssetStatus | None, exists: bool,
                        known: bool) -> bool:
    """An incremental (not microbatch) model whose rows another code version may have written."""
    if not asset.is_incremental or asset.is_microbatch:
        return False
    if not exists:
        return False  # dbt creates the table with a full build anyway
    if status is None or status.status is StaleStatus.MISSING:
        return known  # a table insync has no record of: nothing says which code wrote it
    return any(c.category in _REBUILD_CAUSES for c in status.causes)
