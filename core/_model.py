"""The frozen domain model: definitions, events, provenance and status."""

from __future__ import annotations

import enum
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal, TypeAlias

import pendulum

from ._keys import AssetKey, CoercibleToAssetKey
from ._partitions import (
    PartitionMapping,
    PartitionsDefinition,
    mapping_to_json,
    partitions_to_json,
)
from ._validate import check_text, metadata_json
from ._versions import DataVersion
from .errors import ConfigError

__all__ = [
    "AssetKind",
    "AssetSpec",
    "AssetStatus",
    "Event",
    "EventKind",
    "InputVersion",
    "PartitionCounts",
    "StaleCause",
    "StaleCauseCategory",
    "StaleStatus",
    "UpstreamChange",
    "freeze_metadata",
    "partition_label",
]

AssetKind: TypeAlias = Literal["materializable", "observable", "external"]
EventKind: TypeAlias = Literal["materialization", "observation"]
ASSET_KINDS: Final = ("materializable", "observable", "external")
# Sources: versions come from observations, never from a computation insync could skip.
SOURCE_KINDS: Final = frozenset({"observable", "external"})


def freeze_metadata(metadata: Mapping[str, Any] | None, *, what: str) -> str:
    """Canonical JSON text of user metadata, so specs stay hashable and comparable.

    :raises ConfigError: the metadata is not strict JSON (NaN, non-string keys, objects), or is
        nested too deep.
    """
    return metadata_json(metadata, what=what)


@dataclass(frozen=True, slots=True, init=False)
class AssetSpec:
    """The current definition of an asset: what computes it and what it reads.

    `kind` is `materializable` (a step computes it), `observable` (a source whose observe function
    reports data versions) or `external` (a source nobody observes here). `code_version` is
    already resolved: `None` means unknown (never skipped). `partitions` makes each partition key
    its own record stream; `partition_mappings` says, per dep, which upstream partitions a
    partition reads (default: identity between like definitions, overlapping windows between
    time windows, all partitions into an unpartitioned asset).

    :raises InvalidAssetKey: for a malformed key or dep. :raises ConfigError: bad kind/metadata.
    """

    key: AssetKey
    code_version: str | None
    deps: tuple[AssetKey, ...]
    kind: AssetKind
    framework: str | None
    metadata_json: str
    partitions: PartitionsDefinition | None = None
    partition_mappings: tuple[tuple[AssetKey, PartitionMapping], ...] = ()

    def __init__(
        self,
        key: CoercibleToAssetKey,
        *,
        code_version: str | None = None,
        deps: Iterable[CoercibleToAssetKey] = (),
        kind: AssetKind = "materializable",
        framework: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        partitions: PartitionsDefinition | None = None,
        partition_mappings: Mapping[CoercibleToAssetKey, PartitionMapping] | None = None,
    ) -> None:
        from ._code_version import resolve_code_version

        parsed = AssetKey.parse(key)
        if isinstance(deps, str | AssetKey):
            deps = [deps]
        if not isinstance(deps, Iterable):
            raise ConfigError(
                f"deps of {parsed} must be a list of asset keys, not {type(deps).__name__} {deps!r}"
            )
        dep_keys = tuple(sorted({AssetKey.parse(d) for d in deps}))
        if parsed in dep_keys:
            raise ConfigError(f"asset {parsed} lists itself as a dependency; remove it from deps")
        if kind not in ASSET_KINDS:
            raise ConfigError(f"asset {parsed} has kind {kind!r}; use one of {', '.join(ASSET_KINDS)}")
        if kind in SOURCE_KINDS and dep_keys:
            raise ConfigError(f"source asset {parsed} ({kind}) cannot have deps; drop them")
        set_ = object.__setattr__
        set_(self, "key", parsed)
        set_(self, "code_version", resolve_code_version(code_version))
        set_(self, "deps", dep_keys)
        set_(self, "kind", kind)
        set_(self, "framework", check_text(framework, f"framework of {parsed}", max_length=64))
        set_(self, "metadata_json", freeze_metadata(metadata, what=f"asset {parsed}"))
        set_(self, "partitions", _check_partitions(parsed, partitions))
        set_(self, "partition_mappings", _check_mappings(parsed, dep_keys, partition_mappings))

    @property
    def partitions_json(self) -> str:
        return partitions_to_json(self.partitions)

    @property
    def mappings_json(self) -> str:
        if not self.partition_mappings:
            return ""
        body = {str(k): mapping_to_json(m) for k, m in self.partition_mappings}
        return json.dumps(body, sort_keys=True, separators=(",", ":"))

    def mapping_for(self, dep: AssetKey) -> PartitionMapping | None:
        for key, mapping in self.partition_mappings:
            if key == dep:
                return mapping
        return None

    @property
    def metadata(self) -> dict[str, Any]:
        return dict(json.loads(self.metadata_json))

    @property
    def is_source(self) -> bool:
        return self.kind in SOURCE_KINDS


def _check_partitions(key: AssetKey, partitions: object) -> PartitionsDefinition | None:
    from ._partitions import DynamicPartitions, StaticPartitions, TimeWindowPartitions

    if partitions is None or isinstance(
        partitions, StaticPartitions | TimeWindowPartitions | DynamicPartitions
    ):
        return partitions
    raise ConfigError(
        f"asset {key} has partitions={partitions!r}; use StaticPartitions([...]), "
        "TimeWindowPartitions('daily', start=...) or DynamicPartitions(name)"
    )


