"""OpenLineage: insync's decision and versions as facets, and the run events that carry them.

Framework-free. Off unless OpenLineage is configured the OpenLineage way (`OPENLINEAGE_URL`,
`OPENLINEAGE__TRANSPORT__*`, `OPENLINEAGE_CONFIG` or an `openlineage.yml`); that is checked once
per process, from the environment and two file lookups, without importing openlineage. When on,
the client is built with the client's own configuration loading (`OpenLineageClient()`), and a
failing emission only logs a warning (once per process): lineage never fails a step.

Adapters describe each decision as a `StepLineage` (from `Step`'s decision and event, or from
dbt's plan), and either emit insync's own START/COMPLETE pair (`emit_step`) or hand the facets to
a framework that already emits OpenLineage (`facets_json`, and the helpers in `_lineage_client`).
A step decided "run" whose code then failed emits START/FAIL instead (`failed=`): a failed run
records nothing, so its output carries no version, and the error is the standard
`errorMessage` run facet.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import TYPE_CHECKING, Any, Final

import pendulum

from ._model import InputVersion, StaleCause
from ._render import _cause_json

if TYPE_CHECKING:
    from ._model import Event
    from ._step import StepDecision

__all__ = [
    "DATASET_NAMESPACE",
    "FACET_NAME",
    "FACET_SCHEMA",
    "StepLineage",
    "emit_step",
    "facet_body",
    "facet_schema_path",
    "lineage_enabled",
    "reset_lineage",
    "step_lineage",
]

log = logging.getLogger("insync")

#: Key of insync's facet in `run.facets` and in each output dataset's `facets`.
FACET_NAME: Final = "insync"
#: The facet schema's identity (`$id`); the document ships in the package (`facet_schema_path`).
FACET_SCHEMA: Final = "https://insync.dev/spec/facets/1-0-0/InsyncFacets.json"
#: Where insync names its assets as OpenLineage datasets: name = the asset key, in every adapter,
#: so an asset written by Airflow and read by dbt or Prefect is one dataset in the lineage graph.
DATASET_NAMESPACE: Final = "insync"
_JOB_NAMESPACE_DEFAULT: Final = "default"  # the OpenLineage clients' default job namespace


@dataclass(frozen=True, slots=True)
class StepLineage:
    """One decision of one asset (partition), as OpenLineage will show it.

    `data_version` is the asset's version once the step is done (recorded now, or reused);
    `inputs` the provenance (input versions the step read), `causes` why it was not in sync.
    """

    key: str
    framework: str | None
    skip: bool
    status: str
    reason: str
    message: str
    code_version: str | None
    data_version: str
    partition: str | None = None
    inputs: tuple[InputVersion, ...] = ()
    causes: tuple[StaleCause, ...] = ()
    parameters: Mapping[str, str] = field(default_factory=dict)


def step_lineage(decision: StepDecision, event: Event | None = None) -> StepLineage:
    """The lineage of a `Step.check()` decision; `event`: the materialization it then recorded.

    A skip reports the recorded version and provenance it reused; a run the new ones.
    """
    status = decision.status
    return StepLineage(
        key=str(status.key),
        framework=status.framework if event is None else event.framework,
        skip=decision.skip and event is None,  # a skip whose value was gone ran after all
        status=status.status.value,
        reason=decision.reason,
        message=decision.message,
        code_version=status.code_version if event is None else event.code_version,
        data_version=str(status.data_version if event is None else event.data_version),
        partition=status.partition,
        inputs=decision.inputs if event is None else event.inputs,
        causes=status.causes,
        parameters=dict(status.parameters if event is None else event.parameters),
    )


def facet_body(lineage: StepLineage) -> dict[str, Any]:
    """The fields of insync's facet (without `_producer`/`_schemaURL`): the decision, the code
    version, the data version and the provenance. None values are left out, as the client does."""
    body: dict[str, Any] = {
        "asset": lineage.key,
        "decision": "skip" if lineage.skip else "run",
        "status": lineage.status,
        "reason": lineage.reason,
        "message": lineage.message,
        "dataVersion": lineage.data_version,
        "codeVersion": lineage.code_version,
        "partition": lineage.partition,
        "framework": lineage.framework,
        "parameters": dict(lineage.parameters),
        "inputs": [
            {
                "asset": str(i.key),
                "partition": i.partition,
                "dataVersion": str(i.data_version),
                "eventId": i.event_id,
            }
            for i in lineage.inputs
        ],
        "causes": [_cause_json(c) for c in lineage.causes],
    }
    cleaned: dict[str, Any] = _without_none(body)
    return cleaned


def _without_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_none(v) for v in value]
    return value


def facet_schema_path() -> Any:
    """The shipped JSON schema of insync's facets (an importlib.resources Traversable)."""
    return resources.files("insync.core").joinpath("openlineage", "InsyncFacets.json")


