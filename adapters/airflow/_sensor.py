"""``InsyncObservationSensor``: observe a source, record it, wait until consumers are behind.

Works in ``mode="poke"``, ``mode="reschedule"`` and ``deferrable=True`` (the triggerer polls with
``InsyncObservationTrigger`` and no worker slot is held).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator, PokeReturnValue
from insync.core import AssetKey, EventStore

from ._keys import VersionSettings, asset_key_for, deps_for, opened_store, settings_of
from ._observation import Observation, callable_path, load_observe, observe_once
from ._protocol import XCOM_MARKER_KEY, run_id_of
from ._trigger import InsyncObservationTrigger

if TYPE_CHECKING:
    from airflow.sdk import Context

__all__ = ["InsyncObservationSensor"]


class InsyncObservationSensor(BaseSensorOperator):
    """Run ``observe(**observe_kwargs)``, record the source's data version, and succeed when it
    differs from what the downstream assets last consumed (or nothing consumed it yet)::

        watch = InsyncObservationSensor(
            task_id="watch_numbers",
            outlets=[Asset("raw/numbers")],          # or key="raw/numbers"
            observe=observe_file,
            observe_kwargs={"path": "/data/numbers.txt"},
            poke_interval=60, mode="reschedule",     # or deferrable=True
        )

    The source key is ``key=``, else the outlet Asset, else ``dag_id/task_id``. Versioned tasks
    downstream of the sensor depend on that key automatically. ``consumers`` (asset keys)
    defaults to the versioned tasks directly downstream in this DAG that read the source, else
    to every registered asset depending on it. The XCom return value is ``{"key", "data_version", "new",
    "pending"}``. With ``wait_for_change=False`` it observes, records and succeeds at once (an
    observation step: the versioned tasks downstream then decide for themselves).

    :raises ConfigError: malformed key; with ``deferrable=True`` an observe function that is
        not importable by the triggerer.
    :raises ObservationError: the source cannot be read (the poke fails; nothing recorded).
    """

    template_fields: Sequence[str] = ("observe_kwargs",)
    ui_color = "#c7e9c0"

    def __init__(
        self,
        *,
        observe: Callable[..., Any] | str,
        observe_kwargs: Mapping[str, Any] | None = None,
        key: str | Sequence[str] | None = None,
        consumers: Sequence[str] | None = None,
        store: EventStore | str | None = None,
        deferrable: bool = False,
        wait_for_change: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.observe = callable_path(observe) if deferrable else observe
        self.observe_kwargs = dict(observe_kwargs or {})
        self.consumers = None if consumers is None else [str(AssetKey.parse(c)) for c in consumers]
        self.deferrable = deferrable
        self.wait_for_change = wait_for_change
        self._insync_settings = VersionSettings(key=key, code_version=None, store=store, kind="observable")

    def _key(self) -> AssetKey:
        return asset_key_for(self, self._insync_settings)

    def _consumer_keys(self) -> list[AssetKey] | None:
        if self.consumers is not None:
            return [AssetKey.parse(c) for c in self.consumers]
        source = self._key()
        keys = []
        dag = getattr(self, "dag", None)
        for task_id in sorted(self.downstream_task_ids):
            task = dag.task_dict.get(task_id) if dag is not None else None
            settings = settings_of(task) if task is not None else None
            # Only versioned tasks that read this source (explicit deps= may leave it out).
            if settings is not None and source in deps_for(task, settings):
                keys.append(asset_key_for(task, settings))
        return keys or None

    def _finish(self, context: Context, payload: dict[str, Any]) -> dict[str, Any]:
        from airflow.sdk import Asset

        if not payload["new"]:
            # Same rule as for versioned tasks: an Airflow asset event only when insync recorded
            # something new, so DAGs scheduled on the source do not run for an unchanged one.
            context["task"].outlets = []
        for outlet in context["task"].outlets or ():
            if isinstance(outlet, Asset):
                context["outlet_events"][outlet].extra.update(
                    {"insync_key": payload["key"], "data_version": payload["data_version"]}
                )
        context["ti"].xcom_push(key=XCOM_MARKER_KEY, value={"decision": "observed", **payload})
        return payload

    def observe_now(self, context: Context) -> Observation:
        """Observe once and record the observation if it is new.

        :raises ObservationError: the source cannot be read.
        """
        with opened_store(self._insync_settings.store) as store:
            observation = observe_once(
                store,
                self._key(),
                load_observe(self.observe),
                self.observe_kwargs,
                consumers=self._consumer_keys(),
                run_id=run_id_of(context),
                metadata={"dag_id": self.dag_id, "task_id": self.task_id},
            )
        self.log.info(
            "insync: %s is at %s (%s); %s",
            observation.key,
            observation.data_version,
            "new observation" if observation.new else "unchanged",
            "consumers are behind: " + ", ".join(map(str, observation.pending))
            if observation.unconsumed
            else "every consumer has read it",
        )
        return observation

    def poke(self, context: Context) -> PokeReturnValue:
        observation = self.observe_now(context)
        if observation.unconsumed or not self.wait_for_change:
            return PokeReturnValue(True, self._finish(context, observation.as_payload()))
        return PokeReturnValue(False)

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            return super().execute(context)
        observation = self.observe_now(context)
        if observation.unconsumed or not self.wait_for_change:
            return self._finish(context, observation.as_payload())
        consumers = self._consumer_keys()
        self.defer(
            trigger=InsyncObservationTrigger(
                key=str(observation.key),
                observe=self.observe,
                observe_kwargs=self.observe_kwargs,
                fire_on="unconsumed",
                consumers=None if consumers is None else [str(k) for k in consumers],
                poll_interval=self.poke_interval,
                store=self._insync_settings.store,
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout) if self.timeout else None,
        )

    def execute_complete(self, context: Context, event: dict[str, Any]) -> Any:
        """Resume after the trigger fired (it already recorded the observation)."""
        return self._finish(context, event)
