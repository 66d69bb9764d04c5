"""Everything one task instance reads, as insync sees it: parameters, partition, unseen reads.

The scenario behind this module: a ``@daily`` DAG's versioned task that reads its run's date
(``ds`` in its signature, ``{{ ds }}`` in a command) used to find its asset FRESH on the next
logical date and hand yesterday's value downstream. Each of these is now an input of the step:

- **parameters** (fingerprinted, recorded, compared with the last materialization): the
  function's arguments that are not the value of a versioned upstream task already counted as
  a dependency, the context values named in its signature (``ds``, ``logical_date``,
  ``data_interval_start``, ``params``, ...), the operator's templated fields *as rendered*, and
  a mapped task's expanded values;
- **partition**: a mapped task instance is partition ``<map_index>`` of one asset; a task with
  ``partitions=`` computes the partition its run names (``partition=``, the run's Airflow
  ``partition_key``, or the time window holding the run's data interval start);
- **unseen reads**: what the task can read and insync cannot see (``get_current_context()``,
  ``Variable.get``, a connection, the task instance or DAG run object in the signature, an
  environment variable, the clock): the task then always runs, and the log says why.
"""

from __future__ import annotations

import inspect
import threading
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import pendulum
from insync.core import (
    AssetKey,
    CodeAnalysis,
    ConfigError,
    DynamicPartitions,
    PartitionsDefinition,
    TimeWindowPartitions,
    analyze_code,
)

from ._keys import VersionSettings, asset_key_for, is_mapped, settings_of

if TYPE_CHECKING:
    from airflow.sdk import Context

__all__ = [
    "AIRFLOW_UNSEEN_READS",
    "CONTEXT_OBJECTS",
    "CONTEXT_VALUES",
    "TaskInputs",
    "code_analysis",
    "partition_of",
    "raw_arguments",
    "task_inputs",
    "time_window_key",
]

#: Calls that read what insync cannot see from inside a task body (added to core's list of
#: environment, clock and randomness reads). Declare such an input instead: name the context
#: value in the signature, or pass ``"{{ var.value.x }}"`` / ``"{{ conn.x.host }}"`` as an
#: argument (a rendered templated field is a parameter).
AIRFLOW_UNSEEN_READS: Final = (
    "get_current_context",
    "get_parsing_context",
    "Variable.get",
    "Connection.get",
    "BaseHook.get_connection",
    "BaseHook.get_hook",
    "XCom.get_one",
    "XCom.get_many",
    "XCom.get_value",
)

#: Context values that are plain data: named in a signature, they are parameters.
CONTEXT_VALUES: Final = frozenset(
    {
        "data_interval_end",
        "data_interval_start",
        "ds",
        "ds_nodash",
        "expanded_ti_count",
        "logical_date",
        "map_index_template",
        "params",
        "partition_date",
        "partition_key",
        "prev_data_interval_end_success",
        "prev_data_interval_start_success",
        "prev_end_date_success",
        "prev_start_date_success",
        "run_id",
        "task_instance_key_str",
        "task_reschedule_count",
        "templates_dict",
        "test_mode",
        "ts",
        "ts_nodash",
        "ts_nodash_with_tz",
    }
)
#: Context entries that are not inputs: where outputs go, static definitions, pure helpers.
_NOT_INPUTS: Final = frozenset({"inlets", "macros", "outlet_events", "outlets"})
#: Context objects through which a body reads anything (XComs, conf, variables, connections,
#: other runs' events): named in a signature, the task always runs.
CONTEXT_OBJECTS: Final = frozenset(
    {
        "asset_state_store",
        "conn",
        "dag",
        "dag_run",
        "inlet_events",
        "task",
        "task_instance",
        "task_state_store",
        "ti",
        "triggering_asset_events",
        "var",
    }
)


@dataclass(frozen=True, slots=True)
class TaskInputs:
    """What a task instance reads besides its code and its declared upstream assets."""

    parameters: dict[str, Any]
    unseen: tuple[str, ...]


_ANALYSES: weakref.WeakKeyDictionary[Callable[..., Any], CodeAnalysis] = weakref.WeakKeyDictionary()
_ANALYSES_LOCK: Final = threading.Lock()


def code_analysis(fn: Callable[..., Any]) -> CodeAnalysis:
    """``analyze_code(fn)`` with Airflow's unseen reads, once per function object and process.

    Computed at the first check, never when the DAG file is parsed: helpers defined further
    down the module are not in its globals yet at decoration time.

    :raises InvalidCodeVersion: the source of ``fn`` cannot be read.
    """
    with _ANALYSES_LOCK:
        found = _ANALYSES.get(fn)
    if found is None:
        found = analyze_code(fn, unseen=AIRFLOW_UNSEEN_READS)
        with _ANALYSES_LOCK:
            _ANALYSES[fn] = found
    return found


# --------------------------------------------------------------------------------- partitions


