"""dbt-ol's own OpenLineage events for the dbt calls of `insync dbt build`, with insync's facets.

`dbt-ol` runs dbt, then builds its events from target/manifest.json, target/run_results.json and
the profile, with openlineage-dbt's `DbtLocalArtifactProcessor`. insync runs dbt in-process, so
it runs that processor itself after each dbt call, as dbt-ol would after `dbt build` of the same
nodes: the same wrapper job (`dbt-run-<project>`, its run the nodes' `parent`), job names,
namespaces, datasets and facets. `merge` then adds insync's facets to the events of the nodes
insync decided. Imported only when OpenLineage is on: it imports openlineage-dbt (untyped:
no py.typed, hence the ignores).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping, Sequence
from typing import Any, Final

from insync.core import _lineage_client
from insync.core._lineage import StepLineage
from openlineage.client.event_v2 import RunEvent, RunState
from openlineage.common.provider.dbt.local import (  # type: ignore[import-untyped]
    DbtLocalArtifactProcessor,
)
from openlineage.common.provider.dbt.processor import (  # type: ignore[import-untyped]
    ParentRunMetadata,
)
from openlineage.common.provider.dbt.utils import (  # type: ignore[import-untyped]
    PRODUCER,
    get_parent_run_metadata,
)
from openlineage.dbt import (  # type: ignore[import-untyped]
    dbt_run_event_end,
    dbt_run_event_failed,
    dbt_run_event_start,
)

from ._runner import DbtArgs, _value_of

__all__ = ["DbtOlCall", "merge"]

log = logging.getLogger("insync.adapters.dbt")

# run_results statuses after which `dbt` exits non-zero: dbt-ol then ends its wrapper run FAIL.
_FAILING: Final = frozenset({"error", "fail", "runtime error", "partial success"})
# Facets dbt-ol copies from the first node event to its wrapper events.
_WRAPPER_FACETS: Final = ("dbt_version", "processing_engine", "dbt_run")
# The execution events of a node; the others (TEST) are its tests.
_EXECUTION: Final = frozenset({"MODEL", "SNAPSHOT"})


class _Processor(DbtLocalArtifactProcessor):  # type: ignore[misc]  # untyped
    """The processor, keeping run_results (dbt-ol reads dbt's exit code instead)."""

    run_result: dict[str, Any]

    def get_dbt_metadata(self) -> Any:
        manifest, run_result, profile, catalog = super().get_dbt_metadata()
        self.run_result = run_result
        return manifest, run_result, profile, catalog


class DbtOlCall:
    """One dbt call: create it just before dbt runs (as dbt-ol emits its wrapper START), then
    `events()` once dbt returned.

    :raises Exception: whatever the processor raises on this project (no dbt_project.yml
        profile, ...): the caller falls back to insync's own events.
    """

    def __init__(self, args: DbtArgs) -> None:
        namespace = os.environ.get("OPENLINEAGE_NAMESPACE", "dbt")  # as dbt-ol reads it
        selection = args.selection
        models = [v for i, v in enumerate(selection) if i and selection[i - 1] == "--select"]
        self.processor = _Processor(
            producer=PRODUCER,
            job_namespace=namespace,
            project_dir=args.project_dir,
            profile_name=_value_of(args.project, "--profile"),
            target=_value_of(args.project, "--target") or _value_of(args.project, "-t"),
            target_path=_value_of(args.project, "--target-path"),
            models=models,
            selector=_value_of(selection, "--selector"),
            openlineage_job_name=os.getenv("OPENLINEAGE_DBT_JOB_NAME"),
            logger=log,
        )
        parent = get_parent_run_metadata()
        self.parent = parent
        self.start = dbt_run_event_start(job_name=self.processor.job_name, job_namespace=namespace,
                                         parent_run_metadata=parent)
        # The root of the nodes' parent chain, as dbt-ol sets it: the orchestrator's root if
        # all of it is known, else the orchestrator's run, else the wrapper run itself.
        root: tuple[str, str, str] = (self.start.run.runId, self.start.job.name,
                                      self.start.job.namespace)
        if parent is not None:
            full = (parent.root_parent_run_id, parent.root_parent_job_name,
                    parent.root_parent_job_namespace)
            root = full if all(full) else (parent.run_id, parent.job_name, parent.job_namespace)
        self.processor.dbt_run_metadata = ParentRunMetadata(
            run_id=self.start.run.runId, job_name=self.start.job.name,
            job_namespace=self.start.job.namespace, root_parent_run_id=root[0],
            root_parent_job_name=root[1], root_parent_job_namespace=root[2])
        self._before = time.time()

    def events(self) -> list[RunEvent]:
        """The wrapper START, the processor's node events, the wrapper COMPLETE (FAIL if a node
        failed), as dbt-ol emits them.

        :raises FileNotFoundError: dbt wrote no run_results.json there.
        :raises RuntimeError: dbt did not rewrite it in this call (`--no-write-json`).
        """
        path = self.processor.run_result_path
        if os.stat(path).st_mtime < self._before:
            raise RuntimeError(f"dbt did not write {path} in this call (--no-write-json?)")
        nodes: list[RunEvent] = self.processor.parse().events()
        statuses = {str(r.get("status")) for r in self.processor.run_result.get("results", ())}
        wrapper = self.start.run.runId, self.start.job.namespace, self.start.job.name
        end_event = dbt_run_event_failed if statuses & _FAILING else dbt_run_event_end
        end = end_event(run_id=wrapper[0], job_namespace=wrapper[1], job_name=wrapper[2],
                        parent_run_metadata=self.parent)
        if nodes:
            first = nodes[0].run.facets or {}
            copied = {k: first[k] for k in _WRAPPER_FACETS if k in first}
            self.start.run.facets.update(copied)
            end.run.facets.update(copied)
        return [self.start, *nodes, end]


def merge(
    calls: Sequence[Sequence[RunEvent]],
    nodes: Mapping[str, tuple[StepLineage, str | None]],
) -> tuple[list[RunEvent], set[str]]:
    """dbt-ol's events of these calls with insync's facets added; and the nodes that got them.

    `nodes`: by unique id, the lineage of each node insync would send a pair for, and its
    failure (None: it built and was recorded). A recorded node's START and COMPLETE get insync's
    run facet, and the version and insync facets on its output dataset; a failed node's (and
    the FAIL of a node's failing tests) the run facet only, with dbt's error as `errorMessage`.
    Events of other nodes (tests that passed, sources, nodes insync does not track) pass as
    they are.
    """
    out: list[RunEvent] = []
    covered: set[str] = set()
    for call in calls:
        for event in call:
            facets = event.job.facets or {}
            uid: str | None = getattr(facets.get("dbt_node"), "unique_id", None)
            job_type = getattr(facets.get("jobType"), "jobType", None)
            found = nodes.get(uid) if uid is not None else None
            if uid is None or found is None or (job_type not in _EXECUTION and (
                    found[1] is None or event.eventType != RunState.FAIL)):
                out.append(event)
                continue
            lineage, failure = found
            run = _lineage_client.run_facets(lineage)
            if failure is None:
                out.append(_lineage_client.with_facets(
                    event, run=run, outputs=_lineage_client.dataset_facets(lineage)))
            else:
                if event.eventType == RunState.FAIL:
                    run = {**run, **_lineage_client.error_facets(failure)}
                out.append(_lineage_client.with_facets(event, run=run))
            covered.add(uid)
    return out, covered