# ---------------------------------------------------------------- configuration, checked once
_ENABLED: bool | None = None
_LOCK = threading.Lock()


def lineage_enabled() -> bool:
    """True when OpenLineage is configured for this process (checked once, then cached).

    The same sources the OpenLineage client reads, without importing it: `OPENLINEAGE_DISABLED`
    turns it off; `OPENLINEAGE_URL`, any `OPENLINEAGE__TRANSPORT...` variable, the file named by
    `OPENLINEAGE_CONFIG`, `./openlineage.yml` or `~/.openlineage/openlineage.yml` turn it on.
    Nothing configured means off (the client itself would fall back to printing to the console).
    """
    global _ENABLED
    if _ENABLED is None:
        _ENABLED = _configured(os.environ)
    return _ENABLED


def _configured(env: Mapping[str, str]) -> bool:
    if env.get("OPENLINEAGE_DISABLED", "").strip().lower() == "true":
        return False
    if env.get("OPENLINEAGE_URL"):
        return True
    if any(k.startswith("OPENLINEAGE__TRANSPORT") and v for k, v in env.items()):
        return True
    candidates = [
        env.get("OPENLINEAGE_CONFIG") or "",
        os.path.join(os.getcwd(), "openlineage.yml"),
        os.path.join(os.path.expanduser("~/.openlineage"), "openlineage.yml"),
    ]
    return any(path and os.path.isfile(path) for path in candidates)


def reset_lineage() -> None:
    """Forget the cached configuration check and client (tests; a process that reconfigures)."""
    global _ENABLED
    from . import _lineage_client

    with _LOCK:
        _ENABLED = None
        _lineage_client.reset()


def job_namespace() -> str:
    """`OPENLINEAGE_NAMESPACE`, else the OpenLineage default, as the clients and dbt-ol read it."""
    return os.environ.get("OPENLINEAGE_NAMESPACE") or _JOB_NAMESPACE_DEFAULT


def emit_step(
    lineage: StepLineage,
    *,
    job_name: str,
    run_id: str | None = None,
    started: pendulum.DateTime | None = None,
    job_namespace_: str | None = None,
    failed: BaseException | str | None = None,
) -> None:
    """Emit insync's own START and COMPLETE events for one decision, if OpenLineage is on.

    The output dataset is the asset (namespace `insync`, name = key) with the standard
    `DatasetVersionDatasetFacet` and insync's facet; inputs are its provenance, each with its
    version. `run_id`: a UUID naming the run (default: a new one). Never raises.

    `failed`: the step ran and failed with this exception (or error message): START and FAIL
    instead, the FAIL with the `errorMessage` run facet. Nothing was recorded, so the output
    dataset has neither facet, and insync's facet is on the run only (decision "run", its
    `dataVersion` the asset's unchanged one: `NULL` if it never had one).
    """
    if not lineage_enabled():
        return
    emit_steps([lineage], job_names=[job_name], run_ids=[run_id], started=started,
               job_namespace_=job_namespace_, failures=[failed])


def emit_steps(
    lineages: Sequence[StepLineage],
    *,
    job_names: Sequence[str],
    run_ids: Sequence[str | None] | None = None,
    started: pendulum.DateTime | None = None,
    job_namespace_: str | None = None,
    failures: Sequence[BaseException | str | None] | None = None,
) -> None:
    """`emit_step` for many decisions through one client (dbt emits a build's nodes at once);
    `failures`: each one's `failed` (default: none failed)."""
    if not lineage_enabled() or not lineages:
        return
    from . import _lineage_client

    _lineage_client.emit_pairs(
        lineages,
        job_names=job_names,
        run_ids=run_ids or [None] * len(lineages),
        started=started,
        namespace=job_namespace_ or job_namespace(),
        failures=failures or [None] * len(lineages),
    )
