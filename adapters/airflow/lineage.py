"""OpenLineage for versioned Airflow tasks: insync's facets on the events Airflow already sends.

With Airflow's OpenLineage provider active, insync sends no second stream. At the end of each
versioned task instance (run or skip) it gives the task a ``get_openlineage_facets_on_complete``
that returns the provider's own extraction plus insync's datasets: the asset as an output
(namespace ``insync``, name = asset key) with the standard ``version`` facet (the insync data
version) and the ``insync`` facet, its inputs with the versions read, and the ``insync`` run
facet. The provider uses that method for every operator it has no dedicated extractor for
(TaskFlow ``@task`` functions, most provider operators). ``PythonOperator`` and
``BashOperator`` have dedicated extractors that ignore it; for those (and any task) add the run
facet through the provider's own hook::

    [openlineage]
    custom_run_facets = insync.adapters.airflow.lineage.insync_run_facets

Without the provider (or with it disabled) but with OpenLineage configured for the client
(``OPENLINEAGE_URL``, ``openlineage.yml``, ...), insync emits its own START/COMPLETE pair per
task instance, and START/FAIL (with the ``errorMessage`` facet) when a task insync decided to run
raises. With the provider, its own FAIL event carries the ``insync`` run facet through the
``custom_run_facets`` hook above. Nothing is imported or done when neither is configured.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import replace
from functools import cache
from typing import TYPE_CHECKING, Any

from insync.core import Event, Step
from insync.core._lineage import StepLineage, emit_step, lineage_enabled, step_lineage

if TYPE_CHECKING:
    from airflow.sdk import Context

__all__ = ["insync_run_facets"]

log = logging.getLogger("insync.airflow")

_OL_COMPLETE = "get_openlineage_facets_on_complete"
_OL_START = "get_openlineage_facets_on_start"
_RECENT_LIMIT = 1024
# (dag_id, task_id, run_id, map_index) -> the lineage of that task instance's decision, for the
# provider's custom_run_facets hook, which runs in this process (or a fork of it) after success.
_RECENT: OrderedDict[tuple[str, str, str, int], StepLineage] = OrderedDict()


@cache
def _provider_active() -> bool:
    """Airflow's OpenLineage provider is installed and not disabled (it then emits the events)."""
    try:
        from airflow.providers.openlineage import conf
    except ImportError:
        return False
    return not conf.is_disabled()


def _active() -> bool:
    # The client's configuration, or the provider's own ([openlineage] in airflow.cfg); both
    # checked once per process, neither imports openlineage.
    return lineage_enabled() or _provider_active()


def _ti_key(ti: Any) -> tuple[str, str, str, int]:
    map_index = getattr(ti, "map_index", -1)
    return (ti.dag_id, ti.task_id, ti.run_id, -1 if map_index is None else map_index)


def task_lineage(context: Context, step: Step, event: Event | None = None) -> None:
    """Attach (or emit) the lineage of a versioned task instance's decision. Never raises."""
    if step.decision is None or not _active():
        return
    try:
        lineage = step_lineage(step.decision, event)
        ti = context["ti"]
        if _provider_active():
            _remember(ti, lineage)
            for task in {id(t): t for t in (context["task"], getattr(ti, "task", None)) if t}.values():
                _extend_extraction(task, lineage)
        else:
            emit_step(lineage, job_name=f"{ti.dag_id}.{ti.task_id}")
    except Exception as exc:  # lineage must never fail the task
        log.warning("OpenLineage: insync facets not added to %s (%s: %s)",
                    getattr(context.get("ti"), "task_id", "?"), type(exc).__name__, exc)


def task_failed(context: Context, step: Step, error: BaseException) -> None:
    """A versioned task instance insync decided to run raised `error`: emit START/FAIL (without
    the provider; with it, the provider's FAIL gets the run facet). Never raises."""
    if step.decision is None or not _active() or not _is_failure(error):
        return
    try:
        # It ran (a skip too, whose value was gone) and recorded nothing.
        lineage = replace(step_lineage(step.decision), skip=False)
        ti = context["ti"]
        if _provider_active():
            _remember(ti, lineage)
        else:
            emit_step(lineage, job_name=f"{ti.dag_id}.{ti.task_id}", failed=error)
    except Exception as exc:  # lineage must never hide the task's own error
        log.warning("OpenLineage: insync's FAIL event not sent for %s (%s: %s)",
                    getattr(context.get("ti"), "task_id", "?"), type(exc).__name__, exc)


# Raised to end a task instance in another state than failed (skipped, up for reschedule, ...).
_NOT_FAILURES = ("AirflowSkipException", "AirflowRescheduleException", "DownstreamTasksSkipped",
                 "DagRunTriggerException")


def _is_failure(error: BaseException) -> bool:
    from airflow.sdk import exceptions

    if isinstance(error, exceptions.AirflowTaskTimeout):  # a BaseException, and a failure
        return True
    control = tuple(getattr(exceptions, name) for name in _NOT_FAILURES if hasattr(exceptions, name))
    # Other BaseExceptions defer the task, or interrupt or terminate it: no verdict on the run.
    return isinstance(error, Exception) and not isinstance(error, control)


def _remember(ti: Any, lineage: StepLineage) -> None:
    _RECENT[_ti_key(ti)] = lineage
    while len(_RECENT) > _RECENT_LIMIT:
        _RECENT.popitem(last=False)


def _extend_extraction(task: Any, lineage: StepLineage) -> None:
    """Give this task instance's operator a completion method: its own lineage plus insync's."""
    from airflow.providers.openlineage.extractors import OperatorLineage
    from insync.core import _lineage_client

    own_complete = getattr(task, _OL_COMPLETE, None)
    own_start = getattr(task, _OL_START, None)

    def on_complete(task_instance: Any) -> Any:
        if callable(own_complete):
            base = own_complete(task_instance)
        elif callable(own_start):
            base = own_start()
        else:
            base = None
        if base is None:
            base = OperatorLineage()
        return OperatorLineage(
            inputs=[*base.inputs, *_lineage_client.input_datasets(lineage)],
            outputs=[*base.outputs, _lineage_client.output_dataset(lineage)],
            run_facets={**base.run_facets, **_lineage_client.run_facets(lineage)},
            job_facets=dict(base.job_facets),
        )

    # The per-execution copy of the task: this changes nothing for other task instances.
    object.__setattr__(task, _OL_COMPLETE, on_complete)


def insync_run_facets(task_instance: Any, ti_state: Any) -> dict[str, Any]:
    """``[openlineage] custom_run_facets`` hook: the ``insync`` run facet of a task instance
    insync decided in this process (empty for other tasks, and before the decision)."""
    lineage = _RECENT.get(_ti_key(task_instance))
    if lineage is None:
        return {}
    from insync.core import _lineage_client

    return _lineage_client.run_facets(lineage)
