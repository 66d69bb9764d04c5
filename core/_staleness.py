"""Staleness: pure functions from definitions and latest records to status and causes.

Nothing here touches the store; the store loads everything needed in a fixed number of queries
and hands plain records over, so a whole graph costs the same few queries at any size.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import pendulum
import xxhash

from ._keys import AssetKey
from ._model import (
    AssetSpec,
    AssetStatus,
    PartitionCounts,
    StaleCause,
    StaleCauseCategory,
    StaleStatus,
    UpstreamChange,
    partition_label,
)
from ._partitions import NOT_PARTITIONED, IdentityMapping, upstream_partitions
from ._versions import INITIAL, NULL, UNKNOWN, DataVersion, length_prefixed
from .errors import CycleError

__all__ = [
    "Graph",
    "LatestRecords",
    "Materialized",
    "compute_statuses",
    "current_version",
    "expected_inputs",
    "inputs_digest",
    "moved_inputs",
    "parameter_causes",
    "partition_status",
    "provenance_digest",
    "topological_order",
]

_NULL: Final = NULL.value
_INITIAL: Final = INITIAL.value
_UNKNOWN: Final = UNKNOWN.value


@dataclass(slots=True)
class Materialized:
    """The latest materialization of an asset (or partition) with its provenance, as plain strings.

    `inputs` maps (input key, input partition) to (data version, event id). It is None when the
    store established, by `inputs_digest`, that every input is still the very event the step
    read: then no input can be a cause, and its rows were never loaded.
    """

    event_id: int
    data_version: str
    code_version: str | None
    user_provided: bool
    run_id: str | None
    inputs: dict[tuple[AssetKey, str], tuple[str, int | None]] | None
    inputs_digest: str = ""
    parameters: str = ""  # canonical JSON {name: fingerprint}, "" for none


@dataclass(slots=True)
class LatestRecords:
    """The newest records of an asset: its unpartitioned ones, and per partition key."""

    materialization: Materialized | None = None
    observation: tuple[int, str] | None = None  # (event id, data version)
    partitions: dict[str, LatestRecords] | None = None


@dataclass(slots=True)
class Graph:
    """What status is computed from: definitions, latest records, dynamic partition keys, and the
    one `now` that decides which time windows have ended. Partition key lists are built once per
    definition, not once per asset."""

    specs: Mapping[AssetKey, AssetSpec]
    latest: Mapping[AssetKey, LatestRecords]
    dynamic: Mapping[str, Sequence[str]] = field(default_factory=dict)
    now: pendulum.DateTime = field(default_factory=lambda: pendulum.now("UTC"))
    _keys: dict[Any, list[str]] = field(default_factory=dict)
    _all: dict[AssetKey, list[str]] = field(default_factory=dict)
    _ids: dict[AssetKey, dict[str, int]] = field(default_factory=dict)

    def records(self, key: AssetKey, partition: str) -> LatestRecords | None:
        records = self.latest.get(key)
        if not partition or records is None:
            return records
        return records.partitions.get(partition) if records.partitions else None

    def current(self, key: AssetKey, partition: str) -> tuple[str, int | None, bool]:
        return current_version(self.specs.get(key), self.records(key, partition))

    def current_ids(self, key: AssetKey) -> dict[str, int]:
        """{partition: current event id} of a partitioned asset, built once per graph."""
        found = self._ids.get(key)
        if found is None:
            spec = self.specs.get(key)
            records = self.latest.get(key)
            parts = records.partitions if records is not None and records.partitions else {}
            if spec is not None and not spec.is_source:  # materializable: the latest materialization
                found = {
                    p: r.materialization.event_id for p, r in parts.items() if r.materialization is not None
                }
            else:
                found = {}
                for partition, part in parts.items():
                    event_id = current_version(spec, part)[1]
                    if event_id is not None:
                        found[partition] = event_id
            self._ids[key] = found
        return found

    def partition_keys(self, spec: AssetSpec) -> list[str]:
        """The asset's partitions: the definition's keys, then keys recorded outside them (a
        window materialized before it ended, a static key since removed)."""
        found = self._all.get(spec.key)
        if found is None:
            definition = spec.partitions
            assert definition is not None
            keys = self._keys.get(definition)
            if keys is None:
                keys = self._keys[definition] = definition.keys(self.now, self.dynamic)
            records = self.latest.get(spec.key)
            recorded = records.partitions if records is not None and records.partitions else {}
            extra = set(recorded).difference(keys) if len(recorded) else ()
            found = self._all[spec.key] = keys + sorted(extra) if extra else keys
        return found

    def upstream(self, spec: AssetSpec, partition: str, dep: AssetKey) -> list[str] | None:
        """Partitions of `dep` that `partition` of `spec` reads ([""]: the unpartitioned dep);
        None when a FunctionMapping's function is not loaded here."""
        dep_spec = self.specs.get(dep)
        parent = dep_spec.partitions if dep_spec is not None else None
        if parent is None:
            return [NOT_PARTITIONED]
        mapping = spec.mapping_for(dep) if spec.partition_mappings else None
        if mapping is None and spec.partitions == parent:
            return [partition]  # identity between like definitions: the hot path
        return upstream_partitions(
            spec.partitions,
            partition,
            parent,
            mapping,
            now=self.now,
            dynamic=self.dynamic,
            all_keys=lambda _definition: self.partition_keys(dep_spec),  # type: ignore[arg-type]
        )


