"""Versioned Prefect tasks: the insync check as a `CachePolicy`, the record around the function.

Prefect computes a task run's cache key when the run starts (inside its transaction), which is
exactly where insync must decide: `InsyncCachePolicy.compute_key` runs `Step.check` there (the
provenance snapshot is taken at that moment) and answers with a result-store key. When the
asset is FRESH the key points at the record its last materialization persisted, Prefect finds
it and the run ends in its native `Cached` state without calling the function. Otherwise the
key is new, Prefect calls the (wrapped) function, and the wrapper records the materialization
before Prefect commits the result under that key.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import pendulum
from insync.core import (
    NO_VALUE,
    AssetKey,
    ConfigError,
    SerializationError,
    StaleCauseCategory,
    Step,
    StepDecision,
)
from prefect.cache_policies import CachePolicy
from prefect.context import AssetContext, TaskRunContext
from prefect.exceptions import SerializationError as PrefectSerializationError
from prefect.logging import get_run_logger
from prefect.settings import PREFECT_TASKS_REFRESH_CACHE
from prefect.transactions import get_transaction

from ._binding import Binding
from ._lineage import emit_task_lineage
from ._runtime import (
    ASSET_BY_TASK_RUN,
    CACHE_KEY_FIELD,
    FRAMEWORK,
    BoundedMap,
    cache_key,
    open_store,
    open_value_cache,
    run_owner,
    upstream_keys,
)

if TYPE_CHECKING:
    from uuid import UUID

    from prefect.locking.protocol import LockManager
    from prefect.tasks import Task


@dataclass(frozen=True, slots=True)
class _Pending:
    """What the policy decided for one task run attempt, handed to the wrapped function."""

    step: Step
    key: str


# Task run id -> the attempt's decision (or the error raised while deciding). The policy puts,
# the wrapper pops within the same attempt; a Cached run never calls the wrapper, so the map
# is bounded (far above the task runs one process has in flight at once).
_PENDING: BoundedMap[UUID, _Pending | BaseException] = BoundedMap(limit=16_384)


# (store URL, asset key) -> the deps inferred for the asset in this process so far. Inference
# sees only the call at hand: a value Prefect cannot track (a small int) or another call shape
# would drop a dep the user never removed. An inferred dep stays (here, and through the
# recorded provenance across processes); `deps=[...]` declares the set when one must go.
_INFERRED: BoundedMap[tuple[str, AssetKey], frozenset[AssetKey]] = BoundedMap(limit=16_384)


def _refresh_requested(task: Task[Any, Any]) -> bool:
    """Prefect's own force switches: `refresh_cache=True` on the task or the global setting."""
    if task.refresh_cache is not None:
        return bool(task.refresh_cache)
    return bool(PREFECT_TASKS_REFRESH_CACHE.value())


def _removed_deps(decision: StepDecision) -> set[AssetKey]:
    return {
        cause.dependency
        for cause in decision.status.causes
        if cause.category is StaleCauseCategory.DEPENDENCIES
        and cause.reason.startswith("removed dependency on ")
        and cause.dependency is not None
        and cause.dependency_partition is None
    }


