"""OpenLineage for `insync dbt build`: dbt-ol's own events, with insync's facets added.

After each dbt call, insync builds the events `dbt-ol` would send for it (`_ol_events`: the same
processor, over the manifest.json and run_results.json that call wrote) and adds insync's facets
to them: on a built node's run, the `insync` run facet; on its output dataset (dbt-ol's name,
e.g. `duckdb:///path/shop.duckdb` / `shop.main.orders`), the standard version facet with the
insync data version and insync's facet. A failed node's FAIL (or its failing tests' FAIL) gets
the run facet and dbt's error as `errorMessage`. One stream, dbt-ol's shape: run `insync dbt
build` in place of `dbt-ol build`, not both.

Nodes dbt-ol sends nothing for keep insync's own START/COMPLETE pair (namespace `insync`, the
name the asset key; job namespace `OPENLINEAGE_NAMESPACE`, else `dbt`; job name the unique id):
nodes insync reused (dbt did not run them: a skip is information), seeds (dbt-ol has no seed
events), each batch of a microbatch model (dbt-ol has one event per model), and a failed node
without a dbt-ol FAIL (START/FAIL with dbt's message). If openlineage-dbt is not installed or
its processor fails (an adapter it does not support, no run_results.json), the whole build
sends insync's own events, with one warning saying why. A node dbt skipped because an upstream
node failed never ran, and sends nothing. Nothing happens (and openlineage is not imported)
unless OpenLineage is configured.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from insync.core import AssetKey, AssetStatus, Event, EventStore, decision_line
from insync.core._lineage import StepLineage, emit_steps, lineage_enabled

from ._manifest import FRAMEWORK
from ._report import NodeOutcome
from ._runner import DbtArgs

__all__ = ["DbtOlCapture", "emit_build_lineage"]

log = logging.getLogger("insync.adapters.dbt")

_EMITTED = frozenset({"built", "reused"})
# Ran and recorded nothing (a microbatch model's built batches excepted): START/FAIL. "skipped"
# (upstream failed) never ran, and emits nothing.
_FAILED = frozenset({"failed", "test failed"})


class DbtOlCapture:
    """dbt-ol's events of each dbt call of one build, collected while OpenLineage is on."""

    def __init__(self, args: DbtArgs) -> None:
        self.args = args
        self.calls: list[Any] = []  # per dbt call, its dbt-ol events
        self.unavailable: str | None = None  # why there are none: insync sends its own

    @contextmanager
    def call(self) -> Iterator[None]:
        """Around one dbt call. Never raises for lineage; dbt's own errors pass through."""
        if not lineage_enabled() or self.unavailable is not None:
            yield
            return
        pending = None
        try:
            from ._ol_events import DbtOlCall

            pending = DbtOlCall(self.args)
        except ImportError as exc:
            self.unavailable = f"openlineage-dbt is not installed ({exc}); pip install openlineage-dbt"
        except Exception as exc:
            self.unavailable = f"dbt-ol's processor failed: {type(exc).__name__}: {exc}"
        yield
        if pending is None:
            return
        try:
            self.calls.append(pending.events())
        except Exception as exc:
            self.unavailable = f"dbt-ol's processor failed: {type(exc).__name__}: {exc}"