def inputs_digest(
    inputs: Iterable[tuple[AssetKey, int | None]], partitions: Iterable[str] | None = None
) -> str:
    """Digest of (input key, input partition, input event id), in order, length-prefixed.

    Equal digests mean the same set of inputs at the same events: unchanged provenance, so the
    common all-in-sync case never loads per-input rows. Unpartitioned inputs encode as they did
    before partitions existed, so stored digests stay valid.
    """
    pairs = list(inputs)
    parts = [NOT_PARTITIONED] * len(pairs) if partitions is None else list(partitions)
    rows = sorted(
        ((str(k), p, e) for (k, e), p in zip(pairs, parts, strict=True)), key=lambda r: (r[0], r[1])
    )
    return _digest_sorted(rows)


def _digest_sorted(rows: Iterable[tuple[str, str, int | None]]) -> str:
    fields = []
    for key, partition, event_id in rows:
        name = key.encode()
        event = -1 if event_id is None else event_id
        if partition:
            # The top bit of the length marks a partitioned input: the two layouts never collide.
            part = partition.encode()
            fields.append(
                (len(name) | _PARTITIONED).to_bytes(8, "big")
                + name
                + len(part).to_bytes(8, "big")
                + part
                + event.to_bytes(8, "big", signed=True)
            )
        else:
            fields.append(len(name).to_bytes(8, "big") + name + event.to_bytes(8, "big", signed=True))
    return xxhash.xxh3_128_hexdigest(b"".join(fields))


_PARTITIONED: Final = 1 << 63


def expected_inputs(spec: AssetSpec, partition: str, graph: Graph) -> list[tuple[AssetKey, str]] | None:
    """(dep, dep partition) pairs the step reads now, sorted; None if a mapping cannot be evaluated."""
    out: list[tuple[AssetKey, str]] = []
    for dep in spec.deps:  # sorted already (AssetSpec sorts it)
        parts = graph.upstream(spec, partition, dep)
        if parts is None:
            return None
        out.extend((dep, p) for p in sorted(parts))
    return out


def provenance_digest(
    spec: AssetSpec, specs: Mapping[AssetKey, AssetSpec], rows: Iterable[tuple[AssetKey, str, int | None]]
) -> str:
    """What a materialization stores to prove, later, that none of its inputs moved on.

    Unpartitioned graphs keep the first release's key-aware digest (`inputs_digest`). An asset
    that is partitioned or reads partitions gets a faster validator over the inputs' event ids in
    canonical (key, partition) order plus a signature of its deps and mappings: a record id names
    exactly one asset partition, so equal ids mean the same records were read. That check runs a
    million times on a 1,000 x 1,000 graph.
    """
    if spec.partitions is None and not _has_partitioned_dep(spec, specs):
        return inputs_digest(((k, e) for k, _, e in rows), None)
    ordered = sorted(rows, key=lambda row: (row[0], row[1]))
    return _fast_digest(_signature(spec, specs), tuple(-1 if e is None else e for _, _, e in ordered))


