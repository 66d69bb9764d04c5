"""One observation of a source, shared by the sensor (worker) and the trigger (triggerer).

An observation is recorded only when it differs from the source's latest recorded one, so a
sensor poking every minute does not write 1,440 identical events a day.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from insync.core import AssetKey, ConfigError, DataVersion, EventStore

__all__ = ["Observation", "callable_path", "load_observe", "observe_once"]

FRAMEWORK = "airflow"


@dataclass(frozen=True, slots=True)
class Observation:
    """Result of one observation: the version seen and what it means for the consumers."""

    key: AssetKey
    data_version: DataVersion
    #: True when this observation differs from the previous recorded one (or is the first).
    new: bool
    #: Consumers whose last materialization read another version of the source (or none yet).
    pending: tuple[AssetKey, ...]
    consumers: tuple[AssetKey, ...]

    @property
    def unconsumed(self) -> bool:
        """True when some consumer has not read this version yet (or no consumer is known)."""
        return not self.consumers or bool(self.pending)

    def as_payload(self) -> dict[str, Any]:
        return {
            "key": str(self.key),
            "data_version": str(self.data_version),
            "new": self.new,
            "pending": [str(k) for k in self.pending],
        }


def callable_path(fn: Callable[..., Any] | str, *, check_import: bool = True) -> str:
    """``module.qualname`` of an importable function (what a trigger can serialize).

    A path is imported at once to check it (a wrong one is then a DAG import error) unless
    ``check_import`` is false: the triggerer rebuilds a trigger inside its event loop, where
    importing a user's module would block every other trigger; the poll imports it in a thread.

    :raises ConfigError: a lambda, a nested function or a bound method (not importable), or a
        path that cannot be imported.
    """
    if isinstance(fn, str):
        if check_import:
            load_observe(fn)
        elif "." not in fn.replace(":", "."):
            raise ConfigError(f"observe function {fn!r}: give 'package.module.function'")
        return fn
    module = getattr(fn, "__module__", None)
    qualname = getattr(fn, "__qualname__", "")
    if not module or "<" in qualname or "." in qualname:
        raise ConfigError(
            f"observe function {fn!r} cannot be imported by the triggerer; use a module-level "
            "function (e.g. insync.adapters.airflow.observe.observe_file) with observe_kwargs"
        )
    return f"{module}.{qualname}"


def load_observe(path: Callable[..., Any] | str) -> Callable[..., Any]:
    """The observe function itself, from a callable or a ``module.function`` path.

    :raises ConfigError: the path cannot be imported or is not callable.
    """
    if callable(path):
        return path
    module_name, _, name = str(path).replace(":", ".").rpartition(".")
    try:
        fn = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ConfigError(
            f"cannot import observe function {path!r} ({exc}); give 'package.module.function'"
        ) from exc
    if not callable(fn):
        raise ConfigError(f"observe function {path!r} is not callable")
    return fn  # type: ignore[no-any-return]


def _as_data_version(key: AssetKey, value: Any) -> DataVersion:
    if isinstance(value, DataVersion):
        return value
    if isinstance(value, str):
        return DataVersion(value)
    raise ConfigError(
        f"the observe function of {key} returned {type(value).__name__} {value!r}; return a "
        "DataVersion or a string"
    )


def observe_once(
    store: EventStore,
    key: AssetKey,
    observe: Callable[..., Any],
    observe_kwargs: Mapping[str, Any],
    *,
    consumers: Iterable[AssetKey] | None = None,
    run_id: str | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> Observation:
    """Observe the source, record the observation if it is new, compare with the consumers.

    ``consumers`` None means every registered asset that depends on ``key``. The rule (write only
    a changed version, register an unknown source) is the core's: ``EventStore.observe``.

    :raises ObservationError: the observe function could not read the source (nothing recorded).
    :raises ConfigError: it returned something other than a data version.
    """
    data_version = _as_data_version(key, observe(**observe_kwargs))
    result = store.observe(
        {key: data_version},
        consumers=None if consumers is None else {key: consumers},
        run_id=run_id,
        framework=FRAMEWORK,
        metadata=metadata,
    )
    return Observation(
        key, data_version, result.changed(key), result.unread[key], result.consumers[key]
    )
