"""Bulk reads for status: everything a graph needs in a fixed number of queries.

Definitions and latest events come in two queries whatever the graph size; provenance rows are
read only for materializations whose inputs moved on (a digest comparison), in at most four more.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import json
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Final, Literal, TypeVar

import sqlalchemy as sa

from . import _schema as t
from ._keys import AssetKey
from ._model import AssetSpec, InputVersion
from ._partitions import (
    NOT_PARTITIONED,
    AllPartitionsMapping,
    DynamicPartitions,
    PartitionMapping,
    mapping_from_json,
    partitions_from_json,
)
from ._staleness import Graph, LatestRecords, Materialized, expected_inputs, moved_inputs
from ._versions import DataVersion
from .errors import ConfigError

__all__ = [
    "CHUNK",
    "Scope",
    "ancestors_cte",
    "chunks",
    "input_pairs",
    "inputs_of",
    "load_graph",
    "load_step_graph",
    "paused_gc",
]

T = TypeVar("T")
Scope = Literal["self", "deps", "ancestors"]
CHUNK: Final = 500  # bound on bound parameters per statement (SQLite allows 32766)
_MAT: Final = "materialization"


def load_graph(
    conn: sa.Connection,
    keys: list[AssetKey] | None,
    scope: Scope,
    *,
    with_latest: bool = True,
) -> Graph:
    """Definitions and latest records of `keys` widened to `scope` (all assets for None).

    Two queries (definitions, latest events), one more when a DynamicPartitions asset is loaded,
    plus at most four for the provenance of the materializations whose inputs moved on since they
    were recorded.
    """
    params: dict[str, Any] = {} if keys is None else {"names": sorted({str(k) for k in keys})}
    which = "all" if keys is None else scope
    specs = _load_specs(conn, _scoped_query("definitions", which), params)
    graph = Graph(specs, {}, _load_dynamic(conn, specs))
    if not with_latest:
        return graph
    _load_latest(conn, _scoped_query("latest", which), params, graph)
    _load_moved_inputs(conn, graph, lambda: [(_scoped_query("inputs", which), params)])
    return graph


def load_step_graph(conn: sa.Connection, spec: AssetSpec, partition: str) -> tuple[Graph, AssetSpec | None]:
    """What one step's check needs: its definition and deps, the latest records of its own
    partition and of the upstream partitions that partition reads (all of a dep only when the
    mapping reads all), and provenance rows only if an input moved. `spec` is the caller's
    definition, whose FunctionMapping functions are loaded; the registered one is returned beside
    the graph (None when not registered)."""
    params = {"names": [str(spec.key)]}
    specs = _load_specs(conn, _scoped_query("definitions", "deps"), params)
    registered = specs.get(spec.key)
    specs[spec.key] = spec
    graph = Graph(specs, {}, _load_dynamic(conn, specs))
    if (
        not partition
        and spec.partitions is None
        and not any(s.partitions is not None for k, s in specs.items() if k != spec.key)
    ):
        _load_latest(conn, _scoped_query("latest", "deps"), params, graph)
    else:
        whole: list[str] = []
        pairs: list[tuple[str, str]] = [(str(spec.key), partition)]
        for dep in spec.deps:
            dep_spec = specs.get(dep)
            mapping = spec.mapping_for(dep)
            if dep_spec is None or dep_spec.partitions is None:
                pairs.append((str(dep), NOT_PARTITIONED))
            elif spec.partitions is None or isinstance(mapping, AllPartitionsMapping):
                whole.append(str(dep))  # reads every partition: recorded ones count too
            else:
                parts = graph.upstream(spec, partition, dep)
                if parts is None:
                    whole.append(str(dep))
                else:
                    pairs.extend((str(dep), p) for p in parts)
        by_asset: dict[str, list[str]] = {}
        for asset_key, partition_key in pairs:
            by_asset.setdefault(asset_key, []).append(partition_key)
        # Per asset `asset_key = ? AND partition_key IN (...)`: an index range each. A row-value
        # `(asset_key, partition_key) IN (...)` made SQLite scan the whole index (230 ms a check).
        for asset_key, partition_keys in by_asset.items():
            for chunk in chunks(partition_keys):
                where = sa.and_(t.latest.c.asset_key == asset_key, t.latest.c.partition_key.in_(chunk))
                _load_latest(conn, _LATEST_SELECT.where(where), {}, graph)
        if whole:
            _load_latest(conn, _LATEST_SELECT.where(t.latest.c.asset_key.in_(whole)), {}, graph)
    _load_moved_inputs(conn, graph, None)
    return graph, registered


def _load_specs(conn: sa.Connection, query: Any, params: dict[str, Any]) -> dict[AssetKey, AssetSpec]:
    key_of = AssetKey._trusted
    specs: dict[AssetKey, AssetSpec] = {}
    # fetchall(): one driver call instead of a fetchone() per row (200k rows on 100k assets).
    for asset_key, code_version, kind, framework, meta, deps, partitions, mappings in conn.execute(
        query, params
    ).fetchall():
        key = key_of(asset_key)
        dep_keys = [key_of(dep) for dep in deps.split("\n")] if deps else ()
        specs[key] = _spec_from_row(key, code_version, kind, framework, meta, dep_keys, partitions, mappings)
    return specs


def _load_dynamic(conn: sa.Connection, specs: Mapping[AssetKey, AssetSpec]) -> dict[str, list[str]]:
    names = sorted({s.partitions.name for s in specs.values() if isinstance(s.partitions, DynamicPartitions)})
    found: dict[str, list[str]] = {name: [] for name in names}
    if names:
        query = (
            sa.select(t.dynamic_partitions.c.name, t.dynamic_partitions.c.partition_key)
            .where(t.dynamic_partitions.c.name.in_(names))
            .order_by(t.dynamic_partitions.c.name, t.dynamic_partitions.c.partition_key)
        )
        for name, key in conn.execute(query).fetchall():
            found[name].append(key)
    return found


def _load_latest(conn: sa.Connection, query: Any, params: dict[str, Any], graph: Graph) -> None:
    latest = graph.latest
    assert isinstance(latest, dict)
    if conn.dialect.name == "sqlite" and not params and isinstance(query, sa.TextClause):
        # The whole graph (a million rows at 1,000 x 1,000): plain driver tuples, no Row objects.
        cursor = conn.connection.driver_connection.execute(query.text)  # type: ignore[union-attr]
        rows: Any = cursor.fetchall()
    else:
        rows = conn.execute(query, params).fetchall()
    keys: dict[str, AssetKey] = {}  # one AssetKey and one dict lookup per asset, not per row
    parts_of: dict[str, dict[str, LatestRecords]] = {}
    for (
        asset_key, partition, kind, event_id, version, code_version, user_provided, run_id, digest, params_
    ) in rows:
        if partition:
            parts = parts_of.get(asset_key)
            if parts is None:
                records = _records(latest, keys, asset_key)
                if records.partitions is None:
                    records.partitions = {}
                parts = parts_of[asset_key] = records.partitions
            records = parts.get(partition)  # type: ignore[assignment]
            if records is None:
                records = parts[partition] = LatestRecords()
        else:
            records = _records(latest, keys, asset_key)
        if kind == _MAT:
            records.materialization = Materialized(
                event_id, version, code_version, bool(user_provided), run_id, None, digest, params_
            )
        else:
            records.observation = (event_id, version)


def _records(latest: dict[AssetKey, LatestRecords], keys: dict[str, AssetKey], name: str) -> LatestRecords:
    key = keys.get(name)
    if key is None:
        key = keys[name] = AssetKey._trusted(name)
    records = latest.get(key)
    if records is None:
        records = latest[key] = LatestRecords()
    return records


def _load_moved_inputs(
    conn: sa.Connection, graph: Graph, scoped: Callable[[], list[tuple[Any, dict[str, Any]]]] | None
) -> None:
    """Provenance rows, read only where the digest says some input moved on."""
    changed: dict[int, Materialized] = {}
    for mat in moved_inputs(graph):
        mat.inputs = {}
        changed[mat.event_id] = mat
    if not changed:
        return
    batches: list[tuple[Any, dict[str, Any]]]
    if scoped is not None and len(changed) > CHUNK * 4:
        batches = scoped()
    else:
        batches = [(_INPUTS_OF_EVENTS, {"ids": chunk}) for chunk in chunks(list(changed))]
    key_of = AssetKey._trusted
    for query, bound in batches:
        for event_id, input_key, input_partition, version, input_event_id in conn.execute(
            query, bound
        ).fetchall():
            target = changed.get(event_id)
            if target is not None and target.inputs is not None:
                target.inputs[(key_of(input_key), input_partition)] = (version, input_event_id)


# Hot-path reads as prebuilt text statements: SQLAlchemy then skips building and cache-keying a
# select() on every step check. `:names` expands to the requested keys.
_SELECTS: Final = {
    "definitions": (
        "SELECT asset_key, code_version, kind, framework, metadata, deps, partitions, partition_mappings "
        "FROM insync_definitions {where}",
        "asset_key",
    ),
    "latest": (
        "SELECT l.asset_key, l.partition_key, l.kind, e.id, e.data_version, e.code_version, e.user_provided, "
        "e.run_id, e.inputs_digest, e.parameters "
        "FROM insync_latest l JOIN insync_events e ON e.id = l.event_id "
        "{where}",
        "l.asset_key",
    ),
    "inputs": (
        "SELECT i.event_id, i.input_key, i.input_partition, i.data_version, i.input_event_id "
        "FROM insync_event_inputs i "
        "JOIN insync_latest l ON l.event_id = i.event_id AND l.kind = 'materialization' {where}",
        "l.asset_key",
    ),
}
_SCOPES: Final = {
    "all": ("", ""),
    "self": ("", "WHERE {col} IN :names"),
    # One IN over a subquery, not `IN :names OR IN (...)`: SQLite answers an OR of two INs with a
    # scan of the whole latest index (113 ms at 1M partitions instead of a few).
    "deps": (
        "",
        "WHERE {col} IN (SELECT asset_key FROM insync_definitions WHERE asset_key IN :names "
        "UNION SELECT dep_key FROM insync_deps WHERE asset_key IN :names)",
    ),
    "ancestors": (
        "WITH RECURSIVE ancestors(k) AS (SELECT asset_key FROM insync_definitions WHERE asset_key IN :names "
        "UNION SELECT d.dep_key FROM insync_deps d JOIN ancestors a ON d.asset_key = a.k) ",
        "WHERE {col} IN (SELECT k FROM ancestors)",
    ),
}
_INPUTS_OF_EVENTS: Final = sa.text(
    "SELECT event_id, input_key, input_partition, data_version, input_event_id FROM insync_event_inputs "
    "WHERE event_id IN :ids"
).bindparams(sa.bindparam("ids", expanding=True))
_LATEST_SELECT: Final = sa.select(
    t.latest.c.asset_key,
    t.latest.c.partition_key,
    t.latest.c.kind,
    t.events.c.id,
    t.events.c.data_version,
    t.events.c.code_version,
    t.events.c.user_provided,
    t.events.c.run_id,
    t.events.c.inputs_digest,
    t.events.c.parameters,
).join_from(t.latest, t.events, t.events.c.id == t.latest.c.event_id)


@functools.cache
def _scoped_query(what: str, scope: str) -> sa.TextClause:
    sql, column = _SELECTS[what]
    prefix, where = _SCOPES[scope]
    statement = sa.text(prefix + sql.format(where=where.format(col=column)))
    return statement.bindparams(sa.bindparam("names", expanding=True)) if scope != "all" else statement


def input_pairs(spec: AssetSpec, partition: str, graph: Graph) -> list[tuple[AssetKey, str]]:
    """(dep, dep partition) pairs that `partition` of `spec` reads now.

    :raises ConfigError: a FunctionMapping whose function is not loaded here.
    """
    pairs = expected_inputs(spec, partition, graph)
    if pairs is None:
        raise ConfigError(
            f"{spec.key} maps partitions with a function that is not loaded here; record it through "
            "a Step built with that function, or pass inputs=[InputVersion(...)]"
        )
    return pairs


def inputs_of(spec: AssetSpec, partition: str, graph: Graph) -> tuple[InputVersion, ...]:
    """The provenance snapshot of what `partition` of `spec` reads, from already loaded records.

    :raises ConfigError: a FunctionMapping whose function is not loaded here.
    """
    out = []
    for dep, dep_part in input_pairs(spec, partition, graph):
        version, event_id, _ = graph.current(dep, dep_part)
        out.append(InputVersion(dep, DataVersion._trusted(version), event_id, dep_part or None))
    return tuple(out)


def ancestors_cte(names: list[str]) -> sa.CTE:
    """Every strict ancestor of `names`, in one recursive query."""
    start = sa.select(t.deps.c.dep_key.label("k")).where(t.deps.c.asset_key.in_(names))
    closure = start.cte("ancestors", recursive=True)
    step = sa.select(t.deps.c.dep_key).join(closure, t.deps.c.asset_key == closure.c.k)
    return closure.union(step)  # UNION, not UNION ALL: terminates even on a cyclic graph


def _spec_from_row(
    key: AssetKey,
    code_version: str | None,
    kind: Any,
    framework: str | None,
    meta: str,
    deps: Iterable[AssetKey],
    partitions: str = "",
    mappings: str = "",
) -> AssetSpec:
    # Rows were validated when registered: build without re-validating (hot path for 100k assets).
    spec = object.__new__(AssetSpec)
    set_ = object.__setattr__
    set_(spec, "key", key)
    set_(spec, "code_version", code_version)
    set_(spec, "deps", tuple(deps))  # written sorted by register()
    set_(spec, "kind", kind)
    set_(spec, "framework", framework)
    set_(spec, "metadata_json", meta)
    set_(spec, "partitions", partitions_from_json(partitions) if partitions else None)
    set_(spec, "partition_mappings", _mappings_from_json(mappings) if mappings else ())
    return spec


@functools.lru_cache(maxsize=1024)
def _mappings_from_json(text: str) -> tuple[tuple[AssetKey, PartitionMapping], ...]:
    body = json.loads(text)
    return tuple((AssetKey._trusted(k), mapping_from_json(v)) for k, v in sorted(body.items()))


@contextlib.contextmanager
def paused_gc() -> Iterator[None]:
    """Hold the cyclic garbage collector while a whole graph is built.

    Loading 100k assets allocates about a million objects without reference cycles; each
    allocation burst would trigger full collections that walk every live object again, which made
    status time grow faster than the graph (2.8 s instead of 1.8 s at 100k). Reference counting
    still frees everything; collection resumes right after.
    """
    # Other threads (a web server's workers) would have no collector meanwhile: leave it on then.
    was_enabled = gc.isenabled() and threading.active_count() == 1
    if was_enabled:
        gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def chunks(items: list[T]) -> Iterator[list[T]]:
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]