def _fast_digest(signature: int, ids: tuple[int, ...]) -> str:
    # hash() of a tuple of ints is deterministic across processes (only str/bytes hashing is
    # salted); a different Python that hashed otherwise would only make checks take the slow path.
    return f"p:{hash((signature, *ids)) & _MASK:x}"


_MASK: Final = 0xFFFF_FFFF_FFFF_FFFF


def _signature(spec: AssetSpec, specs: Mapping[AssetKey, AssetSpec]) -> int:
    fields = [spec.mappings_json.encode()]
    for dep in spec.deps:
        dep_spec = specs.get(dep)
        fields += [str(dep).encode(), (dep_spec.partitions_json if dep_spec is not None else "").encode()]
    return xxhash.xxh3_64_intdigest(length_prefixed(*fields)) >> 2  # a small int hashes as itself


def moved_inputs(graph: Graph) -> list[Materialized]:
    """Latest materializations some of whose inputs moved on since they were recorded.

    Compares each recorded digest with the digest of the inputs' current events; only these
    materializations need their provenance rows to explain causes.
    """
    specs, latest = graph.specs, graph.latest
    current_event: dict[AssetKey, int | None] = {
        key: current_version(spec, latest.get(key))[1] for key, spec in specs.items()
    }
    moved = []
    # Most graphs have no partitions at all: then no asset needs the per-dep check below.
    any_partitioned = any(spec.partitions is not None for spec in specs.values())
    for key, records in latest.items():
        spec = specs.get(key)
        if spec is None or spec.is_source:
            continue
        mat = records.materialization
        if spec.partitions is None and not (any_partitioned and _has_partitioned_dep(spec, specs)):
            if mat is not None and mat.inputs_digest != _digest_sorted(
                (dep, "", current_event.get(dep)) for dep in spec.deps
            ):
                moved.append(mat)
            continue
        signature = _signature(spec, specs)
        lookups = _identity_lookups(spec, graph) if spec.partitions is not None else None
        parts = records.partitions or {}
        if lookups is not None and parts:
            # The hot path, column-wise: one tuple of current input ids per partition, hashed in C.
            names = list(parts)
            columns = [
                map(lookup.get, names, itertools.repeat(-1))
                if type(lookup) is dict
                else itertools.repeat(lookup)
                for lookup in lookups
            ]
            for part_records, current in zip(
                parts.values(), map(hash, zip(itertools.repeat(signature), *columns)), strict=False
            ):
                part_mat = part_records.materialization
                if part_mat is not None and part_mat.inputs_digest != f"p:{current & _MASK:x}":
                    moved.append(part_mat)
            parts = {}
        by_partition = dict(parts)
        if mat is not None:
            by_partition[NOT_PARTITIONED] = records
        for partition, part_records in by_partition.items():
            part_mat = part_records.materialization
            if part_mat is None:
                continue
            pairs = expected_inputs(spec, partition, graph)
            if pairs is None:
                moved.append(part_mat)  # function mapping not loaded: check the recorded inputs
                continue
            ids = tuple(-1 if (e := graph.current(dep, p)[1]) is None else e for dep, p in pairs)
            if part_mat.inputs_digest != _fast_digest(signature, ids):
                moved.append(part_mat)
    return moved


def _identity_lookups(spec: AssetSpec, graph: Graph) -> list[Any] | None:
    """Per dep, the current event id of an unpartitioned dep, or a {partition: event id} dict of
    a dep read partition for partition: the hot path of a big partitioned graph. None when a dep
    maps otherwise."""
    lookups: list[Any] = []
    for dep in spec.deps:
        dep_spec = graph.specs.get(dep)
        if dep_spec is None or dep_spec.partitions is None:
            event_id = graph.current(dep, NOT_PARTITIONED)[1]
            lookups.append(-1 if event_id is None else event_id)
        elif dep_spec.partitions == spec.partitions and spec.mapping_for(dep) in (None, IdentityMapping()):
            lookups.append(graph.current_ids(dep))
        else:
            return None
    return lookups


