"""Observing sources, the rule every adapter shares: record a version only when it changed, and
say which consumers have not read the current one.

Pure functions over a loaded `Graph`; `EventStore.observe` loads it in a fixed number of queries
and writes in one transaction, only when some version changed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from ._keys import AssetKey, CoercibleToAssetKey
from ._model import Event
from ._partitions import NOT_PARTITIONED
from ._staleness import Graph, LatestRecords, current_version
from ._validate import metadata_json
from ._versions import INITIAL, DataVersion, user_data_version
from .errors import ConfigError

__all__ = [
    "Observation",
    "ObservationResult",
    "changed_observations",
    "coerce_observations",
    "missing_partitions",
    "observed_version",
    "unread_consumers",
]


@dataclass(frozen=True, slots=True)
class Observation:
    """One observed data version of a source (of one partition, for a partitioned source)."""

    key: AssetKey
    data_version: DataVersion
    partition: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", AssetKey.parse(self.key))
        object.__setattr__(self, "data_version", user_data_version(self.data_version))
        metadata_json(self.metadata, what=f"observation of {self.key}")


@dataclass(frozen=True, slots=True)
class ObservationResult:
    """What `EventStore.observe` did.

    `recorded`: the observations whose version differed from the source's current one, as
    appended events; `unchanged`: the others (nothing was written for them). `unread` maps each
    source to the consumers whose latest materialization did not read its current version (or
    that were never materialized); a source whose consumers all read it maps to `()`, and
    `consumers` holds the ones compared. `previous` holds each observed (key, partition)'s
    version before the call (INITIAL: none).
    """

    recorded: tuple[Event, ...]
    unchanged: tuple[Observation, ...]
    unread: Mapping[AssetKey, tuple[AssetKey, ...]]
    previous: Mapping[tuple[AssetKey, str | None], DataVersion]
    consumers: Mapping[AssetKey, tuple[AssetKey, ...]] = field(default_factory=dict)

    def changed(self, key: CoercibleToAssetKey, partition: str | None = None) -> bool:
        """True when this call recorded a new version of `key` (of `partition`)."""
        asset = AssetKey.parse(key)
        return any(e.key == asset and e.partition == partition for e in self.recorded)


# Keys as AssetKey or plain strings; Mapping is invariant in its key type, hence the union.
Observations: TypeAlias = (
    Mapping[AssetKey, DataVersion | str] | Mapping[str, DataVersion | str] | Iterable["Observation"]
)


def coerce_observations(observations: Observations) -> list[Observation]:
    """The observations of one call, the last one winning per (key, partition).

    :raises ConfigError: neither a mapping of versions nor Observation objects.
    :raises InvalidAssetKey, InvalidDataVersion: a malformed key or version.
    """
    if isinstance(observations, Mapping):
        items = [Observation(AssetKey.parse(k), _version(k, v)) for k, v in observations.items()]
    elif isinstance(observations, str | bytes) or not isinstance(observations, Iterable):
        raise ConfigError(
            f"observe takes {{source key: data version}} or Observation objects, not "
            f"{type(observations).__name__}"
        )
    else:
        items = list(observations)
        for item in items:
            if not isinstance(item, Observation):
                raise ConfigError(
                    f"observe takes Observation objects, not {type(item).__name__} {item!r:.60}; "
                    "or pass a mapping {source key: data version}"
                )
    return list({(item.key, item.partition): item for item in items}.values())


def missing_partitions(
    graph: Graph, items: list[Observation], absent: Iterable[Observation]
) -> list[Observation]:
    """For each `absent` item, its version for every recorded partition of its source that
    `items` leave out."""
    given = {(i.key, i.partition) for i in items}
    found = []
    for filler in absent:
        records = graph.latest.get(filler.key)
        for partition in sorted(records.partitions or {}) if records is not None else ():
            if (filler.key, partition) not in given:
                found.append(Observation(filler.key, filler.data_version, partition, filler.metadata))
    return found


def _version(key: object, value: object) -> DataVersion:
    if isinstance(value, DataVersion | str):
        return user_data_version(value)
    raise ConfigError(
        f"the observed version of {key} is {type(value).__name__} {value!r:.60}; give a DataVersion "
        "or a string"
    )


def observed_version(graph: Graph, key: AssetKey, partition: str) -> str | None:
    """The version an observation of `key` is compared with: a source's current version
    (INITIAL when never observed); for an asset some step materializes, its latest observation."""
    spec = graph.specs.get(key)
    records = graph.records(key, partition)
    if spec is not None and not spec.is_source:
        return records.observation[1] if records is not None and records.observation else None
    return current_version(spec, records)[0]


def changed_observations(
    graph: Graph, items: Iterable[Observation]
) -> tuple[list[Observation], list[Observation], dict[tuple[AssetKey, str | None], DataVersion]]:
    """(changed, unchanged, previous versions) of `items` against the loaded records."""
    changed: list[Observation] = []
    unchanged: list[Observation] = []
    previous: dict[tuple[AssetKey, str | None], DataVersion] = {}
    for item in items:
        before = observed_version(graph, item.key, item.partition or NOT_PARTITIONED)
        previous[(item.key, item.partition)] = DataVersion._trusted(before) if before is not None else INITIAL
        (unchanged if before == item.data_version.value else changed).append(item)
    return changed, unchanged, previous


def unread_consumers(
    graph: Graph,
    versions: Mapping[AssetKey, str],
    consumers: Mapping[AssetKey, tuple[AssetKey, ...]],
) -> dict[AssetKey, tuple[AssetKey, ...]]:
    """For each source (unpartitioned, at version `versions[source]` now), the consumers whose
    latest materialization read another version of it, or none at all.

    A consumer's provenance rows are loaded only when its inputs moved on (the digest); when they
    were not, it read the current event of each dep, so the source's version before this call.
    A partitioned consumer counts its newest materialized partition.
    """
    unread: dict[AssetKey, tuple[AssetKey, ...]] = {}
    for source, readers in consumers.items():
        now = versions.get(source)
        if now is None:
            continue
        before = graph.current(source, NOT_PARTITIONED)[0]
        unread[source] = tuple(c for c in readers if _read_version(graph, c, source, before) != now)
    return unread


def _read_version(graph: Graph, consumer: AssetKey, source: AssetKey, current: str | None) -> str | None:
    records = graph.latest.get(consumer)
    mat = _newest_materialization(records)
    if mat is None:
        return None
    if mat.inputs is None:  # the digest proved every input is still the event it read
        spec = graph.specs.get(consumer)
        return current if spec is not None and source in spec.deps else None
    read = mat.inputs.get((source, NOT_PARTITIONED))
    return read[0] if read is not None else None


def _newest_materialization(records: LatestRecords | None) -> Any:
    if records is None:
        return None
    newest = records.materialization
    for part in (records.partitions or {}).values():
        mat = part.materialization
        if mat is not None and (newest is None or mat.event_id > newest.event_id):
            newest = mat
    return newest