@dataclass
class InsyncCachePolicy(CachePolicy):
    """A cache key made of the asset, its partition, its code version, its inputs' data versions
    and its parameters' fingerprints.

    The key is computed from the insync store and the fingerprints, never from upstream values.
    """

    binding: Binding | None = field(default=None)

    def compute_key(
        self,
        task_ctx: TaskRunContext,
        inputs: dict[str, Any],
        flow_parameters: dict[str, Any],
        **kwargs: Any,
    ) -> str | None:
        if self.binding is None:  # pragma: no cover - only built by `versioned`
            return None
        task_run = task_ctx.task_run
        try:
            return self._decide(self.binding, task_ctx, inputs)
        except Exception as exc:
            # Prefect would log and run the task uncached; the wrapper re-raises instead, so a
            # store outage, a cycle or an unfingerprintable parameter fails the task with
            # insync's own message.
            _PENDING.put(task_run.id, exc)
            return None

    @staticmethod
    def _decide(binding: Binding, task_ctx: TaskRunContext, inputs: dict[str, Any]) -> str:
        task_run = task_ctx.task_run
        ASSET_BY_TASK_RUN.put(task_run.id, binding.key)
        code_version, unseen = binding.code.resolve()
        inferred, from_upstream = upstream_keys(task_run.task_inputs)
        inferred.discard(binding.key)
        store = open_store(binding.store)
        learned_key = (str(store.url), binding.key)
        if binding.declared_deps:
            deps = set(binding.deps)
            for name, keys in sorted(from_upstream.items()):
                missing = sorted(keys - deps - {binding.key})
                if missing:
                    raise ConfigError(
                        f"argument {name!r} of {task_ctx.task.name!r} is the value of "
                        f"{', '.join(map(str, missing))}, which deps=[...] of {binding.key} does not "
                        f"list; add {', '.join(repr(str(k)) for k in missing)} to deps (declared "
                        f"deps replace inferred ones)"
                    )
        else:
            deps = inferred | (_INFERRED.get(learned_key) or frozenset())
        # Arguments that are another partition's value of this same asset are parameters.
        upstream = [name for name, keys in from_upstream.items() if binding.key not in keys]
        options = binding.step_options(binding.call_values(inputs), upstream)
        refresh = _refresh_requested(task_ctx.task)
        needs_value = binding.cache is not None
        owner = run_owner(partitioned=binding.partitions is not None)

        def check(deps: set[AssetKey]) -> Step:
            step = Step(
                store,
                binding.spec(deps, code_version, owner),
                run_id=str(task_run.flow_run_id or task_run.id),
                framework=FRAMEWORK,
                cache=None if binding.cache is None else open_value_cache(binding.cache),
                force=binding.force or refresh,
                unseen_inputs=unseen,
                **options,
            )
            step.check(needs_value=needs_value)
            return step

        step = check(deps)
        assert step.decision is not None
        if not binding.declared_deps:
            removed = _removed_deps(step.decision)
            if removed:  # the call shape hid a dep recorded before: keep it, ask again
                deps |= removed
                step = check(deps)
            _INFERRED.put(learned_key, frozenset(deps))
        decision = step.decision
        assert decision is not None
        get_run_logger().info(decision.message)
        if decision.skip:  # the run ends Cached: its lineage is complete now
            emit_task_lineage(step, task_ctx=task_ctx)
        result_store = task_ctx.result_store
        fresh_key = cache_key(binding.key, code_version, decision.inputs, step.partition, step.parameters)
        # Without a lock manager a run's record is also named after its run id: a skip then finds
        # the record of the run it reuses (FRESH: same versions, and the status names that run)
        # without reading the event's metadata. With one, racing runs must share the key.
        serialized = result_store.lock_manager is not None
        if decision.skip:
            key = _run_key(fresh_key, decision.status.last_run_id)
            if serialized or not result_store.exists(key):
                # Recorded under another name (a lock manager, an earlier insync, a retried
                # key): the materialization's metadata says which.
                latest = store.history(binding.key, limit=1, kind="materialization", partition=step.partition)
                recorded = latest[0].metadata.get(CACHE_KEY_FIELD) if latest else None
                key = recorded if isinstance(recorded, str) else fresh_key
            if binding.cache is not None:
                if not result_store.exists(key):
                    # The value lives in the insync value cache only (materialized elsewhere,
                    # or Prefect's storage was cleared): hand it to Prefect so the run still
                    # ends Cached.
                    result_store.write(obj=decision.value, key=key)
                # The pending entry outlives a Cached run; it must not pin a large value.
                step.decision = replace(decision, value=NO_VALUE)
        else:
            key = fresh_key if serialized else _run_key(fresh_key, step.run_id)
            # A racing run that holds the key's lock is writing this very result (the value is
            # persisted before its commit): keep the key, wait on the lock, and end Cached.
            in_flight = serialized and result_store.is_locked(key)
            if not refresh and not in_flight and result_store.exists(key):
                # An older record under this key (a reverted code version, a forced re-run)
                # would make Prefect report Cached although insync decided to run.
                key = f"{fresh_key}-{task_run.id.hex}-{task_run.run_count}"
        # Also on skip: if Prefect's record is gone after all, Prefect calls the function and
        # the wrapper records the new materialization.
        _PENDING.put(task_run.id, _Pending(step, key))
        return key