def emit_build_lineage(
    store: EventStore,
    outcomes: Sequence[NodeOutcome],
    before: Mapping[AssetKey, AssetStatus],
    recorded: Sequence[Event],
    capture: DbtOlCapture | None = None,
) -> None:
    """Emit dbt-ol's events of `capture`'s dbt calls with insync's facets, and insync's own pair
    for each node they do not cover (see the module docstring).

    insync's own events are a pair per built node (one per batch of a microbatch model) and per
    reused node, and START/FAIL per failed node (after a pair per batch it did build, for a
    microbatch model).

    `before`: each node's status when the command first decided it (its causes); `recorded`: the
    materializations the command wrote. A reused node's provenance is that of its last record; a
    failed node's run facet has no provenance (the inputs are recorded with a materialization)
    and keeps the asset's previous data version. Skipped nodes emit nothing.
    """
    if not lineage_enabled():
        return
    by_key: dict[AssetKey, list[Event]] = {}
    for event in recorded:
        by_key.setdefault(event.key, []).append(event)
    lineages: list[StepLineage] = []
    jobs: list[str] = []
    failures: list[str | None] = []
    mergeable: dict[str, tuple[StepLineage, str | None]] = {}
    for outcome in outcomes:
        if outcome.action not in _EMITTED | _FAILED:
            continue
        key = outcome.asset.key
        status = before.get(key)
        if status is None:
            continue
        if outcome.action == "reused":
            latest = store.latest_event(key, kind="materialization")
            events = [latest] if latest is not None else []
        else:
            events = by_key.get(key, [])
        for event in events:
            lineages.append(_lineage(outcome, status, event))
            jobs.append(outcome.asset.unique_id)
            failures.append(None)
        if outcome.action in _FAILED:
            lineages.append(_failed_lineage(status))
            jobs.append(outcome.asset.unique_id)
            failures.append(outcome.error or outcome.reason)
        # dbt-ol's event of a node stands for one decision: not a reuse (dbt did not run it),
        # nor a microbatch model's batches (one event, several versions).
        if outcome.action != "reused" and outcome.asset.partitions is None and \
                len(events) + (outcome.action in _FAILED) == 1:
            mergeable[outcome.asset.unique_id] = (lineages[-1], failures[-1])
    covered: set[str] = set()
    if capture is not None and capture.unavailable is not None:
        log.warning("OpenLineage: insync sends its own events for this dbt build, not dbt-ol's: %s",
                    capture.unavailable)
    elif capture is not None and capture.calls:
        covered = _emit_dbt_ol(capture.calls, mergeable)
    own = [i for i, job in enumerate(jobs) if job not in covered]
    emit_steps([lineages[i] for i in own], job_names=[jobs[i] for i in own],
               job_namespace_=os.environ.get("OPENLINEAGE_NAMESPACE") or "dbt",
               failures=[failures[i] for i in own])


def _emit_dbt_ol(calls: Sequence[Any], mergeable: Mapping[str, tuple[StepLineage, str | None]]) -> set[str]:
    """Send dbt-ol's events with insync's facets; the unique ids they covered."""
    from insync.core import _lineage_client

    from ._ol_events import merge

    try:
        events, covered = merge(calls, mergeable)
    except Exception as exc:  # a malformed value must not fail the build either
        _lineage_client.emit_failed(exc)
        return set()
    for event in events:
        if not _lineage_client.emit(event):
            break
    return covered


def _failed_lineage(status: AssetStatus) -> StepLineage:
    # Why it ran: the decision's reason is not kept past the build; its root cause says it.
    reason = next((c.reason for c in status.root_causes), "")
    return StepLineage(
        key=str(status.key),
        framework=FRAMEWORK,
        skip=False,
        status=status.status.value,
        reason=reason,
        message=decision_line(False, str(status.key), status.status, reason),
        code_version=status.code_version,
        data_version=str(status.data_version),  # unchanged: NULL if never materialized
        causes=status.causes,
    )


def _lineage(outcome: NodeOutcome, status: AssetStatus, event: Event) -> StepLineage:
    skip = outcome.action == "reused"
    reason = "" if skip else outcome.reason
    return StepLineage(
        key=str(event.key),
        framework=event.framework,
        skip=skip,
        status=status.status.value,
        reason=reason,
        message=decision_line(skip, str(event.key), status.status, reason),
        code_version=event.code_version,
        data_version=str(event.data_version),
        partition=event.partition,
        inputs=event.inputs,
        causes=status.causes,
        parameters=dict(event.parameters),
    )
