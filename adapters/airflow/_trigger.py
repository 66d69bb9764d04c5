"""``InsyncObservationTrigger``: observe a source from the triggerer (async, no worker slot).

Two uses:

- event-driven scheduling: ``Asset("raw/numbers", watchers=[AssetWatcher("numbers",
  InsyncObservationTrigger(key="raw/numbers", observe=observe_file, observe_kwargs={...}))])``
  fires (and keeps running) each time the source's data version differs from the last
  recorded observation; DAGs scheduled on that Asset then run.
- the deferrable ``InsyncObservationSensor`` defers to it with ``fire_on="unconsumed"``: it fires
  once, when some downstream asset has not read the current version.

The triggerer rebuilds the trigger and runs it inside one event loop shared by every trigger,
so nothing here blocks that loop: built there, the trigger leaves its observe function's module
unimported, and each poll (importing it, observing the source, opening, migrating and querying
the insync store) runs in a worker thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any, Literal

from airflow.triggers.base import BaseEventTrigger, TriggerEvent
from insync.core import AssetKey, ConfigError, EventStore

from ._keys import key_from_asset_name, store_url
from ._observation import Observation, callable_path, load_observe, observe_once

__all__ = ["InsyncObservationTrigger"]

FireOn = Literal["new", "unconsumed"]


def _on_event_loop() -> bool:
    """Whether this thread is running an event loop (the triggerer's, when it rebuilds us)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


class InsyncObservationTrigger(BaseEventTrigger):
    """Poll an observe function; fire when the source's data version changes.

    :param key: the source's insync asset key (``"raw/numbers"``).
    :param observe: an importable function (or ``"package.module.function"``) returning a data
        version, e.g. ``insync.adapters.airflow.observe.observe_file``.
    :param observe_kwargs: JSON-serializable keyword arguments for ``observe``.
    :param fire_on: ``"new"`` (default): each newly recorded observation fires an event, the
        trigger keeps running. ``"unconsumed"``: fire once when a consumer has not read it.
    :param consumers: asset keys compared in ``"unconsumed"`` mode (default: every registered
        asset depending on ``key``).
    :param poll_interval: seconds between observations.
    :param store: an ``EventStore`` or a store URL (default resolution otherwise); the trigger
        keeps the URL only, since it is serialized for the triggerer.
    :raises ConfigError: malformed key, an observe function that cannot be imported, bad mode.
    """

    def __init__(
        self,
        *,
        key: str | Sequence[str],
        observe: Callable[..., Any] | str,
        observe_kwargs: Mapping[str, Any] | None = None,
        fire_on: FireOn = "new",
        consumers: Sequence[str] | None = None,
        poll_interval: float = 60.0,
        store: EventStore | str | None = None,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # BaseTrigger.__init__ is untyped
        if fire_on not in ("new", "unconsumed"):
            raise ConfigError(f"fire_on={fire_on!r}; use 'new' or 'unconsumed'")
        if poll_interval <= 0:
            raise ConfigError(f"poll_interval={poll_interval!r}; use a positive number of seconds")
        self.key = str(AssetKey.parse(key) if not isinstance(key, str) else key_from_asset_name(key))
        self.observe = callable_path(observe, check_import=not _on_event_loop())
        self.observe_kwargs = dict(observe_kwargs or {})
        self.fire_on: FireOn = fire_on
        self.consumers = None if consumers is None else [str(AssetKey.parse(c)) for c in consumers]
        self.poll_interval = float(poll_interval)
        self.store = store_url(store)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "key": self.key,
                "observe": self.observe,
                "observe_kwargs": self.observe_kwargs,
                "fire_on": self.fire_on,
                "consumers": self.consumers,
                "poll_interval": self.poll_interval,
                "store": self.store,
            },
        )

    def poll(self) -> Observation:
        """One observation, blocking (``run`` calls it in a worker thread).

        :raises ObservationError: the source cannot be read.
        :raises ConfigError: the observe function cannot be imported.
        """
        consumers = None if self.consumers is None else [AssetKey.parse(c) for c in self.consumers]
        with EventStore(self.store) as store:
            return observe_once(
                store,
                AssetKey.parse(self.key),
                load_observe(self.observe),
                self.observe_kwargs,
                consumers=consumers,
                run_id=f"airflow-trigger:{self.key}",
                metadata={"observer": "InsyncObservationTrigger"},
            )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        while True:
            observation = await asyncio.to_thread(self.poll)
            if self.fire_on == "new" and observation.new:
                self.log.info("insync: %s has a new data version %s", self.key, observation.data_version)
                yield TriggerEvent(observation.as_payload())
            elif self.fire_on == "unconsumed" and observation.unconsumed:
                yield TriggerEvent(observation.as_payload())
                return
            await asyncio.sleep(self.poll_interval)