def _run_key(fresh_key: str, run_id: str | None) -> str:
    return f"{fresh_key}-{run_id}" if run_id else fresh_key


def _persist_error(task_name: str, key: AssetKey, value: Any, exc: Exception) -> SerializationError:
    if isinstance(exc, PrefectSerializationError):
        return SerializationError(
            f"task {task_name!r} returned a {type(value).__module__}.{type(value).__qualname__} that "
            f"Prefect cannot serialize ({exc}); nothing was recorded for {key}. Return a value the "
            f"result serializer can write (plain data, a DataFrame), or set "
            f"@task(result_serializer=...) to one that can"
        )
    return SerializationError(
        f"Prefect's result storage cannot be written for task {task_name!r} "
        f"({type(exc).__name__}: {exc}); nothing was recorded for {key}. A Cached run needs the "
        f"value there: fix PREFECT_LOCAL_STORAGE_PATH or the task's result_storage"
    )


def _expiration(task: Task[Any, Any] | None) -> Any:
    if task is None or task.cache_expiration is None:
        return None
    return pendulum.now("UTC") + task.cache_expiration


def _persist(task_name: str, binding: Binding, pending: _Pending, value: Any) -> Any:
    """Write the value where Prefect's cache hit will read it, before anything is recorded.

    Prefect writes results when the task's transaction commits, after the function returned,
    and only logs a failure there: insync would then hold a materialization whose value exists
    nowhere, say FRESH and run the task again on every run. So the value is written here, where
    a failure still fails the task, and the commit is told the record is written.
    """
    ctx = TaskRunContext.get()
    txn = get_transaction()
    assert ctx is not None  # checked by `_claim`
    try:
        ctx.result_store.write(
            obj=value, key=pending.key, expiration=_expiration(ctx.task), holder=_holder(txn)
        )
    except Exception as exc:
        raise _persist_error(task_name, binding.key, value, exc) from exc
    return txn


async def _apersist(task_name: str, binding: Binding, pending: _Pending, value: Any) -> Any:
    ctx = TaskRunContext.get()
    txn = get_transaction()
    assert ctx is not None  # checked by `_claim`
    try:
        await ctx.result_store.awrite(
            obj=value, key=pending.key, expiration=_expiration(ctx.task), holder=_holder(txn)
        )
    except Exception as exc:
        raise _persist_error(task_name, binding.key, value, exc) from exc
    return txn


def _holder(txn: Any) -> str | None:
    # The transaction's lock holder (a SERIALIZABLE transaction holds the key's lock).
    holder = getattr(txn, "_holder", None)
    return holder if isinstance(holder, str) else None


def _written(txn: Any, pending: _Pending) -> None:
    if txn is not None and getattr(txn, "key", None) == pending.key:
        txn.write_on_commit = False


def _record(binding: Binding, pending: _Pending, value: Any) -> None:
    """Record the materialization; with Prefect assets, also put the versions on the event."""
    task_run = TaskRunContext.get()
    metadata: dict[str, Any] = {CACHE_KEY_FIELD: pending.key}
    if task_run is not None:
        metadata["prefect_task_run_id"] = str(task_run.task_run.id)
        if task_run.task_run.flow_run_id is not None:
            metadata["prefect_flow_run_id"] = str(task_run.task_run.flow_run_id)
    data_version = binding.user_data_version(value)
    if binding.cache is not None:
        event = pending.step.record(value, data_version=data_version, metadata=metadata)
    else:
        event = pending.step.record(data_version=data_version, metadata=metadata)
    emit_task_lineage(pending.step, event)
    asset_ctx = AssetContext.get()
    if asset_ctx is not None and asset_ctx.downstream_assets:
        versions = {
            "insync_asset_key": str(binding.key),
            "code_version": event.code_version,
            "data_version": str(event.data_version),
        }
        for asset in asset_ctx.downstream_assets:
            asset_ctx.add_asset_metadata(asset.key, versions)


