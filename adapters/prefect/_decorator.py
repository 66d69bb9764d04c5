"""`versioned(...)`: make a Prefect task or flow a versioned insync asset."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar
from uuid import uuid4

from insync.core import (
    AssetKey,
    ConfigError,
    DataVersion,
    EventStore,
    PartitionMapping,
    PartitionsDefinition,
    Step,
    ValueCache,
)
from prefect import Flow, Task
from prefect.context import FlowRunContext
from prefect.logging import get_run_logger
from prefect.settings import PREFECT_TASKS_REFRESH_CACHE
from prefect.states import Completed

from ._binding import Binding, make_binding
from ._runtime import FRAMEWORK, open_store, open_value_cache, run_owner
from ._task import version_task

if TYPE_CHECKING:
    from prefect.client.schemas.objects import State
    from prefect.locking.protocol import LockManager

_T = TypeVar("_T", bound="Task[Any, Any] | Flow[Any, Any]")


def versioned(
    key: str | Sequence[str] | AssetKey,
    *,
    code_version: str | None = "auto",
    deps: Iterable[str | Sequence[str] | AssetKey] = (),
    infer_deps: bool = True,
    data_version: Callable[[Any], DataVersion | str] | None = None,
    store: EventStore | str | None = None,
    cache: ValueCache | str | None = None,
    force: bool = False,
    metadata: Mapping[str, Any] | None = None,
    lock_manager: LockManager | None = None,
    ignore_parameters: Iterable[str] = (),
    parameter_fingerprints: Mapping[str, Callable[[Any], Any]] | None = None,
    partitions: PartitionsDefinition | None = None,
    partition: str | None = None,
    partition_mappings: Mapping[str | Sequence[str] | AssetKey, PartitionMapping] | None = None,
) -> Callable[[_T], _T]:
    """Declare that a Prefect `@task` or `@flow` materializes the asset `key`.

    Put it above `@task`/`@flow` (and above `@materialize`)::

        @versioned("analytics/orders", code_version="auto")
        @task
        def orders(raw): ...

    Each run of a versioned task is checked when it starts: if the asset (or the partition the
    run computes) is FRESH for this call (same code version, same upstream data versions, same
    parameters as its last materialization) the run ends in Prefect's `Cached` state with the
    last value, without calling the function. Otherwise the function runs and the
    materialization is recorded in the insync store.

    Everything the call reads counts. Arguments that are values of upstream versioned tasks are
    dependencies (their data versions stand for them); every other argument (a flow parameter,
    a literal, the result of an unversioned task) is a parameter, fingerprinted with
    `insync.core.fingerprint_value`: `extract(day)` with another `day` runs again. A versioned
    flow's own parameters are its parameters. Reads the code makes that insync cannot see
    (`prefect.runtime`, `get_run_context()`, `os.environ`, the clock; found in the function and
    the project code it calls) make every run execute, and the log line says which.

    :param key: the asset key, `"a/b"` or `["a", "b"]`.
    :param code_version: `"auto"` (default: hash of the function's source and of the project
        code and constants it reaches, computed at the first run in each process), a version
        string, or None (unknown: always runs).
    :param deps: upstream asset keys the function reads. When given they are the deps: they win
        over inference (and an argument that is the value of an unlisted versioned task is an
        error). Deps across processes or flows (another flow's asset, a file another
        orchestrator writes) must be declared here.
    :param infer_deps: without `deps=`, depend on the versioned tasks whose results (or
        `wait_for`) feed this task run, as Prefect's task graph reports them (tasks only, same
        process). A dep once inferred and recorded stays, whatever the next call's shape: to
        drop one, declare `deps=`.
    :param data_version: a function of the returned value giving its data version (e.g. a
        content fingerprint); by default the version is logical (code + input versions).
    :param store: an `EventStore` or a store URL; default: `INSYNC_DATABASE_URL`, `INSYNC_HOME`
        or `./.insync`, read when the first run starts.
    :param cache: a `ValueCache` or a cache URL: also keep values in this insync value cache
        (shared with the other adapters); tasks otherwise rely on Prefect's result persistence.
        Flows always use a value cache (the default one, `INSYNC_CACHE_URL` or next to the
        store, when None).
    :param force: always run (Prefect's `refresh_cache=True` does the same per task).
    :param metadata: owner metadata stored with the asset definition.
    :param lock_manager: tasks only: a Prefect lock manager (e.g.
        `prefect.locking.filesystem.FileSystemLockManager` on storage all workers share). Runs
        of the task then hold a SERIALIZABLE Prefect transaction on the cache key, so when two
        flow runs race on the asset one computes it and the other waits and ends Cached: one
        materialization instead of two equivalent ones.
    :param ignore_parameters: names of arguments that do not change the result (a client, a
        logger): not fingerprinted, not compared.
    :param parameter_fingerprints: `{name: fn}`: `fn(value)` gives what is fingerprinted for an
        argument `fingerprint_value` cannot read (or a `DataVersion`).
    :param partition: the name of the argument whose value is the partition the run computes:
        `str` as is, `date` as `YYYY-MM-DD`, `datetime` as the key of the time window it
        starts. Each partition has its own records, status and Cached value; `.map()` over
        the task computes one partition per mapped call.
    :param partitions: the partitions of the asset (`TimeWindowPartitions`, `StaticPartitions`,
        `DynamicPartitions`); with `partition=` alone, `DynamicPartitions(key)`: any key.
    :param partition_mappings: `{dep: mapping}` for partitioned deps (e.g. `TimeWindowMapping`);
        a dep named here is declared.
    :raises InvalidAssetKey: `key` or a dep is not a valid asset key.
    :raises InvalidCodeVersion: `code_version` is not a valid version or `"auto"` cannot read
        the source.
    :raises ConfigError: bad option types or metadata that is not JSON, an option naming no
        argument of the function, partitions without `partition=`, or the decorated object is
        not a Prefect task/flow.
    """
    asset_key = AssetKey.parse(key)
    dep_keys = frozenset(AssetKey.parse(dep) for dep in _as_list(deps, "deps"))
    if data_version is not None and not callable(data_version):
        raise ConfigError(
            f"data_version for {asset_key} must be a function of the returned value, not "
            f"{type(data_version).__name__}; e.g. data_version=insync.core.fingerprint_value"
        )
    if store is not None and not isinstance(store, (str, EventStore)):
        raise ConfigError(
            f"store for {asset_key} must be a URL string or an insync.core.EventStore, not "
            f"{type(store).__name__}"
        )
    if cache is not None and not isinstance(cache, (str, ValueCache)):
        raise ConfigError(
            f"cache for {asset_key} must be a URL string or an insync.core.ValueCache, not "
            f"{type(cache).__name__}"
        )

    def decorate(obj: _T) -> _T:
        if isinstance(obj, (Task, Flow)):
            binding = make_binding(
                asset_key,
                obj.fn,
                code_version=code_version,
                deps=dep_keys,
                infer_deps=infer_deps,
                data_version=data_version,
                store=store,
                cache=cache,
                force=force,
                metadata=metadata,
                ignore_parameters=ignore_parameters,
                parameter_fingerprints=parameter_fingerprints,
                partitions=partitions,
                partition=partition,
                partition_mappings=partition_mappings,
            )
            if isinstance(obj, Task):
                return version_task(obj, binding, lock_manager)  # type: ignore[return-value]
            if lock_manager is not None:
                raise ConfigError(
                    f"lock_manager applies to versioned tasks; flow {obj.name!r} cannot take one "
                    f"(put the lock on the flow's versioned tasks)"
                )
            return _version_flow(obj, binding)  # type: ignore[return-value]
        what = getattr(obj, "__name__", type(obj).__name__)
        raise ConfigError(
            f"versioned({str(asset_key)!r}) decorates a Prefect task or flow, not {what!r}; "
            f"put it above @task, @flow or @materialize"
        )

    return decorate


def _as_list(items: Iterable[Any], what: str) -> list[Any]:
    if isinstance(items, (str, AssetKey)):
        return [items]
    try:
        return list(items)
    except TypeError:
        raise ConfigError(f"{what} must be a list of asset keys, not {type(items).__name__}") from None


def _cached_state(value: Any, message: str) -> State[Any]:
    # A flow that returns a State ends in that state: a Completed state named "Cached" is how
    # Prefect itself spells a cache hit, so the UI shows the skipped flow run as Cached.
    return Completed(data=value, name="Cached", message=message)


def _version_flow(flow_obj: Flow[Any, Any], binding: Binding) -> Flow[Any, Any]:
    """A copy of `flow_obj` whose runs are checked, skipped as Cached, and recorded."""
    if flow_obj.isgenerator:
        raise ConfigError(f"flow {flow_obj.name!r} is a generator; a versioned flow must return its value")
    fn = flow_obj.fn

    def begin(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Step:
        ctx = FlowRunContext.get()
        run_id = str(ctx.flow_run.id) if ctx is not None and ctx.flow_run is not None else None
        code_version, unseen = binding.code.resolve()
        bound = binding.signature.bind(*args, **kwargs)
        bound.apply_defaults()
        step = Step(
            open_store(binding.store),
            binding.spec(binding.deps, code_version, run_owner(partitioned=binding.partitions is not None)),
            run_id=run_id or uuid4().hex,
            framework=FRAMEWORK,
            cache=open_value_cache(binding.cache),
            force=binding.force or bool(PREFECT_TASKS_REFRESH_CACHE.value()),
            unseen_inputs=unseen,
            **binding.step_options(bound.arguments),
        )
        decision = step.check(needs_value=True)
        get_run_logger().info(decision.message)
        return step

    def finish(step: Step, value: Any) -> None:
        metadata: dict[str, Any] = {}
        if step.run_id is not None:
            metadata["prefect_flow_run_id"] = step.run_id
        step.record(value, data_version=binding.user_data_version(value), metadata=metadata)

    if flow_obj.isasync:

        @functools.wraps(fn)
        async def run_async(*args: Any, **kwargs: Any) -> Any:
            step = begin(args, kwargs)
            if step.decision is not None and step.decision.skip:
                return _cached_state(step.decision.value, step.decision.message)
            value = await fn(*args, **kwargs)
            finish(step, value)
            return value

        wrapper: Any = run_async
    else:

        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> Any:
            step = begin(args, kwargs)
            if step.decision is not None and step.decision.skip:
                return _cached_state(step.decision.value, step.decision.message)
            value = fn(*args, **kwargs)
            finish(step, value)
            return value

        wrapper = run
    versioned_flow = flow_obj.with_options()
    versioned_flow.fn = wrapper
    versioned_flow.__insync_binding__ = binding  # type: ignore[attr-defined]
    return versioned_flow
