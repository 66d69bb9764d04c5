"""Staleness: pure functions from definitions and latest records to status and causes.

Nothing here touches the store; the store loads everything needed in a fixed number of queries
and hands plain records over, so a whole graph costs the same few queries at any size.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

import xxhash

from ._keys import AssetKey
from ._model import (
    AssetSpec,
    AssetStatus,
    StaleCause,
    StaleCauseCategory,
    StaleStatus,
    UpstreamChange,
)
from ._versions import INITIAL, NULL, UNKNOWN, DataVersion
from .errors import CycleError

__all__ = [
    "LatestRecords",
    "Materialized",
    "compute_statuses",
    "current_version",
    "inputs_digest",
    "moved_inputs",
    "topological_order",
]

_NULL: Final = NULL.value
_INITIAL: Final = INITIAL.value
_UNKNOWN: Final = UNKNOWN.value


@dataclass(slots=True)
class Materialized:
    """The latest materialization of an asset with its provenance (versions as plain strings).

    `inputs` is None when the store established, by `inputs_digest`, that every input is still
    the very event the step read: then no input can be a cause, and its rows were never loaded.
    """

    event_id: int
    data_version: str
    code_version: str | None
    user_provided: bool
    run_id: str | None
    inputs: dict[AssetKey, tuple[str, int | None]] | None
    inputs_digest: str = ""


@dataclass(slots=True)
class LatestRecords:
    materialization: Materialized | None = None
    observation: tuple[int, str] | None = None  # (event id, data version)


def inputs_digest(inputs: Iterable[tuple[AssetKey, int | None]]) -> str:
    """Digest of (input key, input event id) pairs, in key order, length-prefixed.

    Equal digests mean the same set of inputs at the same events: unchanged provenance, so the
    common all-in-sync case never loads per-input rows.
    """
    return _digest_sorted((str(key), event) for key, event in sorted(inputs, key=lambda pair: pair[0]))


def _digest_sorted(pairs: Iterable[tuple[str, int | None]]) -> str:
    fields = []
    for key, event_id in pairs:
        name = key.encode()
        event = -1 if event_id is None else event_id
        fields.append(len(name).to_bytes(8, "big") + name + event.to_bytes(8, "big", signed=True))
    return xxhash.xxh3_128_hexdigest(b"".join(fields))


def moved_inputs(
    specs: Mapping[AssetKey, AssetSpec], latest: Mapping[AssetKey, LatestRecords]
) -> list[Materialized]:
    """Latest materializations some of whose inputs moved on since they were recorded.

    Compares each recorded `inputs_digest` with the digest of the dependencies' current events;
    only these materializations need their provenance rows to explain causes.
    """
    current_event = {key: current_version(spec, latest.get(key))[1] for key, spec in specs.items()}
    moved = []
    for key, records in latest.items():
        mat = records.materialization
        spec = specs.get(key)
        if mat is None or spec is None:
            continue
        # spec.deps is sorted already (AssetSpec sorts it), so no sort on this hot path.
        if mat.inputs_digest != _digest_sorted((dep, current_event.get(dep)) for dep in spec.deps):
            moved.append(mat)
    return moved


def current_version(spec: AssetSpec | None, latest: LatestRecords | None) -> tuple[str, int | None, bool]:
    """(data version, event id, user provided) of an asset as downstream steps see it now.

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


def _causes(
    spec: AssetSpec,
    mat: Materialized,
    specs: Mapping[AssetKey, AssetSpec],
    latest: Mapping[AssetKey, LatestRecords],
) -> list[StaleCause]:
    key = spec.key
    causes: list[StaleCause] = []
    if spec.code_version is not None and spec.code_version != mat.code_version:
        causes.append(StaleCause(key, StaleCauseCategory.CODE, "has a new code version"))
    recorded_inputs = mat.inputs
    if recorded_inputs is None:  # provenance digest matched: every input unchanged
        return causes
    deps = spec.deps
    for removed in sorted(set(recorded_inputs).difference(deps)):
        causes.append(
            StaleCause(key, StaleCauseCategory.DEPENDENCIES, f"removed dependency on {removed}", removed)
        )
    for dep in deps:
        recorded = recorded_inputs.get(dep)
        if recorded is None:
            causes.append(
                StaleCause(key, StaleCauseCategory.DEPENDENCIES, f"has a new dependency on {dep}", dep)
            )
            continue
        dep_spec = specs.get(dep)
        current, _, user_provided = current_version(dep_spec, latest.get(dep))
        if not _dep_changed(recorded[0], current):
            continue
        # An input without a code version gets a new data version on every run, so "new data
        # version" would say nothing: report the materialization instead (Dagster's wording).
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
                (StaleCause(dep, StaleCauseCategory.DATA, child),),
            )
        )
    return causes


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
    specs: Mapping[AssetKey, AssetSpec],
    latest: Mapping[AssetKey, LatestRecords],
    targets: Iterable[AssetKey] | None = None,
    *,
    with_upstream: bool = True,
) -> dict[AssetKey, AssetStatus]:
    """Status of `targets` (default: every spec).

    `specs` must hold the targets and their deps; with `with_upstream`, every ancestor too.
    """
    wanted = list(specs) if targets is None else list(targets)
    if not with_upstream:
        return {key: _status(specs[key], specs, latest) for key in wanted}

    base: dict[AssetKey, AssetStatus] = {key: _status(specs[key], specs, latest) for key in specs}
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
            status = AssetStatus(
                key=status.key,
                status=status.status,
                data_version=status.data_version,
                code_version=status.code_version,
                kind=status.kind,
                framework=status.framework,
                causes=status.causes,
                upstream=upstream,
                last_event_id=status.last_event_id,
                last_run_id=status.last_run_id,
            )
        result[key] = status
    return result


def _status(
    spec: AssetSpec,
    specs: Mapping[AssetKey, AssetSpec],
    latest: Mapping[AssetKey, LatestRecords],
) -> AssetStatus:
    records = latest.get(spec.key)
    version, event_id, _ = current_version(spec, records)
    mat = records.materialization if records is not None else None
    causes: tuple[StaleCause, ...] = ()
    if spec.is_source:
        state = StaleStatus.FRESH
    elif mat is None:
        state = StaleStatus.MISSING
    else:
        found = _causes(spec, mat, specs, latest)
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
    )


_SENTINELS: Final = {v.value: v for v in (NULL, INITIAL, UNKNOWN)}


def _as_version(value: str) -> DataVersion:
    return _SENTINELS.get(value) or DataVersion._trusted(value)
