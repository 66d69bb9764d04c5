"""`insync airflow plan DAG_ID`: which versioned tasks would run, and why, before any run.

Plugged into `insync` through the `insync.cli` entry-point group. It parses the DAG file(s)
like a worker (a DagBag on `--dags-folder`, else `$AIRFLOW__CORE__DAGS_FOLDER`, else Airflow's
configured folder), computes each versioned task's spec (auto code versions and their unseen
reads included) and compares it with the store, read only: nothing is registered or recorded.
So a code bump shows before the task runs, not after.

Decisions: `run` (it will run: never materialized, new code version, new or removed
dependency, an unsynced input, an unseen read, no code version), `skip` (in sync),
`depends` (decided by the run: its partition or per-run parameters such as `ds`, the value of
an unversioned task, or an upstream task that runs first and may change its data version),
`observe` (an observation sensor) and `unversioned`.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import click
from insync.core import (
    AssetSpec,
    DynamicPartitions,
    EventStore,
    StaleStatus,
    UnknownAssetError,
)
from insync.core.cli import InsyncGroup

from ._inputs import CONTEXT_OBJECTS, CONTEXT_VALUES, raw_arguments
from ._keys import VersionSettings, asset_key_for, is_mapped, settings_of
from ._protocol import code_version_and_unseen, spec_for

__all__ = ["TaskPlan", "airflow_group", "plan_dag"]


@dataclass(frozen=True, slots=True)
class TaskPlan:
    """What one task of a DAG would do in its next run."""

    task_id: str
    asset: str | None  # None: the task is not versioned
    decision: str  # "run" | "skip" | "depends" | "observe" | "unversioned"
    reason: str
    code_version: str | None = None


def _callable_of(task: Any) -> Any:
    fn = getattr(task, "python_callable", None)
    if fn is None and is_mapped(task):
        fn = (getattr(task, "partial_kwargs", None) or {}).get("python_callable")
    return fn


def _per_run_inputs(task: Any, settings: VersionSettings) -> list[str]:
    """Inputs whose values only a run knows: context values named in the signature, templated
    fields holding Jinja, expanded values, the run's partition."""
    import inspect

    found: list[str] = []
    fn = _callable_of(task)
    if fn is not None:
        try:
            names = list(inspect.signature(fn).parameters)
        except (TypeError, ValueError):
            names = []
        found += [n for n in names if n in CONTEXT_VALUES]
    fields = getattr(task, "template_fields", ()) or ()
    values = getattr(task, "partial_kwargs", None) if is_mapped(task) else None
    for name in fields:
        value = values.get(name) if values is not None else getattr(task, name, None)
        if "{{" in repr(value) or "{%" in repr(value):
            found.append(f"{name} (templated)")
    if is_mapped(task):
        found.append("the expanded values")
    if settings.partitions is not None:
        found.append("the run's partition")
    return found


def plan_dag(dag: Any, store: EventStore) -> list[TaskPlan]:
    """The plan of every task of ``dag``, upstream first (read-only on the store).

    :raises InvalidCodeVersion: ``"auto"`` on a callable whose source cannot be read.
    """
    plans: dict[str, TaskPlan] = {}
    for task in dag.topological_sort():
        settings = settings_of(task)
        if settings is None:
            plans[task.task_id] = TaskPlan(task.task_id, None, "unversioned", "not versioned by insync")
            continue
        if settings.kind == "observable":
            key = asset_key_for(task, settings)
            reason = "observes its source; what reads it decides on the version it records"
            plans[task.task_id] = TaskPlan(task.task_id, str(key), "observe", reason)
            continue
        version, unseen = code_version_and_unseen(settings, task, _callable_of(task))
        if not is_mapped(task):
            for name in _signature_objects(task):
                unseen = (*unseen, f"{name} (in the signature)")
        key = asset_key_for(task, settings)
        partitions = DynamicPartitions(str(key)) if is_mapped(task) else settings.partitions
        spec = spec_for(task, settings, code_version=version, partitions=partitions)
        decision, reason = _decide(store, spec, unseen)
        if decision == "skip":
            running = [
                up
                for up in sorted(task.upstream_task_ids)
                if up in plans and plans[up].decision in ("run", "depends", "observe")
            ]
            loose = _unversioned_inputs(task)
            per_run = _per_run_inputs(task, settings)
            if running:
                decision, reason = "depends", f"upstream {', '.join(running)} runs first"
            elif loose:
                decision, reason = "depends", f"reads the value of unversioned {', '.join(loose)}"
            elif per_run:
                decision, reason = "depends", f"in sync for the recorded values of {', '.join(per_run)}"
        plans[task.task_id] = TaskPlan(task.task_id, str(spec.key), decision, reason, version)
    return list(plans.values())


