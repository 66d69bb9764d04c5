"""insync for dbt: memoized `dbt build` from code versions and data versions.

    from insync.adapters.dbt import DbtProject
    report = DbtProject("path/to/project").build("--select", "marts")

or on the command line: `insync dbt build --select marts`.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

# Checked by distribution, not by import: importing dbt takes seconds, and only a build needs it.
try:
    version("dbt-core")
except PackageNotFoundError as exc:  # pragma: no cover - exercised without dbt installed
    raise ImportError(
        "insync.adapters.dbt needs dbt-core and a dbt adapter: pip install 'insync[dbt]'"
    ) from exc

from ._project import DbtProject
from ._report import BuildReport, NodeOutcome
from ._runner import DbtError

__all__ = ["BuildReport", "DbtError", "DbtProject", "NodeOutcome"]
