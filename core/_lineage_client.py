"""The part of insync's OpenLineage support that imports openlineage-python.

Imported only once `_lineage.lineage_enabled()` said OpenLineage is configured, so a process
without OpenLineage never loads the client.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import replace
from importlib import metadata
from typing import Any

import attr
import pendulum
from openlineage.client import OpenLineageClient
from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
from openlineage.client.facet_v2 import DatasetFacet, RunFacet, dataset_version_dataset, error_message_run
from openlineage.client.uuid import generate_new_uuid

from ._lineage import DATASET_NAMESPACE, FACET_NAME, FACET_SCHEMA, StepLineage, facet_body

__all__ = [
    "InsyncDatasetFacet",
    "InsyncRunFacet",
    "dataset_facets",
    "emit_pairs",
    "error_facets",
    "input_datasets",
    "output_dataset",
    "producer",
    "reset",
    "run_facets",
    "with_facets",
]

log = logging.getLogger("insync")

_CLIENT: OpenLineageClient | None = None
_WARNED = False
_PAUSED_UNTIL = 0.0
_PAUSE_S = 60
_LOCK = threading.Lock()


def producer() -> str:
    """`_producer` of insync's facets and events: this insync release."""
    try:
        version = metadata.version("insync")
    except metadata.PackageNotFoundError:  # a source tree that was never installed
        version = "unknown"
    return f"https://insync.dev/insync/{version}"


@attr.define(slots=False)  # a mixin: two slotted bases cannot be combined
class _InsyncFields:
    """The fields of insync's facets (schema: `InsyncDecision` in InsyncFacets.json)."""

    asset: str = ""
    decision: str = ""
    status: str = ""
    dataVersion: str = ""
    reason: str = ""
    message: str = ""
    codeVersion: str | None = None
    partition: str | None = None
    framework: str | None = None
    parameters: dict[str, str] = attr.field(factory=dict)
    inputs: list[dict[str, Any]] = attr.field(factory=list)
    causes: list[dict[str, Any]] = attr.field(factory=list)


@attr.define
class InsyncRunFacet(RunFacet, _InsyncFields):
    """insync's decision for this run, with the asset's versions and provenance."""

    @staticmethod
    def _get_schema() -> str:
        return f"{FACET_SCHEMA}#/$defs/InsyncRunFacet"


@attr.define
class InsyncDatasetFacet(DatasetFacet, _InsyncFields):
    """The same fields on the output dataset: its version, code version, provenance, decision."""

    @staticmethod
    def _get_schema() -> str:
        return f"{FACET_SCHEMA}#/$defs/InsyncDatasetFacet"


def run_facets(lineage: StepLineage) -> dict[str, RunFacet]:
    """`{"insync": InsyncRunFacet}` for one decision."""
    return {FACET_NAME: InsyncRunFacet(**facet_body(lineage), producer=producer())}


def dataset_facets(lineage: StepLineage) -> dict[str, DatasetFacet]:
    """The output dataset's facets: the standard `version` (the insync data version) and insync's."""
    return {
        "version": dataset_version_dataset.DatasetVersionDatasetFacet(
            datasetVersion=lineage.data_version, producer=producer()
        ),
        FACET_NAME: InsyncDatasetFacet(**facet_body(lineage), producer=producer()),
    }


def output_dataset(lineage: StepLineage) -> OutputDataset:
    return OutputDataset(namespace=DATASET_NAMESPACE, name=lineage.key, facets=dataset_facets(lineage))


def error_facets(failed: BaseException | str) -> dict[str, RunFacet]:
    """`{"errorMessage": ErrorMessageRunFacet}`: the exception's type and text, and its traceback
    (an error message alone, as dbt reports one, has none)."""
    if isinstance(failed, BaseException):
        message = f"{type(failed).__name__}: {failed}"
        trace: str | None = "".join(traceback.format_exception(failed))
    else:
        message, trace = failed, None
    return {"errorMessage": error_message_run.ErrorMessageRunFacet(
        message=message, programmingLanguage="python", stackTrace=trace, producer=producer())}


