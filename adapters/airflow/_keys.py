"""How Airflow names become insync asset keys, and what a versioned task declares.

Key rules (documented in examples/airflow/README.md):

- an explicit ``key=`` wins (``"analytics/orders"`` or ``["analytics", "orders"]``);
- else an ``"insync": {"key": ...}`` entry in the extra of the task's outlet ``Asset``;
- else the outlet ``Asset``'s *name* split on ``/``: ``Asset("analytics/orders")`` ->
  ``analytics/orders``. A URI-style name keeps its scheme as the first part:
  ``Asset("s3://bucket/orders.csv")`` -> ``s3/bucket/orders.csv``,
  ``Asset("file:///data/x.csv")`` -> ``file/data/x.csv``;
- else ``dag_id/task_id`` (a task in a TaskGroup keeps its dotted id: ``etl/group.load``).

A mapped task is one asset whose partitions are its map indexes: map index 3 of ``etl/load`` is
partition ``3`` of ``etl/load`` (a ``DynamicPartitions`` named after the key).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from insync.core import (
    AssetKey,
    ConfigError,
    DataVersion,
    EventStore,
    InvalidAssetKey,
    PartitionMapping,
    PartitionsDefinition,
    ValueCache,
)

if TYPE_CHECKING:
    from airflow.sdk.definitions.asset import Asset

__all__ = [
    "VersionSettings",
    "asset_key_for",
    "deps_for",
    "insync_extra",
    "key_from_asset_name",
    "opened_store",
    "settings_of",
    "store_url",
    "value_cache",
]

#: Key under which insync settings live in an Airflow ``Asset.extra``.
EXTRA_KEY = "insync"


@dataclass(frozen=True, slots=True)
class VersionSettings:
    """What a DAG author declared for one versioned task (resolved at run time, never at parse).

    ``code_version`` is ``"auto"``, an explicit string, or ``None`` (unknown: never skipped).
    ``deps`` ``None`` means "the task's inlets plus its versioned upstream tasks".
    """

    key: str | Sequence[str] | None = None
    code_version: str | None = "auto"
    deps: tuple[str | Sequence[str], ...] | None = None
    data_version: Callable[[Any], DataVersion | str] | None = None
    force: bool = False
    store: EventStore | str | None = None
    cache: ValueCache | str | None = None
    kind: Literal["materializable", "observable"] = "materializable"
    #: Partitions of the task's asset; ``partition`` names the run's one (a Jinja template
    #: rendered with the task context, or a function ``context -> key``), else see
    #: ``_inputs.partition_of``.
    partitions: PartitionsDefinition | None = None
    partition: str | Callable[[Any], str] | None = None
    partition_mappings: tuple[tuple[str, PartitionMapping], ...] = ()
    #: Parameters (function arguments, context values, rendered templated fields) that do not
    #: change the result, and functions turning a parameter into something fingerprintable.
    ignore_parameters: tuple[str, ...] = ()
    parameter_fingerprints: tuple[tuple[str, Callable[[Any], Any]], ...] = ()
    #: For ``code_version="auto"`` on an operator without a Python callable: the operator's
    #: class and raw (unrendered) templated fields, captured when the task was wrapped.
    auto_source: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.key is not None:
            _parse_key(self.key, what="key=")
        for dep in self.deps or ():
            _parse_key(dep, what="deps=")
        if self.data_version is not None and not callable(self.data_version):
            raise ConfigError(
                f"data_version= must be a function value -> data version, "
                f"not {type(self.data_version).__name__}"
            )
        if self.store is not None and not isinstance(self.store, (str, EventStore)):
            raise ConfigError(
                f"store= must be a URL string or an insync.core.EventStore, not {type(self.store).__name__}"
            )
        if self.cache is not None and not isinstance(self.cache, (str, ValueCache)):
            raise ConfigError(
                f"cache= must be a URL string or an insync.core.ValueCache, not {type(self.cache).__name__}"
            )
        if self.code_version is not None and not isinstance(self.code_version, str):
            raise ConfigError(
                f"code_version= must be a string such as 'v1' or 'auto', or None, "
                f"not {type(self.code_version).__name__}"
            )
        if self.partition is not None and self.partitions is None:
            raise ConfigError(
                "partition= names a partition, but the asset has no partitions=; declare them, "
                "e.g. partitions=StaticPartitions(['eu', 'us']), or drop partition="
            )
        if self.partition is not None and not (
            isinstance(self.partition, str) or callable(self.partition)
        ):
            raise ConfigError(
                f"partition= must be a template such as '{{{{ params.region }}}}' or a function "
                f"context -> key, not {type(self.partition).__name__}"
            )
        for name in self.ignore_parameters:
            if not isinstance(name, str):
                raise ConfigError(f"ignore_parameters= lists names, not {name!r}")
        for name, fn in self.parameter_fingerprints:
            if not callable(fn):
                raise ConfigError(
                    f"parameter_fingerprints[{name!r}] must be a function value -> fingerprintable "
                    f"value, not {type(fn).__name__}"
                )


@contextmanager
def opened_store(store: EventStore | str | None) -> Iterator[EventStore]:
    """The store for one task run: a given ``EventStore`` as is (its owner closes it), else one
    opened from the URL (or the default location) for the block and closed after it.

    :raises StoreError: the store cannot be opened.
    """
    if isinstance(store, EventStore):
        yield store
        return
    with EventStore(store) as opened:
        yield opened


def value_cache(cache: ValueCache | str | None) -> ValueCache:
    """A given ``ValueCache``, else one at the URL (or the default location)."""
    return cache if isinstance(cache, ValueCache) else ValueCache(cache)


def store_url(store: EventStore | str | None) -> str | None:
    """What a trigger serializes for the triggerer process: the URL, never the open store."""
    return store.settings.database_url if isinstance(store, EventStore) else store


def _parse_key(value: str | Sequence[str] | AssetKey, *, what: str) -> AssetKey:
    try:
        return AssetKey.parse(value)
    except InvalidAssetKey as exc:
        raise InvalidAssetKey(f"{what} {value!r}: {exc}") from exc


def key_from_asset_name(name: str) -> AssetKey:
    """The insync key of an Airflow Asset name (see the module docstring for the rules).

    :raises InvalidAssetKey: the name has an empty part (``"raw//orders"``); name the Asset
        like ``Asset(name="raw/orders", uri=...)`` or pass ``key=`` explicitly.
    """
    scheme, sep, rest = name.partition("://")
    is_uri = bool(sep and scheme and "/" not in scheme)
    parts = [scheme, *rest.strip("/").split("/")] if is_uri else name.split("/")
    try:
        return AssetKey(parts)
    except InvalidAssetKey as exc:
        raise InvalidAssetKey(
            f"Airflow Asset {name!r} does not map to an insync asset key ({exc}); name it like "
            "Asset(name='raw/orders', uri=...) or pass key='raw/orders' to insync"
        ) from exc


def insync_extra(asset: Any) -> Mapping[str, Any] | None:
    """The ``"insync"`` settings in an Asset's extra (``True`` means defaults), or None.

    :raises ConfigError: the entry is neither ``True`` nor a dict.
    """
    extra = getattr(asset, "extra", None) or {}
    value = extra.get(EXTRA_KEY)
    if value is None or value is False:
        return None
    if value is True:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(
            f"Asset {getattr(asset, 'name', asset)!r} has extra['insync'] = {value!r}; use True "
            "or a dict such as {'code_version': 'v1'}"
        )
    return value


def _outlet_assets(task: Any) -> list[Asset]:
    from airflow.sdk import Asset

    return [o for o in (getattr(task, "outlets", None) or ()) if isinstance(o, Asset)]


def asset_key_for(task: Any, settings: VersionSettings) -> AssetKey:
    """The insync key of a task (a mapped task's instances are partitions of this one key).

    :raises ConfigError: the task has several outlet Assets and no ``key=`` says which one.
    :raises InvalidAssetKey: the derived key is malformed.
    """
    if settings.key is not None:
        key = _parse_key(settings.key, what="key=")
    else:
        assets = _outlet_assets(task)
        explicit = [a for a in assets if (insync_extra(a) or {}).get("key")]
        if explicit:
            key = _parse_key(insync_extra(explicit[0])["key"], what="Asset extra insync.key")  # type: ignore[index]
        elif len(assets) == 1:
            key = key_from_asset_name(assets[0].name)
        elif len(assets) > 1:
            names = ", ".join(repr(a.name) for a in assets)
            raise ConfigError(
                f"task {task.task_id!r} has {len(assets)} outlet Assets ({names}); pass "
                "key='...' to insync (or extra={'insync': {'key': ...}} on one Asset) to say "
                "which one it materializes"
            )
        else:
            key = AssetKey([task.dag_id, task.task_id])
    return key


def settings_of(task: Any) -> VersionSettings | None:
    """The insync settings a task carries (wrapped operator, decorated callable, sensor), or None."""
    settings = getattr(task, "_insync_settings", None)
    if isinstance(settings, VersionSettings):
        return settings
    callable_ = getattr(task, "python_callable", None)
    if callable_ is None:
        partial_kwargs = getattr(task, "partial_kwargs", None) or {}
        callable_ = partial_kwargs.get("python_callable")
        operator_class = getattr(task, "operator_class", None)
        settings = getattr(operator_class, "_insync_settings", None)
        if isinstance(settings, VersionSettings):
            return settings
    settings = getattr(callable_, "__insync_settings__", None)
    return settings if isinstance(settings, VersionSettings) else None


def _inlet_keys(task: Any) -> Iterable[AssetKey]:
    from airflow.sdk import Asset
    from airflow.sdk.definitions.asset import AssetNameRef, AssetUriRef

    for inlet in getattr(task, "inlets", None) or ():
        if isinstance(inlet, Asset):
            extra = insync_extra(inlet) or {}
            if extra.get("key"):
                yield _parse_key(extra["key"], what="Asset extra insync.key")
            else:
                yield key_from_asset_name(inlet.name)
        elif isinstance(inlet, AssetNameRef):
            yield key_from_asset_name(inlet.name)
        elif isinstance(inlet, AssetUriRef):
            yield key_from_asset_name(inlet.uri)


def deps_for(task: Any, settings: VersionSettings) -> tuple[AssetKey, ...]:
    """Explicit ``deps=``; else the task's inlets plus the keys of its versioned upstream tasks.

    A mapped upstream task is not added (its map indexes are only known at run time); what it
    hands this task is a parameter instead (the data versions of its map indexes in the run).
    """
    if settings.deps is not None:
        return tuple(dict.fromkeys(_parse_key(d, what="deps=") for d in settings.deps))
    keys: list[AssetKey] = list(_inlet_keys(task))
    dag = getattr(task, "dag", None)
    for upstream_id in sorted(getattr(task, "upstream_task_ids", ()) or ()):
        upstream = dag.task_dict.get(upstream_id) if dag is not None else None
        if upstream is None or is_mapped(upstream):
            continue
        upstream_settings = settings_of(upstream)
        if upstream_settings is not None:
            keys.append(asset_key_for(upstream, upstream_settings))
    return tuple(dict.fromkeys(keys))


def is_mapped(task: Any) -> bool:
    """Whether ``task`` is the DAG's mapped operator (``.partial().expand()``, ``.expand()``)."""
    from airflow.sdk.definitions.mappedoperator import MappedOperator

    return isinstance(task, MappedOperator)
