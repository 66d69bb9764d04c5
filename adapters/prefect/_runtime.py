"""Run-time state shared by the cache policy, the wrapped functions and the observation flow.

Nothing here runs at import or decoration time: stores open on the first task run that needs
them, so importing a flow module never touches the insync store (a deployment parses flows
often).
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Hashable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Generic, TypeVar
from uuid import UUID

from insync.core import AssetKey, EventStore, ValueCache, resolve_settings
from insync.core._owners import owner_metadata
from prefect.context import FlowRunContext

if TYPE_CHECKING:
    from insync.core import InputVersion

FRAMEWORK = "prefect"
# Materialization metadata naming the Prefect result-store key that holds the value, so a later
# skip points Prefect's transaction at the record this materialization wrote.
CACHE_KEY_FIELD = "prefect_cache_key"

_K = TypeVar("_K", bound=Hashable)
_V = TypeVar("_V")


class BoundedMap(Generic[_K, _V]):
    """A thread-safe insertion-ordered map that forgets its oldest entries past `limit`.

    Long-lived workers run tasks forever; per-task-run bookkeeping must not grow without bound.
    """

    def __init__(self, limit: int = 65_536) -> None:
        self._data: OrderedDict[_K, _V] = OrderedDict()
        self._limit = limit
        self._lock = threading.Lock()

    def put(self, key: _K, value: _V) -> None:
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self._limit:
                self._data.popitem(last=False)

    def get(self, key: _K) -> _V | None:
        with self._lock:
            return self._data.get(key)

    def pop(self, key: _K) -> _V | None:
        with self._lock:
            return self._data.pop(key, None)


# Task run id -> asset key of every versioned task run seen in this process: a downstream task's
# `task_inputs` name upstream task runs, and this turns them into asset dependencies.
ASSET_BY_TASK_RUN: BoundedMap[UUID, AssetKey] = BoundedMap()

_stores: dict[str, EventStore] = {}
_caches: dict[str, ValueCache] = {}
_open_lock = threading.Lock()


def open_store(store: str | EventStore | None) -> EventStore:
    """The store to use for one run: the given one, or one opened (once per process) from a URL.

    The location is resolved now (argument > INSYNC_DATABASE_URL > INSYNC_HOME > ./.insync),
    so each distinct location gets one open store per process.

    :raises insync.core.ConfigError: the URL cannot be parsed.
    :raises insync.core.StoreError: the store cannot be opened (unreachable, wrong schema).
    """
    if isinstance(store, EventStore):
        return store
    url = resolve_settings(store).database_url
    with _open_lock:
        opened = _stores.get(url)
        if opened is None:
            opened = EventStore(url)
            _stores[url] = opened
        return opened


def open_value_cache(cache: ValueCache | str | None) -> ValueCache:
    """The given value cache, or one opened (once per process) from a URL or the default location
    (INSYNC_CACHE_URL or next to the store).

    :raises insync.core.ConfigError: the URL cannot be used.
    """
    if isinstance(cache, ValueCache):
        return cache
    url = resolve_settings(cache_url=cache).cache_url
    with _open_lock:
        opened = _caches.get(url)
        if opened is None:
            opened = ValueCache(url)
            _caches[url] = opened
        return opened


def close_all() -> None:
    """Close every store this module opened (tests, and processes that switch stores)."""
    with _open_lock:
        for store in _stores.values():
            store.close()
        _stores.clear()
        _caches.clear()


# Deployment id -> its name: one API call per deployment and process, not one per task run.
_DEPLOYMENT_NAMES: BoundedMap[UUID, str] = BoundedMap(limit=1024)


def run_owner(*, partitioned: bool = False) -> dict[str, Any]:
    """In a deployment's flow run: that deployment, recorded as the owner of the assets its
    versioned steps define, so `insync automate` can run it again. Empty for a local run (and a
    subflow, which is not what a launch would start). `partitioned`: the step's partition comes
    from its `partition=` (the flow's own arguments), which a launch cannot aim at one partition.

    Read from the flow run context, never from `prefect.runtime.deployment` (for a local run it
    asks the API for the flow run on every call). An unreachable API records no owner: a step
    must not fail for want of one.
    """
    ctx = FlowRunContext.get()
    flow_run = ctx.flow_run if ctx is not None else None
    deployment_id = flow_run.deployment_id if flow_run is not None else None
    if ctx is None or ctx.flow is None or deployment_id is None:
        return {}
    name = _DEPLOYMENT_NAMES.get(deployment_id)
    if name is None:
        from prefect.client.orchestration import get_client

        try:
            with get_client(sync_client=True) as client:
                name = client.read_deployment(deployment_id).name
        except Exception:
            return {}
        _DEPLOYMENT_NAMES.put(deployment_id, name)
    target = f"{ctx.flow.name}/{name}"
    return owner_metadata("prefect", target, partition_by="partition=" if partitioned else "")


def upstream_keys(task_inputs: Mapping[str, Iterable[Any]]) -> tuple[set[AssetKey], dict[str, set[AssetKey]]]:
    """What the versioned task runs feeding a task run tell: their asset keys, and which
    arguments are their values (with the assets each came from).

    An argument is an upstream value when every task run it came from is a versioned task run of
    this process; one that also carries the result of an unversioned task is a parameter (its
    value is all insync can see of it). `wait_for` and parents order runs, they are no arguments.
    """
    found: set[AssetKey] = set()
    from_upstream: dict[str, set[AssetKey]] = {}
    for name, refs in task_inputs.items():
        runs = [ref for ref in refs if getattr(ref, "input_type", None) == "task_run"]
        keys = [ASSET_BY_TASK_RUN.get(ref.id) for ref in runs]
        known = {k for k in keys if k is not None}
        found |= known
        if runs and None not in keys and name not in ("wait_for", "__parents__"):
            from_upstream[name] = known
    return found, from_upstream


def cache_key(
    key: AssetKey,
    code_version: str | None,
    inputs: Iterable[InputVersion],
    partition: str | None = None,
    parameters: Iterable[tuple[str, str]] = (),
) -> str:
    """Prefect result-store key: the asset and partition, its code version, its inputs' data
    versions and its parameters' fingerprints.

    Never the upstream values themselves: two runs whose upstream data versions agree share the
    key even if Prefect hands the task different Python objects, and an upstream change or a
    helper edit (under `auto`) changes it. JSON of nested lists is injective, so distinct inputs
    never share a key.
    """
    fields = [
        str(key),
        partition,
        code_version,
        sorted([str(item.key), item.partition or "", str(item.data_version)] for item in inputs),
        sorted([name, fingerprint] for name, fingerprint in parameters),
    ]
    digest = hashlib.sha256(json.dumps(fields, separators=(",", ":")).encode()).hexdigest()
    return f"insync-{digest}"
