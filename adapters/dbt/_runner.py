"""Calls into dbt through its programmatic entry point, `dbtRunner`.

Parse, compile, list and query runs are silent (`--log-level none`); the build itself logs as
dbt always does, because it is the user's build.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from insync.core import ConfigError, InsyncError

if TYPE_CHECKING:
    from dbt.artifacts.schemas.run import RunExecutionResult
    from dbt.contracts.graph.manifest import Manifest

__all__ = ["DbtArgs", "DbtError", "DbtInvoker", "release_warehouse", "split_args"]

log = logging.getLogger("insync.adapters.dbt")

# Options taking one or more values that choose nodes: insync resolves them itself.
SELECTION_OPTIONS: Final = {
    "-s": "--select", "--select": "--select", "-m": "--select", "--models": "--select",
    "--model": "--select", "--exclude": "--exclude", "--selector": "--selector",
    "--resource-type": "--resource-type", "--resource-types": "--resource-type",
    "--exclude-resource-type": "--exclude-resource-type",
    "--exclude-resource-types": "--exclude-resource-type",
}
# Options (with one value) that shape the project itself: every dbt call gets them.
PROJECT_OPTIONS: Final = frozenset({
    "--project-dir", "--profiles-dir", "--target", "-t", "--profile", "--vars",
    "--target-path",
})
MULTI_VALUE: Final = frozenset({"--select", "--exclude", "--resource-type",
                                "--exclude-resource-type"})
# The batches of microbatch models: insync chooses them per call, within the user's range.
EVENT_TIME_OPTIONS: Final = frozenset({"--event-time-start", "--event-time-end"})


class DbtError(InsyncError):
    """dbt itself failed (could not parse, compile or query); the message carries dbt's error."""


@dataclass(frozen=True)
class DbtArgs:
    """A user's dbt command line, split by who needs which part."""

    project: tuple[str, ...] = ()  # for every dbt call
    selection: tuple[str, ...] = ()  # resolved once with `dbt ls`
    build: tuple[str, ...] = ()  # passed to the build/run call only
    full_refresh: bool = False
    event_time: tuple[str | None, str | None] = (None, None)  # the user's batch range

    @property
    def project_dir(self) -> str:
        return _value_of(self.project, "--project-dir") or os.environ.get(
            "DBT_PROJECT_DIR", os.getcwd()
        )

    @property
    def profiles_file(self) -> str:
        """The profiles.yml dbt reads, as dbt looks for it."""
        folder = _value_of(self.project, "--profiles-dir") or os.environ.get("DBT_PROFILES_DIR")
        if not folder:
            local = os.path.join(os.path.abspath(self.project_dir), "profiles.yml")
            folder = os.path.dirname(local) if os.path.isfile(local) else os.path.join(
                os.path.expanduser("~"), ".dbt")
        return os.path.join(os.path.abspath(folder), "profiles.yml")

    @property
    def target_dir(self) -> str:
        """dbt's target path (where partial_parse.msgpack lives), absolute."""
        target = _value_of(self.project, "--target-path") or os.environ.get(
            "DBT_TARGET_PATH", "target")
        return os.path.join(os.path.abspath(self.project_dir), target)


def _value_of(args: Sequence[str], name: str) -> str | None:
    value = None
    for i, arg in enumerate(args):
        if arg == name and i + 1 < len(args):
            value = args[i + 1]
        elif arg.startswith(name + "="):
            value = arg.split("=", 1)[1]
    return value


