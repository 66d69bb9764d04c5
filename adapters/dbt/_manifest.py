"""Turn a parsed (and compiled) dbt manifest into insync asset definitions.

Choices, each deliberate (see examples/dbt/README.md):
- models (table, incremental, view), seeds and snapshots are materializable assets; sources are
  `observable` when insync can observe them, otherwise `external`;
- ephemeral models are not assets: dbt inlines them into their users' compiled SQL, so their
  code is part of each user's code version and their parents become the users' dependencies;
- tests are not assets: they run with the models they test, and a model whose error-severity
  test fails is not recorded (the next build retries it and its tests);
- snapshots always run (their job is to notice source changes insync may not see) and get a
  content data version, so a snapshot that captured nothing leaves its descendants in sync
  (on a warehouse without a checksum query, a new version per run: descendants always rebuild);
- a source nobody declared an observation for is observed by its content checksum where insync
  has one (DuckDB, PostgreSQL); elsewhere it is unobserved and its readers always rebuild;
- an incremental model's code version is taken from its full-build SQL (`is_incremental()`
  false: the same whether or not the table exists yet) plus its own raw text, so an edit inside
  the `is_incremental()` branch counts too;
- a microbatch model is a time-partitioned asset (one partition per batch, cadence from
  `batch_size`, from `begin`); a source with `event_time` read only by microbatch models is
  observed window by window, so a change in one day unsyncs that day's batches only.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal

from insync.core import (
    AssetKey,
    AssetSpec,
    ConfigError,
    TimeWindowPartitions,
    fingerprint_file,
    fingerprint_value,
)

from ._sql import normalize_sql

if TYPE_CHECKING:
    from dbt.contracts.graph.manifest import Manifest

__all__ = ["DbtAsset", "Observation", "assets_from_manifest", "topological_order", "window_floor"]

FRAMEWORK: Final = "dbt"
DataVersionMode = Literal["logical", "content"]
META_KEYS: Final = frozenset({"key", "code_version", "data_version", "observe"})
# Configs that change the object dbt builds; docs, tags, grants and meta do not.
BUILD_CONFIGS: Final = (
    "materialized", "unique_key", "incremental_strategy", "on_schema_change",
    "incremental_predicates", "full_refresh", "contract", "indexes", "partition_by",
    "cluster_by", "sort", "dist", "strategy", "updated_at", "check_cols", "hard_deletes",
    "invalidate_hard_deletes", "snapshot_meta_column_names", "dbt_valid_to_current",
    "column_types", "quote_columns", "delimiter", "event_time", "batch_size", "begin",
    "lookback", "concurrent_batches", "external_location", "format", "options",
)
# dbt's microbatch `batch_size` -> insync's time-window cadence (a year has no insync cadence).
CADENCE_OF_BATCH: Final[dict[str, Literal["hourly", "daily", "monthly"]]] = {
    "hour": "hourly", "day": "daily", "month": "monthly"
}


@dataclass(frozen=True, slots=True)
class Observation:
    """How to observe a source: `kind` is `query` (user SQL), `content` or `loaded_at`."""

    kind: Literal["query", "content", "loaded_at", "windows"]
    sql: str  # the query, the loaded_at field/expression, or the event_time column (windows)
    implicit: bool = False  # chosen by insync (no declaration): a missing table is no error


@dataclass(frozen=True, slots=True)
class DbtAsset:
    """One dbt node seen as an insync asset."""

    unique_id: str
    name: str
    resource_type: str  # model | seed | snapshot | source
    key: AssetKey
    materialized: str | None
    code_version: str | None
    data_version: DataVersionMode
    parents: tuple[str, ...]  # unique ids of parent assets (through ephemeral models)
    relation: str | None  # as dbt renders it, e.g. "shop"."main"."orders"
    database: str | None
    schema: str
    identifier: str
    observation: Observation | None = None
    always_run: bool = False
    partitions: TimeWindowPartitions | None = None  # microbatch batches, or a source's windows
    event_time: str | None = None  # dbt's event_time config: readers filter on it per batch
    strategy: str | None = None  # incremental_strategy of an incremental model
    batch_size: str | None = None  # microbatch models

    @property
    def is_source(self) -> bool:
        return self.resource_type == "source"

    @property
    def is_incremental(self) -> bool:
        return self.materialized == "incremental"

    @property
    def is_microbatch(self) -> bool:
        return self.is_incremental and self.strategy == "microbatch"

    def spec(
        self, keys: Mapping[str, AssetKey], *, observed: bool = True, owner: Mapping[str, Any] | None = None
    ) -> AssetSpec:
        """The insync definition; `keys` maps parent unique ids to their asset keys.

        `observed=False` registers a source as `external` even if it could be observed: some
        other orchestrator materializes that key, and its records are the truth.
        """
        if self.is_source:
            observable = self.observation is not None and observed
            kind: Literal["observable", "external"] = "observable" if observable else "external"
            return AssetSpec(self.key, kind=kind, framework=FRAMEWORK, metadata=self._metadata(),
                             partitions=self.partitions if observed else None)
        return AssetSpec(
            self.key,
            code_version=self.code_version,
            deps=[keys[p] for p in self.parents],
            framework=FRAMEWORK,
            metadata={**self._metadata(), **(owner or {})},
            partitions=self.partitions,
        )

    def _metadata(self) -> dict[str, Any]:
        meta: dict[str, Any] = {"dbt_unique_id": self.unique_id, "resource_type": self.resource_type}
        if self.materialized:
            meta["materialized"] = self.materialized
        if self.relation:
            meta["relation"] = self.relation
        if self.batch_size:
            meta["batch_size"] = self.batch_size
        return meta


def _insync_meta(unique_id: str, *metas: Mapping[str, Any] | None) -> dict[str, Any]:
    """The merged `meta: {insync: {...}}` blocks (later wins), validated.

    :raises ConfigError: the block is not a mapping or has an unknown key.
    """
    merged: dict[str, Any] = {}
    for meta in metas:
        block = (meta or {}).get("insync")
        if block is None:
            continue
        if not isinstance(block, Mapping):
            raise ConfigError(
                f"{unique_id}: meta.insync must be a mapping such as "
                f"{{data_version: content}}, got {block!r}"
            )
        unknown = sorted(set(block) - META_KEYS)
        if unknown:
            raise ConfigError(
                f"{unique_id}: unknown meta.insync key(s) {', '.join(unknown)}; "
                f"use {', '.join(sorted(META_KEYS))}"
            )
        merged.update(block)
    mode = merged.get("data_version", "logical")
    if mode not in ("logical", "content"):
        raise ConfigError(
            f"{unique_id}: meta.insync.data_version is {mode!r}; use 'content' or 'logical'"
        )
    for name in ("code_version", "observe"):
        value = merged.get(name)
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise ConfigError(f"{unique_id}: meta.insync.{name} must be a non-empty string")
    return merged


def _key(unique_id: str, meta: Mapping[str, Any], parts: Iterable[str | None]) -> AssetKey:
    """The asset key: meta.insync.key if given, else database/schema/identifier.

    :raises ConfigError: the key is malformed (the message names the node and the fix).
    """
    explicit = meta.get("key")
    try:
        if explicit is not None:
            return AssetKey.parse(explicit)
        return AssetKey([p for p in parts if p])
    except ConfigError as exc:
        raise ConfigError(
            f"{unique_id}: cannot form an asset key ({exc}); "
            "set meta: {insync: {key: 'a/b/c'}} on the node"
        ) from exc


def _node_meta(node: Any) -> dict[str, Any]:
    config_meta = getattr(node.config, "meta", None) or {}
    return {**(getattr(node, "meta", None) or {}), **config_meta}


def _code_version(node: Any, meta: Mapping[str, Any], project_root: str) -> str:
    """meta.insync.code_version, else a hash of the rendered SQL (or seed file) and build configs."""
    explicit = meta.get("code_version")
    if explicit:
        return str(explicit)
    config = node.config.to_dict(omit_none=True)
    relevant: dict[str, Any] = {k: config[k] for k in BUILD_CONFIGS if k in config}
    hooks = [h.get("sql", "") if isinstance(h, Mapping) else str(h)
             for name in ("pre-hook", "post-hook") for h in config.get(name, [])]
    relevant["hooks"] = [normalize_sql(h) for h in hooks]
    if node.resource_type == "seed":
        path = os.path.join(getattr(node, "root_path", None) or project_root, node.original_file_path)
        body = str(fingerprint_file(path))
    else:
        compiled = getattr(node, "compiled_code", None)
        if compiled is None:
            raise ConfigError(
                f"{node.unique_id} has no compiled SQL; compile the project before asking "
                "for code versions"
            )
        if getattr(node, "language", "sql") == "python":
            # Indentation is syntax in Python: keep it, drop only trailing blanks.
            body = "\n".join(line.rstrip() for line in compiled.splitlines() if line.strip())
        else:
            body = normalize_sql(compiled)
        if node.config.materialized == "incremental":
            # The compile ran with --full-refresh, so `body` is the full-build branch whether or
            # not the table exists; the raw text adds the `is_incremental()` branch.
            relevant["raw_code"] = normalize_sql(getattr(node, "raw_code", "") or "")
    if getattr(node, "contract", None) is not None and node.contract.enforced:
        relevant["columns"] = {c: getattr(col, "data_type", None) for c, col in node.columns.items()}
    digest = fingerprint_value({"type": str(node.resource_type), "code": body,
                                "config": _jsonable(relevant)})
    return "dbt:" + str(digest).rpartition(":")[2]


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def _source_asset(source: Any, *, content_checksums: bool) -> DbtAsset:
    meta = _insync_meta(source.unique_id, source.source_meta, source.meta,
                        getattr(source.config, "meta", None))
    table_meta = _insync_meta(source.unique_id, source.meta, getattr(source.config, "meta", None))
    # A key at source level would send every table to one asset: only the table's own counts.
    key_meta = {"key": table_meta["key"]} if "key" in table_meta else {}
    observation: Observation | None = None
    loaded_at = source.loaded_at_field or getattr(source.config, "loaded_at_field", None)
    if meta.get("observe"):
        observation = Observation("query", meta["observe"].replace("{relation}", source.relation_name))
    elif meta.get("data_version") == "content":
        observation = Observation("content", "")
    elif loaded_at:
        observation = Observation("loaded_at", loaded_at)
    elif content_checksums:
        # Nobody said how to observe it: its rows are read by models insync reuses, so an
        # unobserved source would be an invisible input. Checksum it (a missing table: see
        # DbtProject._observe_and_check).
        observation = Observation("content", "", implicit=True)
    return DbtAsset(
        unique_id=source.unique_id, name=f"{source.source_name}.{source.name}",
        resource_type="source",
        key=_key(source.unique_id, key_meta, (source.database, source.schema, source.identifier)),
        materialized=None, code_version=None, data_version="logical", parents=(),
        relation=source.relation_name, database=source.database, schema=source.schema,
        identifier=source.identifier, observation=observation,
        event_time=getattr(source.config, "event_time", None) or None,
    )


def assets_from_manifest(
    manifest: Manifest, project_root: str, *, content_checksums: bool = True,
    code_versions: Mapping[str, str] | None = None,
) -> dict[str, DbtAsset]:
    """Every model, seed, snapshot and source of a compiled manifest, keyed by unique id.

    `content_checksums` says whether the warehouse has a checksum query (else snapshots default
    to logical data versions); `code_versions` are those of nodes the manifest holds
    uncompiled, known from an earlier compile (see `_compile`).

    :raises ConfigError: bad meta.insync, a malformed key, or two nodes sharing one key.
    """
    assets: dict[str, DbtAsset] = {}
    for source in manifest.sources.values():
        assets[source.unique_id] = _source_asset(source, content_checksums=content_checksums)
    ephemeral_parents: dict[str, tuple[str, ...]] = {}
    nodes = {uid: n for uid, n in manifest.nodes.items()
             if n.resource_type in ("model", "seed", "snapshot")}
    for uid, node in nodes.items():
        if node.config.materialized == "ephemeral":
            ephemeral_parents[uid] = tuple(getattr(node.depends_on, "nodes", ()))

    def resolve(parent_ids: Iterable[str], seen: frozenset[str] = frozenset()) -> list[str]:
        out: list[str] = []
        for pid in parent_ids:
            if pid in ephemeral_parents and pid not in seen:
                out.extend(resolve(ephemeral_parents[pid], seen | {pid}))
            elif pid in nodes or pid in manifest.sources:
                out.append(pid)
        return out

    for uid, node in nodes.items():
        if uid in ephemeral_parents:
            continue
        meta = _insync_meta(uid, _node_meta(node))
        snapshot = str(node.resource_type) == "snapshot"
        default = "content" if snapshot and content_checksums else "logical"
        mode: DataVersionMode = meta.get("data_version", default)
        batches = _batches(uid, node)
        if mode == "content" and "partitions" in batches:
            raise ConfigError(f"{uid}: a microbatch model has one version per batch, which "
                              "insync computes; remove meta.insync.data_version: content")
        assets[uid] = DbtAsset(
            unique_id=uid, name=node.name, resource_type=str(node.resource_type),
            key=_key(uid, meta, (node.database, node.schema, node.alias)),
            materialized=node.config.materialized,
            code_version=(code_versions or {}).get(uid) or _code_version(node, meta, project_root),
            data_version=mode,
            parents=tuple(dict.fromkeys(resolve(getattr(node.depends_on, "nodes", ())))),
            relation=node.relation_name, database=node.database, schema=node.schema,
            identifier=node.alias, always_run=snapshot and not meta.get("code_version"),
            event_time=getattr(node.config, "event_time", None) or None,
            strategy=getattr(node.config, "incremental_strategy", None) or None,
            **batches,
        )
    _partition_sources(assets)
    owners: dict[AssetKey, str] = {}
    for uid, asset in assets.items():
        other = owners.setdefault(asset.key, uid)
        if other != uid:
            raise ConfigError(
                f"{other} and {uid} both map to asset key {asset.key}; give one of them "
                "meta: {insync: {key: ...}}"
            )
    return assets


def _batches(uid: str, node: Any) -> dict[str, Any]:
    """`partitions` and `batch_size` of a microbatch model (nothing for any other node).

    :raises ConfigError: a microbatch model without `begin`, whose batches have no first window.
    """
    config = node.config
    if config.materialized != "incremental" or config.incremental_strategy != "microbatch":
        return {}
    size = str(getattr(config.batch_size, "value", config.batch_size) or "")
    cadence = CADENCE_OF_BATCH.get(size)
    if cadence is None:
        # batch_size: year has no insync cadence; the model stays whole (see _plan).
        return {"batch_size": size}
    begin = getattr(config, "begin", None)
    if begin is None:
        raise ConfigError(f"{uid}: a microbatch model needs config begin (its first batch)")
    if not isinstance(begin, dt.datetime):
        begin = dt.datetime.fromisoformat(str(begin))
    return {"batch_size": size,
            "partitions": TimeWindowPartitions(cadence, start=window_floor(begin, cadence))}


def window_floor(moment: dt.datetime, cadence: str) -> str:
    """The start (ISO text, UTC) of the `cadence` window holding `moment`, as dbt's batches
    are cut: in UTC, a naive time being UTC already."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(dt.UTC).replace(tzinfo=None)
    moment = moment.replace(minute=0, second=0, microsecond=0)
    if cadence != "hourly":
        moment = moment.replace(hour=0)
    if cadence == "monthly":
        moment = moment.replace(day=1)
    return moment.isoformat() if cadence == "hourly" else moment.date().isoformat()