def with_facets(
    event: RunEvent,
    *,
    run: Mapping[str, RunFacet] | None = None,
    outputs: Mapping[str, DatasetFacet] | None = None,
) -> RunEvent:
    """A copy of another producer's event with these facets added: `run` on its run, `outputs`
    on each of its output datasets. Its own facets are kept (one of the same name is replaced);
    the event itself is not changed (a producer may share its run between START and COMPLETE)."""
    new_run = attr.evolve(event.run, facets={**(event.run.facets or {}), **(run or {})})
    new_outputs = event.outputs
    if outputs:
        new_outputs = [attr.evolve(o, facets={**(o.facets or {}), **outputs})
                       for o in event.outputs or ()]
    return attr.evolve(event, run=new_run, outputs=new_outputs)


def input_datasets(lineage: StepLineage) -> list[InputDataset]:
    """The provenance as input datasets, each with the version the step read (once per asset;
    the partitions read are listed in insync's facet)."""
    versions: dict[str, str | None] = {}
    for i in lineage.inputs:
        key = str(i.key)
        # Several partitions of one input: the dataset has no single version that was read.
        versions[key] = str(i.data_version) if key not in versions else None
    out = []
    for key, version in versions.items():
        facets: dict[str, DatasetFacet] = {}
        if version is not None:
            facets["version"] = dataset_version_dataset.DatasetVersionDatasetFacet(
                datasetVersion=version, producer=producer()
            )
        out.append(InputDataset(namespace=DATASET_NAMESPACE, name=key, facets=facets))
    return out


def _client() -> OpenLineageClient:
    global _CLIENT
    with _LOCK:
        if _CLIENT is None:
            _CLIENT = OpenLineageClient()
        return _CLIENT


def reset() -> None:
    global _CLIENT, _WARNED, _PAUSED_UNTIL
    with _LOCK:
        client, _CLIENT, _WARNED, _PAUSED_UNTIL = _CLIENT, None, False, 0.0
    if client is not None:
        client.close(timeout=5)


def emit(event: RunEvent) -> bool:
    """Send one event; False if it failed (no backend, bad config).

    The first failure logs one warning per process, and emission pauses for `_PAUSE_S`: a
    lineage backend that is down would otherwise cost every step the transport's retries.
    """
    global _WARNED, _PAUSED_UNTIL
    if time.monotonic() < _PAUSED_UNTIL:
        return False
    try:
        _client().emit(event)
        return True
    except Exception as exc:
        _PAUSED_UNTIL = time.monotonic() + _PAUSE_S
        if not _WARNED:
            _WARNED = True
            log.warning("OpenLineage: cannot emit events (%s: %s); the steps are unaffected; "
                        "emission pauses for %d s after each failure, and later failures are not "
                        "logged", type(exc).__name__, exc, _PAUSE_S)
        return False


def emit_pairs(
    lineages: Sequence[StepLineage],
    *,
    job_names: Sequence[str],
    run_ids: Sequence[str | None],
    started: pendulum.DateTime | None,
    namespace: str,
    failures: Sequence[BaseException | str | None],
) -> None:
    """A START and a COMPLETE event per decision (a skip too: the run happened, and reused);
    START and FAIL for a decision whose `failures` entry is not None (see `emit_step`)."""
    now = pendulum.now("UTC")
    for lineage, job_name, run_id, failed in zip(lineages, job_names, run_ids, failures, strict=True):
        try:
            end: RunState = RunState.COMPLETE
            end_facets: dict[str, RunFacet] = {}
            if failed is None:
                outputs = [output_dataset(lineage)]
            else:
                # It ran (even a skip whose value was gone) and recorded nothing: no version.
                lineage = replace(lineage, skip=False)
                outputs = [OutputDataset(namespace=DATASET_NAMESPACE, name=lineage.key)]
                end, end_facets = RunState.FAIL, error_facets(failed)
            facets = run_facets(lineage)
            uuid = run_id or str(generate_new_uuid())
            job = Job(namespace=namespace, name=job_name)
            inputs = input_datasets(lineage)
        except Exception as exc:  # a malformed value must not fail the step either
            emit_failed(exc)
            continue
        for state, at, extra in ((RunState.START, started or now, {}), (end, now, end_facets)):
            run = Run(runId=uuid, facets={**facets, **extra})
            if not emit(RunEvent(eventType=state, eventTime=at.isoformat(), run=run, job=job,
                                 inputs=inputs, outputs=outputs, producer=producer())):
                return


def emit_failed(exc: Exception) -> None:
    global _WARNED
    if not _WARNED:
        _WARNED = True
        log.warning("OpenLineage: cannot build an event (%s: %s); the steps are unaffected",
                    type(exc).__name__, exc)
