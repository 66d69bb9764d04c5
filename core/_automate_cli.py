"""`insync automate`: launch what the policies say, through each asset's owner, one line per decision.

Loaded only when the command is invoked (entry point `insync.cli`), so `insync status` never pays
for it. Launchers come from the adapters (entry point group `insync.launchers`) and are imported
only for the owner kinds that have something to launch.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from importlib.metadata import entry_points
from pathlib import Path

import click
import pendulum

from ._automation import (
    AutomationConfig,
    Decision,
    Launcher,
    claim,
    load_config,
    parse_duration,
    plan,
    record_run,
    release,
    requests_for,
)
from ._store import EventStore
from .errors import ConfigError, InsyncError

__all__ = ["automate"]

log = logging.getLogger("insync")


def _echo(line: str) -> None:
    stamp = pendulum.now("UTC").format("YYYY-MM-DDTHH:mm:ss[Z]")
    click.echo(f"{stamp} {line}")


class _Launchers:
    """The adapters' launchers, each imported on first use."""

    def __init__(self, config: AutomationConfig) -> None:
        self.config = config
        self._loaded: dict[str, Launcher] = {}

    def get(self, kind: str) -> Launcher:
        if kind not in self._loaded:
            found = {ep.name: ep for ep in entry_points(group="insync.launchers")}
            if kind not in found:
                raise ConfigError(f"no launcher for {kind} owners is installed; pip install 'insync[{kind}]'")
            factory = found[kind].load()
            self._loaded[kind] = factory(self.config.launchers.get(kind, {}))
        return self._loaded[kind]


def run_once(
    store: EventStore,
    config: AutomationConfig,
    launchers: _Launchers,
    *,
    instance: str,
    dry_run: bool,
    standing: dict[str, str] | None = None,
) -> list[Decision]:
    """One loop: plan, claim, launch; every decision printed as one line.

    `standing`: the loop's memory of what it printed for each asset that it did not launch
    (waits, holds, claims, breaches, missing owners), so a long-running loop prints such a
    decision when it first appears and when it changes, not every interval. Launches always print.
    """
    decisions = plan(store, config)
    if dry_run:
        for d in decisions:
            click.echo(str(d))
        if not decisions:
            click.echo("nothing to do: every asset with a policy is Synced and fresh")
        return decisions
    decisions = claim(store, decisions, instance=instance)
    now: dict[str, str] = {_label(d): d.action for d in decisions if d.action != "launch"} or (
        {} if decisions else {"": "nothing to do"}
    )
    before = dict(standing or {})
    if standing is not None:
        standing.clear()
        standing.update(now)
    for d in decisions:
        if d.action != "launch" and before.get(_label(d)) != d.action:
            _echo(str(d))
    for request in requests_for(decisions, config, store_url=store.url.render_as_string(hide_password=False)):
        members = [
            d for d in decisions if d.action == "launch" and d.owner and d.owner.group == request.owner.group
        ]
        try:
            run_ref = launchers.get(request.owner.kind).launch(request)
        except InsyncError as exc:
            release(store, members)  # not started: a later loop tries again
            for d in members:
                _echo(f"failed {d.key} via {request.owner}: {exc}")
            continue
        record_run(store, members, run_ref)
        for d in members:
            _echo(f"{d} -> run {run_ref}")
    if not decisions and before.get("") is None:
        _echo("nothing to do")
    return decisions


def _label(decision: Decision) -> str:
    return f"{decision.key} {','.join(decision.partitions or ())}"


@click.command("automate")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="TOML file of policies (default: [tool.insync.automate] in ./pyproject.toml).",
)
@click.option("--interval", default="60s", show_default=True, help="Time between loops: 30s, 5m, ...")
@click.option("--once", is_flag=True, help="Run one loop and exit (for cron).")
@click.option("--dry-run", is_flag=True, help="Print the plan; launch nothing, claim nothing.")
@click.option("--instance", help="This process's name in the claims (default: HOST:PID).")
@click.pass_context
def automate(
    ctx: click.Context,
    config_path: Path | None,
    interval: str,
    once: bool,
    dry_run: bool,
    instance: str | None,
) -> None:
    """Launch Unsynced assets through their owners (Airflow DAG, Prefect deployment, dbt), as
    the policies say; safe to run twice (claims in the store)."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(message)s")
    config = load_config(config_path)
    pause = parse_duration(interval, "--interval").total_seconds()
    if pause <= 0 and not (once or dry_run):
        raise ConfigError("--interval must be longer than 0s; write e.g. --interval 30s")
    name = instance or f"{socket.gethostname()}:{os.getpid()}"
    database_url = (ctx.obj or {}).get("database_url")
    with EventStore(database_url, read_only=dry_run) as store:
        launchers = _Launchers(config)
        if dry_run:
            click.echo(f"plan for {store} (dry run: nothing launched, nothing claimed)")
        else:
            _echo(f"automate {store} as {name}, every {interval}" + (" (once)" if once else ""))
        standing: dict[str, str] = {}
        while True:
            run_once(store, config, launchers, instance=name, dry_run=dry_run, standing=standing)
            if once or dry_run:
                return
            time.sleep(pause)
