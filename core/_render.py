"""Rendering for people and machines: the plain-words explanation and the stable JSON of
statuses and events, shared by the CLI, the catalog and the dbt adapter's CLI.

Plain strings and dicts only: the catalog imports this without click or rich (the CLI's console
imports rich when it is built).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

from ._model import AssetStatus, Event, PartitionCounts, StaleCause, StaleStatus

if TYPE_CHECKING:
    from rich.console import Console

__all__ = [
    "cause_lines",
    "console",
    "event_to_json",
    "explain",
    "keys_text",
    "output_width",
    "parameters_text",
    "preview",
    "rollup_text",
    "short",
    "status_to_json",
]

SHOWN: Final = 3  # partition keys and causes listed before "… N more"
PIPED_WIDTH: Final = 1000  # columns of output piped to a file or `grep`: no table row is that wide


def output_width() -> int | None:
    """Columns for the CLI's tables: None (rich's own choice: the terminal's width, or $COLUMNS)
    on a terminal; piped, where rich would assume 80 and cut `walkthrough/multiplied_number` to
    `walkthrough/multipl…`, wide enough that every key and reason prints whole on its line."""
    if os.environ.get("COLUMNS") or sys.stdout.isatty():
        return None
    return PIPED_WIDTH


def console() -> Console:
    """The rich console the CLI prints with (see `output_width`)."""
    from rich.console import Console

    return Console(width=output_width())


def explain(s: AssetStatus) -> list[str]:
    """The plain-words explanation shared by `insync why` and the UI.

    For a partitioned asset's rollup it counts the partitions and says when the root causes
    come from only the first of many Unsynced partitions.
    """
    lines = [f"{s.label}: {s.status.label}"]
    counts = s.partitions
    if counts is not None:
        lines.append(f"  partitions: {rollup_text(counts)}")
    if s.status is StaleStatus.MISSING:
        if counts is None:
            lines.append("  it has never been materialized")
        elif counts.total:
            lines.append(f"  none of its {counts.total} partitions has been materialized")
        else:
            lines.append("  it has no partitions yet")
    for cause in s.root_causes:
        lines.append(f"  root cause: {cause}")
    if counts is not None and counts.unsynced:
        explained = {c.partition for c in s.causes}
        if len(explained) < len(counts.unsynced):
            lines.append(
                f"  root causes shown for the first {len(explained)} of {len(counts.unsynced)} "
                "unsynced partitions"
            )
    for change in s.upstream:
        lines.append(f"  {change}")
    return lines


def rollup_text(counts: PartitionCounts) -> str:
    """`27 synced, 2 unsynced (2026-11-28, 2026-11-29), 1 never materialized (2026-11-30)`."""
    unsynced = f"{len(counts.unsynced)} unsynced" + keys_text(counts.unsynced)
    missing = f"{len(counts.missing)} never materialized" + keys_text(counts.missing)
    return f"{counts.synced} synced, {unsynced}, {missing}"


def keys_text(keys: Sequence[str]) -> str:
    return f" ({', '.join(preview(list(keys), SHOWN))})" if keys else ""


def preview(items: list[str], n: int) -> list[str]:
    """The first `n` items, the last one followed by "… N more" when some were left out."""
    if len(items) <= n:
        return items
    return [*items[: n - 1], f"{items[n - 1]} … {len(items) - n} more"]


def status_to_json(s: AssetStatus) -> dict[str, Any]:
    """Stable JSON for one status (used by `insync status --json`, `why --json` and the UI)."""
    return {
        "key": str(s.key),
        "status": s.status.value,
        "label": s.status.label,
        "kind": s.kind,
        "framework": s.framework,
        "code_version": s.code_version,
        "data_version": str(s.data_version),
        "partition": s.partition,
        "partitions": None if s.partitions is None else _counts_json(s.partitions),
        "parameters": dict(s.parameters),
        "causes": [_cause_json(c) for c in s.causes],
        "root_causes": [_cause_json(c) for c in s.root_causes],
        "upstream": [{"key": str(u.key), "status": u.status.value, "text": str(u)} for u in s.upstream],
    }


def _counts_json(counts: PartitionCounts) -> dict[str, Any]:
    return {
        "total": counts.total,
        "synced": counts.synced,
        "unsynced": list(counts.unsynced),
        "missing": list(counts.missing),
    }


def _cause_json(c: StaleCause) -> dict[str, Any]:
    return {
        "key": str(c.key),
        "partition": c.partition,
        "category": c.category.value,
        "reason": c.reason,
        "dependency": None if c.dependency is None else str(c.dependency),
        "dependency_partition": c.dependency_partition,
        "text": str(c),
        "children": [_cause_json(child) for child in c.children],
    }


def event_to_json(e: Event) -> dict[str, Any]:
    """Stable JSON for one event (used by `insync history --json` and the UI)."""
    return {
        "id": e.id,
        "key": str(e.key),
        "partition": e.partition,
        "kind": e.kind,
        "timestamp": e.timestamp.isoformat(),
        "run_id": e.run_id,
        "framework": e.framework,
        "code_version": e.code_version,
        "data_version": str(e.data_version),
        "user_provided": e.user_provided,
        "metadata": dict(e.metadata),
        "parameters": dict(e.parameters),
        "inputs": [
            {
                "key": str(i.key),
                "partition": i.partition,
                "data_version": str(i.data_version),
                "event_id": i.event_id,
            }
            for i in e.inputs
        ],
    }


def parameters_text(parameters: Sequence[tuple[str, str]]) -> str:
    """`day=value:86f214…, region=value:1c0b2e…`: parameter names with shortened fingerprints."""
    return ", ".join(f"{name}={short(fingerprint)}" for name, fingerprint in parameters)


def short(version: str) -> str:
    return version if len(version) <= 16 else version[:12] + "…"


def cause_lines(causes: Sequence[StaleCause], depth: int = 1) -> list[str]:
    """The cause tree as indented plain lines: `- orders has a new dependency data version (DATA)`."""
    lines = []
    for cause in causes:
        lines.append("  " * depth + f"- {cause} ({cause.category.value})")
        lines.extend(cause_lines(cause.children, depth + 1))
    return lines
