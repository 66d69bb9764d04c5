"""insync.core: code versions, data versions, provenance, the event store and staleness.

Framework-free: adapters for Airflow, Prefect and dbt build on these names only.
"""

from ._cache import NO_VALUE, JsonSerializer, PickleSerializer, Serializer, ValueCache
from ._code_version import code_version_of, resolve_code_version
from ._fingerprint import (
    fingerprint_bytes,
    fingerprint_directory,
    fingerprint_file,
    fingerprint_table,
    fingerprint_value,
)
from ._keys import AssetKey
from ._model import (
    AssetSpec,
    AssetStatus,
    Event,
    InputVersion,
    StaleCause,
    StaleCauseCategory,
    StaleStatus,
    UpstreamChange,
)
from ._observe import observe_directory, observe_file, observe_sql
from ._settings import Settings, resolve_settings
from ._step import Step, StepDecision
from ._store import EventStore, Materialization
from ._versions import (
    INITIAL,
    NULL,
    UNKNOWN,
    DataVersion,
    dagster_data_version,
    logical_data_version,
)
from .errors import (
    ConfigError,
    CycleError,
    InsyncError,
    InvalidAssetKey,
    InvalidCodeVersion,
    InvalidDataVersion,
    ObservationError,
    SchemaVersionError,
    SerializationError,
    StoreError,
    StoreUnavailable,
    UnknownAssetError,
)

__all__ = [
    "INITIAL",
    "NO_VALUE",
    "NULL",
    "UNKNOWN",
    "AssetKey",
    "AssetSpec",
    "AssetStatus",
    "ConfigError",
    "CycleError",
    "DataVersion",
    "Event",
    "EventStore",
    "InputVersion",
    "InsyncError",
    "InvalidAssetKey",
    "InvalidCodeVersion",
    "InvalidDataVersion",
    "JsonSerializer",
    "Materialization",
    "ObservationError",
    "PickleSerializer",
    "SchemaVersionError",
    "SerializationError",
    "Serializer",
    "Settings",
    "StaleCause",
    "StaleCauseCategory",
    "StaleStatus",
    "Step",
    "StepDecision",
    "StoreError",
    "StoreUnavailable",
    "UnknownAssetError",
    "UpstreamChange",
    "ValueCache",
    "code_version_of",
    "dagster_data_version",
    "fingerprint_bytes",
    "fingerprint_directory",
    "fingerprint_file",
    "fingerprint_table",
    "fingerprint_value",
    "logical_data_version",
    "observe_directory",
    "observe_file",
    "observe_sql",
    "resolve_code_version",
    "resolve_settings",
]
