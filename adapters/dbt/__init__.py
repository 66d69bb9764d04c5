"""insync for dbt: memoized `dbt build` from code versions and data versions.

    from insync.adapters.dbt import DbtProject
    report = DbtProject("path/to/project").build("--select", "marts")

or on the command line: `insync dbt build --select marts`.
"""

import importlib.metadata

# Checked by distribution, not by import: importing dbt takes seconds, and only a build needs it.
try:
    importlib.metadata.version("dbt-core")
except importlib.metadata.PackageNotFoundError as exc:  # pragma: no cover - exercised without dbt installed
    raise ImportError(
        "insync.adapters.dbt needs dbt-core and a dbt adapter: pip install 'insync[dbt]'"
    ) from exc

from ._project import DbtProject
from ._report import BuildReport, NodeOutcome
from ._runner import DbtError

__all__ = ["BuildReport", "DbtError", "DbtProject", "NodeOutcome"]