def _has_partitioned_dep(spec: AssetSpec, specs: Mapping[AssetKey, AssetSpec]) -> bool:
    for dep in spec.deps:
        dep_spec = specs.get(dep)
        if dep_spec is not None and dep_spec.partitions is not None:
            return True
    return False


def current_version(spec: AssetSpec | None, latest: LatestRecords | None) -> tuple[str, int | None, bool]:
    """(data version, event id, user provided) of an asset (or partition) as downstream sees it now.

    A materializable asset's version comes from its latest materialization (NULL when none).
    A source's comes from its newest record of either kind (INITIAL when none): sources are what
    other orchestrators write, so a materialization elsewhere counts as a new observation here.
    """
    is_source = spec is None or spec.is_source
    if latest is None:
        return (_INITIAL if is_source else _NULL), None, is_source
    mat = latest.materialization
    obs = latest.observation
    if is_source and obs is not None and (mat is None or obs[0] > mat.event_id):
        return obs[1], obs[0], True
    if mat is not None:
        return mat.data_version, mat.event_id, mat.user_provided or is_source
    return (_INITIAL if is_source else _NULL), None, is_source


def _dep_changed(recorded: str, current: str) -> bool:
    if recorded == _INITIAL and current == _NULL:
        # Provenance written while the input was an unobserved source (INITIAL); the input became
        # materializable and has not been materialized yet (NULL). Nothing new has reached us.
        return False
    if recorded == _UNKNOWN or current == _UNKNOWN:
        return True  # an unknown version can never be shown unchanged
    return recorded != current


def _causes(spec: AssetSpec, partition: str, mat: Materialized, graph: Graph) -> list[StaleCause]:
    key = spec.key
    own = partition or None
    causes: list[StaleCause] = []
    if spec.code_version is not None and spec.code_version != mat.code_version:
        causes.append(StaleCause(key, StaleCauseCategory.CODE, "has a new code version", partition=own))
    recorded_inputs = mat.inputs
    if recorded_inputs is None:  # provenance digest matched: every input unchanged
        return causes
    recorded: dict[AssetKey, dict[str, tuple[str, int | None]]] = {}
    for (dep, dep_part), value in recorded_inputs.items():
        recorded.setdefault(dep, {})[dep_part] = value
    deps = spec.deps
    for removed in sorted(set(recorded).difference(deps)):
        causes.append(
            StaleCause(
                key,
                StaleCauseCategory.DEPENDENCIES,
                f"removed dependency on {removed}",
                removed,
                partition=own,
            )
        )
    for dep in deps:
        read = recorded.get(dep)
        if read is None:
            causes.append(
                StaleCause(
                    key, StaleCauseCategory.DEPENDENCIES, f"has a new dependency on {dep}", dep, partition=own
                )
            )
            continue
        parts = graph.upstream(spec, partition, dep)
        if parts is None:
            parts = sorted(read)  # function not loaded here: check what the step read
        for dep_part in parts:
            label = partition_label(dep, dep_part)
            current, event_id, user_provided = graph.current(dep, dep_part)
            if dep_part not in read:
                if event_id is None:
                    continue  # a partition never written reached nobody: nothing new was read
                causes.append(
                    StaleCause(
                        key,
                        StaleCauseCategory.DEPENDENCIES,
                        f"has a new dependency on {label}",
                        dep,
                        partition=own,
                        dependency_partition=dep_part or None,
                    )
                )
                continue
            if not _dep_changed(read[dep_part][0], current):
                continue
            # An input without a code version gets a new data version on every run, so "new data
            # version" would say nothing: report the materialization instead (Dagster's wording).
            dep_spec = graph.specs.get(dep)
            meaningful = user_provided or (dep_spec is not None and dep_spec.code_version is not None)
            if meaningful:
                reason, child = "has a new dependency data version", "has a new data version"
            else:
                reason, child = "has a new dependency materialization", "has a new materialization"
            causes.append(
                StaleCause(
                    key,
                    StaleCauseCategory.DATA,
                    reason,
                    dep,
                    (StaleCause(dep, StaleCauseCategory.DATA, child, partition=dep_part or None),),
                    partition=own,
                    dependency_partition=dep_part or None,
                )
            )
        if len(parts) != len(read) or any(p not in read for p in parts):
            wanted = set(parts)
            for gone in sorted(p for p in read if p not in wanted):
                causes.append(
                    StaleCause(
                        key,
                        StaleCauseCategory.DEPENDENCIES,
                        f"removed dependency on {partition_label(dep, gone)}",
                        dep,
                        partition=own,
                        dependency_partition=gone or None,
                    )
                )
    return causes


