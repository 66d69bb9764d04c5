"""`insync automate`'s Prefect launcher: `run_deployment` of the deployment that owns the assets.

The owner is `flow/deployment`, recorded when a versioned task runs inside that deployment (or
named in a policy: `owner = "prefect:build-reports/reports"`). The run does not wait: the flow's
versioned tasks check themselves, and the ones in sync end `Cached`. The launch's idempotency
key is Prefect's too, so a repeated launch of one claim starts one flow run.

A partitioned versioned task computes the partition its `partition=` argument names, which the
flow passes from its own parameters or code: nothing a launch can aim at one partition. So a
launch with partitions starts no run at all (rather than one rebuilding other partitions).

Options (`[tool.insync.automate.prefect]`): `parameters` (a table passed to every run) and
`select_parameter` (the name of a flow parameter that receives the list of asset keys).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from insync.core import AssetSpec, ConfigError, InsyncError
from insync.core.automation import LaunchRequest, Owner

__all__ = ["PrefectLauncher"]


class PrefectLauncher:
    """Starts flow runs of Prefect deployments (on $PREFECT_API_URL)."""

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        options = dict(options or {})
        unknown = sorted(set(options) - {"parameters", "select_parameter"})
        if unknown:
            raise ConfigError(
                f"unknown key {unknown[0]!r} in [tool.insync.automate.prefect]; known keys: parameters, "
                "select_parameter"
            )
        parameters = options.get("parameters", {})
        if not isinstance(parameters, Mapping):
            raise ConfigError(
                f"parameters in [tool.insync.automate.prefect] must be a table, not {parameters!r}"
            )
        self.parameters = dict(parameters)
        self.select_parameter = options.get("select_parameter")

    def owner_of(self, spec: AssetSpec) -> Owner | None:
        return None  # recorded at registration when a task runs in a deployment

    def launch(self, request: LaunchRequest) -> str:
        """Start one flow run of the deployment; return its id.

        :raises InsyncError: Prefect cannot be reached or has no such deployment; the request
            has partitions.
        """
        if request.partitions:
            key, partitions = next(iter(request.partitions.items()))
            shown = ", ".join(partitions[:3]) + (f" +{len(partitions) - 3}" if len(partitions) > 3 else "")
            raise InsyncError(
                f"{key}[{shown}]: a Prefect flow run computes the partitions its flow passes to the "
                "task's partition= argument, which insync cannot set, so it starts no run rather than "
                f"one of other partitions; run deployment {request.owner.target} for them yourself"
            )
        from prefect.deployments import run_deployment
        from prefect.exceptions import ObjectNotFound

        parameters = dict(self.parameters)
        if self.select_parameter:
            parameters[str(self.select_parameter)] = [str(k) for k in request.keys]
        try:
            flow_run = run_deployment(
                name=request.owner.target,
                parameters=parameters or None,
                timeout=0,  # start it and return: the loop goes on while the flow runs
                idempotency_key=request.idempotency_key,
                as_subflow=False,
            )
        except ObjectNotFound:
            raise InsyncError(
                f"Prefect has no deployment {request.owner.target!r}; serve or deploy it, or name the "
                'right one in the policy: owner = "prefect:FLOW/DEPLOYMENT"'
            ) from None
        except (OSError, RuntimeError) as exc:
            raise InsyncError(f"cannot start Prefect deployment {request.owner.target}: {exc}") from None
        return str(flow_run.id)  # type: ignore[union-attr]  # sync call: a FlowRun, not a coroutine
