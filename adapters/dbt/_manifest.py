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
  (on a warehouse without a checksum query, a new version per run: descendants always rebuild).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal

from insync.core import AssetKey, AssetSpec, ConfigError, fingerprint_file, fingerprint_value

from ._sql import normalize_sql

if TYPE_CHECKING:
    from dbt.contracts.graph.manifest import Manifest

__all__ = ["DbtAsset", "Observation", "assets_from_manifest", "topological_order"]

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


@dataclass(frozen=True, slots=True)
class Observation:
    """How to observe a source: `kind` is `query` (user SQL), `content` or `loaded_at`."""

    kind: Literal["query", "content", "loaded_at"]
    sql: str  # the query, or the loaded_at field/expression; empty for content


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

    @property
    def is_source(self) -> bool:
        return self.resource_type == "source"

    def spec(self, keys: Mapping[str, AssetKey], *, observed: bool = True) -> AssetSpec:
        """The insync definition; `keys` maps parent unique ids to their asset keys.

        `observed=False` registers a source as `external` even if it could be observed: some
        other orchestrator materializes that key, and its records are the truth.
        """
        if self.is_source:
            kind = "observable" if self.observation and observed else "external"
            return AssetSpec(self.key, kind=kind, framework=FRAMEWORK, metadata=self._metadata())
        return AssetSpec(
            self.key,
            code_version=self.code_version,
            deps=[keys[p] for p in self.parents],
            framework=FRAMEWORK,
            metadata=self._metadata(),
        )

    def _metadata(self) -> dict[str, Any]:
        meta: dict[str, Any] = {"dbt_unique_id": self.unique_id, "resource_type": self.resource_type}
        if self.materialized:
            meta["materialized"] = self.materialized
        if self.relation:
            meta["relation"] = self.relation
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


def _source_asset(source: Any) -> DbtAsset:
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
    return DbtAsset(
        unique_id=source.unique_id, name=f"{source.source_name}.{source.name}",
        resource_type="source",
        key=_key(source.unique_id, key_meta, (source.database, source.schema, source.identifier)),
        materialized=None, code_version=None, data_version="logical", parents=(),
        relation=source.relation_name, database=source.database, schema=source.schema,
        identifier=source.identifier, observation=observation,
    )


def assets_from_manifest(
    manifest: Manifest, project_root: str, *, content_checksums: bool = True
) -> dict[str, DbtAsset]:
    """Every model, seed, snapshot and source of a compiled manifest, keyed by unique id.

    `content_checksums` says whether the warehouse has a checksum query (else snapshots default
    to logical data versions).

    :raises ConfigError: bad meta.insync, a malformed key, or two nodes sharing one key.
    """
    assets: dict[str, DbtAsset] = {}
    for source in manifest.sources.values():
        assets[source.unique_id] = _source_asset(source)
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
        assets[uid] = DbtAsset(
            unique_id=uid, name=node.name, resource_type=str(node.resource_type),
            key=_key(uid, meta, (node.database, node.schema, node.alias)),
            materialized=node.config.materialized,
            code_version=_code_version(node, meta, project_root),
            data_version=mode,
            parents=tuple(dict.fromkeys(resolve(getattr(node.depends_on, "nodes", ())))),
            relation=node.relation_name, database=node.database, schema=node.schema,
            identifier=node.alias, always_run=snapshot and not meta.get("code_version"),
        )
    owners: dict[AssetKey, str] = {}
    for uid, asset in assets.items():
        other = owners.setdefault(asset.key, uid)
        if other != uid:
            raise ConfigError(
                f"{other} and {uid} both map to asset key {asset.key}; give one of them "
                "meta: {insync: {key: ...}}"
            )
    return assets


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
