"""insync.core: code versions, data versions, provenance, the event store and staleness.

Framework-free: adapters for Airflow, Prefect and dbt build on these names only.
"""

from ._cache import NO_VALUE, JsonSerializer, PickleSerializer, Serializer, ValueCache
from ._code_version import CodeAnalysis, analyze_code, code_version_of, resolve_code_version
from ._decide import decide, decision_line
from ._fingerprint import (
    fingerprint_bytes,
    fingerprint_directory,
    fingerprint_file,
    fingerprint_parameters,
    fingerprint_table,
    fingerprint_value,
)
from ._keys import AssetKey
from ._model import (
    AssetSpec,
    AssetStatus,
    Event,
    InputVersion,
    PartitionCounts,
    StaleCause,
    StaleCauseCategory,
    StaleStatus,
    UpstreamChange,
)
from ._observation import Observation, ObservationResult
from ._observe import observe_directory, observe_file, observe_sql
from ._partitions import (
    AllPartitionsMapping,
    DynamicPartitions,
    FunctionMapping,
    IdentityMapping,
    PartitionMapping,
    PartitionsDefinition,
    StaticPartitions,
    TimeWindowMapping,
    TimeWindowPartitions,
)
from ._settings import Settings, resolve_settings
from ._step import Step, StepDecision
from ._store import EventStore, Materialization, StepStore
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
    InvalidPartitionKey,
    ObservationError,
    ParameterError,
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
    "AllPartitionsMapping",
    "AssetKey",
    "AssetSpec",
    "AssetStatus",
    "CodeAnalysis",
    "ConfigError",
    "CycleError",
    "DataVersion",
    "DynamicPartitions",
    "Event",
    "EventStore",
    "FunctionMapping",
    "IdentityMapping",
    "InputVersion",
    "InsyncError",
    "InvalidAssetKey",
    "InvalidCodeVersion",
    "InvalidDataVersion",
    "InvalidPartitionKey",
    "JsonSerializer",
    "Materialization",
    "Observation",
    "ObservationError",
    "ObservationResult",
    "ParameterError",
    "PartitionCounts",
    "PartitionMapping",
    "PartitionsDefinition",
    "PickleSerializer",
    "SchemaVersionError",
    "SerializationError",
    "Serializer",
    "Settings",
    "StaleCause",
    "StaleCauseCategory",
    "StaleStatus",
    "StaticPartitions",
    "Step",
    "StepDecision",
    "StepStore",
    "StoreError",
    "StoreUnavailable",
    "TimeWindowMapping",
    "TimeWindowPartitions",
    "UnknownAssetError",
    "UpstreamChange",
    "ValueCache",
    "analyze_code",
    "code_version_of",
    "dagster_data_version",
    "decide",
    "decision_line",
    "fingerprint_bytes",
    "fingerprint_directory",
    "fingerprint_file",
    "fingerprint_parameters",
    "fingerprint_table",
    "fingerprint_value",
    "logical_data_version",
    "observe_directory",
    "observe_file",
    "observe_sql",
    "resolve_code_version",
    "resolve_settings",
]