def _unversioned_inputs(task: Any) -> list[str]:
    """Upstream tasks insync does not version whose return value this task receives."""
    from airflow.sdk.definitions.xcom_arg import PlainXComArg

    fn = _callable_of(task)
    if fn is None:
        return []
    raw = raw_arguments(task, fn)
    return sorted(
        {
            v.operator.task_id
            for v in raw.values()
            if isinstance(v, PlainXComArg) and settings_of(v.operator) is None
        }
    )


def _signature_objects(task: Any) -> list[str]:
    import inspect

    fn = _callable_of(task)
    if fn is None:
        return []
    try:
        return [n for n in inspect.signature(fn).parameters if n in CONTEXT_OBJECTS]
    except (TypeError, ValueError):
        return []


def _decide(store: EventStore, spec: AssetSpec, unseen: Sequence[str]) -> tuple[str, str]:
    if spec.code_version is None:
        return "run", "no code version, so it always runs"
    if unseen:
        return "run", f"reads inputs insync cannot see: {', '.join(sorted(set(unseen)))}"
    try:
        latest = store.latest_event(spec.key, "materialization")
    except UnknownAssetError:
        latest = None
    if latest is None:
        return "run", "never materialized"
    if latest.code_version != spec.code_version:
        return "run", f"has a new code version ({latest.code_version} -> {spec.code_version})"
    recorded = {i.key for i in latest.inputs}
    added = sorted(set(spec.deps) - recorded)
    removed = sorted(recorded - set(spec.deps))
    if added:
        return "run", f"has a new dependency on {', '.join(map(str, added))}"
    if removed:
        return "run", f"removed dependency on {', '.join(map(str, removed))}"
    status = store.status(spec.key)
    if status.partitions is not None:
        counts = status.partitions
        if counts.unsynced:
            return "depends", f"partitions {counts}; the run's partition decides"
        return "skip", f"Synced ({counts})"
    if status.status is StaleStatus.STALE:
        return "run", "; ".join(str(c) for c in status.root_causes) or "Unsynced"
    return "skip", "Synced"


@click.group("airflow", cls=InsyncGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--database-url",
    envvar="INSYNC_DATABASE_URL",
    default=None,
    help="SQLAlchemy URL of the store (default: $INSYNC_HOME or ./.insync).",
)
@click.pass_context
def airflow_group(ctx: click.Context, database_url: str | None) -> None:
    """Airflow 3: see what versioned tasks would do before running a DAG."""
    parent = ctx.obj if isinstance(ctx.obj, dict) else {}
    ctx.obj = {**parent, "database_url": database_url or parent.get("database_url")}


@airflow_group.command()
@click.argument("dag_id")
@click.option(
    "--dags-folder",
    type=click.Path(exists=True),
    default=None,
    help="DAG file or folder (default: $AIRFLOW__CORE__DAGS_FOLDER, else Airflow's).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of the table.")
@click.pass_context
def plan(ctx: click.Context, dag_id: str, dags_folder: str | None, as_json: bool) -> None:
    """Which versioned tasks of DAG_ID would run, and why (reads the store, writes nothing)."""
    from airflow.dag_processing.dagbag import DagBag

    folder = dags_folder or os.environ.get("AIRFLOW__CORE__DAGS_FOLDER")
    if folder is None:
        from airflow.configuration import conf

        folder = conf.get("core", "dags_folder")
    # Airflow logs while it parses; keep stdout for the plan (so `--json` stays parseable).
    with contextlib.redirect_stdout(sys.stderr):
        bag = DagBag(dag_folder=folder)
    if bag.import_errors:
        lines = "\n".join(
            f"  {path}: {error.strip().splitlines()[-1]}" for path, error in bag.import_errors.items()
        )
        raise click.ClickException(f"the DAG files do not import:\n{lines}")
    dag = bag.get_dag(dag_id)
    if dag is None:
        known = ", ".join(sorted(bag.dag_ids)) or "none"
        raise click.ClickException(f"no DAG {dag_id!r} in {folder}; its DAGs: {known}")
    with contextlib.redirect_stdout(sys.stderr), EventStore(ctx.obj.get("database_url")) as store:
        plans = plan_dag(dag, store)
    if as_json:
        click.echo(json.dumps([asdict(p) for p in plans], indent=2))
        return
    versioned = [p for p in plans if p.asset is not None]
    click.echo(f"plan for DAG {dag_id}: {len(versioned)} versioned task(s) of {len(plans)}")
    width_task = max([len("task"), *(len(p.task_id) for p in plans)])
    width_asset = max([len("asset"), *(len(p.asset or "-") for p in plans)])
    click.echo(f"  {'task':<{width_task}}  {'asset':<{width_asset}}  {'decision':<11}  why")
    for p in plans:
        asset = p.asset or "-"
        click.echo(f"  {p.task_id:<{width_task}}  {asset:<{width_asset}}  {p.decision:<11}  {p.reason}")
