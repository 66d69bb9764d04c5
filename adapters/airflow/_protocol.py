"""The insync execution protocol inside one Airflow task instance (worker side only).

Why "succeed as a no-op" and not Airflow's SKIPPED state: with default trigger rules a SKIPPED
task skips its downstream tasks before they can run their own check, so an unsynced descendant
would be hidden. Changing downstream trigger rules instead would also change what the DAG
author's own branches and short-circuits do. So an in-sync task ends SUCCESS without running the
user's code; it returns the cached value (so downstream XCom consumers get it), logs
``skip <key>: Synced``, pushes the XCom ``insync`` marker (``{"decision": "skip", ...}``, visible
in the task instance's XCom tab) and emits *no* asset event for its outlets: nothing changed, so
Airflow's asset-aware scheduling is not triggered.

Everything here talks to the insync store and to Airflow through the task SDK only (context,
XCom, outlet events): no access to Airflow's metadata database.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from insync.core import (
    NO_VALUE,
    AssetKey,
    AssetSpec,
    ConfigError,
    DataVersion,
    InvalidCodeVersion,
    PartitionsDefinition,
    Step,
    resolve_code_version,
)
from insync.core._owners import owner_metadata

from ._inputs import code_analysis, partition_of, partition_source, task_inputs
from ._keys import VersionSettings, asset_key_for, deps_for, opened_store, value_cache
from .lineage import task_failed, task_lineage

if TYPE_CHECKING:
    from airflow.sdk import Context

__all__ = [
    "FRAMEWORK",
    "XCOM_MARKER_KEY",
    "code_version_and_unseen",
    "run_id_of",
    "run_versioned",
    "spec_for",
]

log = logging.getLogger("insync.airflow")

FRAMEWORK = "airflow"
#: XCom key of the per-task-instance marker saying whether insync ran or skipped the task.
XCOM_MARKER_KEY = "insync"
#: ``dag_run.conf`` entry forcing a re-run: ``true`` for every versioned task, or a list of
#: asset keys / task ids.
FORCE_CONF_KEY = "insync_force"


def run_id_of(context: Context) -> str:
    """The insync run id of an Airflow task instance: stable across its retries."""
    ti = context["ti"]
    return f"airflow:{ti.dag_id}:{ti.run_id}"


def auto_source_of_operator(task: Any) -> str:
    """What ``code_version="auto"`` hashes for an operator without a Python callable.

    The operator's class plus its templated fields *before* rendering (so ``{{ ds }}`` in a
    command does not make every run a new code version).
    """
    cls = type(task)
    while getattr(cls, "_insync_settings", None) is not None:  # our per-task subclass
        cls = cls.__mro__[1]
    fields = {}
    partial_kwargs = getattr(task, "partial_kwargs", None)
    for name in sorted(getattr(task, "template_fields", ()) or ()):
        value = partial_kwargs.get(name) if partial_kwargs is not None else getattr(task, name, None)
        fields[name] = repr(value)
    return repr((f"{cls.__module__}.{cls.__qualname__}", sorted(fields.items())))


def code_version_and_unseen(
    settings: VersionSettings, task: Any, fn: Callable[..., Any] | None
) -> tuple[str | None, tuple[str, ...]]:
    """The task's code version and the unseen reads found in its Python callable.

    A Python callable is analyzed (lazily, once per process) even under an explicit version:
    ``code_version="v1"`` vouches for the code, not for what it reads at run time.

    :raises InvalidCodeVersion: ``"auto"`` on a callable whose source cannot be read.
    """
    if fn is None:
        fn = getattr(task, "python_callable", None)
    if settings.code_version != "auto":
        version = resolve_code_version(settings.code_version)
        if fn is None:
            return version, ()
        try:
            return version, code_analysis(fn).unseen_reads
        except InvalidCodeVersion:
            return version, ()
    if fn is not None:
        analysis = code_analysis(fn)
        return analysis.version, analysis.unseen_reads
    source = settings.auto_source or auto_source_of_operator(task)
    return "auto:" + hashlib.sha256(source.encode()).hexdigest()[:32], ()


def spec_for(
    task: Any,
    settings: VersionSettings,
    *,
    code_version: str | None,
    partitions: PartitionsDefinition | None,
) -> AssetSpec:
    """The asset spec of a versioned task (shared by the worker and ``insync airflow plan``)."""
    key = asset_key_for(task, settings)
    return AssetSpec(
        key,
        code_version=code_version,
        deps=deps_for(task, settings),
        framework=FRAMEWORK,
        # The owner: `insync automate` triggers this DAG when the asset is Unsynced.
        metadata={"dag_id": task.dag_id, "task_id": task.task_id,
                  **owner_metadata("airflow", task.dag_id, task.task_id,
                                   partition_by=partition_source(settings, partitions))},
        partitions=partitions,
        partition_mappings=dict(settings.partition_mappings) or None,
    )


def _forced(context: Context, key: AssetKey) -> bool:
    dag_run = context.get("dag_run")
    conf: Mapping[str, Any] = getattr(dag_run, "conf", None) or {}
    value = conf.get(FORCE_CONF_KEY)
    if value is None or value is False:
        return False
    if value is True:
        return True
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple):
        raise ConfigError(
            f"dag_run.conf[{FORCE_CONF_KEY!r}] = {value!r}; use true or a list of asset keys or task ids"
        )
    return str(key) in value or context["ti"].task_id in value


def _annotate_outlets(
    context: Context,
    key: AssetKey,
    code_version: str | None,
    data_version: DataVersion,
    partition: str | None,
) -> None:
    """Put the versions into the extra of the Airflow asset event(s) of the task's outlets; a
    partitioned task's event carries its partition key (Airflow 3.2+ asset partitions). A map
    index stays in the extra only: as an Airflow partition key it would start a partitioned
    downstream DAG run per index."""
    from airflow.sdk import Asset

    map_index = getattr(context["ti"], "map_index", None)
    mapped = map_index is not None and map_index >= 0
    extra: dict[str, Any] = {
        "insync_key": str(key),
        "code_version": code_version,
        "data_version": str(data_version),
    }
    if partition is not None:
        extra["partition"] = partition
    for outlet in getattr(context["task"], "outlets", None) or ():
        if isinstance(outlet, Asset):
            accessor = context["outlet_events"][outlet]
            accessor.extra.update(extra)
            if partition is not None and not mapped and hasattr(accessor, "add_partitions"):
                accessor.add_partitions(partition)


def _suppress_outlet_events(context: Context) -> None:
    # The task object is the per-execution copy Airflow made in `prepare_for_execution`, so
    # this only affects the success message of this task instance: no asset event is emitted.
    context["task"].outlets = []
    ti_task = getattr(context["ti"], "task", None)
    if ti_task is not None and ti_task is not context["task"]:
        ti_task.outlets = []


def _push_marker(context: Context, marker: dict[str, Any], started: float, user_ms: float) -> None:
    """Push the ``insync`` marker XCom, the last thing insync does in a task instance, and log
    what insync cost the task instance from the wrapper's first line to this push included.

    The marker cannot contain the time of its own push, so it says ``overhead_ms_before_push``
    (store opened and closed, check, cached value read or record); the log line has the whole.
    """
    before_push = time.perf_counter()
    marker["overhead_ms_before_push"] = round((before_push - started) * 1000 - user_ms, 3)
    context["ti"].xcom_push(key=XCOM_MARKER_KEY, value=marker)
    done = time.perf_counter()
    log.info(
        "insync overhead: %.1f ms in this task instance (%.1f ms of it pushing the %r XCom)",
        (done - started) * 1000 - user_ms,
        (done - before_push) * 1000,
        XCOM_MARKER_KEY,
    )


def run_versioned(
    context: Context,
    settings: VersionSettings,
    call: Callable[[], Any],
    *,
    fn: Callable[..., Any] | None = None,
    arguments: tuple[tuple[Any, ...], dict[str, Any]] | None = None,
) -> Any:
    """Check, then return the cached value or run ``call()`` and record its result.

    ``fn`` and ``arguments``: the TaskFlow function and the ``(args, kwargs)`` it is called with;
    without them the task is an operator (see ``_inputs.task_inputs`` for what counts).

    :raises ConfigError: the task's insync settings cannot be used (bad key, code version, ...).
    :raises ParameterError: a parameter insync cannot fingerprint (named, with the ways out).
    :raises InvalidPartitionKey: the run's partition does not fit the asset's partitions.
    :raises SerializationError: the value cannot be cached; nothing was recorded.
    :raises StoreError: the insync store is unreachable.
    """
    started = time.perf_counter()
    task = context["task"]
    ti = context["ti"]
    key = asset_key_for(task, settings)
    code_version, unseen_code = code_version_and_unseen(settings, task, fn)
    partitions, partition = partition_of(context, settings, key)
    spec = spec_for(task, settings, code_version=code_version, partitions=partitions)
    inputs = task_inputs(context, settings, spec.deps, fn=fn, arguments=arguments)
    run_id = run_id_of(context)
    needs_value = bool(getattr(task, "do_xcom_push", True))
    event = None
    user_ms = 0.0
    with opened_store(settings.store) as store:
        step = Step(
            store,
            spec,
            run_id=run_id,
            framework=FRAMEWORK,
            cache=value_cache(settings.cache),
            force=settings.force or _forced(context, key),
            partition=partition,
            parameters=inputs.parameters,
            ignore_parameters=settings.ignore_parameters,
            parameter_fingerprints=dict(settings.parameter_fingerprints) or None,
            unseen_inputs=(*unseen_code, *inputs.unseen),
        )
        decision = step.check(needs_value=needs_value)
        if decision.skip:
            value = None if decision.value is NO_VALUE else decision.value
        else:
            call_started = time.perf_counter()
            try:
                value = call()
                user_ms = (time.perf_counter() - call_started) * 1000
                user_version = settings.data_version(value) if settings.data_version else None
                event = step.record(
                    value if needs_value else NO_VALUE,
                    data_version=user_version,
                    metadata={
                        "dag_id": ti.dag_id,
                        "task_id": ti.task_id,
                        "run_id": ti.run_id,
                        "map_index": ti.map_index,
                        "try_number": ti.try_number,
                    },
                )
            except BaseException as exc:  # the run's FAIL event; the task fails as it would
                task_failed(context, step, exc)
                raise
    # The store is closed: what follows talks to Airflow only.
    data_version = decision.status.data_version if event is None else event.data_version
    if event is not None or decision.status.last_run_id == run_id:
        # Ran; or a retry after this run's own recorded materialization, whose first try never
        # reached Airflow's success, so its asset event is still owed.
        _annotate_outlets(context, key, code_version, data_version, partition)
    else:
        _suppress_outlet_events(context)
    task_lineage(context, step, event)
    marker = {
        "decision": "skip" if decision.skip else "run",
        "asset": str(key),
        "message": decision.message,
        "data_version": str(data_version),
        "partition": partition,
    }
    _push_marker(context, marker, started, user_ms)
    return value
