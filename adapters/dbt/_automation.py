"""`insync automate`'s dbt launcher: `insync dbt build --select NODE ...` in the project folder.

The owner is the project folder (with its profiles folder and target, when the build that
registered the models named them); the items are the Unsynced models and the ones below them
that the same build would reach. insync's memoized build then runs exactly those that are not
in sync. The build runs to its end before the loop goes on: dbt holds the warehouse meanwhile.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Mapping
from typing import Any

from insync.core import AssetSpec, ConfigError, InsyncError
from insync.core.automation import LaunchRequest, Owner

__all__ = ["DbtLauncher"]

log = logging.getLogger("insync")


class DbtLauncher:
    """Runs memoized dbt builds in a child process."""

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        unknown = sorted(set(options or {}) - {"args"})
        if unknown:
            raise ConfigError(f"unknown key {unknown[0]!r} in [tool.insync.automate.dbt]; known keys: args")
        args = (options or {}).get("args", [])
        if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
            raise ConfigError(
                'args in [tool.insync.automate.dbt] must be a list of strings, like ["--target", "prod"]'
            )
        self.args = list(args)

    def owner_of(self, spec: AssetSpec) -> Owner | None:
        return None  # recorded at registration by DbtProject

    def command(self, request: LaunchRequest) -> list[str]:
        options = dict(request.owner.options)
        argv = [sys.executable, "-m", "insync.adapters.dbt", "build", "--project-dir", request.owner.target]
        if options.get("profiles_dir"):
            argv += ["--profiles-dir", options["profiles_dir"]]
        if options.get("dbt_target"):
            argv += ["--target", options["dbt_target"]]
        if request.items:
            argv += ["--select", *request.items]
        return [*argv, *self.args]

    def launch(self, request: LaunchRequest) -> str:
        """Run the build; return "exit N". A failed build keeps its claim (it ran).

        :raises InsyncError: the project folder is missing or the build cannot start.
        """
        project = request.owner.target
        if not os.path.isdir(project):
            raise InsyncError(
                f"dbt project folder {project} does not exist; rebuild it once from its new place, or "
                'name it in the policy: owner = "dbt:PROJECT_DIR"'
            )
        env = dict(os.environ)
        if request.store_url:
            env["INSYNC_DATABASE_URL"] = request.store_url
        try:
            done = subprocess.run(self.command(request), cwd=project, env=env, capture_output=True, text=True)
        except OSError as exc:
            raise InsyncError(f"cannot start insync dbt build in {project}: {exc}") from None
        for line in done.stdout.splitlines():
            log.info("dbt: %s", line)
        if done.returncode != 0:
            log.warning("dbt build in %s failed (exit %d): %s", project, done.returncode, done.stderr[-500:])
        return f"exit {done.returncode}"
