"""insync.core: code versions, data versions, provenance, the event store and staleness.

Framework-free: adapters for Airflow, Prefect and dbt build on these names only.

Names load on first use (PEP 562): `insync --help` and a DAG file that only declares versioned
tasks do not pay for SQLAlchemy, pendulum or fsspec until something needs them. The errors load
eagerly: they are small, and every `except` clause names them.
"""

import typing

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

if typing.TYPE_CHECKING:
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

# Where each lazily loaded public name lives (module of this package: names).
_LAZY: typing.Final = {
    "_cache": ("NO_VALUE", "JsonSerializer", "PickleSerializer", "Serializer", "ValueCache"),
    "_code_version": ("CodeAnalysis", "analyze_code", "code_version_of", "resolve_code_version"),
    "_decide": ("decide", "decision_line"),
    "_fingerprint": (
        "fingerprint_bytes",
        "fingerprint_directory",
        "fingerprint_file",
        "fingerprint_parameters",
        "fingerprint_table",
        "fingerprint_value",
    ),
    "_keys": ("AssetKey",),
    "_model": (
        "AssetSpec",
        "AssetStatus",
        "Event",
        "InputVersion",
        "PartitionCounts",
        "StaleCause",
        "StaleCauseCategory",
        "StaleStatus",
        "UpstreamChange",
    ),
    "_observation": ("Observation", "ObservationResult"),
    "_observe": ("observe_directory", "observe_file", "observe_sql"),
    "_partitions": (
        "AllPartitionsMapping",
        "DynamicPartitions",
        "FunctionMapping",
        "IdentityMapping",
        "PartitionMapping",
        "PartitionsDefinition",
        "StaticPartitions",
        "TimeWindowMapping",
        "TimeWindowPartitions",
    ),
    "_settings": ("Settings", "resolve_settings"),
    "_step": ("Step", "StepDecision"),
    "_store": ("EventStore", "Materialization", "StepStore"),
    "_versions": (
        "INITIAL",
        "NULL",
        "UNKNOWN",
        "DataVersion",
        "dagster_data_version",
        "logical_data_version",
    ),
}
_HOME: typing.Final = {name: module for module, names in _LAZY.items() for name in names}

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


if not typing.TYPE_CHECKING:  # mypy resolves the names from the imports above, typos included

    def __getattr__(name: str) -> object:
        module = _HOME.get(name)
        if module is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        # __import__, not importlib.import_module: `python -X importtime` only sees the former.
        value = getattr(__import__(f"{__name__}.{module}", fromlist=[name]), name)
        globals()[name] = value  # later lookups are plain attribute reads
        return value

    def __dir__() -> list[str]:
        return sorted({*globals(), *__all__})