def _partition_sources(assets: dict[str, DbtAsset]) -> None:
    """Observe a source window by window when every model reading it is a microbatch model
    filtering it by `event_time`: then a change in one window unsyncs only the batches reading
    that window. A source any other node reads whole keeps one version for the whole table."""
    readers: dict[str, list[DbtAsset]] = {}
    for asset in assets.values():
        for parent in asset.parents:
            readers.setdefault(parent, []).append(asset)
    order: dict[str, int] = {c: i for i, c in enumerate(CADENCE_OF_BATCH.values())}
    for uid, source in list(assets.items()):
        kids = readers.get(uid, [])
        if not (source.is_source and source.event_time and kids and source.observation
                and source.observation.kind == "content"):
            continue
        if not all(k.partitions is not None for k in kids):
            continue
        finest = min((k.partitions for k in kids if k.partitions is not None),
                     key=lambda p: order[p.cadence])
        start = min(window_floor(dt.datetime.fromisoformat(k.partitions.start), finest.cadence)
                    for k in kids if k.partitions is not None)
        windows = TimeWindowPartitions(finest.cadence, start=start)
        assets[uid] = dataclasses.replace(
            source, partitions=windows,
            observation=Observation("windows", source.event_time,
                                    implicit=source.observation.implicit))


def topological_order(assets: Mapping[str, DbtAsset], ids: Iterable[str]) -> list[str]:
    """`ids` parents first, layer by layer (depth in the graph, then name): seeds and sources'
    readers first, marts last, which is also how people read a build summary."""
    depth: dict[str, int] = {}

    def depth_of(start: str) -> int:
        # Iterative: a deep dbt graph must not hit Python's recursion limit.
        stack = [start]
        while stack:
            uid = stack[-1]
            if uid in depth:
                stack.pop()
                continue
            asset = assets.get(uid)
            parents = asset.parents if asset else ()
            pending = [p for p in parents if p not in depth]
            if pending:
                stack.extend(pending)
                continue
            depth[uid] = 1 + max((depth[p] for p in parents), default=-1)
            stack.pop()
        return depth[start]

    return sorted(set(ids), key=lambda uid: (depth_of(uid), assets[uid].name, uid))
