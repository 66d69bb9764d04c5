"""The `insync` command: status, why, history, db upgrade; adapters add sub-commands.

Rich tables for people, `--json` for machines. Adapter commands come from the `insync.cli`
entry-point group and load only when invoked, so `insync status` never imports an orchestrator;
`insync --help` lists them with the help read from their source, not by importing them.
A partitioned asset shows as its rollup (counts, and which partitions are not Synced);
`why --partition` and `history --partition` look at one partition. Every value from the store
is escaped before rich sees it: a partition key like `eu` would otherwise vanish as markup
(`orders[eu]`).

The store, the renderers and rich are imported inside the commands that use them: `insync --help`
runs in a tenth of a second, and `insync status` does not load what only `history` needs.
"""

from __future__ import annotations

import ast
import functools
import json
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from .errors import InsyncError

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

    from rich.console import Console
    from rich.tree import Tree

    from ._model import StaleCause
    from ._render import cause_lines, event_to_json, explain, status_to_json
    from ._store import EventStore

__all__ = ["InsyncGroup", "cause_lines", "event_to_json", "explain", "main", "status_to_json"]

_STYLE = {"FRESH": "green", "STALE": "yellow", "MISSING": "red"}  # by StaleStatus name


class InsyncGroup(click.Group):
    """A click group whose InsyncError is a clean one-line message: the `insync` command's and
    each adapter's group (`insync dbt`, `insync airflow`), also when one runs on its own."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except InsyncError as exc:
            raise click.ClickException(f"{type(exc).__name__}: {exc}") from exc


class _Group(InsyncGroup):
    """Built-in commands plus adapter groups, each imported only when it is invoked."""

    _describing = False

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *_plugins()})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        command = super().get_command(ctx, name)
        plugin = _plugins().get(name) if command is None else None
        if plugin is None:
            return command
        if self._describing:
            return click.Command(name, help=_plugin_help(plugin.value))
        try:
            loaded: click.Command = plugin.load()
        except ImportError as exc:  # the adapter's framework is not installed: its message says which
            raise click.ClickException(f"insync {name}: {exc}") from exc
        return loaded

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # The listing needs one line of help per plugin, not the plugin: importing `insync dbt`
        # and `insync airflow` would import dbt and Airflow (20 s on a busy machine).
        self._describing = True
        try:
            super().format_commands(ctx, formatter)
        finally:
            self._describing = False


@functools.cache
def _plugins() -> dict[str, EntryPoint]:
    from importlib.metadata import entry_points

    return {ep.name: ep for ep in entry_points(group="insync.cli")}


def _plugin_help(target: str) -> str:
    """The help of the click command an entry point names (`package.module:function`), read from
    its source: the function's docstring, else the module's; "" when the source cannot be read."""
    module, _, attribute = target.partition(":")
    path = _source_of(module)
    try:
        tree = ast.parse(path.read_bytes()) if path is not None else None
    except (OSError, SyntaxError, ValueError):
        tree = None
    if tree is None:
        return ""
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == attribute:
            return ast.get_docstring(node) or ""
    return ast.get_docstring(tree) or ""


def _source_of(module: str) -> Path | None:
    """The file of `module`, found as import would find it but without running any package's
    `__init__` on the way (the adapters' import their orchestrator)."""
    search: list[str] | None = None
    spec = None
    parts = module.split(".")
    for depth in range(1, len(parts) + 1):
        name = ".".join(parts[:depth])
        loaded = sys.modules.get(name)
        if loaded is not None:
            spec = loaded.__spec__
        else:
            finders = (getattr(finder, "find_spec", None) for finder in sys.meta_path)
            spec = next((s for find in finders if find is not None and (s := find(name, search))), None)
        if spec is None:
            return None
        search = list(spec.submodule_search_locations or [])
    origin = spec.origin if spec is not None else None
    return Path(origin) if origin and origin.endswith(".py") else None


def _open(ctx: click.Context) -> EventStore:
    from ._store import EventStore

    # Reading never creates or migrates a store: a wrong path is an error, not a new empty store.
    store = EventStore(ctx.obj.get("database_url"), read_only=True)
    ctx.call_on_close(store.close)
    return store


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--database-url",
    help="SQLAlchemy URL of the store (default: $INSYNC_DATABASE_URL, else $INSYNC_HOME or ./.insync).",
)
@click.pass_context
def main(ctx: click.Context, database_url: str | None) -> None:
    """Asset versioning for Airflow, Prefect and dbt: which assets are in sync, and why not."""
    ctx.ensure_object(dict)
    ctx.obj["database_url"] = database_url


@main.command()
@click.argument("assets", nargs=-1)
@click.option("--json", "as_json", is_flag=True, help="Print stable JSON instead of a table.")
@click.pass_context
def status(ctx: click.Context, assets: tuple[str, ...], as_json: bool) -> None:
    """Status of every asset (or of ASSETS): Synced, Unsynced or Never materialized.

    A partitioned asset is Unsynced when any partition is, and its row counts its partitions.
    """
    from rich.markup import escape
    from rich.table import Table

    from ._model import StaleStatus
    from ._render import SHOWN, preview, rollup_text, short, status_to_json

    store = _open(ctx)
    found = store.statuses(assets or None)
    rows = sorted(found.values(), key=lambda s: s.key)
    if as_json:
        click.echo(json.dumps([status_to_json(s) for s in rows], indent=2))
        return
    partitioned = any(s.partitions is not None for s in rows)
    columns = ["asset", "status", "code version", "data version"]
    table = Table(*columns, *(["partitions"] if partitioned else []), "why / pending upstream", box=None)
    for s in rows:
        cells = [
            escape(str(s.key)),
            f"[{_STYLE[s.status.name]}]{s.status.label}[/]",
            escape(s.code_version or "-"),
            "per partition" if s.partitions is not None else escape(short(str(s.data_version))),
        ]
        if partitioned:
            cells.append("-" if s.partitions is None else escape(rollup_text(s.partitions)))
        why = preview([str(c) for c in s.root_causes], SHOWN)
        pending = [f"after {u.key}: {u.status.label}" for u in s.upstream][:3]
        cells.append(escape("; ".join(why + pending)))
        table.add_row(*cells)
    _console().print(table)
    counts = {state: sum(1 for s in rows if s.status is state) for state in StaleStatus}
    _console().print(", ".join(f"{n} {state.label.lower()}" for state, n in counts.items()))