def time_window_key(definition: TimeWindowPartitions, moment: Any) -> str:
    """The key of the window of ``definition`` that holds ``moment``."""
    unit = {"hourly": "hour", "daily": "day", "weekly": "week", "monthly": "month"}[definition.cadence]
    start = pendulum.instance(moment).in_timezone(definition.timezone).start_of(unit)
    return str(definition.key_of(start))


def partition_of(
    context: Context, settings: VersionSettings, key: AssetKey
) -> tuple[PartitionsDefinition | None, str | None]:
    """The partitions definition of the task's asset and the partition this instance computes.

    A mapped task instance: partition ``str(map_index)`` of a ``DynamicPartitions`` named after
    the key. Else, with ``partitions=``: ``partition=`` (template or function) if given, else
    the run's Airflow ``partition_key`` (partitioned timetables, asset partitions), else for
    time partitions the window holding the run's ``data_interval_start`` (its
    ``logical_date`` when the interval is empty).

    :raises ConfigError: a mapped task with ``partitions=``; a partitioned task whose run names
        no partition (no ``partition=``, no partition key, no data interval for time windows).
    """
    ti = context["ti"]
    map_index = getattr(ti, "map_index", None)
    if map_index is not None and map_index >= 0:
        if settings.partitions is not None:
            raise ConfigError(
                f"task {ti.task_id!r} is mapped, so its asset {key} is partitioned by map index; "
                "drop partitions= (or do not map the task)"
            )
        return DynamicPartitions(str(key)), str(map_index)
    definition = settings.partitions
    if definition is None:
        return None, None
    if settings.partition is not None:
        if callable(settings.partition):
            chosen = settings.partition(context)
        else:
            chosen = context["task"].render_template(settings.partition, context)
        return definition, chosen
    run_key = context.get("partition_key")
    if run_key:
        return definition, str(run_key)
    if isinstance(definition, TimeWindowPartitions):
        moment = context.get("data_interval_start") or context.get("logical_date")
        if moment is None:
            raise ConfigError(
                f"task {ti.task_id!r} has time partitions, but its run has no data interval "
                "(no logical date); give the DAG a schedule, run it with a logical date, or "
                "pass partition='{{ params.day }}'"
            )
        return definition, time_window_key(definition, moment)
    raise ConfigError(
        f"task {ti.task_id!r} has {type(definition).__name__} but its run names no partition; "
        "pass partition='{{ params.region }}' (a template) or partition=lambda context: ..."
    )


def partition_source(settings: VersionSettings, partitions: PartitionsDefinition | None) -> str:
    """How a run of the task picks its partition, in `partition_of`'s order, for the launcher
    (`Owner.partition_by`): only a time window is something it can set, through the run's data
    interval."""
    if partitions is None:
        return ""
    if settings.partitions is None:
        return "map index"  # a mapped task: its partitions are its map indexes
    if settings.partition is not None:
        return "partition="
    # The run's partition_key would win, but a launched run has none.
    return "window" if isinstance(partitions, TimeWindowPartitions) else "partition key"


# --------------------------------------------------------------------------------- parameters


def task_inputs(
    context: Context,
    settings: VersionSettings,
    deps: tuple[AssetKey, ...],
    *,
    fn: Callable[..., Any] | None = None,
    arguments: tuple[tuple[Any, ...], dict[str, Any]] | None = None,
) -> TaskInputs:
    """The parameters and unseen reads of this task instance.

    ``arguments``: the ``(args, kwargs)`` a TaskFlow function is called with (``@versioned``);
    without them the task is an operator: its rendered templated fields and expanded values,
    and, for an operator with a Python callable, that callable's arguments.
    """
    task: Any = context["task"]
    everything: Mapping[str, Any] = context
    original = _dag_task(context)
    parameters: dict[str, Any] = {}
    unseen: list[str] = []
    callable_ = fn if fn is not None else getattr(task, "python_callable", None)
    fields = list(getattr(task, "template_fields", ()) or ()) if arguments is None else []
    if callable_ is not None and (arguments is not None or "op_kwargs" in fields):
        if arguments is not None:
            values = _bind(callable_, *arguments)
        else:
            values = _bind(callable_, tuple(task.op_args or ()), dict(task.op_kwargs or {}))
            for name in _signature_names(callable_):
                # The context values PythonOperator will pass, as in TaskFlow.
                if name not in values and name in everything:
                    values[name] = everything[name]
            fields = [f for f in fields if f not in ("op_args", "op_kwargs")]
        raw = raw_arguments(original, callable_)
        _classify(context, settings, deps, values, raw, callable_, parameters, unseen)
    for name in fields:
        value = getattr(task, name, None)
        # `@task.bash` fills its command from the function (the code version) at execution.
        if type(value).__name__ not in ("SetDuringExecution", "ArgNotSet"):
            parameters.setdefault(name, value)
    for name in _expanded_names(original):
        if name not in ("op_args", "op_kwargs") and name not in parameters:
            parameters[name] = getattr(task, name, None)
    return TaskInputs({k: _plain(v) for k, v in parameters.items()}, tuple(sorted(set(unseen))))