def _claim(task_name: str) -> _Pending:
    ctx = TaskRunContext.get()
    if ctx is None:
        raise ConfigError(
            f"versioned task {task_name!r} was called outside a Prefect task run; call the task "
            f"inside a @flow, or call its undecorated function `.fn` directly"
        )
    pending = _PENDING.pop(ctx.task_run.id)
    if isinstance(pending, BaseException):
        raise pending
    if pending is None:
        raise ConfigError(
            f"versioned task {task_name!r} ran without insync's cache policy (was `cache_policy` "
            f"replaced with `.with_options`?); keep the policy set by `versioned`"
        )
    decision = pending.step.decision
    if decision is not None and decision.skip:
        # In sync, but Prefect found no record under the key (storage cleared, expired or not
        # shared between workers): the function runs, and its new materialization is recorded.
        get_run_logger().info(
            "run %s: %s, its value is missing from Prefect's result storage",
            decision.status.label,
            decision.status.status.value,
        )
    return pending


def version_task(
    task: Task[Any, Any], binding: Binding, lock_manager: LockManager | None = None
) -> Task[Any, Any]:
    """A copy of `task` whose runs are checked, skipped as Cached, and recorded.

    :raises ConfigError: the task is a generator, or already has its own cache policy, cache
        key function, result storage key or `persist_result=False` (a Cached run needs the
        persisted result under insync's key).
    """
    if task.isgenerator:
        raise ConfigError(f"task {task.name!r} is a generator; a versioned task must return its value")
    user_policy = getattr(task, "_user_cache_policy", None)
    if task.cache_key_fn is not None or (
        isinstance(user_policy, CachePolicy) and not isinstance(user_policy, InsyncCachePolicy)
    ):
        raise ConfigError(
            f"task {task.name!r} sets its own cache_policy/cache_key_fn; insync computes the cache "
            f"key from code and data versions: remove it from @task"
        )
    if task.result_storage_key is not None:
        raise ConfigError(
            f"task {task.name!r} sets result_storage_key; insync names the stored result after its "
            f"code and data versions: remove result_storage_key"
        )
    if task.persist_result is False:
        raise ConfigError(
            f"task {task.name!r} has persist_result=False; a Cached run returns the persisted "
            f"result: remove persist_result=False"
        )
    fn = task.fn
    name = task.name

    if task.isasync:

        @functools.wraps(fn)
        async def run_async(*args: Any, **kwargs: Any) -> Any:
            pending = _claim(name)
            try:
                value = await fn(*args, **kwargs)
                txn = await _apersist(name, binding, pending, value)
                _record(binding, pending, value)
            except Exception as exc:
                emit_task_lineage(pending.step, failed=exc)
                raise
            _written(txn, pending)
            return value

        wrapper: Any = run_async
    else:

        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> Any:
            pending = _claim(name)
            try:
                value = fn(*args, **kwargs)
                txn = _persist(name, binding, pending, value)
                _record(binding, pending, value)
            except Exception as exc:  # the run's FAIL event; the task fails as it would
                emit_task_lineage(pending.step, failed=exc)
                raise
            _written(txn, pending)
            return value

        wrapper = run
    policy = InsyncCachePolicy(binding=binding)
    if lock_manager is not None:
        policy = policy.configure(lock_manager=lock_manager, isolation_level="SERIALIZABLE")
    versioned_task = task.with_options(cache_policy=policy, persist_result=True)
    # `with_options` keeps the original function; swap in the wrapper (same signature through
    # `__wrapped__`, same name, task key and async-ness as the original).
    versioned_task.fn = wrapper
    versioned_task.__insync_binding__ = binding  # type: ignore[attr-defined]
    return versioned_task
