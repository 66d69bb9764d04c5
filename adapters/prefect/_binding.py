"""What `versioned(...)` declares about one task or flow, validated once at decoration time."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from insync.core import AssetKey, AssetSpec, ConfigError, DataVersion, EventStore, ValueCache

from ._runtime import FRAMEWORK


@dataclass(frozen=True, slots=True, eq=False)
class Binding:
    """An asset key bound to a Prefect task or flow, with its versioning options."""

    key: AssetKey
    code_version: str | None
    deps: frozenset[AssetKey]
    infer_deps: bool
    data_version: Callable[[Any], DataVersion | str] | None
    store: str | EventStore | None
    value_cache: ValueCache | None
    force: bool
    metadata: Mapping[str, Any] | None

    def __deepcopy__(self, memo: dict[int, Any]) -> Binding:
        # Prefect deep-copies cache policies (`configure`, `with_options`); a binding holds open
        # stores and caches that must stay shared, and it is immutable anyway.
        return self

    def spec(self, deps: Iterable[AssetKey]) -> AssetSpec:
        """The asset definition registered at run time, with deps found in this run's graph."""
        return AssetSpec(
            self.key,
            code_version=self.code_version,
            deps=sorted(deps),
            framework=FRAMEWORK,
            metadata=self.metadata,
        )

    def user_data_version(self, value: Any) -> DataVersion | str | None:
        """The data version the user computes from the value, if they asked to.

        :raises ConfigError: the function returned something other than a string/DataVersion.
        """
        if self.data_version is None:
            return None
        version = self.data_version(value)
        if not isinstance(version, (str, DataVersion)):
            raise ConfigError(
                f"data_version function for {self.key} returned {type(version).__name__} "
                f"{version!r}; return a string or insync.core.DataVersion"
            )
        return version