def parameter_causes(
    key: AssetKey, partition: str | None, recorded: str, current: Sequence[tuple[str, str]]
) -> list[StaleCause]:
    """A PARAMETERS cause when a step is asked to run with other parameter values than the ones
    its latest materialization recorded (names changed, added or removed, sorted)."""
    before: dict[str, str] = json.loads(recorded) if recorded else {}
    now = dict(current)
    changed = sorted(name for name in before.keys() | now.keys() if before.get(name) != now.get(name))
    if not changed:
        return []
    return [
        StaleCause(
            key,
            StaleCauseCategory.PARAMETERS,
            f"has new parameter values: {', '.join(changed)}",
            partition=partition or None,
        )
    ]


def topological_order(specs: Mapping[AssetKey, AssetSpec]) -> list[AssetKey]:
    """Keys with every dependency before its dependents (deps outside `specs` are ignored).

    :raises CycleError: naming one cycle, in dependency order.
    """
    indegree = {key: 0 for key in specs}
    children: dict[AssetKey, list[AssetKey]] = {}
    for key, spec in specs.items():
        for dep in spec.deps:
            if dep in indegree:
                indegree[key] += 1
                children.setdefault(dep, []).append(key)
    ready = sorted(key for key, n in indegree.items() if n == 0)
    order: list[AssetKey] = []
    while ready:
        key = ready.pop()
        order.append(key)
        for child in children.get(key, ()):
            indegree[child] -= 1
            if indegree[child] == 0:
                ready.append(child)
    if len(order) < len(specs):
        raise CycleError([str(k) for k in _find_cycle(specs, {k for k, n in indegree.items() if n})])
    return order


def _find_cycle(specs: Mapping[AssetKey, AssetSpec], remaining: set[AssetKey]) -> list[AssetKey]:
    """Walk dependencies inside the unsorted remainder until a key repeats."""
    start = min(remaining)
    path: list[AssetKey] = []
    position: dict[AssetKey, int] = {}
    key = start
    while key not in position:
        position[key] = len(path)
        path.append(key)
        key = min(dep for dep in specs[key].deps if dep in remaining)
    cycle = path[position[key] :]
    # Show the cycle in dependency order (a -> b means b depends on a), starting at its least key.
    cycle.reverse()
    first = cycle.index(min(cycle))
    return cycle[first:] + cycle[:first]


def compute_statuses(
    graph: Graph,
    targets: Iterable[AssetKey] | None = None,
    *,
    with_upstream: bool = True,
) -> dict[AssetKey, AssetStatus]:
    """Status of `targets` (default: every spec); a partitioned asset's is its rollup.

    `graph.specs` must hold the targets and their deps; with `with_upstream`, every ancestor too.
    """
    specs = graph.specs
    wanted = list(specs) if targets is None else list(targets)
    if not with_upstream:
        return {key: _status(specs[key], graph) for key in wanted}

    base: dict[AssetKey, AssetStatus] = {key: _status(specs[key], graph) for key in specs}
    if all(status.status is StaleStatus.FRESH for status in base.values()):
        # Nothing is pending anywhere (cycles were refused when registered).
        return base if targets is None else {key: base[key] for key in wanted}
    order = topological_order(specs)
    position = {key: i for i, key in enumerate(order)}
    # Pending ancestors propagate in topological order; sets are shared, not copied, where a node
    # adds nothing, so a mostly-fresh graph costs next to nothing.
    empty: frozenset[AssetKey] = frozenset()
    pending: dict[AssetKey, frozenset[AssetKey]] = {}
    with_self: dict[AssetKey, frozenset[AssetKey]] = {}
    for key in order:
        parts = []
        for dep in specs[key].deps:
            if dep not in base:
                continue
            if base[dep].status is not StaleStatus.FRESH:
                inherited = with_self.get(dep)
                if inherited is None:
                    inherited = with_self[dep] = pending[dep] | {dep}
            else:
                inherited = pending[dep]
            if inherited:
                parts.append(inherited)
        pending[key] = empty if not parts else parts[0] if len(parts) == 1 else empty.union(*parts)

    result: dict[AssetKey, AssetStatus] = {}
    for key in wanted:
        status = base[key]
        ancestors = pending[key]
        if ancestors:
            upstream = tuple(
                UpstreamChange(a, base[a].status) for a in sorted(ancestors, key=position.__getitem__)
            )
            status = dataclasses.replace(status, upstream=upstream)
        result[key] = status
    return result


