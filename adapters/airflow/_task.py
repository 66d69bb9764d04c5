"""``versioned`` (TaskFlow) and ``versioned_operator`` (any operator): parse-time wrapping only.

Nothing here touches the insync store: wrapping records settings on the task; the check and the
record happen in ``_protocol.run_versioned`` when Airflow executes the task instance.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar, cast, overload

from insync.core import ConfigError, DataVersion, PartitionMapping, PartitionsDefinition

from ._keys import VersionSettings, asset_key_for
from ._protocol import auto_source_of_operator, run_versioned

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator, Context
    from insync.core import EventStore, ValueCache

__all__ = ["versioned", "versioned_operator", "wrap_operator"]

F = TypeVar("F", bound=Callable[..., Any])
Op = TypeVar("Op")


def _settings(
    *,
    key: str | Sequence[str] | None,
    code_version: str | None,
    deps: Iterable[str | Sequence[str]] | None,
    data_version: Callable[[Any], DataVersion | str] | None,
    force: bool,
    store: EventStore | str | None,
    cache: ValueCache | str | None,
    partitions: PartitionsDefinition | None = None,
    partition: str | Callable[[Any], str] | None = None,
    partition_mappings: Mapping[str, PartitionMapping] | None = None,
    ignore_parameters: Iterable[str] = (),
    parameter_fingerprints: Mapping[str, Callable[[Any], Any]] | None = None,
) -> VersionSettings:
    if isinstance(deps, str):
        deps = [deps]
    if isinstance(ignore_parameters, str):
        ignore_parameters = [ignore_parameters]
    return VersionSettings(
        key=key,
        code_version=code_version,
        deps=None if deps is None else tuple(deps),
        data_version=data_version,
        force=force,
        store=store,
        cache=cache,
        partitions=partitions,
        partition=partition,
        partition_mappings=tuple((partition_mappings or {}).items()),
        ignore_parameters=tuple(ignore_parameters),
        parameter_fingerprints=tuple((parameter_fingerprints or {}).items()),
    )


@overload
def versioned(fn: F, /) -> F: ...


@overload
def versioned(
    *,
    key: str | Sequence[str] | None = None,
    code_version: str | None = "auto",
    deps: Iterable[str | Sequence[str]] | None = None,
    data_version: Callable[[Any], DataVersion | str] | None = None,
    force: bool = False,
    store: EventStore | str | None = None,
    cache: ValueCache | str | None = None,
    partitions: PartitionsDefinition | None = None,
    partition: str | Callable[[Any], str] | None = None,
    partition_mappings: Mapping[str, PartitionMapping] | None = None,
    ignore_parameters: Iterable[str] = (),
    parameter_fingerprints: Mapping[str, Callable[[Any], Any]] | None = None,
) -> Callable[[F], F]: ...


def versioned(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    key: str | Sequence[str] | None = None,
    code_version: str | None = "auto",
    deps: Iterable[str | Sequence[str]] | None = None,
    data_version: Callable[[Any], DataVersion | str] | None = None,
    force: bool = False,
    store: EventStore | str | None = None,
    cache: ValueCache | str | None = None,
    partitions: PartitionsDefinition | None = None,
    partition: str | Callable[[Any], str] | None = None,
    partition_mappings: Mapping[str, PartitionMapping] | None = None,
    ignore_parameters: Iterable[str] = (),
    parameter_fingerprints: Mapping[str, Callable[[Any], Any]] | None = None,
) -> Any:
    """Make a TaskFlow task a versioned asset; put it *below* ``@task``::

        @task(outlets=[Asset("analytics/orders")])
        @versioned(code_version="v1")
        def orders(raw): ...

    Before the function runs, insync checks the asset (key: ``key=``, else the outlet Asset,
    else ``dag_id/task_id``). In sync: the function does not run, the task succeeds and returns
    the cached value. Otherwise it runs and its materialization is recorded.

    :param code_version: ``"auto"`` (hash of the function's normalized source), a string, or
        None (unknown: always runs).
    :param deps: asset keys read; default the task's inlets plus its versioned upstream tasks.
    :param data_version: optional function ``value -> data version`` (else the logical one).
    :param force: always run (also per run: ``dag_run.conf = {"insync_force": true}``).
    :param store: an ``EventStore`` or a store URL (default: $INSYNC_DATABASE_URL >
        $INSYNC_HOME > ./.insync). A URL is opened per task run, in the worker; an ``EventStore``
        built in the DAG file opens a connection at every parse, so prefer the URL.
    :param cache: a ``ValueCache`` or a value cache URL (default: $INSYNC_CACHE_URL >
        <home>/values).
    :param partitions: partitions of the asset, e.g. ``TimeWindowPartitions("daily",
        start="2026-01-01")``: each run computes one (the window holding its data interval
        start, or the run's Airflow ``partition_key``), with its own record and cached value.
    :param partition: which partition a run computes: a template (``"{{ params.region }}"``) or
        a function ``context -> key``; needed for static and dynamic partitions.
    :param partition_mappings: dep key -> ``PartitionMapping`` (default: identity between like
        partitions, overlapping windows between time partitions).
    :param ignore_parameters: names of arguments / context values that do not change the result.
    :param parameter_fingerprints: name -> function turning a value insync cannot fingerprint
        into one it can (or into a ``DataVersion``).

    The function's arguments (except the value of a versioned upstream task that is a
    dependency), the context values named in its signature (``ds``, ``params``, ...) and
    expanded values are parameters: other values make the task run. A read insync cannot see
    (``get_current_context()``, ``Variable.get``, ``ti`` in the signature, ``os.environ``)
    makes it always run, saying why.

    :raises ConfigError: a malformed key, deps, or a decorator used in the wrong place.
    """
    settings = _settings(
        key=key,
        code_version=code_version,
        deps=deps,
        data_version=data_version,
        force=force,
        store=store,
        cache=cache,
        partitions=partitions,
        partition=partition,
        partition_mappings=partition_mappings,
        ignore_parameters=ignore_parameters,
        parameter_fingerprints=parameter_fingerprints,
    )

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        if not callable(func) or (hasattr(func, "override") and hasattr(func, "expand")):
            raise ConfigError(
                f"@versioned got {func!r}; put it below @task (on the plain function), or use "
                "versioned_operator(...) for an operator"
            )

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            from airflow.sdk import get_current_context

            context = get_current_context()
            if getattr(type(context["task"]), "custom_operator_name", None) == "@task.bash":
                # The function only builds the command; the record would precede the command.
                raise ConfigError(
                    f"@versioned cannot wrap the @task.bash task {context['task'].task_id!r}: "
                    "the command runs after the function returns; version the task instead: "
                    "versioned_operator(my_bash_task())"
                )
            return run_versioned(
                context, settings, lambda: func(*args, **kwargs), fn=func, arguments=(args, kwargs)
            )

        wrapper.__insync_settings__ = settings  # type: ignore[attr-defined]
        return wrapper

    if fn is not None:
        return decorate(fn)
    return decorate


_EXECUTE_DOC = "Run the insync check, then the wrapped operator's execute (or the cached value)."


def _versioned_class(cls: type[Any], settings: VersionSettings) -> type[Any]:
    # One subclass per wrapped task, named like the original so Airflow's UI and serialized DAG
    # show the operator the author wrote; the settings ride on the class so that a mapped
    # operator's per-index instances (built from `operator_class`) carry them too.
    def execute(self: BaseOperator, context: Context) -> Any:
        parent = cast("BaseOperator", super(subclass, self))
        return run_versioned(context, settings, lambda: parent.execute(context))

    def resume_execution(
        self: BaseOperator, next_method: str, next_kwargs: dict[str, Any] | None, context: Context
    ) -> Any:
        # A deferred operator finishes in a new process: check again there and record then
        # (its inputs are snapshot at resume time, after the deferral).
        parent = cast("BaseOperator", super(subclass, self))
        return run_versioned(
            context, settings, lambda: parent.resume_execution(next_method, next_kwargs, context)
        )

    execute.__doc__ = _EXECUTE_DOC
    namespace = {
        "execute": execute,
        "resume_execution": resume_execution,
        "__module__": cls.__module__,
        "__qualname__": cls.__qualname__,
        "_insync_settings": settings,
    }
    metaclass: Callable[..., type[Any]] = type(cls)  # BaseOperator's metaclass, not plain `type`
    subclass = metaclass(cls.__name__, (cls,), namespace)
    return subclass


def wrap_operator(task: Op, settings: VersionSettings) -> Op:
    """Version an operator or mapped operator in place (shared with the cluster policy).

    :raises ConfigError: not an Airflow operator, or already versioned.
    """
    from airflow.sdk import BaseOperator
    from airflow.sdk.definitions.mappedoperator import MappedOperator
    from airflow.sdk.definitions.xcom_arg import PlainXComArg

    if isinstance(task, PlainXComArg):  # a TaskFlow call such as my_bash_task()
        wrap_operator(task.operator, settings)
        return task
    if isinstance(task, BaseOperator | MappedOperator):
        # Fail at parse time (a DAG import error) on a key that can never work, e.g. several
        # outlet Assets and no key= to choose; derived from the DAG only, no store access.
        asset_key_for(task, settings)
    if isinstance(task, MappedOperator):
        if settings.partitions is not None:
            raise ConfigError(
                f"task {task.task_id!r} is mapped, so its asset is partitioned by map index; "
                "drop partitions= (or do not map the task)"
            )
        if getattr(task.operator_class, "_insync_settings", None) is not None:
            raise ConfigError(f"task {task.task_id!r} is already versioned by insync")
        if settings.code_version == "auto" and "python_callable" not in task.partial_kwargs:
            settings = _with_auto_source(settings, task)
        task.operator_class = _versioned_class(task.operator_class, settings)
        return task
    if not isinstance(task, BaseOperator):
        raise ConfigError(
            f"versioned_operator() needs an Airflow operator instance, got {task!r}; for a "
            "TaskFlow function use @versioned below @task"
        )
    if getattr(type(task), "_insync_settings", None) is not None:
        raise ConfigError(f"task {task.task_id!r} is already versioned by insync")
    if settings.code_version == "auto" and getattr(task, "python_callable", None) is None:
        settings = _with_auto_source(settings, task)
    task.__class__ = _versioned_class(type(task), settings)
    return task


def _with_auto_source(settings: VersionSettings, task: Any) -> VersionSettings:
    import dataclasses

    return dataclasses.replace(settings, auto_source=auto_source_of_operator(task))


def versioned_operator(
    task: Op,
    /,
    *,
    key: str | Sequence[str] | None = None,
    code_version: str | None = "auto",
    deps: Iterable[str | Sequence[str]] | None = None,
    data_version: Callable[[Any], DataVersion | str] | None = None,
    force: bool = False,
    store: EventStore | str | None = None,
    cache: ValueCache | str | None = None,
    partitions: PartitionsDefinition | None = None,
    partition: str | Callable[[Any], str] | None = None,
    partition_mappings: Mapping[str, PartitionMapping] | None = None,
    ignore_parameters: Iterable[str] = (),
    parameter_fingerprints: Mapping[str, Callable[[Any], Any]] | None = None,
) -> Op:
    """Make any operator (BashOperator, SQL operators, custom ones, ``X.partial().expand()``, or
    the result of calling a TaskFlow task such as ``@task.bash``) a versioned asset; returns it::

        load = versioned_operator(
            BashOperator(task_id="load", bash_command="load.sh", outlets=[Asset("raw/orders")]),
            code_version="v3",
        )

    The operator's ``execute`` runs only when the asset is not in sync; its return value (the
    XCom) is recorded and cached. ``code_version="auto"`` hashes the Python callable if the
    operator has one, else the operator class and its unrendered templated fields (a script
    the command calls is not read: give an explicit version then). The templated fields *as
    rendered* (``{{ ds }}`` in a command makes each logical date its own input), a mapped
    operator's expanded values and a Python callable's arguments are parameters; each map
    index of a mapped operator is a partition of one asset. Other parameters as in
    :func:`versioned`.

    :raises ConfigError: not an operator, already versioned, or malformed settings.
    """
    settings = _settings(
        key=key,
        code_version=code_version,
        deps=deps,
        data_version=data_version,
        force=force,
        store=store,
        cache=cache,
        partitions=partitions,
        partition=partition,
        partition_mappings=partition_mappings,
        ignore_parameters=ignore_parameters,
        parameter_fingerprints=parameter_fingerprints,
    )
    return wrap_operator(task, settings)
