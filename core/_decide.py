"""Skip or run: the one rule every adapter applies, and the one line it logs.

Pure functions over a status: `Step` applies `decide` to one asset, dbt's planner to each node
of a selection (and adds only what one dbt call changes: parents rebuilt in that same call).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from ._model import AssetStatus, StaleStatus

__all__ = ["decide", "decision_line", "stale_reason"]

_SHOWN: Final = 3  # root causes named in one line; the rest are counted


def stale_reason(status: AssetStatus) -> str:
    """Why `status` is not FRESH, in a few words: "never materialized", or its root causes
    (a cause of the asset itself names it once; more than three are counted)."""
    if status.status is StaleStatus.MISSING:
        return "never materialized"
    if status.status is not StaleStatus.STALE:
        return ""
    causes = status.root_causes or status.causes
    # The rollup of a partitioned asset: the caller names its partitions ("batches ..."), so a
    # cause of its own reads once ("has a new code version"); an upstream partition stays named.
    rollup = status.partition is None
    lines = [f"{c.key} {c.reason}" if rollup and c.key == status.key else str(c) for c in causes]
    unique = list(dict.fromkeys(lines))
    text = "; ".join(unique[:_SHOWN]) or "unsynced"
    return text + (f" (and {len(unique) - _SHOWN} more)" if len(unique) > _SHOWN else "")


def decide(
    status: AssetStatus,
    *,
    code_version: str | None,
    force: bool | str = False,
    unseen_inputs: Sequence[str] = (),
    same_run: bool = False,
) -> tuple[bool, str]:
    """(skip, reason): skip iff the asset has a code version, is FRESH, reads nothing insync
    cannot see and is not forced. `force` may be the reason to give ("--full-refresh ...").
    `same_run`: this run already materialized it, so a retry skips even without a code version.
    """
    if status.status is not StaleStatus.FRESH:
        return False, stale_reason(status)
    if force:
        return False, force if isinstance(force, str) else "forced"
    if unseen_inputs:
        return False, f"reads inputs insync cannot see: {', '.join(unseen_inputs)}"
    if code_version is None and not same_run:
        return False, "no code version, so it always runs"
    return True, "already materialized in this run" if same_run else ""


def decision_line(skip: bool, label: str, status: StaleStatus, reason: str = "") -> str:
    """`skip KEY: Synced`, `run KEY: Unsynced, <root causes>`, `run KEY: Never materialized`: the
    status in the words of `insync status` and the catalog (`StaleStatus.label`)."""
    # "never materialized" is the reason decide() gives for MISSING: the label already says it.
    said = reason and reason.lower() != status.label.lower()
    return f"{'skip' if skip else 'run'} {label}: {status.label}{f', {reason}' if said else ''}"
