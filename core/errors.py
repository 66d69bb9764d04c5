"""Every error insync raises, one tree under one base.

    InsyncError
    ├── ConfigError              a setting or argument cannot be used
    │   ├── InvalidAssetKey      an asset key is malformed
    │   ├── InvalidCodeVersion   a code version is not a usable string
    │   ├── InvalidDataVersion   a data version is empty or a reserved sentinel name
    │   ├── InvalidPartitionKey  a partition key is malformed or not one of the asset's partitions
    │   └── ParameterError       a step parameter cannot be fingerprinted or is misnamed
    ├── CycleError               the asset definitions contain a cycle
    ├── UnknownAssetError        an asset key is not registered in the store
    ├── SerializationError       a value cannot be written to the value cache
    ├── ObservationError         an observe function could not read its source
    └── StoreError               the event store cannot be used
        ├── StoreUnavailable     the database cannot be reached or stays locked
        └── SchemaVersionError   the store's schema is older or newer than this insync

Messages say what happened and how to fix it.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "CycleError",
    "InsyncError",
    "InvalidAssetKey",
    "InvalidCodeVersion",
    "InvalidDataVersion",
    "InvalidPartitionKey",
    "ObservationError",
    "ParameterError",
    "SchemaVersionError",
    "SerializationError",
    "StoreError",
    "StoreUnavailable",
    "UnknownAssetError",
]


class InsyncError(Exception):
    """Base of every insync error: `except InsyncError` catches them all."""


class ConfigError(InsyncError):
    """A setting or argument cannot be used as given."""


class InvalidAssetKey(ConfigError):
    """An asset key is empty, has an empty part, or has a part containing `/`."""


class InvalidCodeVersion(ConfigError):
    """A code version is not a non-empty string, or `auto` cannot read the function's source."""


class InvalidDataVersion(ConfigError):
    """A data version is empty, not a string, or collides with a sentinel (NULL, INITIAL, UNKNOWN)."""


class InvalidPartitionKey(ConfigError):
    """A partition key is empty or too long, or not a partition of the asset (or given to an
    unpartitioned asset, or missing for a partitioned one)."""


class ParameterError(ConfigError):
    """A step parameter has no fingerprint: ignore it explicitly or give a fingerprint function."""


class CycleError(InsyncError):
    """The asset definitions contain a dependency cycle; `.cycle` lists its keys in order."""

    def __init__(self, cycle: list[str]) -> None:
        self.cycle = cycle
        path = " -> ".join([*cycle, cycle[0]])
        super().__init__(f"asset dependencies form a cycle: {path}; remove one of these dependencies")


class UnknownAssetError(InsyncError):
    """An asset key was used that the store has no definition for."""


class SerializationError(InsyncError):
    """A step's value cannot be serialized into the value cache; nothing was recorded."""


class ObservationError(InsyncError):
    """An observe function could not read its source; no observation was recorded."""


class StoreError(InsyncError):
    """The event store cannot be used."""


class StoreUnavailable(StoreError):
    """The database cannot be reached, or stayed locked longer than the busy timeout."""


class SchemaVersionError(StoreError):
    """The store was written by another insync schema revision (older: upgrade it; newer: refuse)."""
