"""OpenLineage for `insync dbt build`: insync's own events, one START/COMPLETE pair per node.

Why not dbt-ol's events: `dbt-ol` runs `dbt` itself, as a subprocess, and builds its events from
fixed manifest and run_results fields. It has no hook for custom facets (a node's `meta` only
becomes string tags on the run), and it would run plain `dbt build`, rebuilding what insync
reuses. So `insync dbt build` sends the events: each built or reused node is a run whose output
dataset is the node's asset (namespace `insync`, the name its asset key, as every adapter names
assets) with the standard version facet and insync's facet. Job namespace: `OPENLINEAGE_NAMESPACE`,
else `dbt`, as dbt-ol uses; job name: the node's unique id. A node dbt failed (an error, failed
batches, failing tests: insync recorded nothing for it) sends START/FAIL with dbt's message as the
`errorMessage` facet; a node dbt skipped because an upstream node failed never ran, and sends
nothing. Nothing happens (and openlineage is not imported) unless OpenLineage is configured.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from insync.core import AssetKey, AssetStatus, Event, EventStore, decision_line
from insync.core._lineage import StepLineage, emit_steps, lineage_enabled

from ._manifest import FRAMEWORK
from ._report import NodeOutcome

__all__ = ["emit_build_lineage"]

_EMITTED = frozenset({"built", "reused"})
# Ran and recorded nothing (a microbatch model's built batches excepted): START/FAIL. "skipped"
# (upstream failed) never ran, and emits nothing.
_FAILED = frozenset({"failed", "test failed"})


def emit_build_lineage(
    store: EventStore,
    outcomes: Sequence[NodeOutcome],
    before: Mapping[AssetKey, AssetStatus],
    recorded: Sequence[Event],
) -> None:
    """Emit a pair per built node (one per batch of a microbatch model) and per reused node, and
    START/FAIL per failed node (after a pair per batch it did build, for a microbatch model).

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
    emit_steps(lineages, job_names=jobs, job_namespace_=os.environ.get("OPENLINEAGE_NAMESPACE") or "dbt",
               failures=failures)


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