def _dag_task(context: Context) -> Any:
    """The task as the DAG file declared it (XComArgs not yet resolved, mapped not unmapped)."""
    dag = context.get("dag")
    task_dict = getattr(dag, "task_dict", None) or {}
    return task_dict.get(context["task"].task_id)


def _signature_names(fn: Callable[..., Any]) -> list[str]:
    try:
        parameters = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return []
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return [p.name for p in parameters if p.kind in kinds]


def _bind(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """Argument name -> value as ``fn`` receives them (``*args`` / ``**kwargs`` under their names)."""
    try:
        bound = inspect.signature(fn).bind_partial(*args, **kwargs)
    except (TypeError, ValueError):
        return {f"arg{i}": v for i, v in enumerate(args)} | dict(kwargs)
    return dict(bound.arguments)


def _var_keyword(fn: Callable[..., Any]) -> str | None:
    try:
        parameters = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return None
    return next((p.name for p in parameters if p.kind is inspect.Parameter.VAR_KEYWORD), None)


def raw_arguments(original: Any, fn: Callable[..., Any]) -> dict[str, Any]:
    """The arguments as declared in the DAG file (XComArgs unresolved), by name."""
    if original is None:
        return {}
    if is_mapped(original):
        partial = getattr(original, "partial_kwargs", None) or {}
        op_args, op_kwargs = partial.get("op_args") or (), partial.get("op_kwargs") or {}
    else:
        op_args, op_kwargs = getattr(original, "op_args", ()), getattr(original, "op_kwargs", {})
    if not isinstance(op_args, list | tuple) or not isinstance(op_kwargs, Mapping):
        return {}  # an XComArg standing for all of them: every value counts as a parameter
    return _bind(fn, tuple(op_args), op_kwargs)


def _expanded_names(original: Any) -> list[str]:
    if original is None or not is_mapped(original):
        return []
    expand_input = getattr(original, "op_kwargs_expand_input", None)
    if not getattr(expand_input, "value", None):
        expand_input = getattr(original, "expand_input", None)
    value = getattr(expand_input, "value", None)
    return sorted(value) if isinstance(value, Mapping) else []


def _classify(
    context: Context,
    settings: VersionSettings,
    deps: tuple[AssetKey, ...],
    values: Mapping[str, Any],
    raw: Mapping[str, Any],
    fn: Callable[..., Any],
    parameters: dict[str, Any],
    unseen: list[str],
) -> None:
    var_keyword = _var_keyword(fn)
    for name, value in values.items():
        whole_context = isinstance(value, Mapping) and set(value) & (CONTEXT_OBJECTS | CONTEXT_VALUES)
        if name == var_keyword and name not in raw and whole_context:
            unseen.append(f"**{name} (the task context)")
            continue
        if name in raw:
            upstream = _versioned_upstream(raw[name])
            if upstream is not None:
                if _counted_as_dependency(settings, deps, *upstream):
                    continue  # its data version is an input already
                value = _upstream_versions(context, upstream[0])
        elif name in _NOT_INPUTS:
            continue
        elif name in CONTEXT_OBJECTS:
            unseen.append(f"{name} (in the signature)")
            continue
        parameters[name] = value


def _versioned_upstream(raw: Any) -> tuple[Any, VersionSettings] | None:
    """(task, settings) when ``raw`` is the return value of a versioned task, else None."""
    from airflow.sdk.definitions.xcom_arg import PlainXComArg

    if not isinstance(raw, PlainXComArg) or raw.key != "return_value":
        return None
    settings = settings_of(raw.operator)
    return None if settings is None else (raw.operator, settings)


def _counted_as_dependency(
    settings: VersionSettings, deps: tuple[AssetKey, ...], upstream: Any, up: VersionSettings
) -> bool:
    """Whether the upstream's value is exactly the data version this task's check reads: the
    upstream is a dependency, unmapped, and computes the same partition as this task."""
    if is_mapped(upstream) or up.partition is not None or settings.partition is not None:
        return False
    if up.partitions != settings.partitions:
        return False
    key = asset_key_for(upstream, up)
    if key not in deps:
        return False
    return not any(AssetKey.parse(dep) == key for dep, _ in settings.partition_mappings)


def _upstream_versions(context: Context, upstream: Any) -> list[str | None]:
    """The data versions the upstream's instances handed over in this run (its insync markers)."""
    from ._protocol import XCOM_MARKER_KEY

    markers = context["ti"].xcom_pull(task_ids=upstream.task_id, key=XCOM_MARKER_KEY)
    if markers is None or isinstance(markers, Mapping):
        markers = [markers]
    return [m.get("data_version") if isinstance(m, Mapping) else None for m in markers]


def _plain(value: Any) -> Any:
    """Airflow's lazy proxies and mappings as the plain values they stand for."""
    if type(value).__module__.startswith("lazy_object_proxy"):
        value = value.__wrapped__
    if isinstance(value, Mapping) and not isinstance(value, dict):
        return {k: _plain(value[k]) for k in value}
    return value