def _check_mappings(
    key: AssetKey, deps: tuple[AssetKey, ...], mappings: Mapping[Any, Any] | None
) -> tuple[tuple[AssetKey, PartitionMapping], ...]:
    from ._partitions import AllPartitionsMapping, FunctionMapping, IdentityMapping, TimeWindowMapping

    if not mappings:
        return ()
    if not isinstance(mappings, Mapping):
        raise ConfigError(
            f"partition_mappings of {key} must be a dict of dep key -> mapping, not {mappings!r}"
        )
    out = []
    for dep, mapping in mappings.items():
        dep_key = AssetKey.parse(dep)
        if dep_key not in deps:
            raise ConfigError(
                f"partition_mappings of {key} names {dep_key}, which is not one of its deps "
                f"({', '.join(map(str, deps)) or 'none'}); add it to deps or drop the mapping"
            )
        if not isinstance(
            mapping, IdentityMapping | AllPartitionsMapping | TimeWindowMapping | FunctionMapping
        ):
            raise ConfigError(
                f"partition mapping for {dep_key} in {key} is {mapping!r}, not a PartitionMapping"
            )
        out.append((dep_key, mapping))
    return tuple(sorted(out, key=lambda pair: pair[0]))


@dataclass(frozen=True, slots=True)
class InputVersion:
    """One input of a materialization as it was when the step started (`partition`: which
    partition of a partitioned input)."""

    key: AssetKey
    data_version: DataVersion
    event_id: int | None  # None: the input had no record (NULL or INITIAL)
    partition: str | None = None

    @property
    def label(self) -> str:
        return partition_label(self.key, self.partition)


def partition_label(key: AssetKey, partition: str | None) -> str:
    """`orders` or `orders[2026-12-01]`: how a person reads an asset or one of its partitions."""
    return str(key) if not partition else f"{key}[{partition}]"


@dataclass(frozen=True, slots=True)
class Event:
    """An appended materialization or observation. Ids grow monotonically; clocks order nothing."""

    id: int
    key: AssetKey
    kind: EventKind
    data_version: DataVersion
    code_version: str | None
    user_provided: bool
    run_id: str | None
    framework: str | None
    timestamp: pendulum.DateTime
    # Left out of hash(): a dict cannot be hashed, and the id already names the event.
    metadata: Mapping[str, Any] = field(default_factory=dict, hash=False)
    inputs: tuple[InputVersion, ...] = ()
    partition: str | None = None
    parameters: tuple[tuple[str, str], ...] = ()  # (name, fingerprint), sorted


class StaleStatus(enum.Enum):
    MISSING = "MISSING"
    STALE = "STALE"
    FRESH = "FRESH"

    @property
    def label(self) -> str:
        """The words a person sees (Dagster's UI labels)."""
        return _LABELS[self]


_LABELS: Final = {
    StaleStatus.MISSING: "Never materialized",
    StaleStatus.STALE: "Unsynced",
    StaleStatus.FRESH: "Synced",
}


class StaleCauseCategory(enum.Enum):
    CODE = "CODE"
    DEPENDENCIES = "DEPENDENCIES"
    DATA = "DATA"
    PARAMETERS = "PARAMETERS"  # beyond Dagster: the step is asked to run with other parameter values


@dataclass(frozen=True, slots=True)
class StaleCause:
    """Why an asset is unsynced; `children` explain a DATA cause from the dependency's side."""

    key: AssetKey
    category: StaleCauseCategory
    reason: str
    dependency: AssetKey | None = None
    children: tuple[StaleCause, ...] = ()
    partition: str | None = None
    dependency_partition: str | None = None

    def __str__(self) -> str:
        return f"{partition_label(self.key, self.partition)} {self.reason}"

    @property
    def leaves(self) -> tuple[StaleCause, ...]:
        if not self.children:
            return (self,)
        return tuple(leaf for child in self.children for leaf in child.leaves)


@dataclass(frozen=True, slots=True)
class UpstreamChange:
    """An ancestor whose pending change will reach this asset once it is materialized."""

    key: AssetKey
    status: StaleStatus

    def __str__(self) -> str:
        return f"will be unsynced after {self.key} is materialized ({self.status.label})"


@dataclass(frozen=True, slots=True)
class PartitionCounts:
    """The rollup of a partitioned asset: how many partitions are Synced, and which are not."""

    total: int
    synced: int
    unsynced: tuple[str, ...]
    missing: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.synced} synced, {len(self.unsynced)} unsynced, {len(self.missing)} never materialized"


@dataclass(frozen=True, slots=True)
class AssetStatus:
    """Status of one asset (or one partition) against its definition and the store's records.

    For a partitioned asset asked as a whole, `partitions` holds the rollup and `status` is STALE
    when any partition is Unsynced, MISSING when none was materialized, else FRESH; `causes` are
    those of the first Unsynced partitions.
    """

    key: AssetKey
    status: StaleStatus
    data_version: DataVersion
    code_version: str | None
    kind: AssetKind
    framework: str | None
    causes: tuple[StaleCause, ...] = ()
    upstream: tuple[UpstreamChange, ...] = ()
    last_event_id: int | None = None
    last_run_id: str | None = None
    partition: str | None = None
    partitions: PartitionCounts | None = None
    parameters: tuple[tuple[str, str], ...] = ()  # recorded with the latest materialization

    @property
    def label(self) -> str:
        return partition_label(self.key, self.partition)

    @property
    def root_causes(self) -> tuple[StaleCause, ...]:
        """The leaves of the cause tree, each once, in order."""
        leaves = (leaf for cause in self.causes for leaf in cause.leaves)
        return tuple(dict.fromkeys(leaves))

    @property
    def is_fresh(self) -> bool:
        return self.status is StaleStatus.FRESH
