"""OpenLineage for versioned Prefect tasks: Prefect emits none, so insync sends its own events.

One START/COMPLETE pair per task run, under the task run's id: a skip when the cache policy
decides the task is in sync (the run ends Cached), a run once its materialization is recorded.
A task decided "run" whose function (or the writing and recording of its value) raised sends
START/FAIL instead, with the exception as the `errorMessage` facet; each retry is another such
pair under the same id. A task that failed before insync decided (a store outage) sends nothing.
Nothing happens (and openlineage is not imported) unless OpenLineage is configured.
"""

from __future__ import annotations

from typing import Any

import pendulum
from insync.core import Event, Step
from insync.core._lineage import emit_step, lineage_enabled, step_lineage
from prefect.context import FlowRunContext, TaskRunContext

__all__ = ["emit_task_lineage"]


def emit_task_lineage(
    step: Step,
    event: Event | None = None,
    task_ctx: TaskRunContext | None = None,
    *,
    failed: BaseException | None = None,
) -> None:
    """Emit the decision of `step` (and the materialization `event` it recorded, if it ran);
    `failed`: the exception the run raised instead."""
    if not lineage_enabled() or step.decision is None:
        return
    ctx = task_ctx or TaskRunContext.get()
    if ctx is None:
        return
    flow_ctx = FlowRunContext.get()
    flow = flow_ctx.flow if flow_ctx is not None else None
    job = ctx.task.name if flow is None else f"{flow.name}.{ctx.task.name}"
    start: Any = ctx.task_run.start_time
    emit_step(
        step_lineage(step.decision, event),
        job_name=job,
        run_id=str(ctx.task_run.id),
        started=pendulum.instance(start) if start is not None else None,
        failed=failed,
    )
