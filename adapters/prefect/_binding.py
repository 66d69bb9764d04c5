"""What `versioned(...)` declares about one task or flow, validated once at decoration time."""

from __future__ import annotations

import datetime as dt
import inspect
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import pendulum
from insync.core import (
    AssetKey,
    AssetSpec,
    ConfigError,
    DataVersion,
    DynamicPartitions,
    EventStore,
    InvalidCodeVersion,
    InvalidPartitionKey,
    PartitionMapping,
    PartitionsDefinition,
    TimeWindowPartitions,
    ValueCache,
    analyze_code,
    resolve_code_version,
)

from ._runtime import FRAMEWORK

# Reads of Prefect state a task or flow body can make that insync cannot see, on top of core's
# (environment, clock, randomness): the run context and its parameters, Prefect variables.
PREFECT_UNSEEN: Final = (
    "FlowRunContext.get",
    "TaskRunContext.get",
    "Variable.aget",
    "Variable.get",
    "get_run_context",
    "prefect.runtime",
)


class CodeVersion:
    """The code version and unseen reads of a function, computed at its first run (then kept).

    `auto` is computed lazily: at decoration time the helpers defined further down the module
    are not in its globals yet, and their edits would be missed. Explicit versions are checked
    at decoration; the function is still analyzed at its first run for reads insync cannot see.
    """

    def __init__(self, declared: str | None, fn: Callable[..., Any]) -> None:
        self.declared = declared if declared == "auto" else resolve_code_version(declared)
        self.fn = fn
        self._lock = threading.Lock()
        self._resolved: tuple[str | None, tuple[str, ...]] | None = None

    def __getstate__(self) -> dict[str, Any]:
        # `flow.serve()` cloudpickles the flow, its tasks and their bindings into the flow-run
        # process: everything but the lock travels.
        return {k: v for k, v in self.__dict__.items() if k != "_lock"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def resolve(self) -> tuple[str | None, tuple[str, ...]]:
        """(code version, unseen reads).

        :raises InvalidCodeVersion: `auto` and the function's source cannot be read.
        """
        resolved = self._resolved
        if resolved is not None:
            return resolved
        with self._lock:
            if self._resolved is None:
                self._resolved = self._analyze()
            return self._resolved

    def _analyze(self) -> tuple[str | None, tuple[str, ...]]:
        try:
            analysis = analyze_code(self.fn, unseen=PREFECT_UNSEEN)
        except InvalidCodeVersion:
            if self.declared == "auto":
                raise
            return self.declared, ()  # an explicit version needs no source; nothing to scan
        version = analysis.version if self.declared == "auto" else self.declared
        return version, analysis.unseen_reads


@dataclass(frozen=True, slots=True, eq=False)
class Binding:
    """An asset key bound to a Prefect task or flow, with its versioning options."""

    key: AssetKey
    code: CodeVersion
    deps: frozenset[AssetKey]
    infer_deps: bool
    data_version: Callable[[Any], DataVersion | str] | None
    store: EventStore | str | None
    cache: ValueCache | str | None
    force: bool
    metadata: Mapping[str, Any] | None
    signature: inspect.Signature
    ignore_parameters: frozenset[str] = frozenset()
    parameter_fingerprints: Mapping[str, Callable[[Any], Any]] = field(default_factory=dict)
    partitions: PartitionsDefinition | None = None
    partition: str | None = None
    partition_mappings: Mapping[AssetKey, PartitionMapping] = field(default_factory=dict)

    def __deepcopy__(self, memo: dict[int, Any]) -> Binding:
        # Prefect deep-copies cache policies (`configure`, `with_options`); a binding holds open
        # stores and caches that must stay shared, and it is immutable anyway.
        return self

    @property
    def declared_deps(self) -> bool:
        """Deps are the declared ones only: `deps=` given (it wins over inference) or no inference."""
        return bool(self.deps) or not self.infer_deps

    def spec(
        self, deps: Iterable[AssetKey], code_version: str | None, owner: Mapping[str, Any] | None = None
    ) -> AssetSpec:
        """The asset definition registered at run time, with deps found in this run's graph and
        the `owner` metadata of the run (its deployment), if any."""
        return AssetSpec(
            self.key,
            code_version=code_version,
            deps=sorted(set(deps) | set(self.partition_mappings)),
            framework=FRAMEWORK,
            metadata={**(self.metadata or {}), **owner} if owner else self.metadata,
            partitions=self.partitions,
            partition_mappings={dep: mapping for dep, mapping in self.partition_mappings.items()} or None,
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

    def call_values(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        """Every argument of one call by name, defaults included."""
        values = {
            name: param.default
            for name, param in self.signature.parameters.items()
            if param.default is not inspect.Parameter.empty
        }
        values.update(inputs)
        return values

    def step_options(self, values: Mapping[str, Any], upstream: Iterable[str] = ()) -> dict[str, Any]:
        """`Step` keyword arguments for one call: its partition and its parameters.

        `values` are the call's arguments by name; `upstream` names the arguments that are values
        of upstream versioned tasks (their data versions stand for them). Every other argument is
        a parameter, the partition parameter excepted (its value names the partition).

        :raises InvalidPartitionKey: the partition parameter's value names no partition.
        """
        skipped = set(upstream)
        partition = None
        if self.partition is not None:
            partition = self.partition_key(values[self.partition])
            skipped.add(self.partition)
        parameters = {name: value for name, value in values.items() if name not in skipped}
        return {
            "partition": partition,
            "parameters": parameters,
            "ignore_parameters": [name for name in self.ignore_parameters if name in parameters],
            "parameter_fingerprints": {
                name: fn for name, fn in self.parameter_fingerprints.items() if name in parameters
            },
        }

    def partition_key(self, value: Any) -> str:
        """The partition key a value of the partition parameter names.

        A `str` is the key itself. A `date` is `YYYY-MM-DD` (daily, weekly or monthly windows: the
        window starting that day). A `datetime` names the time window starting at that moment
        (a naive one is read in the partitions' timezone); with static or dynamic partitions it is
        its ISO form. The key must be one the partitions define.

        :raises InvalidPartitionKey: another type, or a value that starts no window.
        """
        partitions = self.partitions
        what = f"parameter {self.partition!r} of {self.key} (its partition)"
        if isinstance(value, str):
            key = value
        elif isinstance(value, dt.datetime):
            if isinstance(partitions, TimeWindowPartitions):
                moment = (
                    pendulum.instance(value, tz=partitions.timezone)
                    if value.tzinfo is None
                    else pendulum.instance(value).in_timezone(partitions.timezone)
                )
                key = partitions.key_of(moment)
                if partitions.window(key)[0] != moment:
                    raise InvalidPartitionKey(
                        f"{what} is {value.isoformat()}, which does not start a {partitions.cadence} "
                        f"window in {partitions.timezone}; pass the window's start or its key {key!r}"
                    )
            else:
                key = value.isoformat()
        elif isinstance(value, dt.date):
            if isinstance(partitions, TimeWindowPartitions) and partitions.cadence == "hourly":
                raise InvalidPartitionKey(
                    f"{what} is the date {value.isoformat()}, but the partitions are hourly; pass a "
                    f"datetime or a key like '{value.isoformat()}-00:00'"
                )
            key = value.isoformat()
        else:
            raise InvalidPartitionKey(
                f"{what} is a {type(value).__name__} ({value!r}); pass a str, date or datetime"
            )
        assert partitions is not None  # set whenever `partition` is (see `make_binding`)
        partitions.validate(key)
        return key


def make_binding(
    key: AssetKey,
    fn: Callable[..., Any],
    *,
    code_version: str | None,
    deps: frozenset[AssetKey],
    infer_deps: bool,
    data_version: Callable[[Any], DataVersion | str] | None,
    store: EventStore | str | None,
    cache: ValueCache | str | None,
    force: bool,
    metadata: Mapping[str, Any] | None,
    ignore_parameters: Iterable[str],
    parameter_fingerprints: Mapping[str, Callable[[Any], Any]] | None,
    partitions: PartitionsDefinition | None,
    partition: str | None,
    partition_mappings: Mapping[Any, PartitionMapping] | None,
) -> Binding:
    """Validate the options against the function's signature.

    :raises ConfigError: an option naming no parameter of the function, or partitions without
        the parameter that names the partition.
    :raises InvalidCodeVersion: an explicit code version that is not a usable string.
    """
    signature = inspect.signature(fn)
    names = [
        name
        for name, param in signature.parameters.items()
        if param.kind not in (inspect.Parameter.VAR_POSITIONAL,)
    ]

    def check_names(option: str, given: Iterable[str]) -> frozenset[str]:
        if isinstance(given, str):
            raise ConfigError(f"{option} of {key} takes a list of parameter names, not the string {given!r}")
        found = frozenset(given)
        for name in sorted(found - set(names)):
            raise ConfigError(
                f"{option} of {key} names {name!r}, which is not a parameter of "
                f"{getattr(fn, '__name__', 'the function')}({', '.join(names)})"
            )
        return found

    ignored = check_names("ignore_parameters", ignore_parameters)
    fingerprints = dict(parameter_fingerprints or {})
    check_names("parameter_fingerprints", fingerprints)
    for name, function in fingerprints.items():
        if not callable(function):
            raise ConfigError(
                f"parameter_fingerprints[{name!r}] of {key} must be a function of the value, not "
                f"{type(function).__name__}"
            )
    if partition is not None:
        if not isinstance(partition, str) or partition not in names:
            raise ConfigError(
                f"partition of {key} names the parameter whose value is the partition key; "
                f"{partition!r} is not one of {', '.join(names) or 'its (no) parameters'}"
            )
        if partition in ignored or partition in fingerprints:
            raise ConfigError(
                f"{partition!r} is the partition of {key}, not a parameter; drop it from "
                f"ignore_parameters/parameter_fingerprints"
            )
        if partitions is None:
            # Keys added as runs name them, shared by every asset naming the same set.
            partitions = DynamicPartitions(str(key))
    elif partitions is not None:
        raise ConfigError(
            f"{key} has partitions but no partition=...; name the parameter whose value is the "
            f"partition key, e.g. partition='day'"
        )
    mappings = {AssetKey.parse(dep): mapping for dep, mapping in (partition_mappings or {}).items()}
    binding = Binding(
        key=key,
        code=CodeVersion(code_version, fn),
        deps=deps,
        infer_deps=infer_deps,
        data_version=data_version,
        store=store,
        cache=cache,
        force=force,
        metadata=metadata,
        signature=signature,
        ignore_parameters=ignored,
        parameter_fingerprints=fingerprints,
        partitions=partitions,
        partition=partition,
        partition_mappings=mappings,
    )
    # Bad metadata, partitions or mappings fail here, not in the first run.
    binding.spec(deps, None if code_version == "auto" else binding.code.declared)
    return binding
