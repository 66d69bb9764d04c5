"""Source observation as a Prefect flow, and the event/trigger that chain deployments on it."""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

from insync.core import (
    AssetKey,
    AssetSpec,
    ConfigError,
    DataVersion,
    EventStore,
    ObservationError,
)
from prefect import Flow, Task
from prefect.cache_policies import NO_CACHE
from prefect.context import FlowRunContext
from prefect.events import DeploymentEventTrigger, emit_event

from ._runtime import FRAMEWORK, open_store

if TYPE_CHECKING:
    from prefect.deployments.runner import RunnerDeployment

SOURCE_CHANGED_EVENT: Final = "insync.source.changed"
_RESOURCE_PREFIX: Final = "insync.asset."

Observe = Callable[[], DataVersion | str]


class _ObservationFlow(Flow[[], dict[str, str]]):
    """A flow built by `observation_flow`, deployable from the module that assigned it.

    Prefect deploys a flow as `file:function`, to import and run elsewhere; this flow's function
    lives inside insync, so the entrypoint is pointed at the user's module and the module-level
    name the flow is bound to there.
    """

    def _point_entrypoint_at_owner(self) -> None:
        owner = sys.modules.get(self.__module__)
        for name, value in vars(owner).items() if owner is not None else ():
            if value is self:
                self.fn.__qualname__ = name
                return
        raise ConfigError(
            f"observation flow {self.name!r} must be assigned to a module-level variable to "
            f"be deployed, e.g. `observe = observation_flow(...)` at the top of the file"
        )

    def to_deployment(self, *args: Any, **kwargs: Any) -> Any:
        self._point_entrypoint_at_owner()
        return super().to_deployment(*args, **kwargs)

    async def ato_deployment(self, *args: Any, **kwargs: Any) -> RunnerDeployment:
        self._point_entrypoint_at_owner()
        return await super().ato_deployment(*args, **kwargs)


def _resource_id(key: AssetKey) -> str:
    return f"{_RESOURCE_PREFIX}{key}"


def _observe_once(key: AssetKey, observe: Observe, store: str | EventStore | None) -> str:
    """Observe one source; when its version moved, record it and emit the change event.

    :raises ObservationError: the observe function failed (nothing is recorded).
    :raises ConfigError: the observe function returned something other than a version.
    """
    try:
        raw = observe()
    except ObservationError:
        raise
    except Exception as exc:
        raise ObservationError(f"observing source {key} failed: {exc!r}") from exc
    if not isinstance(raw, (str, DataVersion)):
        raise ConfigError(
            f"observe function for {key} returned {type(raw).__name__} {raw!r}; return a string "
            f"or insync.core.DataVersion (e.g. insync.core.observe_file(path))"
        )
    new = raw if isinstance(raw, DataVersion) else DataVersion(raw)
    ctx = FlowRunContext.get()
    run_id = str(ctx.flow_run.id) if ctx is not None and ctx.flow_run is not None else None
    # The core's rule: only a changed version is recorded.
    result = open_store(store).observe({key: new}, consumers={}, run_id=run_id, framework=FRAMEWORK)
    if result.recorded:
        emit_event(
            event=SOURCE_CHANGED_EVENT,
            resource={
                "prefect.resource.id": _resource_id(key),
                "prefect.resource.name": str(key),
                "insync.asset.key": str(key),
            },
            payload={
                "asset_key": str(key),
                "old_data_version": str(result.previous[(key, None)]),
                "new_data_version": str(new),
                "insync_event_id": result.recorded[0].id,
            },
        )
    return str(new)


def observation_flow(
    sources: Mapping[str | Sequence[str] | AssetKey, Observe],
    *,
    name: str = "insync-observe-sources",
    store: str | EventStore | None = None,
    retries: int = 0,
) -> Flow[[], dict[str, str]]:
    """A Prefect flow observing `sources`, ready to serve or deploy on a schedule.

    Each source is observed in its own task run: when the data version differs from the
    source's current one, the observation is recorded in the insync store and the event
    `insync.source.changed` is emitted (resource `insync.asset.<key>`, payload `asset_key`,
    `old_data_version`, `new_data_version`), so a deployment trigger
    (`source_changed_trigger`) can start the downstream flow. One failing source does not stop
    the others; the flow run fails at the end naming every failed source. It returns
    `{asset key: data version}` for the sources observed.

    Example (assign it at module level so deployments can import it)::

        observe = observation_flow({"raw/orders": lambda: observe_file("data/orders.csv")})
        observe.serve(name="observe-orders", interval=60)

    :raises InvalidAssetKey: a key is not a valid asset key.
    :raises ConfigError: `sources` is empty or an observe function is not callable.
    """
    if not isinstance(sources, Mapping) or not sources:
        raise ConfigError(
            "observation_flow needs a non-empty mapping {asset key: observe function}, e.g. "
            "{'raw/orders': lambda: insync.core.observe_file('orders.csv')}"
        )
    parsed: dict[AssetKey, Observe] = {}
    for raw_key, observe in sources.items():
        key = AssetKey.parse(raw_key)
        if not callable(observe):
            raise ConfigError(
                f"observe function for {key} is {type(observe).__name__}, not callable; pass a "
                f"function returning a data version"
            )
        parsed[key] = observe
    specs = [AssetSpec(key, kind="observable", framework=FRAMEWORK) for key in parsed]
    observe_tasks = {
        key: Task(
            _observe_once,
            name=f"observe {key}",
            cache_policy=NO_CACHE,
            persist_result=False,
            retries=retries,
        )
        for key in parsed
    }

    def observe_sources() -> dict[str, str]:
        open_store(store).register(specs)
        states = {key: observe_tasks[key](key, parsed[key], store, return_state=True) for key in parsed}
        failed = {key: state for key, state in states.items() if not state.is_completed()}
        if failed:
            reasons = "; ".join(f"{key}: {state.message}" for key, state in failed.items())
            raise ObservationError(f"{len(failed)} source(s) could not be observed: {reasons}")
        return {str(key): state.result() for key, state in states.items()}

    observer = _ObservationFlow(observe_sources, name=name, persist_result=False)
    # Deployments import the flow from the module that called us (see _ObservationFlow).
    observer.__module__ = sys._getframe(1).f_globals.get("__name__", observer.__module__)
    return observer


def source_changed_trigger(*keys: str | Sequence[str] | AssetKey, **options: Any) -> DeploymentEventTrigger:
    """A deployment trigger firing when any of the sources `keys` gets a new data version.

    Pass it to `flow.serve(triggers=[...])` / `flow.deploy(triggers=[...])` of the downstream
    flow; extra `options` go to `DeploymentEventTrigger` (e.g. `within`, `parameters`).

    :raises ConfigError: no key given.
    :raises InvalidAssetKey: a key is not a valid asset key.
    """
    if not keys:
        raise ConfigError("source_changed_trigger needs at least one source asset key")
    resource_ids = [_resource_id(AssetKey.parse(key)) for key in keys]
    return DeploymentEventTrigger(
        expect={SOURCE_CHANGED_EVENT},
        match={"prefect.resource.id": resource_ids},
        **options,
    )
