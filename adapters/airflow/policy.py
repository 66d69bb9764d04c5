"""Cluster policy: version every task whose outlet (or inlet) Assets carry insync settings.

Opt in per Asset, no change to the tasks themselves::

    Asset("analytics/orders", extra={"insync": {"code_version": "v2"}})   # on an outlet
    Asset("raw/orders", extra={"insync": True})                            # outlet or inlet

An outlet's ``insync`` dict may hold ``key``, ``code_version`` (default ``"auto"``), ``deps``,
``force``, ``store`` and ``cache``. A task with no marked outlet but a marked inlet is
versioned with defaults. Install it with one line in ``airflow_local_settings.py``::

    from insync.adapters.airflow.policy import task_policy  # noqa: F401

or register this module under the ``airflow.policy`` entry point. It only wraps tasks at parse
time (no store access); tasks already wrapped by ``versioned``/``versioned_operator`` are left
as they are. A malformed setting raises ``AirflowClusterPolicyViolation`` naming the task, so
the DAG shows an import error instead of running unversioned.
"""

from __future__ import annotations

from typing import Any

from airflow.policies import hookimpl

__all__ = ["task_policy"]

_ALLOWED = frozenset({"key", "code_version", "deps", "force", "store", "cache"})


@hookimpl
def task_policy(task: Any) -> None:
    """Wrap ``task`` with insync if its Assets ask for it (see the module docstring)."""
    outlets = list(getattr(task, "outlets", None) or ())
    inlets = list(getattr(task, "inlets", None) or ())
    if not any(_marked(a) for a in outlets + inlets):
        return  # the common case stays import-free and fast
    _apply(task, outlets, inlets)


def _marked(asset: Any) -> bool:
    extra = getattr(asset, "extra", None)
    return isinstance(extra, dict) and extra.get("insync") not in (None, False)


def _apply(task: Any, outlets: list[Any], inlets: list[Any]) -> None:
    from airflow.exceptions import AirflowClusterPolicyViolation
    from insync.core import InsyncError

    from ._keys import VersionSettings, insync_extra, settings_of
    from ._task import wrap_operator

    if settings_of(task) is not None:
        return
    try:
        marked = [a for a in outlets if _marked(a)]
        options = dict(insync_extra(marked[0]) or {}) if marked else {}
        unknown = sorted(set(options) - _ALLOWED)
        if unknown:
            raise AirflowClusterPolicyViolation(
                f"task {task.task_id!r}: unknown insync setting(s) {unknown} in the Asset extra; "
                f"use {sorted(_ALLOWED)}"
            )
        deps = options.get("deps")
        settings = VersionSettings(
            key=options.get("key"),
            code_version=options.get("code_version", "auto"),
            deps=None if deps is None else tuple([deps] if isinstance(deps, str) else deps),
            force=bool(options.get("force", False)),
            store=options.get("store"),
            cache=options.get("cache"),
        )
        wrap_operator(task, settings)
    except InsyncError as exc:
        raise AirflowClusterPolicyViolation(f"task {task.task_id!r}: {exc}") from exc
