"""The frozen domain model: definitions, events, provenance and status."""

from __future__ import annotations

import enum
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal, TypeAlias

import pendulum

from ._keys import AssetKey, CoercibleToAssetKey
from ._versions import DataVersion
from .errors import ConfigError

__all__ = [
    "AssetKind",
    "AssetSpec",
    "AssetStatus",
    "Event",
    "EventKind",
    "InputVersion",
    "StaleCause",
    "StaleCauseCategory",
    "StaleStatus",
    "UpstreamChange",
    "freeze_metadata",
]

AssetKind: TypeAlias = Literal["materializable", "observable", "external"]
EventKind: TypeAlias = Literal["materialization", "observation"]
ASSET_KINDS: Final = ("materializable", "observable", "external")
# Sources: versions come from observations, never from a computation insync could skip.
SOURCE_KINDS: Final = frozenset({"observable", "external"})


def freeze_metadata(metadata: Mapping[str, Any] | None, *, what: str) -> str:
    """Canonical JSON text of user metadata, so specs stay hashable and comparable.

    :raises ConfigError: the metadata is not JSON-serializable.
    """
    if not metadata:
        return "{}"
    try:
        return json.dumps(dict(metadata), sort_keys=True, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"metadata of {what} must be JSON-serializable ({exc}); "
            "convert values to str/int/float/bool/list/dict"
        ) from exc


@dataclass(frozen=True, slots=True, init=False)
class AssetSpec:
    """The current definition of an asset: what computes it and what it reads.

    `kind` is `materializable` (a step computes it), `observable` (a source whose observe function
    reports data versions) or `external` (a source nobody observes here). `code_version` is
    already resolved: `None` means unknown (never skipped).

    :raises InvalidAssetKey: for a malformed key or dep. :raises ConfigError: bad kind/metadata.
    """

    key: AssetKey
    code_version: str | None
    deps: tuple[AssetKey, ...]
    kind: AssetKind
    framework: str | None
    metadata_json: str

    def __init__(
        self,
        key: CoercibleToAssetKey,
        *,
        code_version: str | None = None,
        deps: Iterable[CoercibleToAssetKey] = (),
        kind: AssetKind = "materializable",
        framework: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        from ._code_version import resolve_code_version

        parsed = AssetKey.parse(key)
        if isinstance(deps, str | AssetKey):
            deps = [deps]
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
        set_(self, "framework", framework)
        set_(self, "metadata_json", freeze_metadata(metadata, what=f"asset {parsed}"))

    @property
    def metadata(self) -> dict[str, Any]:
        return dict(json.loads(self.metadata_json))

    @property
    def is_source(self) -> bool:
        return self.kind in SOURCE_KINDS


@dataclass(frozen=True, slots=True)
class InputVersion:
    """One input of a materialization as it was when the step started."""

    key: AssetKey
    data_version: DataVersion
    event_id: int | None  # None: the input had no record (NULL or INITIAL)


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
    metadata: Mapping[str, Any] = field(default_factory=dict)
    inputs: tuple[InputVersion, ...] = ()


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


@dataclass(frozen=True, slots=True)
class StaleCause:
    """Why an asset is unsynced; `children` explain a DATA cause from the dependency's side."""

    key: AssetKey
    category: StaleCauseCategory
    reason: str
    dependency: AssetKey | None = None
    children: tuple[StaleCause, ...] = ()

    def __str__(self) -> str:
        return f"{self.key} {self.reason}"

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
class AssetStatus:
    """Status of one asset against its current definition and the store's records."""

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

    @property
    def root_causes(self) -> tuple[StaleCause, ...]:
        """The leaves of the cause tree, each once, in order."""
        leaves = (leaf for cause in self.causes for leaf in cause.leaves)
        return tuple(dict.fromkeys(leaves))

    @property
    def is_fresh(self) -> bool:
        return self.status is StaleStatus.FRESH
