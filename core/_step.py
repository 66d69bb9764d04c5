"""The execution protocol every adapter follows: check, then skip or run, then record."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ._cache import NO_VALUE, ValueCache
from ._decide import decide, decision_line
from ._fingerprint import fingerprint_parameters
from ._model import AssetSpec, AssetStatus, Event, InputVersion
from ._store import StepStore
from ._versions import DataVersion

__all__ = ["Step", "StepDecision"]

log = logging.getLogger("insync")


@dataclass(frozen=True, slots=True)
class StepDecision:
    """What the check decided, in one loggable line (`message`)."""

    skip: bool
    status: AssetStatus
    reason: str
    value: Any = NO_VALUE
    inputs: tuple[InputVersion, ...] = ()

    @property
    def message(self) -> str:
        return decision_line(self.skip, self.status.label, self.status.status, self.reason)


class Step:
    """One versioned step: `check()` before the user's code, `record()` after it succeeds.

    Everything the step reads is part of the decision: its code (the spec's code version), its
    upstream assets (the spec's deps, and for a partition the upstream partitions it maps to),
    the `partition` it computes and its `parameters` (argument values that are not upstream
    assets, run configuration). Parameters are fingerprinted with `fingerprint_value`; name the
    ones that do not change the result in `ignore_parameters`, or give a function per name in
    `parameter_fingerprints`. `unseen_inputs` names reads insync cannot see (an environment
    variable, the run context read inside the body): such a step always runs, and says why.

    The spec is registered if it changed; the inputs are snapshot at `check()` so provenance shows
    what the step read, not what upstream wrote while it ran, and the materialization records the
    code version the step was checked with.

    :raises ParameterError: a parameter without a fingerprint (named, with the ways out).
    :raises InvalidPartitionKey: a partition that does not fit the asset's definition.
    """

    def __init__(
        self,
        store: StepStore,
        spec: AssetSpec,
        *,
        run_id: str | None = None,
        framework: str | None = None,
        cache: ValueCache | None = None,
        force: bool = False,
        partition: str | None = None,
        parameters: Mapping[str, Any] | None = None,
        ignore_parameters: Iterable[str] = (),
        parameter_fingerprints: Mapping[str, Callable[[Any], Any]] | None = None,
        unseen_inputs: Iterable[str] = (),
    ) -> None:
        self.store = store
        self.spec = spec
        self.run_id = run_id
        self.framework = framework or spec.framework
        self.cache = cache
        self.force = force
        self.partition = partition
        self.parameters = fingerprint_parameters(
            parameters or {},
            ignore=ignore_parameters,
            fingerprints=parameter_fingerprints,
            what=f"step {spec.key}",
        )
        self.unseen_inputs = tuple(sorted(set(unseen_inputs)))
        self.decision: StepDecision | None = None

    def check(self, *, needs_value: bool = True) -> StepDecision:
        """Decide whether the step runs, and log why in one line.

        It skips iff the asset has a code version, its partition is FRESH for these parameters,
        it reads nothing unseen, no force is set and (when `needs_value` and a cache is set) the
        last value loads. A retry within the same run id whose inputs are unchanged also skips,
        so retries never record twice.
        """
        status, inputs = self.store.check_view(self.spec, self.partition, self.parameters)
        skip, reason, value = self._decide(status, needs_value=needs_value)
        self.decision = StepDecision(skip, status, reason, value, inputs)
        log.info("%s", self.decision.message)
        return self.decision

    def _decide(self, status: AssetStatus, *, needs_value: bool) -> tuple[bool, str, Any]:
        same_run = self.run_id is not None and status.last_run_id == self.run_id
        skip, reason = decide(
            status,
            code_version=self.spec.code_version,
            force=self.force,
            unseen_inputs=self.unseen_inputs,
            same_run=same_run,
        )
        if not (skip and needs_value and self.cache is not None):
            return skip, reason, NO_VALUE
        value = self.cache.get(self.spec.key, status.data_version, self.partition)
        if value is NO_VALUE:
            return False, "cached value missing", NO_VALUE
        return True, reason, value

    def record(
        self,
        value: Any = NO_VALUE,
        *,
        data_version: DataVersion | str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Event:
        """Record the materialization (and cache `value`) after the user's code succeeded.

        The value is serialized first: an unserializable value raises `SerializationError` and
        nothing is recorded. A failing cache write only logs; the next check then runs the step.
        """
        data = None
        if value is not NO_VALUE and self.cache is not None:
            data = self.cache.serialize(self.spec.key, value)
        inputs = self.decision.inputs if self.decision is not None else None
        event = self.store.record_materialization(
            self.spec.key,
            data_version=data_version,
            run_id=self.run_id,
            framework=self.framework,
            metadata=metadata,
            inputs=inputs,
            partition=self.partition,
            parameters=self.parameters,
            code_version=self.spec.code_version,
            once_per_run=True,
        )
        if data is not None and self.cache is not None:
            try:
                self.cache.put_bytes(self.spec.key, event.data_version, data, self.partition)
            except Exception as exc:  # the record stands; the next check recomputes
                log.warning("value cache: cannot write %s (%s)", self.spec.key, exc)
        return event