def split_args(args: Sequence[str]) -> DbtArgs:
    """Split `insync dbt build ARGS` into project, selection and build-only arguments.

    :raises ConfigError: an option that needs a value has none.
    """
    project: list[str] = []
    selection: list[str] = []
    build: list[str] = []
    event_time: dict[str, str] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        name, eq, inline = arg.partition("=")
        if name in EVENT_TIME_OPTIONS:
            if not eq and i + 1 >= len(args):
                raise ConfigError(f"dbt option {name} needs a value, e.g. {name} 2026-12-01")
            event_time[name] = inline if eq else args[i + 1]
            i += 1 if eq else 2
            continue
        if name in SELECTION_OPTIONS:
            canonical = SELECTION_OPTIONS[name]
            values = [inline] if eq else []
            i += 1
            while i < len(args) and not args[i].startswith("-") and (
                canonical in MULTI_VALUE or not values
            ):
                values.append(args[i])
                i += 1
            if not values:
                raise ConfigError(f"dbt option {name} needs a value, e.g. {name} my_model")
            selection.extend([canonical, *values])
            continue
        if name in PROJECT_OPTIONS:
            if eq:
                project.extend([name, inline])
                i += 1
                continue
            if i + 1 >= len(args):
                raise ConfigError(f"dbt option {name} needs a value")
            project.extend([name, args[i + 1]])
            i += 2
            continue
        build.append(arg)
        i += 1
    if "--empty" in build:
        raise ConfigError(
            "--empty builds relations without rows, which insync would record as in sync; "
            "run plain `dbt build --empty` for schema checks"
        )
    return DbtArgs(tuple(project), tuple(selection), tuple(build),
                   full_refresh="--full-refresh" in build or "-f" in build,
                   event_time=(event_time.get("--event-time-start"),
                               event_time.get("--event-time-end")))


@dataclass
class DbtInvoker:
    """One dbt project: parses once, then reuses the manifest for every later call."""

    args: DbtArgs
    manifest: Manifest | None = None
    _show_rows: list[str] = field(default_factory=list)

    def _invoke(self, command: Sequence[str], *, quiet: bool = True,
                callbacks: Sequence[Any] = (), reuse_manifest: bool = True) -> Any:
        from dbt.cli.main import dbtRunner

        os.environ.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
        prefix = ["--log-level", "none"] if quiet else []
        manifest = self.manifest if reuse_manifest else None
        runner = dbtRunner(manifest=manifest, callbacks=list(callbacks))
        try:
            return runner.invoke([*prefix, *command, *self.args.project])
        finally:
            _close_log_files()

    def check_project(self) -> str:
        """The project directory, absolute, once it holds a dbt_project.yml.

        :raises ConfigError: the directory does not exist or is no dbt project.
        """
        project_dir = os.path.abspath(self.args.project_dir)
        if not os.path.isdir(project_dir):
            raise ConfigError(f"dbt project directory {project_dir} does not exist; "
                              "pass --project-dir with your dbt project's directory")
        if not os.path.isfile(os.path.join(project_dir, "dbt_project.yml")):
            raise ConfigError(f"no dbt_project.yml in {project_dir}; run from your dbt project "
                              "or pass --project-dir")
        return project_dir

    def parse(self) -> Manifest:
        """Parse the project (partial parsing makes repeats fast).

        :raises ConfigError: no dbt project there (see `check_project`), or no such profile.
        :raises DbtError: dbt could not parse the project.
        """
        # No manifest.json: nothing reads it, and writing it is most of a no-change parse.
        # partial_parse.msgpack is written all the same.
        project_dir = self.check_project()
        result = self._invoke(["parse", "--no-write-json"])
        if not result.success or result.result is None:
            why = _why(result)
            profile = re.search(r"Could not find profile named '([^']*)'", why)
            if profile:
                where = self.args.profiles_file
                fix = f" in {where}; add it there" if os.path.isfile(where) else \
                    f": {where} does not exist; create it"
                raise ConfigError(f"no dbt profile named {profile[1]!r}{fix} or pass "
                                  "--profiles-dir (`dbt debug` checks a profile)")
            raise DbtError(f"dbt parse failed in {project_dir}: {why}; "
                           "run `dbt parse` there to see the full error")
        self.manifest = result.result
        return self.manifest

    def compile(self, selection: Sequence[str] = (
            "--select", "resource_type:model", "resource_type:snapshot")) -> None:
        """Render the nodes `selection` (dbt options) chooses, by default every model and
        snapshot, into `compiled_code` on the cached manifest.

        :raises DbtError: a node failed to compile (its Jinja or a macro raised).
        """
        # No relation cache: compiling needs none, and a macro that looks a relation up
        # still gets a live answer from the adapter. --full-refresh makes `is_incremental()`
        # false everywhere, so an incremental model compiles to the same SQL whether or not its
        # table exists yet (else its code version would change after its first build).
        result = self._invoke(["compile", *selection, "--indirect-selection", "empty",
                               "--no-write-json", "--no-populate-cache", "--full-refresh"])
        if not result.success:
            raise DbtError(f"dbt compile failed: {_why(result)}; fix the model, then retry")

    def select(self, selection: Sequence[str]) -> set[str]:
        """Unique ids dbt itself selects for the user's --select/--exclude/--selector.

        :raises DbtError: the selection is invalid.
        """
        result = self._invoke(["ls", *selection, "--output", "json",
                               "--output-keys", "unique_id"])
        if not result.success:
            raise DbtError(f"dbt could not resolve the selection {' '.join(selection)}: "
                           f"{_why(result)}")
        return {json.loads(line)["unique_id"] for line in result.result or ()}

    def query(self, sql: str) -> list[dict[str, Any]]:
        """Run one SQL query in the warehouse through dbt's own connection; rows as dicts.

        :raises DbtError: the query failed.
        """
        previews: list[str] = []

        def capture(event: Any) -> None:
            if event.info.name == "ShowNode":
                previews.append(event.data.preview)

        result = self._invoke(["show", "--inline-direct", sql, "--limit", "-1",
                               "--output", "json"], callbacks=[capture])
        if not result.success or not previews:
            raise DbtError(f"warehouse query failed: {_why(result)}\nquery: {sql[:2000]}")
        rows: list[dict[str, Any]] = json.loads(previews[-1])
        return rows

    def execute(self, command: str, selection: Sequence[str], exclude: Sequence[str] = (),
                extra: Sequence[str] = ()) -> RunExecutionResult | None:
        """Run `dbt build|run` with these selection options, `extra` flags (--full-refresh,
        a batch range) and the user's other args.

        :raises DbtError: dbt could not start (its arguments or project are unusable).
        """
        build = list(self.args.build)
        if "--full-refresh" in extra:
            build = [a for a in build if a not in ("--full-refresh", "-f")]
        argv = [command, *selection, *exclude, *extra]
        # A manifest dbt has compiled once marks ephemeral CTEs as injected, and a second
        # compile of it then drops them (`__dbt__cte__x does not exist`): let dbt re-parse
        # (partial parsing makes that cheap) instead of reusing ours.
        result = self._invoke([*argv, *build], quiet=False, reuse_manifest=False)
        if result.result is None and result.exception is not None:
            raise DbtError(f"dbt {command} could not start: {result.exception}")
        return result.result  # type: ignore[no-any-return]


