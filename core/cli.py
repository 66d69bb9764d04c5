"""The `insync` command: status, why, history, db upgrade; adapters add sub-commands.

Rich tables for people, `--json` for machines. Adapter commands come from the `insync.cli`
entry-point group and load only when invoked, so `insync status` never imports an orchestrator.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any

import click
from rich.console import Console
from rich.table import Table
from rich.tree import Tree

from ._model import AssetStatus, Event, StaleCause, StaleStatus
from ._store import EventStore
from .errors import InsyncError

__all__ = ["event_to_json", "explain", "main", "status_to_json"]

_STYLE = {StaleStatus.FRESH: "green", StaleStatus.STALE: "yellow", StaleStatus.MISSING: "red"}


class _Group(click.Group):
    """Built-in commands plus lazily loaded adapter groups; InsyncError becomes a clean message."""

    def _plugins(self) -> dict[str, Any]:
        return {ep.name: ep for ep in entry_points(group="insync.cli")}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self._plugins()})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        command = super().get_command(ctx, name)
        if command is None and name in self._plugins():
            command = self._plugins()[name].load()
        return command

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except InsyncError as exc:
            raise click.ClickException(f"{type(exc).__name__}: {exc}") from exc


def _open(ctx: click.Context) -> EventStore:
    store = EventStore(ctx.obj.get("database_url"))
    ctx.call_on_close(store.close)
    return store


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--database-url",
    envvar="INSYNC_DATABASE_URL",
    help="SQLAlchemy URL of the store (default: $INSYNC_HOME or ./.insync).",
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
    """Status of every asset (or of ASSETS): Synced, Unsynced or Never materialized."""
    store = _open(ctx)
    found = store.statuses(assets or None)
    rows = sorted(found.values(), key=lambda s: s.key)
    if as_json:
        click.echo(json.dumps([status_to_json(s) for s in rows], indent=2))
        return
    table = Table("asset", "status", "code version", "data version", "why / pending upstream", box=None)
    for s in rows:
        table.add_row(
            str(s.key),
            f"[{_STYLE[s.status]}]{s.status.label}[/]",
            s.code_version or "-",
            _short(str(s.data_version)),
            "; ".join(
                [str(c) for c in s.root_causes] + [f"after {u.key}: {u.status.label}" for u in s.upstream][:3]
            ),
        )
    _console().print(table)
    counts = {state: sum(1 for s in rows if s.status is state) for state in StaleStatus}
    _console().print(", ".join(f"{n} {state.label.lower()}" for state, n in counts.items()))


@main.command()
@click.argument("asset")
@click.option("--json", "as_json", is_flag=True, help="Print stable JSON instead of a tree.")
@click.pass_context
def why(ctx: click.Context, asset: str, as_json: bool) -> None:
    """Why ASSET is unsynced: the cause tree, its root causes and pending upstream changes."""
    s = _open(ctx).status(asset)
    if as_json:
        click.echo(json.dumps(status_to_json(s), indent=2))
        return
    console = _console()
    for line in explain(s):
        console.print(line, highlight=False)
    if s.causes:
        tree = Tree(f"[bold]{s.key}[/] is {s.status.label}")
        for cause in s.causes:
            _add_cause(tree, cause)
        console.print(tree)


def explain(s: AssetStatus) -> list[str]:
    """The plain-words explanation shared by `insync why` and the UI."""
    lines = [f"{s.key}: {s.status.label}"]
    if s.status is StaleStatus.MISSING:
        lines.append("  it has never been materialized")
    for cause in s.root_causes:
        lines.append(f"  root cause: {cause}")
    for change in s.upstream:
        lines.append(f"  {change}")
    return lines


def _add_cause(node: Tree, cause: StaleCause) -> None:
    branch = node.add(f"{cause} [dim]({cause.category.value})[/]")
    for child in cause.children:
        _add_cause(branch, child)


@main.command()
@click.argument("asset")
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print stable JSON instead of a table.")
@click.pass_context
def history(ctx: click.Context, asset: str, limit: int, as_json: bool) -> None:
    """Materializations and observations of ASSET, newest first."""
    events = _open(ctx).history(asset, limit=limit)
    if as_json:
        click.echo(json.dumps([event_to_json(e) for e in events], indent=2))
        return
    table = Table("id", "time (UTC)", "kind", "run id", "framework", "code version", "data version", box=None)
    for e in events:
        table.add_row(
            str(e.id),
            e.timestamp.format("YYYY-MM-DD HH:mm:ss"),
            e.kind,
            e.run_id or "-",
            e.framework or "-",
            e.code_version or "-",
            _short(str(e.data_version)) + (" (user)" if e.user_provided else ""),
        )
    _console().print(table)


@main.group()
def db() -> None:
    """Manage the store's schema."""


@db.command()
@click.pass_context
def upgrade(ctx: click.Context) -> None:
    """Create the store, or migrate it to this insync's schema."""
    store = EventStore(ctx.obj.get("database_url"), upgrade=True)
    click.echo(f"{store}: schema at {store.schema_revision()}")
    store.close()


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8765, show_default=True)
@click.pass_context
def ui(ctx: click.Context, host: str, port: int) -> None:
    """Serve the read-only asset catalog in a browser."""
    from .ui import serve  # type: ignore[import-not-found,unused-ignore]  # optional: insync[ui]

    serve(ctx.obj.get("database_url"), host=host, port=port)


def status_to_json(s: AssetStatus) -> dict[str, Any]:
    """Stable JSON for one status (used by `insync status --json`, `why --json` and the UI)."""
    return {
        "key": str(s.key),
        "status": s.status.value,
        "label": s.status.label,
        "kind": s.kind,
        "framework": s.framework,
        "code_version": s.code_version,
        "data_version": str(s.data_version),
        "causes": [_cause_json(c) for c in s.causes],
        "root_causes": [_cause_json(c) for c in s.root_causes],
        "upstream": [{"key": str(u.key), "status": u.status.value, "text": str(u)} for u in s.upstream],
    }


def _cause_json(c: StaleCause) -> dict[str, Any]:
    return {
        "key": str(c.key),
        "category": c.category.value,
        "reason": c.reason,
        "dependency": None if c.dependency is None else str(c.dependency),
        "text": str(c),
        "children": [_cause_json(child) for child in c.children],
    }


def event_to_json(e: Event) -> dict[str, Any]:
    return {
        "id": e.id,
        "key": str(e.key),
        "kind": e.kind,
        "timestamp": e.timestamp.isoformat(),
        "run_id": e.run_id,
        "framework": e.framework,
        "code_version": e.code_version,
        "data_version": str(e.data_version),
        "user_provided": e.user_provided,
        "metadata": dict(e.metadata),
        "inputs": [
            {"key": str(i.key), "data_version": str(i.data_version), "event_id": i.event_id} for i in e.inputs
        ],
    }


def _short(version: str) -> str:
    return version if len(version) <= 16 else version[:12] + "…"


_console: Callable[[], Console] = Console