@main.command()
@click.argument("asset")
@click.option("--partition", "-p", metavar="KEY", help="Explain this partition of a partitioned ASSET.")
@click.option("--json", "as_json", is_flag=True, help="Print stable JSON instead of a tree.")
@click.pass_context
def why(ctx: click.Context, asset: str, partition: str | None, as_json: bool) -> None:
    """Why ASSET is unsynced: the cause tree, its root causes and pending upstream changes.

    For a partitioned ASSET, the rollup over its partitions; --partition explains one.
    """
    from rich.markup import escape
    from rich.tree import Tree

    from ._render import explain, parameters_text, status_to_json

    s = _open(ctx).status(asset, partition=partition)
    if as_json:
        click.echo(json.dumps(status_to_json(s), indent=2))
        return
    console = _console()
    for line in explain(s):
        console.print(line, highlight=False, markup=False)
    if s.parameters:
        console.print(f"  parameters: {parameters_text(s.parameters)}", highlight=False, markup=False)
    if s.causes:
        tree = Tree(f"[bold]{escape(s.label)}[/] is {s.status.label}")
        for cause in s.causes:
            _add_cause(tree, cause)
        console.print(tree, highlight=False)
    if s.partitions is not None:
        first = (s.partitions.unsynced or s.partitions.missing or (None,))[0]
        if first is not None:
            command = f"insync why {shlex.quote(str(s.key))} --partition {shlex.quote(first)}"
            console.print(f"explain one partition: {command}", highlight=False, markup=False)


def _add_cause(node: Tree, cause: StaleCause) -> None:
    from rich.markup import escape

    branch = node.add(f"{escape(str(cause))} [dim]({cause.category.value})[/]")
    for child in cause.children:
        _add_cause(branch, child)


@main.command()
@click.argument("asset")
@click.option("--partition", "-p", metavar="KEY", help="Only the events of this partition.")
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print stable JSON instead of a table.")
@click.pass_context
def history(ctx: click.Context, asset: str, partition: str | None, limit: int, as_json: bool) -> None:
    """Materializations and observations of ASSET, newest first."""
    from rich.markup import escape
    from rich.table import Table

    from ._render import event_to_json, parameters_text, short

    store = _open(ctx)
    events = store.history(asset, limit=limit, partition=partition)
    if not events and partition is not None:
        # Nothing recorded: say so if the partition (or the asset) is a typo, not an empty table.
        store.status(asset, upstream=False, partition=partition)
    if as_json:
        click.echo(json.dumps([event_to_json(e) for e in events], indent=2))
        return
    partitioned = partition is not None or any(e.partition for e in events)
    with_parameters = any(e.parameters for e in events)
    columns = ["id", "time (UTC)", "kind", *(["partition"] if partitioned else [])]
    columns += ["run id", "framework", "code version", "data version"]
    table = Table(*columns, *(["parameters"] if with_parameters else []), box=None)
    for e in events:
        cells = [str(e.id), e.timestamp.format("YYYY-MM-DD HH:mm:ss"), e.kind]
        if partitioned:
            cells.append(e.partition or "-")
        cells += [
            e.run_id or "-",
            e.framework or "-",
            e.code_version or "-",
            short(str(e.data_version)) + (" (user)" if e.user_provided else ""),
        ]
        if with_parameters:
            cells.append(parameters_text(e.parameters) or "-")
        table.add_row(*(escape(c) for c in cells))
    _console().print(table)


@main.group()
def db() -> None:
    """Manage the store's schema."""


@db.command()
@click.pass_context
def upgrade(ctx: click.Context) -> None:
    """Create the store, or migrate it to this insync's schema."""
    from ._store import EventStore

    store = EventStore(ctx.obj.get("database_url"), upgrade=True)
    click.echo(f"{store}: schema at {store.schema_revision()}")
    store.close()


@main.command()
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on. The catalog has no authentication: a non-loopback address "
    "shows the store to the network.",
)
@click.option("--port", type=int, default=8765, show_default=True)
@click.option(
    "--allow-host",
    "allow_hosts",
    multiple=True,
    metavar="NAME",
    help="Also answer requests for this Host name (repeatable). Others get 400, so a web page cannot "
    "read the catalog through DNS rebinding.",
)
@click.pass_context
def ui(ctx: click.Context, host: str, port: int, allow_hosts: tuple[str, ...]) -> None:
    """Serve the read-only asset catalog in a browser."""
    from .ui import serve  # type: ignore[import-not-found,unused-ignore]  # optional: insync[ui]

    serve(ctx.obj.get("database_url"), host=host, port=port, allow_hosts=allow_hosts)


def _console() -> Console:
    from ._render import console  # piped output as wide as its rows: no key is cut

    return console()


_RENDERED = frozenset({"cause_lines", "event_to_json", "explain", "status_to_json"})

if not TYPE_CHECKING:  # mypy sees the renderers through the imports at the top

    def __getattr__(name: str) -> object:
        # The renderers the dbt adapter and the examples import from here, loaded on first use.
        if name not in _RENDERED:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        from . import _render

        return getattr(_render, name)
