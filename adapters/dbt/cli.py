"""`insync dbt build|run|status|why`: the dbt commands, plugged into `insync` by entry point.

Every argument insync does not know is dbt's: `insync dbt build --select marts --target prod`.
"""

from __future__ import annotations

import json
import logging
import shutil
import sys
from collections.abc import Sequence

import click
from insync.core.cli import InsyncGroup

from ._progress import is_progress
from ._project import DbtProject
from ._report import BuildReport

__all__ = ["dbt_group"]

_PASS_THROUGH = {"ignore_unknown_options": True, "allow_extra_args": True,
                 "help_option_names": ["-h", "--help"]}


class _ProgressLines(logging.Handler):
    """Prints the adapter's progress lines on stderr (stdout keeps the table, or the JSON)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.addFilter(is_progress)

    def emit(self, record: logging.LogRecord) -> None:
        click.echo(f"insync: {record.getMessage()}", err=True)


def _project(ctx: click.Context) -> DbtProject:
    url = ctx.obj.get("database_url") if isinstance(ctx.obj, dict) else None
    project = DbtProject(store=url)
    ctx.call_on_close(project.close)
    logger = logging.getLogger("insync.adapters.dbt")
    handler, level, propagate = _ProgressLines(), logger.level, logger.propagate
    logger.addHandler(handler)
    # The table says what each node did; a handler dbt leaves on the root logger would repeat it.
    logger.propagate = False
    if not logger.isEnabledFor(logging.INFO):
        logger.setLevel(logging.INFO)

    def detach() -> None:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate

    ctx.call_on_close(detach)
    return project


def _echo(report: BuildReport, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2))
    else:
        # Piped to a file or grep: one line per node, whatever its key's length (nothing is cut).
        width = max(100, shutil.get_terminal_size().columns) if sys.stdout.isatty() else 1000
        click.echo(report.render(width=width))


@click.group("dbt", cls=InsyncGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--database-url", envvar="INSYNC_DATABASE_URL", default=None,
              help="SQLAlchemy URL of the store (default: $INSYNC_HOME or ./.insync).")
@click.pass_context
def dbt_group(ctx: click.Context, database_url: str | None) -> None:
    """Memoized dbt: build only the models whose code or upstream data changed."""
    parent = ctx.obj if isinstance(ctx.obj, dict) else {}
    ctx.obj = {**parent, "database_url": database_url or parent.get("database_url")}


def _build_like(command: str) -> click.Command:
    @click.pass_context
    def handler(ctx: click.Context, force: bool, as_json: bool) -> None:
        project = _project(ctx)
        runner = project.build if command == "build" else project.run
        report = runner(*ctx.args, force=force)
        _echo(report, as_json)
        if not report.success:
            sys.exit(1)

    handler.__doc__ = (
        f"dbt {command} of the selected nodes that are unsynced or missing; reuse the rest.\n\n"
        f"Other arguments go to dbt: insync dbt {command} --select marts --target prod"
    )
    cmd = click.command(command, context_settings=_PASS_THROUGH)(handler)
    cmd = click.option("--force", is_flag=True, help="Rebuild every selected node.")(cmd)
    return click.option("--json", "as_json", is_flag=True,
                        help="Print JSON instead of the table.")(cmd)


dbt_group.add_command(_build_like("build"))
dbt_group.add_command(_build_like("run"))


@dbt_group.command(context_settings=_PASS_THROUGH)
@click.option("--no-observe", is_flag=True, help="Do not query sources; use the last observations.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of the table.")
@click.pass_context
def status(ctx: click.Context, no_observe: bool, as_json: bool) -> None:
    """What `insync dbt build` would build now, and why. Other arguments go to dbt."""
    report = _project(ctx).status(*ctx.args, observe=not no_observe)
    _echo(report, as_json)


@dbt_group.command(context_settings=_PASS_THROUGH)
@click.argument("node")
@click.option("--no-observe", is_flag=True, help="Do not query sources; use the last observations.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@click.pass_context
def why(ctx: click.Context, node: str, no_observe: bool, as_json: bool) -> None:
    """Why NODE (model/seed/snapshot/source name, unique id or asset key) would be rebuilt."""
    from insync.core.cli import cause_lines, explain, status_to_json

    asset, status_ = _project(ctx).asset_status(node, *ctx.args, observe=not no_observe)
    if as_json:
        click.echo(json.dumps({"unique_id": asset.unique_id, **status_to_json(status_)}, indent=2))
        return
    click.echo(f"{asset.unique_id} -> asset {asset.key}")
    if asset.code_version:
        click.echo(f"  code version {asset.code_version} ({asset.data_version} data version)")
    for line in [*explain(status_), *cause_lines(status_.causes)]:
        click.echo(line)


def main(argv: Sequence[str] | None = None) -> None:
    """`python -m insync.adapters.dbt ...`."""
    dbt_group.main(args=list(argv) if argv is not None else None, prog_name="insync dbt")