# A rollup keeps the cause trees of its first Unsynced partitions; the counts and the keys of
# every Unsynced partition are complete (`insync why KEY --partition P` explains any one).
_ROLLUP_CAUSES: Final = 10


def _status(spec: AssetSpec, graph: Graph) -> AssetStatus:
    if spec.partitions is None:
        return partition_status(spec, NOT_PARTITIONED, graph)
    records = graph.latest.get(spec.key)
    recorded = records.partitions if records is not None and records.partitions else {}
    code_version = spec.code_version
    synced = 0
    unsynced: list[str] = []
    missing: list[str] = []
    causes: list[StaleCause] = []
    newest: Materialized | None = None
    keys = graph.partition_keys(spec)
    if spec.is_source:
        synced = len(keys)
        keys = []
    get = recorded.get
    newest_id = -1
    for partition in keys:
        part = get(partition)
        mat = part.materialization if part is not None else None
        if mat is None:
            missing.append(partition)
            continue
        if mat.event_id > newest_id:
            newest, newest_id = mat, mat.event_id
        if mat.inputs is None and (code_version is None or code_version == mat.code_version):
            synced += 1  # the hot path: nothing moved, same code
            continue
        found = _causes(spec, partition, mat, graph)
        if not found:
            synced += 1
            continue
        unsynced.append(partition)
        if len(unsynced) <= _ROLLUP_CAUSES:
            causes.extend(found)
    counts = PartitionCounts(synced + len(unsynced) + len(missing), synced, tuple(unsynced), tuple(missing))
    if spec.is_source or unsynced:
        state = StaleStatus.FRESH if spec.is_source else StaleStatus.STALE
    else:
        state = StaleStatus.MISSING if newest is None else StaleStatus.FRESH
    return AssetStatus(
        key=spec.key,
        status=state,
        data_version=UNKNOWN if newest is not None else (INITIAL if spec.is_source else NULL),
        code_version=spec.code_version,
        kind=spec.kind,
        framework=spec.framework,
        causes=tuple(causes),
        last_event_id=newest.event_id if newest is not None else None,
        last_run_id=newest.run_id if newest is not None else None,
        partitions=counts,
    )


def partition_status(spec: AssetSpec, partition: str, graph: Graph) -> AssetStatus:
    """Status of one partition ("": an unpartitioned asset) with its causes."""
    records = graph.records(spec.key, partition)
    version, event_id, _ = current_version(spec, records)
    mat = records.materialization if records is not None else None
    causes: tuple[StaleCause, ...] = ()
    if spec.is_source:
        state = StaleStatus.FRESH
    elif mat is None:
        state = StaleStatus.MISSING
    else:
        found = _causes(spec, partition, mat, graph)
        state = StaleStatus.STALE if found else StaleStatus.FRESH
        causes = tuple(found)
    return AssetStatus(
        key=spec.key,
        status=state,
        data_version=_as_version(version),
        code_version=spec.code_version,
        kind=spec.kind,
        framework=spec.framework,
        causes=causes,
        last_event_id=event_id,
        last_run_id=mat.run_id if mat is not None else None,
        partition=partition or None,
        parameters=tuple(sorted(json.loads(mat.parameters).items()))
        if mat is not None and mat.parameters
        else (),
    )


_SENTINELS: Final = {v.value: v for v in (NULL, INITIAL, UNKNOWN)}


def _as_version(value: str) -> DataVersion:
    return _SENTINELS.get(value) or DataVersion._trusted(value)