def _close_log_files() -> None:
    """Close dbt's `dbt.log` handlers once a call returns.

    dbt drops the previous call's file handler without closing it, so every call after the
    first leaks an open file and raises a ResourceWarning (an error under `-W error`). A closed
    FileHandler reopens itself if written to again, so closing is safe.
    """
    for logger in list(logging.Logger.manager.loggerDict.values()):
        if not isinstance(logger, logging.Logger):
            continue
        for handler in list(logger.handlers):
            if isinstance(handler, logging.FileHandler) and \
                    os.path.basename(handler.baseFilename) == "dbt.log":
                handler.close()


def release_warehouse() -> None:
    """Close the DuckDB database dbt-duckdb keeps open in this process after dbt returns.

    dbt-duckdb caches one database handle per process (a class attribute). Left open, it holds
    DuckDB's file lock, so a loader in another process cannot write the warehouse after an
    in-process build, and a warehouse file replaced on disk would still be read from the old one.
    """
    module = sys.modules.get("dbt.adapters.duckdb.connections")
    if module is None:
        return
    manager = module.DuckDBConnectionManager
    with manager._LOCK:
        env, manager._ENV = manager._ENV, None
    if env is not None:
        try:
            env.close()
        except Exception as exc:  # closing is best effort; the handle is dropped either way
            log.debug("ignoring error while closing the DuckDB environment: %s", exc)


def _why(result: Any) -> str:
    if result.exception is not None:
        return _one_line(str(result.exception)) or type(result.exception).__name__
    run = result.result
    for item in getattr(run, "results", None) or ():
        if str(item.status) in ("error", "fail", "runtime error"):
            return f"{item.node.unique_id}: {item.message}"
    return "no details from dbt"


def _one_line(text: str) -> str:
    """dbt's `Runtime Error\n  Could not find ...` as `Runtime Error: Could not find ...`."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(lines) > 1 and lines[0].endswith("Error"):
        return f"{lines[0]}: {' '.join(lines[1:])}"
    return " ".join(lines)
